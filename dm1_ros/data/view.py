"""One episode as a video: `dm1 dataset view PATH --episode N --out ep.mp4`.

    write_episode_video("data/square.hdf5", 3, "ep3.mp4")   # cameras side by side, point clouds from above,
                                                             # the actions plotted with a cursor at the frame's step

Reads what `dm1 dataset info` reads: robomimic HDF5, a collection in progress (OUT.parts/), a LeRobotDataset v3.0
directory. No torch.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from dm1_ros.data.episodes import SHARD_SUFFIX, Episode, EpisodeStore, _natural, _read_group
from dm1_ros.data.lerobot import is_lerobot, read_lerobot
from dm1_ros.runtime.contract import ACTION_NAMES
from dm1_ros.sim.video import VideoWriter, side_by_side
from dm1_ros.train.dataset import DatasetError

COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230)]


def read_episode(path: str | Path, index: int) -> tuple[str, Episode, float]:
    """(name, episode, fps) of the index-th episode (natural order of names, as training reads them)."""
    path = Path(path)
    if path.is_dir() and is_lerobot(path):
        contents = read_lerobot(path)
        names, fps = contents.names, float(contents.fps)
        _check_index(path, index, len(names))
        return names[index], contents.episodes[index], fps
    store = EpisodeStore(path.with_name(path.name[: -len(SHARD_SUFFIX)]) if path.name.endswith(SHARD_SUFFIX) else path)
    if not path.is_file() and store.shard_names():
        names = store.shard_names()
        _check_index(store.parts, index, len(names))
        return names[index], store.read(names[index]), 20.0
    if not path.is_file():
        raise DatasetError(f"dataset not found: {path}")
    import json

    with h5py.File(path, "r") as f:
        if "data" not in f:
            raise DatasetError(f"{path} has no 'data' group (not a robomimic dataset)")
        names = sorted(f["data"].keys(), key=_natural)
        _check_index(path, index, len(names))
        fps = json.loads(f["data"].attrs.get("env_args", "{}") or "{}").get("env_kwargs", {}).get("control_freq", 20)
        return names[index], _read_group(f["data"][names[index]], f"{path}:data/{names[index]}"), float(fps)


def _check_index(where, index: int, count: int) -> None:
    if not 0 <= index < count:
        raise DatasetError(f"{where} holds episodes 0..{count - 1}; episode {index} asked for")


def cloud_from_above(points: np.ndarray, lo: np.ndarray, hi: np.ndarray, size: int) -> np.ndarray:
    """(N, 3) points drawn from above (x right, y up), coloured by height from blue (low) to red (high)."""
    image = np.full((size, size, 3), 255, np.uint8)
    span = np.maximum(hi - lo, 1e-6)
    uv = ((points[:, :2] - lo[:2]) / span[:2] * (size - 1)).round().astype(int)
    z = np.clip((points[:, 2] - lo[2]) / span[2], 0, 1)
    colour = np.stack([255 * z, 40 * np.ones_like(z), 255 * (1 - z)], axis=1).astype(np.uint8)
    order = np.argsort(z)  # higher points drawn last, on top
    u, v = uv[order, 0], size - 1 - uv[order, 1]
    keep = (u >= 0) & (u < size) & (v >= 0) & (v < size)
    for du in (0, 1):
        for dv in (0, 1):
            image[np.clip(v[keep] + dv, 0, size - 1), np.clip(u[keep] + du, 0, size - 1)] = colour[order][keep]
    return image


class ActionPlot:
    """The episode's actions as lines over time, drawn once; frame(t) adds the cursor at step t."""

    def __init__(self, actions: np.ndarray, width: int, height: int = 160, names=ACTION_NAMES):
        import cv2

        self.width, self.height, self.steps = width, height, len(actions)
        self.margin = 8
        lo, hi = min(-1.0, float(actions.min())), max(1.0, float(actions.max()))
        plot = np.full((height, width, 3), 255, np.uint8)
        x = self.x(np.arange(self.steps))
        zero = int(round(self._y(0.0, lo, hi)))
        cv2.line(plot, (self.margin, zero), (width - self.margin, zero), (200, 200, 200), 1)
        for d in range(actions.shape[1]):
            y = self._y(actions[:, d], lo, hi)
            pts = np.stack([x, y], axis=1).round().astype(np.int32)
            cv2.polylines(plot, [pts], False, COLOURS[d % len(COLOURS)], 1, cv2.LINE_AA)
            label = names[d] if d < len(names) else f"a{d}"
            cv2.putText(plot, label, (self.margin + 44 * d, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        COLOURS[d % len(COLOURS)], 1, cv2.LINE_AA)
        self.plot = plot

    def x(self, t):
        return self.margin + np.asarray(t, float) / max(1, self.steps - 1) * (self.width - 2 * self.margin)

    def _y(self, v, lo, hi):
        return self.margin + (hi - np.asarray(v, float)) / (hi - lo) * (self.height - 30 - self.margin)

    def frame(self, t: int):
        import cv2

        out = self.plot.copy()
        x = int(round(float(self.x(t))))
        cv2.line(out, (x, 0), (x, self.height - 22), (0, 0, 0), 1)
        return out


def write_episode_video(path: str | Path, index: int, out: str | Path, height: int = 192) -> dict:
    """Write the episode's mp4; returns what it shows (name, steps, fps, panels)."""
    import cv2

    name, ep, fps = read_episode(path, index)
    cameras = sorted(k for k, v in ep.obs.items() if v.dtype == np.uint8 and v.ndim == 4 and v.shape[-1] == 3)
    clouds = sorted(k for k, v in ep.obs.items() if v.ndim == 3 and v.shape[-1] == 3 and v.dtype != np.uint8)
    if not cameras and not clouds:
        raise DatasetError(f"{path}: episode {index} ({name}) has no camera and no point cloud to show")
    bounds = {k: (ep.obs[k].reshape(-1, 3).min(0), ep.obs[k].reshape(-1, 3).max(0)) for k in clouds}
    first = _panels(ep, 0, cameras, clouds, bounds, height)
    plot = ActionPlot(ep.actions, first.shape[1])
    with VideoWriter(out, fps) as video:
        for t in range(len(ep)):
            top = _panels(ep, t, cameras, clouds, bounds, height)
            frame = np.concatenate([top, plot.frame(t)], axis=0)
            cv2.rectangle(frame, (0, 0), (min(frame.shape[1], 300), 22), (0, 0, 0), -1)  # legible on any image
            cv2.putText(frame, f"{name}  step {t + 1}/{len(ep)}  {t / fps:.2f} s", (6, 16), cv2.FONT_HERSHEY_SIMPLEX,
                        0.45, (255, 255, 255), 1, cv2.LINE_AA)
            video.add(frame)
    return {"episode": name, "steps": len(ep), "fps": fps, "cameras": cameras, "point_clouds": clouds,
            "size": [int(first.shape[1]), int(first.shape[0] + plot.height)]}


def _panels(ep: Episode, t: int, cameras, clouds, bounds, height: int) -> np.ndarray:
    images = [ep.obs[k][t] for k in cameras]
    images += [cloud_from_above(ep.obs[k][t], *bounds[k], size=height) for k in clouds]
    return side_by_side(*images, height=height)
