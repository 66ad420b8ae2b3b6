"""Image helpers the robot side shares (ROS nodes, cameras, recorders): resizing and size strings. No torch."""
from __future__ import annotations

import numpy as np


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """HxWx3 uint8 -> height x width x 3 (OpenCV area interpolation when available, else nearest neighbour)."""
    if image.shape[:2] == (height, width):
        return image
    try:
        import cv2

        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    except ImportError:
        rows = (np.arange(height) * image.shape[0] / height).astype(int)
        cols = (np.arange(width) * image.shape[1] / width).astype(int)
        return np.ascontiguousarray(image[rows][:, cols])


def parse_size(text: str) -> tuple[int, int] | None:
    """'96x96' (width x height) -> (96, 96); '' -> None."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"bad size {text!r}: expected WIDTHxHEIGHT, e.g. 96x96") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"bad size {text!r}: width and height must be positive")
    return w, h
