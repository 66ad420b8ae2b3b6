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


def quiet_robosuite() -> None:
    """robosuite logs warnings about optional packages on every import; keep the console for our messages."""
    for name in ("robosuite_logs", "robosuite"):
        logging.getLogger(name).setLevel(logging.ERROR)


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
