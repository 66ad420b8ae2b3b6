"""robomimic HDF5 -> (observation, action chunk) windows for training. Reads our files, robomimic's releases and
LeRobotDataset v3.0 directories (through the same tree, see open_episodes).

    ds = RobomimicDataset("data/lift.hdf5", image_keys=["robot0_eye_in_hand_image"], chunk=4, split="train")
    batch = ds.batch(np.arange(64))   # images {k: (B, H, W, 3) uint8}, proprio (B, P), actions (B, Ta, Da)

With state_keys, batches also hold state_targets (B, S): privileged state for an auxiliary loss (the policy's
state_prediction), with quaternions replaced by rotation-matrix columns (dm1_ros/train/rotations.py), and state_valid
(B,): 0 where a quaternion is zero, i.e. the step holds no pose (robosuite's object state at the reset step).

Window at step t: the observation at t and actions t .. t+Ta-1; past the episode's end the last action repeats.
Everything is loaded into memory when it fits (`max_memory_gb`), so a batch is a few fancy-indexing operations.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from dm1_ros.errors import Dm1Error
from dm1_ros.runtime.contract import PROPRIO_KEYS
from dm1_ros.train.rotations import with_rotation_columns


class DatasetError(Dm1Error, ValueError):
    """A dataset file that does not fit what training asks of it; the message names the file, demo and key."""


def open_episodes(path: str | Path):
    """The robomimic tree of a dataset: an HDF5 file opened read-only, or a LeRobotDataset v3.0 directory read into
    memory in the same shape (data/<demo>/obs/<key>, data/<demo>/actions, mask/<split>)."""
    from dm1_ros.data.lerobot import LeRobotError, as_robomimic_tree, is_lerobot

    path = Path(path)
    if path.is_dir():
        if not is_lerobot(path):
            raise DatasetError(f"{path} is a directory without meta/info.json (not a LeRobotDataset)")
        try:
            return as_robomimic_tree(path)
        except LeRobotError as exc:
            raise DatasetError(str(exc)) from None
    if not path.is_file():
        raise DatasetError(f"dataset not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path} is not a readable HDF5 file: {exc}") from None


class RobomimicDataset:
    def __init__(self, path: str | Path, image_keys: list[str], chunk: int, proprio_keys: list[str] | None = None,
                 split: str | None = "train", action_dim: int = 7, image_shape: tuple[int, int, int] | None = None,
                 proprio_dims: list[int] | None = None, max_memory_gb: float = 8.0, max_episodes: int = 0,
                 point_cloud_keys: list[str] | None = None, num_points: list[int] | None = None,
                 key_map: dict[str, str] | None = None, state_keys: list[str] | None = None,
                 state_dims: list[int] | None = None, state_quaternions: list[int] | None = None):
        """key_map: our obs key (as the policy names it) -> the key in the file, for data recorded under other names
        (keys not listed are read under their own name). max_episodes: keep only the first N demonstrations of the split (0: all), in the file's order, so a
        smaller set is a prefix of a larger one (few-demonstration studies). point_cloud_keys: obs keys of (T, N, 3)
        point clouds, N = num_points (one per key) when given. state_keys / state_dims / state_quaternions: the
        privileged state targets (batch["state_targets"]) and where their xyzw quaternions start."""
        self.path = Path(path)
        self.image_keys = list(image_keys)
        self.point_cloud_keys = list(point_cloud_keys or [])
        self.proprio_keys = list(proprio_keys if proprio_keys is not None else PROPRIO_KEYS)
        self.state_keys = list(state_keys or [])
        self.chunk = chunk
        self.key_map = dict(key_map or {})
        with open_episodes(self.path) as f:
            if "data" not in f:
                raise DatasetError(f"{self.path} has no 'data' group (not a robomimic dataset)")
            demos = self._select(f, split)
            if not demos:
                raise DatasetError(f"{self.path}: split {split!r} selects no demonstrations")
            if max_episodes < 0:
                raise DatasetError(f"max_episodes must not be negative, got {max_episodes}")
            if max_episodes > len(demos):
                raise DatasetError(f"{self.path}: {max_episodes} demonstrations asked for, split {split!r} holds "
                                   f"{len(demos)}")
            demos = demos[:max_episodes] if max_episodes else demos
            self.demos = demos
            self._check(f, demos, action_dim, image_shape, proprio_dims, num_points, state_dims)
            lengths = [int(f["data"][d]["actions"].shape[0]) for d in demos]
            need = sum(lengths) * sum(int(np.prod(self._obs(f["data"][demos[0]], k).shape[1:])) for k in self.image_keys)
            if need > max_memory_gb * 1e9:
                raise DatasetError(f"{self.path}: images need {need / 1e9:.1f} GB, more than max_memory_gb={max_memory_gb} "
                                   "(raise max_memory_gb in the training recipe where the machine has the memory)")
            self.images = {k: np.concatenate([self._obs(f["data"][d], k)[()] for d in demos]) for k in self.image_keys}
            self.points = {k: np.concatenate([self._obs(f["data"][d], k)[()] for d in demos]).astype(np.float32)
                           for k in self.point_cloud_keys}
            self.proprio = self._flat(f, demos, lengths, self.proprio_keys)
            self.state_targets, self.state_valid = with_rotation_columns(
                self._flat(f, demos, lengths, self.state_keys), list(state_quaternions or [])) \
                if self.state_keys else (None, None)
            self.actions = np.concatenate([f["data"][d]["actions"][()] for d in demos]).astype(np.float32)
            self.env_args = f["data"].attrs.get("env_args", "{}")
        self.lengths = np.asarray(lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        ends = starts + self.lengths
        demo_of = np.repeat(np.arange(len(demos)), lengths)
        self.obs_index = np.arange(int(self.lengths.sum()))
        # (N, Ta) indices into self.actions; clamped at each episode's last step (padding by repetition).
        self.action_index = np.minimum(self.obs_index[:, None] + np.arange(chunk)[None, :], ends[demo_of][:, None] - 1)

    # --- checks ---------------------------------------------------------------------------------------------------
    def _obs(self, group, key: str, where: str = ""):
        """obs/<key> of one demo's group, read under the file's name for it (key_map)."""
        name = self.key_map.get(key, key)
        if name not in group["obs"]:
            mapped = f" (the recipe's obs_keys maps {key} to it)" if name != key else ""
            raise DatasetError(f"{where or self.path} has no obs/{name}{mapped}; it has {sorted(group['obs'].keys())}")
        return group["obs"][name]

    def _flat(self, f, demos: list[str], lengths: list[int], keys: list[str]) -> np.ndarray:
        """obs/<key> of every demo, each step flattened and the keys side by side: (sum of lengths, D) float32."""
        return np.concatenate(
            [np.concatenate([self._obs(f["data"][d], k)[()].astype(np.float32).reshape(n, -1) for k in keys], axis=1)
             for d, n in zip(demos, lengths)]).astype(np.float32)

    def _select(self, f: h5py.File, split: str | None) -> list[str]:
        names = sorted(f["data"].keys(), key=lambda n: int(n.split("_")[-1]) if n.split("_")[-1].isdigit() else n)
        if split is None:
            return names
        if "mask" in f and split in f["mask"]:
            chosen = {m.decode() if isinstance(m, bytes) else str(m) for m in f["mask"][split][()]}
            return [n for n in names if n in chosen]
        if split == "train":
            return names  # no mask: everything trains
        return []

    def _check(self, f, demos, action_dim, image_shape, proprio_dims, num_points=None, state_dims=None):
        first = f["data"][demos[0]]
        for d in demos:
            g = f["data"][d]
            where = f"{self.path}: data/{d}"
            if "actions" not in g:
                raise DatasetError(f"{where} has no 'actions'")
            if "obs" not in g:
                raise DatasetError(f"{where} has no 'obs' group")
            n = g["actions"].shape[0]
            if g["actions"].ndim != 2 or g["actions"].shape[1] != action_dim:
                raise DatasetError(f"{where}/actions has shape {g['actions'].shape}, expected (T, {action_dim})")
            obs = {k: self._obs(g, k, where)
                   for k in self.image_keys + self.point_cloud_keys + self.proprio_keys + self.state_keys}
            for k, v in obs.items():
                if v.shape[0] != n:
                    raise DatasetError(f"{where}/obs/{k} has {v.shape[0]} steps, actions have {n}")
            for k in self.image_keys:
                shape = tuple(obs[k].shape[1:])
                want = tuple(image_shape) if image_shape else tuple(self._obs(first, k).shape[1:])
                if shape != want or len(shape) != 3 or shape[-1] != 3:
                    raise DatasetError(f"{where}/obs/{k} has frames of shape {shape}, expected {want} (H, W, 3)")
                if obs[k].dtype != np.uint8:
                    raise DatasetError(f"{where}/obs/{k} has dtype {obs[k].dtype}, expected uint8")
            for i, k in enumerate(self.point_cloud_keys):
                shape = tuple(obs[k].shape[1:])
                want_n = num_points[i] if num_points else self._obs(first, k).shape[1]
                if shape != (want_n, 3):
                    raise DatasetError(f"{where}/obs/{k} has point clouds of shape {shape}, expected ({want_n}, 3)")
            for keys, dims in ((self.proprio_keys, proprio_dims), (self.state_keys, state_dims)):
                for i, k in enumerate(keys):
                    dim = int(np.prod(obs[k].shape[1:]))
                    want = dims[i] if dims else int(np.prod(self._obs(first, k).shape[1:]))
                    if dim != want:
                        raise DatasetError(f"{where}/obs/{k} has dimension {dim}, expected {want}")

    # --- access ---------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.obs_index.size)

    @property
    def num_episodes(self) -> int:
        return len(self.demos)

    def batch(self, idx: np.ndarray) -> dict:
        out = {
            "images": {k: v[idx] for k, v in self.images.items()},
            "points": {k: v[idx] for k, v in self.points.items()},
            "proprio": self.proprio[idx],
            "actions": self.actions[self.action_index[idx]],
        }
        if self.state_targets is not None:
            out["state_targets"] = self.state_targets[idx]
            out["state_valid"] = self.state_valid[idx].astype(np.float32)
        return out

    def __getitem__(self, i: int) -> dict:
        b = self.batch(np.asarray([i]))
        return {"images": {k: v[0] for k, v in b["images"].items()}, "points": {k: v[0] for k, v in b["points"].items()},
                "proprio": b["proprio"][0], "actions": b["actions"][0]}

    def stats(self) -> dict[str, np.ndarray]:
        stats = {"action_min": self.actions.min(0), "action_max": self.actions.max(0),
                 "proprio_min": self.proprio.min(0), "proprio_max": self.proprio.max(0)}
        if self.state_targets is not None:
            states = self.state_targets[self.state_valid]
            if not len(states):
                raise DatasetError(f"{self.path}: no step of {self.state_keys} holds a state (every quaternion is zero)")
            stats.update(state_min=states.min(0), state_max=states.max(0))
        return stats
