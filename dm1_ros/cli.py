"""`dm1`: one entry point for the whole pipeline.

    dm1 demo                      the main job on the embedded default (see `dm1 demo --help`)
    dm1 bench inference [--json]  policy latency: ONNX 1 step vs multi-step vs torch, training step cost
    dm1 collect --task lift --episodes 100 --out data/lift.hdf5   scripted demonstrations (robomimic HDF5)
    dm1 export CKPT --out DIR     checkpoint -> ONNX bundle (model.onnx + manifest.yaml), parity-checked
    dm1 toy                       train MeanFlow and flow matching on the 2-D multimodal toy task
"""
from __future__ import annotations

import argparse
import json
import logging
import sys


def cmd_demo(args) -> int:
    from dm1_ros.train.toy import run_toy_demo

    print("dm1 demo: one-step MeanFlow vs multi-step flow matching on a conditional multimodal task\n"
          "(the simulation demo with the shipped lift model replaces this once training lands)\n", flush=True)
    run_toy_demo(out_png=args.plot, steps=args.steps, seed=args.seed)
    return 0


def cmd_toy(args) -> int:
    return cmd_demo(args)


def cmd_bench(args) -> int:
    from dm1_ros.policy.benchmark import bench_inference, format_table

    if args.what != "inference":
        print(f"unknown benchmark {args.what!r}; available: inference", file=sys.stderr)
        return 2
    if not args.json:
        print("measuring (variants interleaved in rounds; a minute or two on 2 cores)...", file=sys.stderr, flush=True)
    result = bench_inference(model=args.model, iters=args.iters, train_iters=args.train_iters)
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0


def cmd_collect(args) -> int:
    from dm1_ros.sim.collect import CollectArgs, collect, record_video

    if args.video:
        result = record_video(args.task, args.video, seed=args.seed, image_size=args.image_size)
        print(f"wrote {result['video']}: {result['steps']} steps, success={result['success']}")
        if args.episodes <= 0 or args.out is None:
            return 0
    if args.out is None:
        print("dm1 collect: --out is required (unless only --video is asked for)", file=sys.stderr)
        return 2
    cargs = CollectArgs(task=args.task, episodes=args.episodes, out=args.out, workers=args.workers, images=not args.no_images,
                        image_size=args.image_size, cameras=tuple(args.cameras), seed=args.seed, keep_failures=args.keep_failures)
    try:
        s = collect(cargs)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished episodes are kept in {args.out}.parts; run the same command to resume", file=sys.stderr)
        return 130
    if s.get("tried"):
        print(f"{s['out']}: {s['kept']} episodes ({s['new']} new), expert success {s['expert_success_rate']:.0%} over "
              f"{s['tried']} tries, {s['episodes_per_min']:.1f} episodes/min, {s['steps_per_s']:.0f} steps/s, "
              f"{s['bytes'] / 1e6:.1f} MB")
    return 0


def cmd_export(args) -> int:
    from dm1_ros.policy.checkpoint import CheckpointError, load_checkpoint
    from dm1_ros.policy.export import ExportError, export_bundle

    try:
        policy, payload = load_checkpoint(args.checkpoint, use_ema=not args.no_ema)
        training = {"checkpoint": str(args.checkpoint), **(payload.get("provenance") or {})}
        manifest = export_bundle(policy, args.out, steps=args.steps, control_rate_hz=args.control_rate, training=training,
                                 tolerance=args.tolerance)
    except (CheckpointError, ExportError) as exc:
        print(f"dm1 export: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {manifest.model_id}, {manifest.sampling_steps} step(s), parity {manifest.parity.max_abs_diff:.2e}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dm1", description="One-step generative policies for real-time robot control.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, fn, text in (("demo", cmd_demo, "the main job on the embedded default: trains one-step MeanFlow and "
                            "flow matching on a multimodal toy task, compares 1 vs multi-step sampling, plots, and runs "
                            "the 1-step sampler through onnxruntime"),
                           ("toy", cmd_toy, "the toy comparison alone, with its own options")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--steps", type=int, default=1500, help="optimizer steps per method (default 1500)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--plot", default="docs/toy_onestep.png", help="where to write the scatter plot")
        p.set_defaults(func=fn)

    p = sub.add_parser("bench", help="benchmarks that print figures and ratios measured side by side",
                       description="bench inference: p50/p99 latency and Hz at batch 1 of the default 1.78 M-parameter "
                       "image policy (random weights unless --model): onnxruntime 1 step on 1 and 2 threads, torch eager, "
                       "MeanFlow 5 and 10 steps, flow matching 10 steps, plus the training-step cost of MeanFlow vs flow "
                       "matching.")
    p.add_argument("what", choices=["inference"], help="which benchmark")
    p.add_argument("--model", help="also time this bundle directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--iters", type=int, default=300, help="timed calls per variant (default 300)")
    p.add_argument("--train-iters", type=int, default=8, help="timed training steps per method (default 8)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("collect", help="scripted demonstrations in robosuite -> robomimic HDF5 (resumable)",
                       description="Runs the scripted expert of a task on seeds --seed, --seed+1, ... and keeps successful "
                       "episodes until --episodes are in hand. Every finished episode is written at once (OUT.parts/); "
                       "an interrupted run keeps them and the same command resumes. --video renders one episode.")
    p.add_argument("--task", choices=["lift", "can", "square"], default="lift")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--out", help="dataset file, e.g. data/lift.hdf5")
    p.add_argument("--workers", type=int, default=1, help="parallel simulator processes")
    p.add_argument("--no-images", action="store_true", help="low-dimensional observations only (fast)")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--cameras", nargs="+", default=["robot0_eye_in_hand"], help="robosuite camera names")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--keep-failures", action="store_true", help="also keep episodes the expert failed")
    p.add_argument("--video", help="also write one episode (seed --seed) to this .mp4")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("export", help="checkpoint -> ONNX bundle (model.onnx + manifest.yaml), refused unless "
                       "onnxruntime matches torch within --tolerance")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="bundle directory to write (replaced atomically)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps baked into the graph (default: the config's)")
    p.add_argument("--control-rate", type=float, default=20.0, help="control rate the policy was trained for, Hz")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |onnx - torch| accepted")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA ones")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
