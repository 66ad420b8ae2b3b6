"""Episodes on disk in robomimic's HDF5 layout; shared by scripted collection, teleop recording and training.

    data/                         attrs: total (steps), env_args (JSON)
      demo_N/                     attrs: num_samples (+ seed, success, ...)
        obs/<key>                 (T, ...)  images uint8 (T, H, W, 3), point clouds float32 (T, N, 3), low-dim float32
        next_obs/<key>            obs shifted by one step (last step repeated): HDF5 virtual datasets, no extra
                                  bytes; robomimic's SequenceDataset loads them by default
        actions (T, 7)  rewards (T,)  dones (T,)  states (T, S)  timestamps (T,)
    mask/train, mask/valid        demo names (bytes)

Writes are episode-atomic: each finished episode goes to its own shard file in `<out>.parts/` (temporary file,
then rename), and the dataset file is assembled from the shards (temporary file, then rename). An interrupted
run loses at most the episode in progress; running the same command again resumes from the shards.
No torch here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from dm1_ros.runtime.contract import PROPRIO_DIMS, PROPRIO_KEYS, Observation

SHARD_SUFFIX = ".parts"


@dataclass
class Episode:
    obs: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    states: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def validate(self, where: str = "episode") -> None:
        n = len(self)
        if n == 0:
            raise ValueError(f"{where} has no steps")
        for name, arr in {**{f"obs/{k}": v for k, v in self.obs.items()}, "rewards": self.rewards, "dones": self.dones}.items():
            if arr.shape[0] != n:
                raise ValueError(f"{where}: {name} has {arr.shape[0]} steps, actions have {n}")


class EpisodeRecorder:
    """Accumulates one episode step by step from the observation contract."""

    def __init__(self):
        self.steps: list[tuple] = []

    def add(self, obs: Observation, action: np.ndarray, reward: float = 0.0, done: bool = False,
            state: np.ndarray | None = None, extra_obs: dict[str, np.ndarray] | None = None) -> None:
        self.steps.append((obs, np.asarray(action, np.float32), float(reward), bool(done), state, extra_obs or {}))

    def __len__(self) -> int:
        return len(self.steps)

    def episode(self, **attrs) -> Episode:
        if not self.steps:
            raise ValueError("nothing recorded")
        first = self.steps[0][0]
        obs: dict[str, list] = {k: [] for k in first.images}
        obs.update({k: [] for k in first.points})
        obs.update({k: [] for k in PROPRIO_KEYS})
        obs.update({k: [] for k in self.steps[0][5]})
        splits = np.cumsum(PROPRIO_DIMS)[:-1]
        for o, _, _, _, _, extra in self.steps:
            for k, img in o.images.items():
                obs[k].append(img)
            for k, points in o.points.items():
                obs[k].append(np.asarray(points, np.float32))
            for k, part in zip(PROPRIO_KEYS, np.split(np.asarray(o.proprio, np.float32), splits)):
                obs[k].append(part)
            for k, v in extra.items():
                obs[k].append(np.asarray(v, np.float32))
        states = [s[4] for s in self.steps]
        return Episode(
            obs={k: np.stack(v) for k, v in obs.items()},
            actions=np.stack([s[1] for s in self.steps]),
            rewards=np.asarray([s[2] for s in self.steps], np.float32),
            dones=np.asarray([s[3] for s in self.steps], np.uint8),
            states=np.stack(states).astype(np.float64) if all(s is not None for s in states) else None,
            timestamps=np.asarray([s[0].stamp for s in self.steps], np.float64),
            attrs=attrs,
        )


def _write_group(group: h5py.Group, ep: Episode, compress: bool = True) -> None:
    obs = group.create_group("obs")
    for k, v in ep.obs.items():
        if v.dtype == np.uint8 and v.ndim == 4 and compress:
            obs.create_dataset(k, data=v, chunks=(1, *v.shape[1:]), compression="gzip", compression_opts=3)
        else:
            obs.create_dataset(k, data=v)
    nxt = group.create_group("next_obs")
    for k, v in ep.obs.items():
        n = v.shape[0]
        layout = h5py.VirtualLayout(shape=v.shape, dtype=v.dtype)
        source = h5py.VirtualSource(".", obs[k].name, shape=v.shape)  # "." = this file, wherever it moves
        if n > 1:
            layout[0 : n - 1] = source[1:n]
        layout[n - 1] = source[n - 1]
        nxt.create_virtual_dataset(k, layout)
    group.create_dataset("actions", data=ep.actions.astype(np.float32))
    group.create_dataset("rewards", data=ep.rewards.astype(np.float32))
    group.create_dataset("dones", data=ep.dones.astype(np.uint8))
    if ep.states is not None:
        group.create_dataset("states", data=ep.states)
    if ep.timestamps is not None:
        group.create_dataset("timestamps", data=ep.timestamps)
    group.attrs["num_samples"] = len(ep)
    for k, v in ep.attrs.items():
        group.attrs[k] = v


def _read_group(group: h5py.Group, where: str) -> Episode:
    if "actions" not in group or "obs" not in group:
        raise KeyError(f"{where} has no {'actions' if 'actions' not in group else 'obs'}")
    return Episode(
        obs={k: group["obs"][k][()] for k in group["obs"]},
        actions=group["actions"][()],
        rewards=group["rewards"][()] if "rewards" in group else np.zeros(group["actions"].shape[0], np.float32),
        dones=group["dones"][()] if "dones" in group else np.zeros(group["actions"].shape[0], np.uint8),
        states=group["states"][()] if "states" in group else None,
        timestamps=group["timestamps"][()] if "timestamps" in group else None,
        attrs={k: (v.item() if hasattr(v, "item") else v) for k, v in group.attrs.items() if k != "num_samples"},
    )


def _atomic_h5(path: Path):
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    return tmp, h5py.File(tmp, "w")


class EpisodeStore:
    """Shards of finished episodes beside the dataset file; `assemble()` writes the robomimic file."""

    def __init__(self, out_path: str | Path):
        self.out = Path(out_path)
        self.parts = self.out.with_name(self.out.name + SHARD_SUFFIX)

    def shard_names(self) -> list[str]:
        if not self.parts.is_dir():
            return []
        return sorted((p.stem for p in self.parts.glob("*.hdf5")), key=_natural)

    def add(self, name: str, episode: Episode) -> Path:
        episode.validate(f"episode {name}")
        self.parts.mkdir(parents=True, exist_ok=True)
        path = self.parts / f"{name}.hdf5"
        tmp, f = _atomic_h5(path)
        with f:
            _write_group(f.create_group("episode"), episode)
        os.replace(tmp, path)
        return path

    def read(self, name: str) -> Episode:
        path = self.parts / f"{name}.hdf5"
        with h5py.File(path, "r") as f:
            return _read_group(f["episode"], str(path))

    def peek(self) -> tuple[str, dict, dict] | None:
        """(where, attrs, {obs key: shape of one step}) of the first episode held, in the shards or else the
        assembled file, without reading its arrays; None when there is none. Raises OSError/KeyError on a file that
        is not one of ours."""
        names = self.shard_names()
        if names:
            path, where = self.parts / f"{names[0]}.hdf5", f"{self.parts}/{names[0]}.hdf5"
        elif self.out.is_file():
            path, where = self.out, str(self.out)
        else:
            return None
        with h5py.File(path, "r") as f:
            if names:
                group = f["episode"]
            else:
                demos = sorted(f["data"].keys(), key=_natural)
                if not demos:
                    return None
                group = f["data"][demos[0]]
            return where, dict(group.attrs), {k: tuple(group["obs"][k].shape[1:]) for k in group["obs"]}

    def explode_existing(self) -> int:
        """Turn an already assembled dataset back into shards, so that a larger run can extend it."""
        if not self.out.is_file():
            return 0
        with h5py.File(self.out, "r") as f:
            names = sorted(f["data"].keys(), key=_natural)
            for name in names:
                ep = _read_group(f["data"][name], f"{self.out}:data/{name}")
                self.add(str(ep.attrs.get("shard", name)), ep)
        return len(names)

    def assemble(self, env_args: dict, valid_fraction: float = 0.1, seed: int = 0, keep_shards: bool = False) -> Path:
        names = self.shard_names()
        if not names:
            raise ValueError(f"no episodes in {self.parts}")
        demos = [f"demo_{i}" for i in range(len(names))]
        rng = np.random.default_rng(seed)
        n_valid = int(round(len(demos) * valid_fraction)) if len(demos) > 1 else 0
        valid = set(rng.choice(len(demos), size=n_valid, replace=False).tolist()) if n_valid else set()
        masks = {"train": [d for i, d in enumerate(demos) if i not in valid],
                 "valid": [d for i, d in enumerate(demos) if i in valid]}

        def episodes():
            for demo, name in zip(demos, names):
                ep = self.read(name)
                ep.attrs["shard"] = name
                yield demo, ep

        write_dataset(self.out, episodes(), env_args, masks)
        if not keep_shards:
            shutil.rmtree(self.parts, ignore_errors=True)
        return self.out


def write_dataset(out: str | Path, episodes, env_args: dict, masks: dict[str, list[str]]) -> Path:
    """Write (demo name, Episode) pairs, one at a time, as a robomimic-layout file (temporary file, then rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, f = _atomic_h5(out)
    total = 0
    with f:
        data = f.create_group("data")
        for name, ep in episodes:
            ep.validate(f"episode {name}")
            _write_group(data.create_group(name), ep)
            total += len(ep)
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(env_args)
        mask = f.create_group("mask")
        for split, names in masks.items():
            mask.create_dataset(split, data=np.array([n.encode() for n in names], dtype="S"))
    os.replace(tmp, out)
    return out


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def read_env_args(path: str | Path) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f["data"].attrs["env_args"])
