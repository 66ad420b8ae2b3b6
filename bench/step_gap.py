"""How far one network evaluation is from five, without a rollout -> a JSON of gaps per checkpoint.

    python bench/step_gap.py CKPT [CKPT ...] --data data/square_lowdim_1000.hdf5 [--steps 5] [--out FILE]

For each checkpoint (its EMA weights): the root mean squared distance, in normalized action units (-1..1), between
the one-step and the --steps-step sample from the same noise on the same fixed batches of the data's validation
split (the `val/gap_1_vs_5` column that `dm1 train` logs). Every checkpoint sees the same batches and noise, so the
figures compare across checkpoints trained on the same data. The rollout gap (1 vs 5 steps, success over seeded
episodes) is what counts; this is a cheap screen before paying for rollouts (on square it separates distilled
from undistilled checkpoints, not the better of two distilled ones: docs/results.md).
"""
import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="training checkpoints (.pt)")
    parser.add_argument("--data", required=True, help="robomimic HDF5 with a validation split (mask/valid)")
    parser.add_argument("--steps", type=int, default=5, help="sampling steps to compare one step against")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON; entries for other checkpoints already in it are kept")
    args = parser.parse_args()
    import torch

    from dm1_ros.policy.checkpoint import load_checkpoint
    from dm1_ros.data.fingerprint import data_hash, file_hash
    from dm1_ros.train.pretrain import open_split, sampling_gap

    torch.set_num_threads(1)
    out = Path(args.out) if args.out else None
    result = json.loads(out.read_text()) if out and out.is_file() else {}
    result.update(data=args.data, data_hash=data_hash(args.data), steps=args.steps, batches=args.batches,
                  batch_size=args.batch_size, seed=args.seed)
    gaps = result.setdefault("checkpoints", {})
    print(f"| checkpoint | training step | RMS gap, 1 vs {args.steps} steps | seconds |\n|---|---:|---:|---:|")
    for path in args.checkpoints:
        policy, payload = load_checkpoint(path)
        recipe = payload.get("provenance", {}).get("recipe", {})
        valid = open_split(policy.config, args.data, "valid", obs_keys=recipe.get("obs_keys"))
        t0 = time.perf_counter()
        gap = sampling_gap(policy, valid, args.batch_size, args.seed, args.steps, args.batches)
        seconds = time.perf_counter() - t0
        gaps[path] = {"gap": gap, "step": payload.get("step"), "checkpoint_hash": file_hash(path)}
        print(f"| {path} | {payload.get('step')} | {gap:.4f} | {seconds:.1f} |", flush=True)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
