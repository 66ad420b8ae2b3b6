"""ControlLoop = Planner + CommandExecutor in one process: faults (NaN output, a failing model, a stale camera, a
robot error), hot swaps, the robot's own safety filter, planning once per camera frame."""
import copy
import shutil
from pathlib import Path

import numpy as np
import pytest

from dm1_ros.runtime.bundle import ImageSpec, ObservationSpec, read_manifest
from dm1_ros.runtime.contract import ActionChunk, Observation
from dm1_ros.runtime.loop import control_loop
from dm1_ros.runtime.safety import SafetyConfig, SafetyFilter

KEY = "robot0_eye_in_hand_image"
SHIPPED = Path(__file__).resolve().parents[1] / "models" / "lift_image"


class PointRobot:
    """The robot contract, kinematic: the hand moves by the commanded delta after the robot's own safety filter."""

    rate_hz = 20.0

    def __init__(self, size=32, safety=None):
        self.pos = np.array([0.5, 0.0, 0.3])
        self.t = 0.0
        self.applied, self.holds = [], 0
        self.size = size
        self.camera_stamp = None  # set to freeze the camera
        self.fail = None
        self.safety = SafetyFilter(safety or SafetyConfig(workspace_min=[-5, -5, -5], workspace_max=[5, 5, 5],
                                                          max_linear_velocity_mps=10.0))

    @property
    def observation_spec(self):
        return ObservationSpec([ImageSpec(KEY, self.size, self.size)], ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"], [3, 4, 2])

    def observe(self):
        proprio = np.concatenate([self.pos, [1, 0, 0, 0], [0.04, -0.04]]).astype(np.float32)
        stamp = self.t if self.camera_stamp is None else self.camera_stamp
        return Observation({KEY: np.zeros((self.size, self.size, 3), np.uint8)}, proprio, stamp)

    def apply(self, action):
        if self.fail:
            raise RuntimeError(self.fail)
        self.applied.append(np.asarray(action))
        safe = self.safety.filter(action, self.pos, 1.0 / 20.0)
        self.pos = self.pos + np.asarray(safe[:3]) * 0.05
        self.t += 1 / self.rate_hz

    def hold(self):
        self.holds += 1
        self.t += 1 / self.rate_hz


def scripted_manifest(size=32, execution="latest", lookahead_s=0.0):
    """The shipped bundle's manifest, made to take a size x size camera, with the execution asked for."""
    manifest = copy.deepcopy(read_manifest(SHIPPED))
    manifest.observation.images = [ImageSpec(KEY, size, size)]
    manifest.execution, manifest.lookahead_s = execution, lookahead_s
    return manifest


class ScriptedPolicy:
    """OnnxPolicy's interface with fixed output, for fault injection."""

    def __init__(self, actions, model_id="scripted", execution="latest", fail=None):
        self.actions = np.asarray(actions, np.float32)
        self.model_id = model_id
        self.manifest = scripted_manifest(execution=execution)
        self.calls = 0
        self.fail = fail

    def predict(self, obs):
        self.calls += 1
        if self.fail:
            raise RuntimeError(self.fail)
        return ActionChunk(self.actions.copy(), obs.stamp, self.model_id)


def test_nan_output_holds_and_is_reported():
    robot = PointRobot()
    loop = control_loop(robot, ScriptedPolicy(np.full((4, 7), np.nan)), interpolate=False)
    result = loop.tick()
    assert result.held and result.reason == "nonfinite_policy_output" and robot.holds == 1 and not robot.applied
    assert loop.stats.holds == {"nonfinite_policy_output": 1}


def test_a_failing_model_holds_at_once_and_drops_what_it_planned_before():
    robot = PointRobot()
    policy = ScriptedPolicy(np.full((4, 7), 0.1))
    loop = control_loop(robot, policy, interpolate=False)
    assert not loop.tick().held  # a 4-action chunk is queued; 3 of its actions are still ahead
    policy.fail = "onnxruntime: something broke"
    results = [loop.tick() for _ in range(2)]
    assert [r.reason for r in results] == ["policy_error", "policy_error"] and len(robot.applied) == 1
    assert "something broke" in loop.planner.last_error
    policy.fail = None
    assert not loop.tick().held  # a good plan runs again


def test_stale_camera_holds():
    robot = PointRobot()
    loop = control_loop(robot, ScriptedPolicy(np.zeros((4, 7))), interpolate=False, stale_after_s=0.12, clock=lambda: robot.t)
    assert not loop.tick().held
    robot.camera_stamp = robot.t  # the camera freezes
    results = [loop.tick() for _ in range(5)]
    assert [r.held for r in results] == [False, False, False, True, True]  # ages 0, 0.05, 0.10, then 0.15 > 0.12
    assert loop.stats.holds["stale_observation"] == 2


def test_the_robot_owns_the_only_safety_filter():
    """The loop hands the scheduled action to the robot unchanged; the robot's filter keeps the hand in its box."""
    robot = PointRobot(safety=SafetyConfig(workspace_min=[0.25, -0.45, 0.02]))
    robot.pos = np.array([0.5, 0.0, 0.03])
    loop = control_loop(robot, ScriptedPolicy(np.tile([0, 0, -1, 0, 0, 0, 1], (4, 1))), interpolate=False)
    for _ in range(3):
        loop.tick()
    assert all(a[2] == -1.0 for a in robot.applied)  # no second filter upstream
    assert robot.pos[2] >= 0.02 - 1e-9 and loop.safety.interventions["workspace_clamped"] >= 1


def test_a_robot_error_is_a_fault_that_holds_and_ends_run():
    robot = PointRobot()
    loop = control_loop(robot, ScriptedPolicy(np.zeros((4, 7))), interpolate=False)
    loop.run(2)
    robot.fail = "robot aborted the motion (cartesian_reflex)"
    stats = loop.run(10)
    assert stats.ticks == 3 and loop.fault and "cartesian_reflex" in loop.fault  # the third tick faulted, then it stopped
    assert loop.tick().reason == "fault" and robot.holds == 2


def test_corrupt_bundle_during_swap_keeps_the_old_model(tiny_policy, tmp_path):
    from dm1_ros.policy.export import export_bundle
    from dm1_ros.runtime.onnx_policy import OnnxPolicy

    good = tmp_path / "good"
    export_bundle(tiny_policy, good)
    robot = PointRobot()
    policy = OnnxPolicy(good, warmup=1)
    loop = control_loop(robot, policy, warmup=1)
    loop.tick()
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    (bad / "model.onnx").write_bytes(b"\x00" * 100)
    loop.request_swap(str(bad)).join()
    loop.tick()
    assert loop.policy is policy and loop.stats.failed_swaps == 1 and "corrupt" in loop.planner.last_swap_error
    other = tmp_path / "other"
    export_bundle(tiny_policy, other, steps=2)
    loop.request_swap(str(other)).join()
    loop.tick()
    assert loop.policy is not policy and loop.policy.manifest.sampling_steps == 2 and loop.stats.swaps == 1
    assert loop.executor.scheduler.model_id == loop.policy.model_id  # the old model's queue was dropped


def test_swap_to_a_model_the_robot_cannot_feed_is_refused(tiny_policy, tmp_path):
    from dm1_ros.policy.export import export_bundle

    good = tmp_path / "good"
    export_bundle(tiny_policy, good)
    robot = PointRobot(size=48)  # camera 48x48, the new model wants 32x32
    policy = ScriptedPolicy(np.zeros((4, 7)))
    policy.manifest = scripted_manifest(size=48)
    loop = control_loop(robot, policy, warmup=0)
    loop.request_swap(str(good)).join()
    loop.tick()
    assert loop.policy is policy and "expects (32, 32, 3)" in loop.planner.last_swap_error


def test_commands_faster_than_the_camera_plan_once_per_frame():
    robot = PointRobot()
    robot.rate_hz = 80.0  # commands at 80 Hz, policy actions spaced at 20 Hz, camera at 20 fps
    frame_period = 1 / 20
    robot.observe_raw = robot.observe
    robot.observe = lambda: (lambda o: Observation(o.images, o.proprio, np.floor(robot.t / frame_period + 1e-9) * frame_period))(robot.observe_raw())
    chunk = np.tile(np.linspace(0, 0.3, 4)[:, None], (1, 7)).astype(np.float32)
    policy = ScriptedPolicy(chunk)
    loop = control_loop(robot, policy, interpolate=True, clock=lambda: robot.t)
    results = [loop.tick() for _ in range(8)]
    assert policy.calls == 2  # 8 commands, 2 camera frames
    # Between frames the scheduler walks along the chunk: action k/4 of the way to the next one each command.
    np.testing.assert_allclose([r.action[0] for r in results[:4]], [0.0, 0.025, 0.05, 0.075], atol=1e-6)
    assert all(not r.held for r in results)


@pytest.mark.parametrize("execution, plans", [("latest", 6), ("chunk", 2)])
def test_blending_follows_the_manifest(execution, plans):
    robot = PointRobot()
    policy = ScriptedPolicy(np.zeros((4, 7)), execution=execution)
    loop = control_loop(robot, policy, interpolate=False)
    results = [loop.tick() for _ in range(6)]
    assert policy.calls == plans and sum(r.planned for r in results) == plans and not any(r.held for r in results)


def test_shifted_noise_gives_each_future_instant_the_noise_it_was_first_planned_with():
    """noise="shifted": re-planning every tick, action i of a chunk gets the noise action i + 1 got one tick earlier
    (the same instant), and only the newest instant gets fresh noise; the real runtime takes it as its noise input."""
    from dm1_ros.runtime.onnx_policy import OnnxPolicy

    policy = OnnxPolicy(SHIPPED, noise_seed=0)
    seen = []
    original = policy.predict

    def predict(obs, noise=None):
        seen.append(None if noise is None else noise.copy())
        return original(obs, noise)

    policy.predict = predict
    robot = PointRobot(size=policy.manifest.observation.images[0].height)
    loop = control_loop(robot, policy, "latest", interpolate=False, noise="shifted")
    for _ in range(4):
        loop.tick()
    assert len(seen) == 4 and all(n is not None and n.shape == policy.chunk_shape for n in seen)
    for a, b in zip(seen, seen[1:]):
        np.testing.assert_array_equal(b[:-1], a[1:])  # one tick later: shifted by one action
        assert not np.array_equal(b[-1], a[-1])  # the new instant: fresh
    loop.reset()  # a new episode forgets the old noise
    loop.tick()
    assert not np.array_equal(seen[-1][:-1], seen[-2][1:])
    with pytest.raises(ValueError, match="unknown noise"):
        control_loop(robot, policy, "latest", noise="frozen")
