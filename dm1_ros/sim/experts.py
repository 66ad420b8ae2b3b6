"""Scripted experts that solve lift, can and square from privileged simulator state.

Each expert is a small phase machine that re-targets on the object's current pose every step (closed loop), and
draws per-episode style parameters so demonstrations are diverse: approach side and height, speed, grasp
height, pauses, action noise. Diversity matters: a unimodal expert flatters one-step flow matching (SPEC §6).

    expert = make_expert("lift", seed=0)
    expert.reset(env)
    while not done: obs, r, done, info = env.step(expert.act(env))
"""
from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

POS_SCALE = 0.05  # OSC_POSE: action 1.0 = 5 cm
ROT_SCALE = 0.5  # action 1.0 = 0.5 rad
DOWN = Rotation.from_euler("x", math.pi)  # gripper pointing at the table, yaw 0


def wrap(angle: float, period: float = 2 * math.pi) -> float:
    return (angle + period / 2) % period - period / 2


def gripper_yaw(eef_quat: np.ndarray) -> float:
    m = (Rotation.from_quat(eef_quat) * DOWN.inv()).as_matrix()
    return math.atan2(m[1, 0], m[0, 0])


def object_yaw(quat: np.ndarray) -> float:
    m = Rotation.from_quat(quat).as_matrix()
    return math.atan2(m[1, 0], m[0, 0])


class Expert:
    """Base: phase machine helpers. Subclasses define reset() and act()."""

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def style(self):
        r = self.rng
        self.speed = r.uniform(0.5, 1.0)  # max |action| on position
        self.gain = r.uniform(8.0, 14.0)  # action per metre of error, in units of POS_SCALE
        self.noise = r.uniform(0.0, 0.15)  # std of position action noise
        self.approach_height = r.uniform(0.06, 0.14)
        self.side = r.uniform(-0.06, 0.06, size=2)  # lateral offset of the approach waypoint
        self.close_steps = int(r.integers(5, 10))
        self.pause = int(r.integers(0, 4))
        self.phase, self.counter = 0, 0

    def move(self, eef: np.ndarray, target: np.ndarray, speed: float | None = None) -> np.ndarray:
        speed = self.speed if speed is None else speed
        delta = target - eef
        a = delta / POS_SCALE * self.gain / 10.0 * 2.0
        norm = np.linalg.norm(a)
        if 1e-9 < norm < 0.25 and np.linalg.norm(delta) > 0.003:
            a = a / norm * 0.25  # OSC barely moves on tiny commands: keep a floor until within 3 mm
        a = np.clip(a, -speed, speed)
        return a + self.rng.normal(0.0, self.noise, 3) * (np.abs(a).max() > 0.05)

    def turn(self, eef_quat: np.ndarray, yaw_target: float) -> np.ndarray:
        """Rotation action towards pointing down at yaw_target (base frame axis-angle)."""
        target = Rotation.from_euler("z", yaw_target) * DOWN
        err = (target * Rotation.from_quat(eef_quat).inv()).as_rotvec()
        return np.clip(err / ROT_SCALE * 2.0, -1.0, 1.0)

    def resume(self, env) -> None:
        """Take over a scene someone else has been driving (a policy, `dm1 collect --takeover`): draw a style as
        reset() does and start from the phase the scene is in. Here: the first phase, which re-targets on the
        object wherever it is; an expert whose later phases can be told from the scene overrides this."""
        self.reset(env)

    def next_phase(self):
        self.phase += 1
        self.counter = 0

    @staticmethod
    def symmetric_yaw(current: float, object_yaw_: float, period: float) -> float:
        """Yaw congruent to object_yaw modulo `period` closest to the current gripper yaw."""
        return current + wrap(object_yaw_ - current, period)


class LiftExpert(Expert):
    def reset(self, env):
        self.style()
        self.grasp_dz = self.rng.uniform(-0.008, 0.008)
        self.lift_height = self.rng.uniform(0.12, 0.2)

    def act(self, env) -> np.ndarray:
        o = env.raw_observation()
        eef, quat, cube = o["robot0_eef_pos"], o["robot0_eef_quat"], o["cube_pos"]
        yaw = self.symmetric_yaw(gripper_yaw(quat), object_yaw(o["cube_quat"]), math.pi / 2)
        rot = self.turn(quat, yaw)
        grip = -1.0
        self.counter += 1
        if self.phase == 0:  # waypoint beside and above the cube
            target = cube + np.array([*self.side, self.approach_height + 0.04])
            if np.linalg.norm(target - eef) < 0.03 or self.counter > 40:
                self.next_phase()
            pos = self.move(eef, target)
        elif self.phase == 1:  # above the cube, aligned
            target = cube + np.array([0, 0, self.approach_height])
            if np.linalg.norm(target - eef) < 0.012 or self.counter > 40:
                self.next_phase()
            pos = self.move(eef, target)
        elif self.phase == 2:  # descend
            target = cube + np.array([0, 0, self.grasp_dz])
            if np.linalg.norm(target - eef) < 0.008 or self.counter > 40:
                self.next_phase()
            pos = self.move(eef, target, speed=min(self.speed, 0.6))
        elif self.phase == 3:  # close
            pos, grip = self.move(eef, cube + np.array([0, 0, self.grasp_dz]), 0.2), 1.0
            if self.counter >= self.close_steps + self.pause:
                self.next_phase()
                self.lift_from = cube.copy()
        else:  # lift
            pos, grip = self.move(eef, self.lift_from + np.array([0, 0, self.lift_height])), 1.0
            rot = rot * 0
        return np.concatenate([pos, rot, [grip]])


class CanExpert(Expert):
    """Pick the can from bin 1, carry it over its target slot in bin 2, lower and release."""

    def reset(self, env):
        self.style()
        self.grasp_dz = self.rng.uniform(-0.01, 0.015)
        self.carry_height = self.rng.uniform(0.24, 0.3)  # the hanging can must clear the wall between the bins
        self.release_dz = self.rng.uniform(0.06, 0.1)
        self.target_jitter = self.rng.uniform(-0.02, 0.02, size=2)
        e = env.env
        self.target = e.target_bin_placements[e.object_id].copy()

    def act(self, env) -> np.ndarray:
        o = env.raw_observation()
        eef, quat, can = o["robot0_eef_pos"], o["robot0_eef_quat"], o["Can_pos"]
        rot = self.turn(quat, gripper_yaw(quat) * 0.0)  # keep square to the bins
        grip = -1.0
        self.counter += 1
        drop = np.array([*(self.target[:2] + self.target_jitter), 0.0])
        if self.phase == 0:  # above the can
            target = can + np.array([*(self.side * 0.5), self.approach_height])
            if np.linalg.norm(target - eef) < 0.015 or self.counter > 50:
                self.next_phase()
            pos = self.move(eef, target)
        elif self.phase == 1:  # centre and descend
            target = can + np.array([0, 0, self.grasp_dz])
            if np.linalg.norm(target - eef) < 0.008 or self.counter > 50:
                self.next_phase()
            pos = self.move(eef, target, speed=min(self.speed, 0.6))
        elif self.phase == 2:  # close
            pos, grip = self.move(eef, can + np.array([0, 0, self.grasp_dz]), 0.2), 1.0
            if self.counter >= self.close_steps + self.pause:
                self.next_phase()
        elif self.phase == 3:  # lift straight up
            grip = 1.0
            target = np.array([eef[0], eef[1], self.target[2] + self.carry_height])
            pos = self.move(eef, target)
            if eef[2] > self.target[2] + self.carry_height - 0.03 or self.counter > 40:
                self.next_phase()
        elif self.phase == 4:  # carry over the target slot (steer the can, not the hand)
            grip = 1.0
            target = eef + (drop - can) * np.array([1, 1, 0])
            target[2] = self.target[2] + self.carry_height
            pos = self.move(eef, target)
            if np.linalg.norm((drop - can)[:2]) < 0.015 or self.counter > 80:
                self.next_phase()
        elif self.phase == 5:  # lower
            grip = 1.0
            target = eef + (drop - can) * np.array([1, 1, 0])
            target[2] = self.target[2] + self.release_dz + (eef[2] - can[2])
            pos = self.move(eef, target, speed=min(self.speed, 0.5))
            if can[2] < self.target[2] + self.release_dz + 0.01 or self.counter > 40:
                self.next_phase()
        else:  # release and back off upwards
            pos = self.move(eef, eef + np.array([0, 0, 0.05]), 0.3) if self.counter > 3 else np.zeros(3)
        return np.concatenate([pos, rot, [grip]])


class SquareExpert(Expert):
    """Grasp the square nut by its handle, lift, square it to the peg in place, carry, lower over the peg, release."""

    GRASP_YAW_OFFSET = 0.0  # at equal yaw the fingers close across the handle bar (along the nut's y axis)
    NUT_REST_Z = 0.83  # the nut's height on the table
    HELD_LIFT_M = 0.01  # off the table by this much ...
    HELD_FINGER_QPOS = 0.03  # ... with the fingers closer than this (open: 0.04, on the handle: 0.015) ...
    HELD_HANDLE_DISTANCE_M = 0.03  # ... and the handle this near the hand: the nut is held

    def reset(self, env):
        self.style()
        self.grasp_dz = self.rng.uniform(0.0, 0.008)  # above the handle's mid-plane: fingertips clear the table
        self.carry_z = self.rng.uniform(1.04, 1.1)  # nut clear of the peg's top
        self.along = self.rng.uniform(-0.006, 0.006)  # grasp point along the handle
        self.release_z = self.rng.uniform(0.845, 0.86)  # nut height at release
        self.turn_speed = self.rng.uniform(0.25, 0.45)
        e = env.env
        self.peg = np.array(e.sim.data.body_xpos[e.peg1_body_id])

    @staticmethod
    def peg_yaw(nut_yaw: float) -> float:
        """The nut yaw to place at: any multiple of 90 degrees fits the square peg; keep the handle (and the hand) on
        the robot's side or beside the peg: with the handle pointing away, the hand is at the edge of the reach."""
        candidates = (math.pi / 2, math.pi, -math.pi / 2)
        return min(candidates, key=lambda c: abs(wrap(c - nut_yaw)))

    def holds_nut(self, env) -> bool:
        """The fingers are closed on the handle and the nut is off the table (it rests at z = 0.83 m)."""
        o = env.raw_observation()
        closed = o["robot0_gripper_qpos"][0] < self.HELD_FINGER_QPOS
        near = np.linalg.norm(self.handle(env) - o["robot0_eef_pos"]) < self.HELD_HANDLE_DISTANCE_M
        return bool(closed and near and o["SquareNut_pos"][2] > self.NUT_REST_Z + self.HELD_LIFT_M)

    def resume(self, env) -> None:
        """A nut in the hand is carried on (lift, square it, place); otherwise from the first phase, the gripper
        opening on the way (a nut pushed, dropped or never grasped is approached afresh)."""
        self.reset(env)
        if self.holds_nut(env):
            o = env.raw_observation()
            self.phase, self.counter = 3, 0
            self.hold_xy = o["robot0_eef_pos"][:2].copy()
            self.nut_yaw_target = self.peg_yaw(object_yaw(o["SquareNut_quat"]))

    def handle(self, env) -> np.ndarray:
        e = env.env
        return np.array(e.sim.data.site_xpos[e.object_site_ids[0]])

    def act(self, env) -> np.ndarray:
        o = env.raw_observation()
        eef, quat, nut = o["robot0_eef_pos"], o["robot0_eef_quat"], o["SquareNut_pos"]
        nut_yaw = object_yaw(o["SquareNut_quat"])
        g_yaw = gripper_yaw(quat)
        grip = 1.0
        self.counter += 1
        along = np.array([math.cos(nut_yaw), math.sin(nut_yaw), 0.0]) * self.along
        handle = self.handle(env) + along
        if self.phase <= 2:
            rot = self.turn(quat, self.symmetric_yaw(g_yaw, nut_yaw + self.GRASP_YAW_OFFSET, math.pi))
        else:  # square the nut: turn the hand by the nut's yaw error, gently
            rot = np.clip(self.turn(quat, g_yaw + wrap(self.nut_yaw_target - nut_yaw)), -self.turn_speed, self.turn_speed)
        yaw_err = abs(wrap(self.nut_yaw_target - nut_yaw)) if self.phase > 2 else 0.0
        if self.phase == 0:  # above the handle, aligned
            grip = -1.0
            target = handle + np.array([0, 0, self.approach_height])
            rot_err = abs(wrap(g_yaw - (nut_yaw + self.GRASP_YAW_OFFSET), math.pi))
            if (np.linalg.norm(target - eef) < 0.012 and rot_err < 0.05) or self.counter > 60:
                self.next_phase()
            pos = self.move(eef, target)
        elif self.phase == 1:  # descend onto the handle
            grip = -1.0
            target = handle + np.array([0, 0, self.grasp_dz])
            if np.linalg.norm(target - eef) < 0.005 or self.counter > 50:
                self.next_phase()
            pos = self.move(eef, target, speed=min(self.speed, 0.5))
        elif self.phase == 2:  # close
            pos = self.move(eef, handle + np.array([0, 0, self.grasp_dz]), 0.2)
            if self.counter >= self.close_steps + self.pause:
                self.next_phase()
                self.hold_xy = eef[:2].copy()
                self.nut_yaw_target = self.peg_yaw(nut_yaw)
        elif self.phase == 3:  # lift straight up, no turning yet
            rot = rot * 0
            pos = self.move(eef, np.array([*self.hold_xy, self.carry_z]))
            if eef[2] > self.carry_z - 0.02 or self.counter > 40:
                self.next_phase()
        elif self.phase == 4:  # turn in place
            pos = self.move(eef, np.array([*self.hold_xy, self.carry_z]))
            if yaw_err < 0.04 or self.counter > 60:
                self.next_phase()
        elif self.phase == 5:  # nut centre over the peg
            target = eef + np.array([*(self.peg[:2] - nut[:2]), self.carry_z - eef[2]])
            pos = self.move(eef, target)
            if (np.linalg.norm(self.peg[:2] - nut[:2]) < 0.005 and yaw_err < 0.04) or self.counter > 90:
                self.next_phase()
        elif self.phase == 6:  # lower over the peg
            target = eef + np.array([*(self.peg[:2] - nut[:2]), self.release_z - nut[2]])
            pos = self.move(eef, target, speed=min(self.speed, 0.5))
            if nut[2] < self.release_z + 0.005 or self.counter > 60:
                self.next_phase()
        else:  # release, then rise
            grip, rot = -1.0, rot * 0
            pos = self.move(eef, eef + np.array([0, 0, 0.05]), 0.4) if self.counter > 4 else np.zeros(3)
        return np.concatenate([pos, rot, [grip]])


EXPERTS = {"lift": LiftExpert, "can": CanExpert, "square": SquareExpert}


def make_expert(task: str, seed: int | None = None) -> Expert:
    if task not in EXPERTS:
        raise ValueError(f"no scripted expert for task {task!r}; available: {sorted(EXPERTS)}")
    return EXPERTS[task](seed)


def run_expert_episode(env, expert: Expert, seed: int, on_step=None) -> tuple[bool, int]:
    """Roll one episode; on_step(obs, action, reward, done, sim_state, raw_obs) sees each step, with the state
    and robosuite observation the action was chosen from. Returns (success, steps)."""
    obs = env.reset(seed=seed)
    expert.reset(env)
    return finish_episode(env, expert, on_step, obs=obs)


def finish_episode(env, expert: Expert, on_step=None, done: bool = False, obs=None) -> tuple[bool, int]:
    """The expert drives the scene as it is to the episode's end (done: it has ended already; obs: the scene's
    current observation, if at hand); on_step as in run_expert_episode. Returns (success, steps)."""
    obs = env.observation() if obs is None else obs
    info, steps = {"success": env.success()}, 0
    while not done:
        state, raw = env.sim_state(), env.raw_observation()
        action = np.clip(expert.act(env), -1.0, 1.0)
        next_obs, reward, done, info = env.step(action)
        if on_step is not None:
            on_step(obs, action, reward, done, state, raw)
        obs = next_obs
        steps += 1
    return bool(info["success"]), steps
