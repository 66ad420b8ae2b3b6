"""Offscreen rendering on CPU: EGL when the machine has it, OSMesa otherwise. Must run before mujoco is imported."""
from __future__ import annotations

import ctypes.util
import logging
import os

log = logging.getLogger("dm1_ros.sim")


def configure_gl() -> str:
    """Pick MUJOCO_GL (respecting a value the user set) and return it."""
    if "MUJOCO_GL" not in os.environ:
        if ctypes.util.find_library("EGL"):
            backend = "egl"
        elif ctypes.util.find_library("OSMesa"):
            backend = "osmesa"
        else:
            backend = "egl"  # mujoco's error then names what is missing
        os.environ["MUJOCO_GL"] = backend
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    return os.environ["MUJOCO_GL"]


def import_robosuite():
    """Import robosuite without its import-time chatter (missing private macros, optional robots, IK) and with
    its console logging at ERROR, so the console keeps our messages."""
    logger = logging.getLogger("robosuite_logs")
    logger.disabled = True
    try:
        import robosuite
    finally:
        logger.disabled = False
    logger.setLevel(logging.ERROR)
    for handler in logger.handlers:
        handler.setLevel(logging.ERROR)
    logger.propagate = False
    return robosuite


def disable_shadows_and_reflections(env) -> bool:
    """Switch off shadows and reflections in the offscreen context: about 2x camera throughput on CPU.

    Collection and evaluation must use the same setting (images differ). Returns False if there is no context yet.
    """
    import mujoco

    context = getattr(env.sim, "_render_context_offscreen", None)
    if context is None:
        return False
    context.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    return True
