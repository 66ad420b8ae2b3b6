"""What a dataset file holds, without loading it: `dm1 dataset info PATH`.

    info = dataset_info("data/square.hdf5")     # episodes, steps, keys with shapes and dtypes, fps, cameras, splits
    print(format_info(info))

Reads robomimic-layout HDF5 (what `dm1 collect` and teleop recording write, and robomimic's own releases), a
collection still in progress (`OUT.parts/`) from its shards, and a LeRobotDataset v3.0 directory from its meta/
files (keys in our names, see dm1_ros/data/lerobot.py). No torch.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from dm1_ros.data.episodes import SHARD_SUFFIX, EpisodeStore, _natural
from dm1_ros.data.lerobot import (DEFAULT_FEATURES, SIDECAR, LeRobotError, is_lerobot, key_of, read_info,
                                  split_state)
from dm1_ros.train.dataset import DatasetError


def _key_kind(name: str, shape: tuple, dtype) -> str:
    if dtype == np.uint8 and len(shape) == 3 and shape[-1] == 3:
        return "camera"
    if name.endswith("depth") and len(shape) in (2, 3):
        return "depth"
    if len(shape) == 2 and shape[-1] == 3 and dtype == np.float32 and "point" in name:
        return "point cloud"
    return "low-dim"


def _keys_of(group) -> dict:
    """obs key -> shape of one step, dtype and kind, for one episode's group."""
    return {k: {"shape": list(v.shape[1:]), "dtype": str(v.dtype), "kind": _key_kind(k, v.shape[1:], v.dtype)}
            for k, v in group["obs"].items()}


def dataset_info(path: str | Path) -> dict:
    """Episodes, steps, per-key shape/dtype/kind, control rate, cameras, splits and provenance of a dataset file."""
    path = Path(path)
    if path.is_dir() and is_lerobot(path):
        return _lerobot_info(path)
    if path.name.endswith(SHARD_SUFFIX) or (not path.exists() and path.with_name(path.name + SHARD_SUFFIX).is_dir()):
        return _shards_info(EpisodeStore(path.with_name(path.name[: -len(SHARD_SUFFIX)]) if path.name.endswith(SHARD_SUFFIX) else path))
    if not path.is_file():
        raise DatasetError(f"dataset not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path} is not a readable HDF5 file: {exc}") from None
    with f:
        if "data" not in f:
            raise DatasetError(f"{path} has no 'data' group (not a robomimic dataset)")
        demos = sorted(f["data"].keys(), key=_natural)
        if not demos:
            raise DatasetError(f"{path} holds no episodes")
        lengths = [int(f["data"][d]["actions"].shape[0]) for d in demos]
        first = f["data"][demos[0]]
        keys = _keys_of(first)
        env_args = _json(f["data"].attrs.get("env_args", "{}"))
        splits = {k: int(len(f["mask"][k])) for k in f["mask"]} if "mask" in f else {}
        successes = [bool(f["data"][d].attrs.get("success", True)) for d in demos]
        action_shape = list(first["actions"].shape[1:])
    return _summary(path, lengths, keys, action_shape, env_args, splits, successes)


def _lerobot_info(path: Path) -> dict:
    """A LeRobotDataset v3.0 directory, from its meta/ files only (no video decoded), in our key names."""
    import pyarrow.parquet as pq

    try:
        info = read_info(path)
    except LeRobotError as exc:
        raise DatasetError(str(exc)) from None
    files = sorted((path / "meta/episodes").glob("*/*.parquet"))
    if not files:
        raise DatasetError(f"{path}/meta/episodes holds no parquet file")
    lengths = [n for f in files for n in pq.read_table(f, columns=["length"]).column("length").to_pylist()]
    sidecar = _json((path / SIDECAR).read_text()) if (path / SIDECAR).is_file() else {}
    keys = {}
    for name, ft in info["features"].items():
        shape, dtype = list(ft.get("shape") or [1]), ft.get("dtype")
        if name == "observation.state":
            for key, width in split_state(ft.get("names"), int(np.prod(shape))):
                keys[key] = {"shape": [width], "dtype": dtype, "kind": "low-dim"}
        elif name.startswith("observation."):
            kind = "camera" if dtype in ("video", "image") else _key_kind(key_of(name), tuple(shape), np.dtype(dtype))
            keys[key_of(name)] = {"shape": shape, "dtype": "uint8" if kind == "camera" else dtype, "kind": kind}
    env_args = sidecar.get("env_args") or {"env_kwargs": {"control_freq": info["fps"]}}
    env_args.setdefault("env_kwargs", {}).setdefault("control_freq", info["fps"])
    splits = {k: len(v) for k, v in (sidecar.get("masks") or {}).items()} or \
        {k: int(v.split(":")[1]) - int(v.split(":")[0]) for k, v in (info.get("splits") or {}).items()}
    successes = [bool(e.get("success", True)) for e in sidecar.get("episodes", [{}] * len(lengths))]
    out = _summary(path, lengths, dict(sorted(keys.items())), info["features"].get("action", {}).get("shape", []),
                   env_args, splits, successes)
    out["format"] = f"LeRobotDataset {info['codebase_version']}"
    out["extra_features"] = sorted(k for k in info["features"] if not k.startswith("observation.")
                                   and k not in DEFAULT_FEATURES and k != "action")
    return out


def _shards_info(store: EpisodeStore) -> dict:
    names = store.shard_names()
    if not names:
        raise DatasetError(f"{store.parts} holds no finished episode")
    lengths, successes, keys, action_shape = [], [], {}, []
    for name in names:
        with h5py.File(store.parts / f"{name}.hdf5", "r") as f:
            g = f["episode"]
            lengths.append(int(g["actions"].shape[0]))
            successes.append(bool(g.attrs.get("success", True)))
            if not keys:
                keys = _keys_of(g)
                action_shape = list(g["actions"].shape[1:])
    info = _summary(store.parts, lengths, keys, action_shape, {}, {}, successes)
    info["in_progress"] = True
    return info


def _json(value) -> dict:
    try:
        out = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def _summary(path, lengths, keys, action_shape, env_args, splits, successes) -> dict:
    kwargs = env_args.get("env_kwargs", {})
    fps = kwargs.get("control_freq")
    return {
        "path": str(path), "format": "robomimic HDF5", "episodes": len(lengths), "steps": int(sum(lengths)),
        "episode_steps": {"min": int(min(lengths)), "mean": float(np.mean(lengths)), "max": int(max(lengths))},
        "successes": int(sum(successes)), "fps": float(fps) if fps else None,
        "cameras": [k for k, v in keys.items() if v["kind"] == "camera"],
        "point_clouds": [k for k, v in keys.items() if v["kind"] == "point cloud"],
        "keys": keys, "actions": action_shape, "splits": splits,
        "env": env_args.get("env_name"), "task": env_args.get("dm1_ros", {}).get("task"),
    }


def format_info(info: dict) -> str:
    s = info["episode_steps"]
    lines = [f"{info['path']}: {info['format']}{' (collection in progress)' if info.get('in_progress') else ''}",
             f"  episodes {info['episodes']} ({info['successes']} successful), steps {info['steps']} "
             f"(per episode {s['min']} / {s['mean']:.0f} / {s['max']} min / mean / max)",
             f"  control rate {info['fps']:g} Hz" if info["fps"] else "  control rate: not recorded",
             f"  task {info['task'] or '-'} ({info['env'] or 'environment not recorded'})",
             f"  cameras {', '.join(info['cameras']) or 'none'}; point clouds {', '.join(info['point_clouds']) or 'none'}",
             f"  actions {tuple(info['actions'])}"]
    if info["splits"]:
        lines.append("  splits " + ", ".join(f"{k} {v}" for k, v in info["splits"].items()))
    lines.append("  observation keys:")
    width = max(len(k) for k in info["keys"])
    for k, v in info["keys"].items():
        lines.append(f"    {k:<{width}}  {str(tuple(v['shape'])):<14} {v['dtype']:<8} {v['kind']}")
    return "\n".join(lines)
