"""Deployment path: ONNX policy, contracts and (later) scheduling, safety and cadence. Never imports torch."""
from dm1_ros.runtime.contract import ActionChunk, Observation

__all__ = ["ActionChunk", "Observation"]
