"""What a policy trained with state prediction reads from its cameras -> errors per state block, against chance.

    python bench/state_readout.py CKPT [CKPT ...] --data data/square.hdf5 [--out FILE]

For each checkpoint whose recipe sets policy.state_prediction (its EMA weights), on every step of the data's
validation split that holds a state: the predicted privileged state (e.g. the nut's pose) against the recorded one. Blocks that were
quaternions are compared as rotations (the angle between predicted and true, degrees); the other dimensions as an
RMS error in the state's units (metres for robosuite's positions). Chance: the same errors with the recorded states
shuffled across steps, i.e. a prediction that ignores the observation. A rotation error far below chance says the
encoder sees the orientation that, on square, decides the grasp.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def blocks(dims: list[int], quaternions: list[int]) -> list[tuple[str, int, int]]:
    """The predicted target's layout, named by the state's own indices: (name, start, end), a quaternion's block 6
    rotation-matrix columns wide."""
    from dm1_ros.train.rotations import segments

    out, at = [], 0
    for is_quaternion, a, b in segments(sum(dims), quaternions):
        width = 6 if is_quaternion else b - a
        out.append((f"rotation at {a}" if is_quaternion else f"values {a}-{b - 1}", at, at + width))
        at += width
    return out


def errors(pred: np.ndarray, true: np.ndarray, layout) -> dict:
    from dm1_ros.train.rotations import rotation_angle_deg, rotation_from_columns

    out = {}
    for name, a, b in layout:
        if name.startswith("rotation"):
            angle = rotation_angle_deg(rotation_from_columns(pred[:, a:b]), rotation_from_columns(true[:, a:b]))
            out[name] = {"median_deg": float(np.median(angle)), "p90_deg": float(np.percentile(angle, 90))}
        else:
            out[name] = {"rms": float(np.sqrt(((pred[:, a:b] - true[:, a:b]) ** 2).mean()))}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="training checkpoints (.pt) of recipes with state_prediction")
    parser.add_argument("--data", required=True, help="robomimic HDF5 with a validation split (mask/valid)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", default=None, help="JSON, one entry per CKPT@training step; entries for other "
                        "checkpoints or steps already in it are kept")
    args = parser.parse_args()
    import torch

    from dm1_ros.policy.checkpoint import load_checkpoint
    from dm1_ros.data.fingerprint import data_hash, file_hash
    from dm1_ros.train.pretrain import open_split, to_torch

    torch.set_num_threads(1)
    out = Path(args.out) if args.out else None
    result = json.loads(out.read_text()) if out and out.is_file() else {}
    result.update(data=args.data, data_hash=data_hash(args.data))
    for path in args.checkpoints:
        policy, payload = load_checkpoint(path)
        predict = policy.config.state_prediction
        if not predict.keys:
            sys.exit(f"{path}: its recipe predicts no state (policy.state_prediction.keys is empty)")
        valid = open_split(policy.config, args.data, "valid",
                           obs_keys=payload.get("provenance", {}).get("recipe", {}).get("obs_keys"))
        preds = []
        with torch.no_grad():
            for start in range(0, len(valid), args.batch_size):
                batch = to_torch(valid.batch(np.arange(start, min(start + args.batch_size, len(valid)))))
                _, features = policy.encode(batch["images"], batch["proprio"], batch["points"])
                preds.append(policy.state_normalizer.unnormalize(policy.predict_state(features)).numpy())
        keep = valid.state_valid  # steps that hold a state (not robosuite's zero pose at a reset)
        pred, true = np.concatenate(preds)[keep], valid.state_targets[keep]
        layout = blocks(predict.dims, predict.quaternions)
        shuffled = true[np.random.default_rng(0).permutation(len(true))]
        entry = {"step": payload.get("step"), "checkpoint_hash": file_hash(path), "keys": predict.keys,
                 "steps_compared": len(true), "policy": errors(pred, true, layout), "chance": errors(shuffled, true, layout)}
        result.setdefault("checkpoints", {})[f"{path}@{entry['step']}"] = entry  # a run's last.pt moves on
        print(f"{path} (training step {entry['step']}, {len(true)} validation steps)")
        for name, _, _ in layout:
            p, c = entry["policy"][name], entry["chance"][name]
            figure = (f"median {p['median_deg']:.1f} deg, p90 {p['p90_deg']:.1f} (chance: median {c['median_deg']:.1f})"
                      if "median_deg" in p else f"RMS {p['rms']:.4f} (chance: {c['rms']:.4f})")
            print(f"  {', '.join(predict.keys)} {name}: {figure}", flush=True)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
