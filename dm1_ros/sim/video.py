"""MP4 writing with OpenCV (robosuite already depends on opencv-python)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class VideoWriter:
    def __init__(self, path: str | Path, fps: float = 20.0):
        self.path = Path(path)
        self.fps = fps
        self._writer = None

    def add(self, frame_rgb: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = frame_rgb.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise RuntimeError(f"cannot open {self.path} for writing")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def side_by_side(*frames: np.ndarray, height: int = 256) -> np.ndarray:
    """Resize frames to one height (nearest neighbour) and put them side by side."""
    import cv2

    out = []
    for f in frames:
        scale = height / f.shape[0]
        out.append(cv2.resize(f, (int(round(f.shape[1] * scale)), height), interpolation=cv2.INTER_NEAREST))
    return np.concatenate(out, axis=1)
