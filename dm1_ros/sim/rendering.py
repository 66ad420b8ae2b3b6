"""Offscreen rendering on CPU: EGL when the machine has it, OSMesa otherwise. Must run before mujoco is imported."""
from __future__ import annotations

import ctypes.util
import logging
import os

import numpy as np

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


APPEARANCES = ("default", "recolor", "relight", "both")
# recolor: tints multiplied into the materials' textures (a blue table, a dark green floor, green objects where
# the tasks' objects are red or metal); relight: the scene light dimmer, warmer and from the other side.
TABLE_TINT, FLOOR_TINT, OBJECT_TINT = (0.35, 0.5, 0.95, 1.0), (0.3, 0.55, 0.3, 1.0), (0.25, 0.9, 0.3, 1.0)
LIGHT_SCALE = np.array([0.65, 0.5, 0.35])


def apply_appearance(env, appearance: str) -> None:
    """Change colours and/or lighting of the loaded model (after every reset: robosuite rebuilds its model). The
    geometry, and so depth and point clouds, stay as they are: a test of what RGB depends on and depth does not."""
    import mujoco

    if appearance not in APPEARANCES:
        raise ValueError(f"appearance {appearance!r}: choose one of {', '.join(APPEARANCES)}")
    if appearance == "default":
        return
    model = env.sim.model._model
    if appearance in ("recolor", "both"):
        def material_of(geom_name):
            gid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, geom_name)
            return model.geom_matid[gid] if gid >= 0 else -1

        objects = [g for obj in getattr(env.model, "mujoco_objects", []) for g in obj.visual_geoms]
        for names, tint in ((["table_visual"], TABLE_TINT), (["floor"], FLOOR_TINT), (objects, OBJECT_TINT)):
            for name in names:
                gid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)
                if gid < 0:
                    continue
                mat = material_of(name)
                if mat >= 0:
                    model.mat_rgba[mat] = tint
                else:
                    model.geom_rgba[gid] = tint
    if appearance in ("relight", "both"):
        # from the model's own values, kept at the first change: applying it again (every reset) gives the same scene
        diffuse, pos, direction, head = env.__dict__.setdefault("_dm1_lights", (
            model.light_diffuse.copy(), model.light_pos.copy(), model.light_dir.copy(),
            model.vis.headlight.diffuse.copy()))
        model.light_diffuse[:] = diffuse * LIGHT_SCALE
        model.light_pos[:] = pos * [-1, -1, 1]  # the other side of the scene: shading and shadows move
        model.light_dir[:] = direction * [-1, -1, 1]
        model.vis.headlight.diffuse[:] = head * LIGHT_SCALE
        env.sim.forward()  # light positions in the world follow from the model's only after a forward pass
