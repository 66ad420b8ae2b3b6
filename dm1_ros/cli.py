"""`dm1`: one entry point for the whole pipeline.

    dm1 demo                      the shipped lift policy controls the robot in robosuite (sim-in-the-loop)
    dm1 eval --model models/lift_image --task lift --episodes 50
    dm1 bench inference [--json]  policy latency: ONNX 1 step vs multi-step vs torch, training step cost
    dm1 collect --task lift --episodes 100 --out data/lift.hdf5   scripted demonstrations (robomimic HDF5)
    dm1 train --config config/train/lift_image.yaml [--set key=value] [--resume]
    dm1 finetune --config config/finetune/lift_lowdim.yaml --init runs/lift_lowdim/last.pt [--resume]   PPO + BC
    dm1 export CKPT --out DIR     checkpoint -> ONNX bundle (model.onnx + manifest.yaml), parity-checked
    dm1 quantize BUNDLE --out DIR int8 matrix-product weights: a faster CPU bundle, checked against its float graph
    dm1 toy                       train MeanFlow and flow matching on the 2-D multimodal toy task
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from dm1_ros.errors import Dm1Error
from dm1_ros.paths import default_config_path, default_model_path


class UsageError(Dm1Error, ValueError):
    """Options that do not go together."""


def _step_list(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        steps = [int(k) for k in text.split(",")]
    except ValueError:
        raise UsageError(f"--steps {text!r}: expected whole numbers separated by commas, e.g. 1,2,5") from None
    if any(k < 1 for k in steps):
        raise UsageError(f"--steps {text!r}: sampling steps are >= 1")
    return steps


def _number(kind, minimum, what: str, strict: bool = False):
    """argparse type: a finite `kind` >= minimum (> minimum when strict), refused with a message naming the rule."""
    import math

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if (isinstance(value, float) and not math.isfinite(value)) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {'>' if strict else '>='} {minimum}")
        return value
    return parse


positive_int = _number(int, 1, "a whole number")
natural_int = _number(int, 0, "a whole number")
positive_float = _number(float, 0.0, "a number", strict=True)
natural_float = _number(float, 0.0, "a number")


def cmd_demo(args) -> int:
    from pathlib import Path

    from dm1_ros.train.demo import run_demo

    if not (Path(args.model) / "manifest.yaml").is_file():
        print(f"dm1 demo: no model bundle at {args.model}", file=sys.stderr)
        return 1
    run_demo(args.model, task=args.task, episodes=args.episodes, video=args.video, seed=args.seed)
    return 0


def cmd_toy(args) -> int:
    from dm1_ros.train.toy import run_toy_demo

    print("dm1 toy: one-step MeanFlow vs multi-step flow matching on a conditional multimodal task\n", flush=True)
    run_toy_demo(out_png=args.plot, steps=args.steps, seed=args.seed)
    return 0


def cmd_eval(args) -> int:
    from pathlib import Path

    from dm1_ros.train.evaluate import (EvalArgs, MARKDOWN_HEADER, claim_summary, evaluate, export_variants, markdown_row,
                                        summary_files, write_summary)

    model = Path(args.model)
    steps = _step_list(args.steps)
    if not model.is_file():
        from dm1_ros.runtime.bundle import read_manifest

        baked = read_manifest(model).sampling_steps
        if steps and steps != [baked]:
            raise UsageError(f"bundle {model} samples in {baked} step(s); pass a checkpoint (.pt) to evaluate "
                             f"--steps {args.steps}")
        steps = [baked]
    steps = steps or [1]
    outputs = summary_files(args.out, steps) if args.out else {}
    for path in outputs.values():  # refused before the evaluation, not after it
        claim_summary(path, args.force)
    bundles = export_variants(str(model), steps) if model.is_file() else {steps[0]: str(model)}
    rows = []
    for k, bundle in bundles.items():
        summary = evaluate(EvalArgs(model=bundle, task=args.task, episodes=args.episodes, execute=args.execute or "",
                                    workers=args.workers, video=args.video if k == min(bundles) else None,
                                    seed_base=args.seed_base, delay_ms=args.delay_ms, noise=args.noise,
                                    delay_mode=args.delay_mode, lookahead_ms=args.lookahead_ms,
                                    appearance=args.appearance))
        summary["model"] = str(model)
        if outputs:
            write_summary(summary, outputs[k], force=args.force)
        rows.append(markdown_row(summary))
        print(f"{args.task} {summary['method']} {k} step(s): {summary['successes']}/{summary['episodes']} success "
              f"(95% CI {summary['ci95'][0]:.0%}-{summary['ci95'][1]:.0%}), mean length {summary['mean_steps']:.0f}, "
              f"policy p50 {summary['policy_latency_ms']['p50']:.2f} ms", flush=True)
    print("\n" + MARKDOWN_HEADER + "\n" + "\n".join(rows))
    return 0


def cmd_bench(args) -> int:
    from pathlib import Path

    from dm1_ros.policy.benchmark import bench_inference, format_table

    if not args.json:
        print("measuring (variants interleaved in rounds; a minute or two on 2 cores)...", file=sys.stderr, flush=True)
    others = {f"onnx_{Path(b).name}": b for b in args.also}
    result = bench_inference(model=args.model, iters=args.iters, train_iters=args.train_iters, reference=args.reference,
                             others=others)
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0


def cmd_collect(args) -> int:
    from pathlib import Path

    from dm1_ros.sim.collect import CollectArgs, collect, record_video

    if args.video:
        result = record_video(args.task, args.video, seed=args.seed, image_size=args.image_size)
        print(f"wrote {result['video']}: {result['steps']} steps, success={result['success']}")
        if args.episodes <= 0 or args.out is None:
            return 0
    if args.out is None:
        raise UsageError("--out is required (unless only --video is asked for)")
    cargs = CollectArgs(task=args.task, episodes=args.episodes, out=args.out, workers=args.workers, images=not args.no_images,
                        image_size=args.image_size, cameras=tuple(args.cameras), seed=args.seed, keep_failures=args.keep_failures,
                        point_cloud=tuple(args.point_cloud), num_points=args.num_points,
                        crop=(tuple(args.crop[:3]), tuple(args.crop[3:])) if args.crop else None,
                        takeover=args.takeover or "", takeover_ticks=tuple(args.takeover_ticks))
    if args.takeover:
        try:
            from dm1_ros.sim.takeover import takeover_tick

            takeover_tick(0, cargs.takeover_ticks)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if not Path(args.takeover).is_dir():
            raise UsageError(f"--takeover {args.takeover}: not a policy bundle directory")
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


def cmd_train(args) -> int:
    from dm1_ros.configuration import load_yaml
    from dm1_ros.train.pretrain import TrainConfig, train

    cfg = load_yaml(TrainConfig, args.config, args.set)
    try:
        path = train(cfg, resume=args.resume, progress=not args.no_progress, force=args.force)
    except KeyboardInterrupt:
        return 130  # train() said where the checkpoint is
    print(f"wrote {path}; export with: dm1 export {path} --out models/NAME")
    return 0


def cmd_finetune(args) -> int:
    from dm1_ros.configuration import load_yaml
    from dm1_ros.finetune.config import FinetuneConfig
    from dm1_ros.finetune.loop import finetune

    overrides = list(args.set) + ([f"init={args.init}"] if args.init else [])
    cfg = load_yaml(FinetuneConfig, args.config, overrides)
    try:
        summary = finetune(cfg, resume=args.resume, progress=not args.no_progress, force=args.force)
    except KeyboardInterrupt:
        return 130  # finetune() said where the checkpoint is
    evals = ", ".join(f"it {i}: {s:.0%}" for i, s in summary["evaluations"]) or "none"
    print(f"wrote {summary['checkpoint']} after {summary['iterations']} iterations, {summary['env_steps']} env steps, "
          f"{summary['seconds']:.0f} s; noise-free success {evals}" + (f"; bundle {summary['bundle']}" if "bundle" in summary else ""))
    return 0


def cmd_run(args) -> int:
    from dm1_ros.runtime.onnx_policy import OnnxPolicy

    if args.robot == "sim" and args.camera != "sim":
        raise UsageError("--robot sim renders its own camera; use --camera sim")
    if args.robot == "franka" and args.camera == "sim":
        raise UsageError("--robot franka needs a real camera: --camera realsense|opencv|replay")
    if args.camera == "replay" and not args.replay:
        raise UsageError("--camera replay needs --replay FILE.db3")
    policy = OnnxPolicy(args.model, threads=args.threads)
    return run_sim(args, policy) if args.robot == "sim" else run_franka(args, policy)


def _reload_on_sighup(loop, model: str) -> None:
    """`kill -HUP` reloads --model between ticks (the old model runs on if the new bundle does not load)."""
    import signal

    def reload(*_):
        print(f"dm1 run: SIGHUP, reloading {model} in the background", file=sys.stderr, flush=True)
        loop.request_swap(model)

    signal.signal(signal.SIGHUP, reload)


def _report_swaps(loop) -> None:
    events, loop.swap_events = loop.swap_events, []
    for event in events:
        print(f"dm1 run: model swap {'done: ' if event.ok else 'refused, keeping the running model: '}{event.message}",
              file=sys.stderr, flush=True)


def run_sim(args, policy) -> int:
    import time

    from dm1_ros.runtime.loop import control_loop
    from dm1_ros.sim.env import SimConfig
    from dm1_ros.sim.robot import SimRobot

    robot = SimRobot(SimConfig.matching(policy.manifest.observation, args.task))
    try:
        loop = control_loop(robot, policy, args.blend or "model", lookahead_s=_lookahead_s(args))
    except BaseException:
        robot.close()
        raise
    cadence = loop.cadence
    _reload_on_sighup(loop, args.model)
    try:
        print(f"dm1 run: {policy.model_id} on {policy.provider}, sim {args.task}, {robot.rate_hz:.0f} Hz "
              f"{'paced in real time' if args.realtime else 'unpaced'}; Ctrl-C stops with the robot holding, "
              "SIGHUP reloads the model", flush=True)
        last_report = time.perf_counter()
        for episode in range(args.episodes):
            robot.reset(seed=args.seed + episode)
            loop.reset()
            while not robot.done:
                loop.run(1, realtime=args.realtime)
                _report_swaps(loop)
                if time.perf_counter() - last_report > args.report_every:
                    print(cadence.report_line(), flush=True)
                    last_report = time.perf_counter()
            print(f"episode {episode + 1}: {'success' if robot.success else 'failure'} after {robot.env.steps} ticks", flush=True)
    except KeyboardInterrupt:
        robot.hold()
        print("\nstopped: robot holding", file=sys.stderr)
    finally:
        print(cadence.report_line())
        print(f"holds: {loop.stats.holds or 'none'}; safety interventions: {dict(robot.safety.interventions) or 'none'}; "
              f"swaps {loop.stats.swaps} ({loop.stats.failed_swaps} refused)")
        robot.close()
    return 0


def _camera_mounts(texts: list[str], depth_cameras: list[str]) -> dict:
    """--camera-mount NAME=fixed:x,y,z,qx,qy,qz,qw (the camera in the base frame) or NAME=hand:... (in the end
    effector's frame, the hand-eye calibration); positions in metres, OpenCV camera axes. One per depth camera."""
    import numpy as np

    from dm1_ros.runtime.pointcloud import DepthMount
    from dm1_ros.runtime.rotations import quat_to_matrix

    mounts = {}
    for text in texts:
        name, _, rest = text.partition("=")
        mount, _, numbers = rest.partition(":")
        try:
            values = [float(v) for v in numbers.split(",")]
        except ValueError:
            values = []
        if not name or mount not in ("fixed", "hand") or len(values) != 7:
            raise UsageError(f"--camera-mount {text!r}: write NAME=fixed:x,y,z,qx,qy,qz,qw or NAME=hand:x,y,z,qx,qy,qz,qw")
        transform = np.eye(4)
        transform[:3, :3] = quat_to_matrix(np.asarray(values[3:], np.float64))
        transform[:3, 3] = values[:3]
        mounts[name] = DepthMount(mount, transform)
    unknown, missing = sorted(set(mounts) - set(depth_cameras)), [c for c in depth_cameras if c not in mounts]
    if unknown or missing:
        raise UsageError(f"--camera-mount: the model's depth cameras are {depth_cameras or 'none'}; "
                         + (f"no mount for {missing}" if missing else f"{unknown} is not one of them"))
    return mounts


def _per_camera(values: list[str] | None, names: list[str], option: str):
    """One value for a one-camera model, a list in the manifest's camera order for several (None: the default)."""
    if values is None:
        return None
    if len(names) <= 1:
        if len(values) != 1:
            raise UsageError(f"{option} takes one value for this one-camera model, got {len(values)}: {values}")
        return values[0]
    if len(values) != len(names):
        raise UsageError(f"{option} takes one value per camera of the model ({len(names)}: {', '.join(names)}, in "
                         f"this order), got {len(values)}: {values}")
    return list(values)


def run_franka(args, policy) -> int:
    """Wall-clock loop on the real arm: cameras -> planner -> executor -> FrankaBridge (whose safety filter every
    action passes) at --rate Hz. Ctrl-C holds and stops; SIGHUP reloads --model (hot swap between ticks; a bad
    bundle keeps the old one); a robot fault stops the loop with the arm holding."""
    import time

    from dm1_ros.hardware.franka import FrankaError
    from dm1_ros.hardware.rig import franka_rig
    from dm1_ros.runtime.loop import control_loop
    from dm1_ros.runtime.pointcloud import depth_cameras_of

    manifest = policy.manifest
    rate = args.rate or manifest.control_rate_hz
    spec = manifest.observation
    if spec.images and spec.point_clouds:
        raise UsageError("--robot franka runs a model of images or of point clouds, not both")
    names = [s.name for s in spec.images] or depth_cameras_of(spec.point_clouds)
    mounts = _camera_mounts(args.camera_mount or [], names if spec.point_clouds else [])
    camera_kwargs = {"realsense": {"serial_no": _per_camera(args.serial_no, names, "--serial-no"),
                                   "color_profile": args.color_profile},
                     "opencv": {"device": int(args.device) if args.device.isdigit() else args.device},
                     "replay": {"path": _per_camera(args.replay, names, "--replay")}}[args.camera]
    overrides = list(args.robot_set or []) + ([f"robot_ip={args.robot_ip}"] if args.robot_ip else [])
    robot = franka_rig(manifest, args.robot_config, args.camera, rate_hz=rate, overrides=overrides, mounts=mounts,
                       **camera_kwargs)
    try:
        for cam in [*robot.cameras.values(), *(robot.clouds.cameras.values() if robot.clouds else [])]:
            cam.wait_for_frame(timeout_s=5.0, after=-1)
        loop = control_loop(robot, policy, args.blend or "model", stale_after_s=args.stale_after,
                            lookahead_s=_lookahead_s(args), camera_latency_s=args.camera_latency, clock=time.monotonic)
    except BaseException:
        robot.close()
        robot.stop_cameras()
        raise
    cadence = loop.cadence
    _reload_on_sighup(loop, args.model)
    print(f"dm1 run: {policy.model_id} on {policy.provider}, Franka at {robot.config.robot_ip}, camera {args.camera}, "
          f"{rate:.0f} Hz commands; Ctrl-C stops with the robot holding, SIGHUP reloads the model", flush=True)
    try:
        robot.reset()
        end = time.monotonic() + args.duration if args.duration else float("inf")
        last_report = time.monotonic()
        while time.monotonic() < end and not loop.fault:
            loop.run(int(rate), realtime=True)  # one second per call
            _report_swaps(loop)
            if time.monotonic() - last_report > args.report_every:
                print(cadence.report_line(), flush=True)
                last_report = time.monotonic()
        if loop.fault:
            print(f"dm1 run: robot fault, stopped: {loop.fault}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nstopping: robot holding", file=sys.stderr)
    except FrankaError as exc:
        print(f"dm1 run: robot fault, stopped: {exc}", file=sys.stderr)
    finally:
        robot.hold()
        robot.stop()
        print(cadence.report_line())
        print(f"holds: {loop.stats.holds or 'none'}; safety interventions: {dict(robot.safety.interventions) or 'none'}; "
              f"swaps {loop.stats.swaps} ({loop.stats.failed_swaps} refused)")
        robot.close()
        robot.stop_cameras()
    return 0


def cmd_export(args) -> int:
    from pathlib import Path

    from dm1_ros.policy.checkpoint import load_checkpoint
    from dm1_ros.policy.export import export_bundle
    from dm1_ros.outputs import command_line

    if args.actor:
        from dm1_ros.policy.cascade import export_cascade, reader_from_cascade, reader_from_policy

        if args.steps is not None:
            raise UsageError("--steps does not apply with --actor: the actor's graph has its steps baked in")
    if args.actor and Path(args.checkpoint).is_dir():
        reader = reader_from_cascade(args.checkpoint)  # a cascade bundle: keep its reader, swap its actor
    else:
        policy, payload = load_checkpoint(args.checkpoint, use_ema=not args.no_ema)
        training = {"checkpoint": str(args.checkpoint), **(payload.get("provenance") or {})}
        if "command" in training:
            training["command"] = command_line(training["command"])
    if args.actor:
        if not Path(args.checkpoint).is_dir():
            reader = reader_from_policy(policy, training, fuse=not args.no_fuse)
        manifest = export_cascade(reader, args.actor, args.out, command=args.command_line, tolerance=args.tolerance,
                                  overwrite=args.force)
        print(f"wrote {args.out}: {manifest.model_id}, the pose read by {args.checkpoint} fed to {args.actor}, "
              f"parity {manifest.parity.max_abs_diff:.2e}")
        return 0
    manifest = export_bundle(policy, args.out, steps=args.steps, control_rate_hz=args.control_rate, training=training,
                             tolerance=args.tolerance, execution=args.execution, overwrite=args.force,
                             lookahead_s=args.lookahead_ms * 1e-3, fuse=not args.no_fuse)
    print(f"wrote {args.out}: {manifest.model_id}, {manifest.sampling_steps} step(s), parity {manifest.parity.max_abs_diff:.2e}")
    return 0


def cmd_quantize(args) -> int:
    from dm1_ros.policy.quantize import quantize_bundle

    manifest = quantize_bundle(args.model, args.out, tolerance=args.tolerance, overwrite=args.force,
                               command=args.command_line, weight_bits=args.weight_bits)
    print(f"wrote {args.out}: {manifest.model_id}, actions within {manifest.parity.max_abs_diff:.3g} of {args.model}'s "
          f"(robot units, {manifest.parity.samples} random observations)")
    return 0


def cmd_dataset(args) -> int:
    from dm1_ros.data.info import dataset_info, format_info
    from dm1_ros.data.lerobot import export_lerobot, import_lerobot

    if args.action in ("export", "import", "view") and not args.out:
        raise UsageError(f"dm1 dataset {args.action} needs --out")
    if args.action == "hash":
        from dm1_ros.data.fingerprint import data_hash

        print(f"{data_hash(args.path)}  {args.path}")
        return 0
    if args.action == "view":
        from dm1_ros.data.view import write_episode_video

        shown = write_episode_video(args.path, args.episode, args.out)
        panels = ", ".join(shown["cameras"] + [f"{k} (from above)" for k in shown["point_clouds"]])
        print(f"wrote {args.out}: {shown['episode']}, {shown['steps']} steps at {shown['fps']:g} Hz; {panels}; "
              f"actions plotted below")
        return 0
    if args.action == "export":
        info = export_lerobot(args.path, args.out, task=args.task, fps=args.fps, vcodec=args.vcodec, crf=args.crf,
                              overwrite=args.force)
        cameras = [k for k, v in info["features"].items() if v["dtype"] == "video"]
        print(f"wrote {args.out}: LeRobotDataset v3.0, {info['total_episodes']} episodes, {info['total_frames']} "
              f"frames at {info['fps']} Hz, videos {', '.join(cameras) or 'none'}")
        return 0
    if args.action == "import" and args.from_bag:
        try:
            from dm1_ros.ros.bag_import import import_bag
        except ImportError as exc:
            raise UsageError(f"dm1 dataset import --from-bag needs ROS 2's message packages ({exc}); source ROS 2 "
                             "first") from None
        summary = import_bag(args.path, args.out, image_size=args.image_size, overwrite=args.force)
        skipped = ", ".join(f"{n} {r}" for r, n in summary["skipped"].items()) or "none"
        print(f"{summary['episodes']} episode(s), {summary['steps']} steps from {args.path} "
              f"({summary['discarded']} discarded in the bag; commands skipped: {skipped})")
        print(format_info(dataset_info(args.out)))
        return 0
    if args.action == "import":
        out = import_lerobot(args.path, args.out, overwrite=args.force)
        print(format_info(dataset_info(out)))
        return 0
    info = dataset_info(args.path)
    print(json.dumps(info, indent=1) if args.json else format_info(info))
    return 0


def _lookahead_s(args) -> float | None:
    """--lookahead-ms in seconds; None (the bundle's own) when not given."""
    return None if args.lookahead_ms is None else args.lookahead_ms * 1e-3


def cmd_execution(args) -> int:
    from dm1_ros.runtime.bundle import read_manifest, set_execution

    includes = None if args.latency_in_lookahead is None else args.latency_in_lookahead == "on"
    if args.execution is None and args.lookahead_ms is None and includes is None:
        manifest = read_manifest(args.model)
    else:
        manifest = set_execution(args.model, args.execution, _lookahead_s(args), command=args.command_line,
                                 lookahead_includes_latency=includes)
    print(f"{args.model}: {manifest.model_id}, execution {manifest.execution}, lookahead "
          f"{manifest.lookahead_s * 1e3:g} ms{' (latency included)' if manifest.lookahead_includes_latency else ''}")
    return 0


def _add_run_arguments(p: argparse.ArgumentParser, example: str, resumes_at: str) -> None:
    """The options `dm1 train` and `dm1 finetune` share: recipe overrides and what to do with OUT_DIR."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=f"override a recipe key, e.g. {example}")
    p.add_argument("--resume", action="store_true", help=f"continue from OUT_DIR/last.pt{resumes_at}")
    p.add_argument("--force", action="store_true", help="start over in an OUT_DIR that holds a run (the old run is moved "
                   "aside to OUT_DIR.replaced-TIMESTAMP, not deleted)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs and background runs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dm1", description="One-step generative policies for real-time robot control.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--debug", action="store_true", help="let errors raise with their traceback")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="the main job on the embedded default: the shipped lift policy controls the Panda "
                       "in robosuite through the ONNX runtime; prints success, loop rate and policy latency; writes a video")
    p.add_argument("--model", default=str(default_model_path()), help="bundle directory (default: the shipped lift model)")
    p.add_argument("--task", default="lift", choices=["lift", "can", "square"])
    p.add_argument("--episodes", type=positive_int, default=5)
    p.add_argument("--seed", type=natural_int, default=200_000, help="first evaluation seed")
    p.add_argument("--video", default="docs/demo_lift.mp4", help="video of the first episode ('' for none)")
    p.set_defaults(func=cmd_demo)

    text = ("train one-step MeanFlow and flow matching on a conditional multimodal toy task, compare 1 vs multi-step "
            "sampling, plot, and run the 1-step sampler through onnxruntime (about a minute and a half)")
    p = sub.add_parser("toy", help=text, description=text)
    p.add_argument("--steps", type=positive_int, default=1500, help="optimizer steps per method (default 1500)")
    p.add_argument("--seed", type=natural_int, default=0)
    p.add_argument("--plot", default="docs/toy_onestep.png", help="where to write the scatter plot")
    p.set_defaults(func=cmd_toy)

    p = sub.add_parser("eval", help="seeded success rate in robosuite through the ONNX runtime (95%% CI, latency)",
                       description="Evaluates a bundle, or a checkpoint exported on the fly once per --steps value, on "
                       "seeded episodes (seeds from --seed-base, far from the demonstration seeds).")
    p.add_argument("--model", required=True, help="bundle directory or checkpoint (.pt)")
    p.add_argument("--task", default="lift", choices=["lift", "can", "square"])
    p.add_argument("--episodes", type=positive_int, default=50)
    p.add_argument("--steps", help="sampling steps to evaluate, e.g. 1,2,5 (checkpoints only)")
    p.add_argument("--execute", choices=["first", "chunk", "ensemble"], default=None,
                   help="first: re-plan every tick; chunk: run each chunk open loop like the papers; "
                   "ensemble: temporal ensemble of overlapping chunks (default: the bundle's manifest execution)")
    p.add_argument("--workers", type=positive_int, default=1)
    p.add_argument("--seed-base", type=natural_int, default=100_000)
    p.add_argument("--appearance", choices=["default", "recolor", "relight", "both"], default="default",
                   help="evaluate in a changed scene: recolor (blue table, green floor and objects), relight (dimmer, "
                   "warmer light from the other side), both; the geometry and depth stay as they are")
    p.add_argument("--delay-ms", type=natural_float, default=0.0,
                   help="observation latency: the policy sees observations this old when its actions start "
                   "(rounded to control periods: 50 ms at 20 Hz)")
    p.add_argument("--delay-mode", choices=["stamped", "naive"], default="stamped",
                   help="stamped: each action runs at the instant it was planned for, as the runtime does with true "
                   "capture stamps (the first D ms of a chunk are skipped); naive: chunks start with their first action")
    p.add_argument("--lookahead-ms", type=natural_float, default=None,
                   help="run, at each observation, the action its chunk planned this much after it (0: each chunk's "
                   "first action; default: the bundle's manifest lookahead_s)")
    p.add_argument("--noise", choices=["fresh", "shifted"], default="fresh",
                   help="sampling noise across re-plans: fresh draws, or shifted (each future instant keeps the noise "
                   "it was first planned with)")
    p.add_argument("--video", help="record the first episode to this .mp4")
    p.add_argument("--out", help="summary JSON (a .md table is written beside it); never overwritten without --force")
    p.add_argument("--force", action="store_true", help="replace an existing --out summary")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="benchmarks that print figures and ratios measured side by side",
                       description="bench inference: p50/p99 latency and Hz at batch 1 of the default 1.78 M-parameter "
                       "image policy (random weights unless --model): onnxruntime 1 step on 1 and 2 threads, torch eager, "
                       "MeanFlow 5 and 10 steps, flow matching 10 steps, plus the training-step cost of MeanFlow vs flow "
                       "matching.")
    p.add_argument("what", choices=["inference"], help="which benchmark")
    p.add_argument("--model", help="also time this bundle directory through the runtime (input checks included): "
                   "back to back and at a camera's 30 Hz, on one thread (the default) and on two")
    p.add_argument("--reference", help="time this bundle in a plain onnxruntime session and report --model's speed-up "
                   "over it, e.g. --reference models/lift_image --model models/lift_image_fast_int8")
    p.add_argument("--also", nargs="*", default=[], metavar="BUNDLE",
                   help="more bundles timed through the runtime beside --model, e.g. the float bundle it was quantized from")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--iters", type=positive_int, default=300, help="timed calls per variant (default 300)")
    p.add_argument("--train-iters", type=positive_int, default=8, help="timed training steps per method (default 8)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("collect", help="scripted demonstrations in robosuite -> robomimic HDF5 (resumable)",
                       description="Runs the scripted expert of a task on seeds --seed, --seed+1, ... and keeps successful "
                       "episodes until --episodes are in hand. Every finished episode is written at once (OUT.parts/); "
                       "an interrupted run keeps them and the same command resumes. --video renders one episode.")
    p.add_argument("--task", choices=["lift", "can", "square"], default="lift")
    p.add_argument("--episodes", type=natural_int, default=100)
    p.add_argument("--out", help="dataset file, e.g. data/lift.hdf5")
    p.add_argument("--workers", type=positive_int, default=1, help="parallel simulator processes")
    p.add_argument("--no-images", action="store_true", help="low-dimensional observations only (fast)")
    p.add_argument("--image-size", type=positive_int, default=96)
    p.add_argument("--cameras", nargs="+", default=["robot0_eye_in_hand"], help="robosuite camera names")
    p.add_argument("--seed", type=natural_int, default=0, help="first seed")
    p.add_argument("--keep-failures", action="store_true", help="also keep episodes the expert failed")
    p.add_argument("--point-cloud", nargs="+", default=[], metavar="CAMERA",
                   help="also record a point cloud (obs/point_cloud, world frame) from these cameras' depth")
    p.add_argument("--num-points", type=positive_int, default=512, help="points per cloud (farthest point sampling)")
    p.add_argument("--crop", type=float, nargs=6, metavar=("X0", "Y0", "Z0", "X1", "Y1", "Z1"), default=None,
                   help="point-cloud crop box, metres, world frame (default: the task's workspace above the table)")
    p.add_argument("--video", help="also write one episode (seed --seed) to this .mp4")
    p.add_argument("--takeover", metavar="BUNDLE", help="recovery demonstrations: this policy drives each episode, "
                   "then the expert takes over and only its part is kept (DAgger-style data; --out an existing "
                   "dataset extends it)")
    p.add_argument("--takeover-ticks", type=positive_int, nargs=2, default=[10, 150], metavar=("FIRST", "LAST"),
                   help="the hand-over tick, uniform in [FIRST, LAST], drawn from the seed (default 10 150)")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("train", help="pre-train a policy on demonstrations (MeanFlow + dispersive, or flow matching)",
                       description="Reads a recipe (config/train/*.yaml), trains with AdamW + warm-up/cosine, EMA, random-shift "
                       "augmentation; writes OUT_DIR/last.pt (every checkpoint_every steps and on Ctrl-C), log.csv, "
                       "TensorBoard events and curves.png. Under torchrun the gradient is averaged over processes.")
    p.add_argument("--config", required=True, help="training recipe YAML")
    _add_run_arguments(p, example="--set steps=100 --set policy.method.name=flow_matching", resumes_at="")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("finetune", help="RL fine-tuning: PPO over the one-step MeanFlow chain with BC to the pre-trained policy",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="DMPO stage 2 (SPEC §4). Makes the sampler stochastic (learned noise std in [0.05, 0.12] "
                       "after each of K chain steps, K=1 by default), collects rollouts in parallel robosuite environments "
                       "(gymnasium vector envs, one subprocess each), and trains it with PPO (GAE, clipped objective, "
                       "target-KL early stop, critic with its own encoder and warm-up iterations, running reward scaling) "
                       "plus BC to the frozen pre-trained policy (linearly decaying weight).",
                       epilog="writes OUT_DIR/last.pt (a policy checkpoint: `dm1 export` and `dm1 eval` take it), log.csv, "
                       "curves.png (success rate, return, KL, clip fraction, BC loss per iteration) and, at the end, the "
                       "bundle OUT_DIR/bundle exported exactly like a pre-trained one.\n\nexample:\n"
                       "  dm1 train --config config/train/lift_lowdim.yaml\n"
                       "  dm1 finetune --config config/finetune/lift_lowdim.yaml --init runs/lift_lowdim/last.pt\n"
                       "  dm1 eval --model runs/finetune_lift_lowdim/bundle --task lift")
    p.add_argument("--config", required=True, help="fine-tuning recipe YAML (config/finetune/*.yaml)")
    p.add_argument("--init", help="pre-trained checkpoint to start from (and to regularize toward); overrides the recipe's init")
    _add_run_arguments(p, example="--set iterations=20 --set bc_coef_end=0", resumes_at=" at its iteration")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("run", help="the in-process control loop (no ROS): camera/robot -> policy -> scheduler -> safety -> robot",
                       description="Runs a bundle in the control loop the robot uses, with a cadence report every few "
                       "seconds and a summary at exit. --robot sim: robosuite (simulated time, episodes). --robot franka: "
                       "the real arm through franky with a RealSense, OpenCV or replayed camera, paced at --rate; "
                       "Ctrl-C stops with the arm holding, SIGHUP reloads --model.")
    p.add_argument("--robot", choices=["sim", "franka"], default="sim")
    p.add_argument("--camera", choices=["sim", "realsense", "opencv", "replay"], default="sim")
    p.add_argument("--model", default=str(default_model_path()))
    p.add_argument("--task", default="lift", choices=["lift", "can", "square"], help="sim only")
    p.add_argument("--rate", type=positive_float, default=None, help="command rate, Hz (default: the model's control rate); "
                   "franka only: faster commands interpolate along the chunk")
    p.add_argument("--realtime", action="store_true", help="sim: pace the simulated loop in wall-clock time")
    p.add_argument("--blend", choices=["latest", "ensemble", "chunk"], default=None,
                   help="how chunks become commands (default: the bundle's manifest execution)")
    p.add_argument("--lookahead-ms", type=natural_float, default=None,
                   help="run, at each observation, the action its chunk planned this much after it (default: the "
                   "bundle's manifest lookahead_s)")
    p.add_argument("--episodes", type=positive_int, default=1, help="sim only")
    p.add_argument("--seed", type=natural_int, default=400_000, help="sim only")
    p.add_argument("--threads", type=positive_int, default=1, help="onnxruntime intra-op CPU threads (default 1: "
                   "the fastest at a camera's rate, docs/results.md)")
    p.add_argument("--report-every", type=positive_float, default=5.0, help="seconds between cadence lines")
    p.add_argument("--robot-config", default=str(default_config_path("robot/franka.yaml")), help="FrankaConfig YAML")
    p.add_argument("--robot-ip", default=None)
    p.add_argument("--robot-set", action="append", metavar="KEY=VALUE", help="override a FrankaConfig key")
    p.add_argument("--serial-no", nargs="+", default=None, help="RealSense serial (default: the only one connected); "
                   "a model with several cameras takes one per camera, in its manifest's camera order")
    p.add_argument("--color-profile", default="640x480x30", help="RealSense WIDTHxHEIGHTxFPS")
    p.add_argument("--device", default="0", help="OpenCV device index, /dev/videoN or a video file")
    p.add_argument("--replay", nargs="+", default=None, help="a .db3 recorded by librealsense (--camera replay); one "
                   "per camera of the model")
    p.add_argument("--camera-mount", action="append", metavar="NAME=fixed|hand:x,y,z,qx,qy,qz,qw",
                   help="a point-cloud model: where each depth camera is, in the base frame (fixed) or the end "
                   "effector's (hand, the hand-eye calibration); metres, quaternion x y z w, OpenCV camera axes")
    p.add_argument("--camera-latency", type=natural_float, default=0.0, help="seconds from exposure to frame arrival")
    p.add_argument("--stale-after", type=positive_float, default=0.2, help="hold when the newest frame is older, seconds")
    p.add_argument("--duration", type=natural_float, default=0.0, help="franka: stop after this many seconds (0: until Ctrl-C)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("export", help="checkpoint -> ONNX bundle (model.onnx + manifest.yaml), refused unless "
                       "onnxruntime matches torch within --tolerance")
    p.add_argument("checkpoint", help="a training checkpoint (with --actor: the pose reader's, or a cascade bundle)")
    p.add_argument("--out", required=True, help="bundle directory to write; an existing bundle is replaced (atomically) "
                   "only with --force, and a directory that is not a bundle never")
    p.add_argument("--force", action="store_true", help="replace the bundle at --out")
    p.add_argument("--steps", type=positive_int, default=None, help="sampling steps baked into the graph (default: the config's)")
    p.add_argument("--control-rate", type=positive_float, default=20.0, help="control rate the policy was trained for, Hz")
    p.add_argument("--tolerance", type=positive_float, default=1e-4, help="max |onnx - torch| accepted")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA ones")
    p.add_argument("--execution", choices=["latest", "chunk", "ensemble"], default="latest",
                   help="how the runtime runs this model's chunks unless told otherwise (written to the manifest): latest "
                   "re-plans every tick, chunk runs each chunk open loop, ensemble averages overlapping chunks")
    p.add_argument("--lookahead-ms", type=natural_float, default=0.0,
                   help="written to the manifest: at each observation the runtime runs the action its chunk planned "
                   "this much after it (default 0: the first action)")
    p.add_argument("--no-fuse", action="store_true", help="plain ONNX operators only: each attention block stays "
                   "about 16 operators instead of onnxruntime's one fused Attention (for runtimes other than onnxruntime)")
    p.add_argument("--actor", metavar="BUNDLE", help="a cascade: the checkpoint reads the object's pose from the cameras "
                   "(policy.state_prediction, e.g. bench/pose_reader.py's), the state bundle BUNDLE acts on it; one graph "
                   "that takes the cameras and the robot's proprio, with BUNDLE's steps, actions and execution "
                   "(dm1_ros/policy/cascade.py). In place of the checkpoint a cascade bundle: its reader is kept and "
                   "its actor replaced by BUNDLE")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("quantize", help="bundle -> bundle with int8 MatMul/Gemm/Attention weights (CPU), refused "
                       "unless its actions stay within --tolerance of the float graph's",
                       description="onnxruntime dynamic quantization, one scale per output channel, no calibration "
                       "data. Evaluate the new bundle with dm1 eval before it replaces the float one.")
    p.add_argument("model", help="float bundle directory")
    p.add_argument("--out", required=True, help="bundle directory to write (an existing bundle only with --force)")
    p.add_argument("--force", action="store_true", help="replace the bundle at --out")
    p.add_argument("--tolerance", type=positive_float, default=0.1,
                   help="max |int8 - float| accepted over random observations, robot units (default 0.1)")
    p.add_argument("--weight-bits", type=int, choices=[7, 8], default=7,
                   help="7 (default): right on every CPU; 8: only for CPUs with VNNI or ARM (x86 CPUs without VNNI "
                   "overflow 8-bit products, and the runtime refuses such a bundle there)")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("dataset", help="what a dataset holds; export to and import from LeRobotDataset v3.0",
                       description="info PATH: episodes, steps, keys and shapes, rate, cameras of a robomimic-layout "
                       "HDF5 (dm1 collect, teleop recordings, robomimic releases), a collection in progress "
                       "(PATH.parts) or a LeRobotDataset v3.0 directory, without loading it. export PATH --format "
                       "lerobot --out DIR: the HDF5 as a LeRobotDataset v3.0 (parquet + one mp4 stream per camera). "
                       "import DIR --out FILE: a LeRobotDataset v3.0 as a robomimic-layout HDF5 (--from-bag: a teleop rosbag2). dm1 train also reads "
                       "a LeRobot directory directly (data: DIR in the recipe). view PATH --episode N --out FILE.mp4: one episode's "
                       "cameras side by side (point clouds from above) over its actions plotted against time. hash PATH: the "
                       "fingerprint a trained model's manifest records as training.data_hash (of the content, so every "
                       "run of one dm1 collect command gives the same).")
    p.add_argument("action", choices=["info", "export", "import", "view", "hash"])
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="info: print the summary as JSON")
    p.add_argument("--format", choices=["lerobot"], default="lerobot", help="export: the format written")
    p.add_argument("--out", help="export: the directory written; import: the HDF5 file written; view: the mp4")
    p.add_argument("--episode", type=int, default=0, help="view: which episode (0 = the first, in name order)")
    p.add_argument("--from-bag", action="store_true", help="import: PATH is a teleop rosbag2 (MCAP or sqlite3), "
                   "replayed through teleop_node's observation assembly and recorder")
    p.add_argument("--image-size", type=int, nargs=2, default=[96, 96], metavar=("H", "W"),
                   help="import --from-bag: the stored image size (teleop_node's record_image_size)")
    p.add_argument("--task", help="export: the task text (default: from the dataset's environment)")
    p.add_argument("--fps", type=int, help="export: frames per second (default: the recorded control rate)")
    p.add_argument("--vcodec", choices=["libsvtav1", "h264"], default="libsvtav1",
                   help="export: video codec (LeRobot's default is AV1)")
    p.add_argument("--crf", type=int, help="export: video quality, lower is better (default 30, as LeRobot)")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("execution", help="show or change how the runtime runs a bundle (manifest execution and "
                       "lookahead), without re-exporting it",
                       description="Prints a bundle's execution and lookahead; with options, writes them to its "
                       "manifest (the network and its hash are untouched; the command is recorded in the manifest).")
    p.add_argument("model", help="bundle directory")
    p.add_argument("--execution", choices=["latest", "chunk", "ensemble"], default=None)
    p.add_argument("--lookahead-ms", type=natural_float, default=None)
    p.add_argument("--latency-in-lookahead", choices=["on", "off"], default=None,
                   help="on: the observation's age when its chunk is planned counts toward the lookahead (the action "
                   "run first is the one planned lookahead after the observation, whatever the latency up to it)")
    p.set_defaults(func=cmd_execution)
    return parser


def main(argv: list[str] | None = None) -> int:
    """A user's mistake (a Dm1Error, a missing or unwritable file) is one line naming it and exit status 1 (2 for
    options that do not go together, as argparse does); any other exception is a bug, also one line with status 3
    and a pointer to --debug, which shows the traceback."""
    args = build_parser().parse_args(argv)
    # what a manifest records as the command that made it: this call's arguments, not the host process's (a test's)
    from dm1_ros.outputs import command_line

    args.command_line = command_line(["dm1", *argv] if argv is not None else sys.argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"\ndm1 {args.command}: interrupted", file=sys.stderr)
        return 130
    except (Dm1Error, OSError) as exc:
        if args.debug:
            raise
        print(f"dm1 {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except Exception as exc:  # noqa: BLE001 - a bug: say so in one line, the traceback is one flag away
        if args.debug:
            raise
        print(f"dm1 {args.command}: internal error ({type(exc).__name__}: {_one_line(exc)}); this is a bug in dm1_ros: "
              "rerun with --debug for the traceback and report it", file=sys.stderr)
        return 3


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return text or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
