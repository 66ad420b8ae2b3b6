"""ControlLoop faults: NaN output, stale camera, a corrupt bundle during a swap, an out-of-workspace action."""
import shutil

import numpy as np

from dm1_ros.policy.export import export_bundle
from dm1_ros.runtime.bundle import ImageSpec, ObservationSpec
from dm1_ros.runtime.contract import ActionChunk, Observation
from dm1_ros.runtime.loop import ControlLoop
from dm1_ros.runtime.onnx_policy import OnnxPolicy
from dm1_ros.runtime.safety import SafetyConfig, SafetyFilter, Watchdog
from dm1_ros.runtime.scheduler import ActionScheduler, SchedulerConfig

KEY = "robot0_eye_in_hand_image"


class PointRobot:
    """A kinematic stand-in for the robot contract: the hand moves by the commanded delta."""

    rate_hz = 20.0

    def __init__(self, size=32):
        self.pos = np.array([0.5, 0.0, 0.3])
        self.t = 0.0
        self.applied, self.holds = [], 0
        self.size = size
        self.camera_stamp = None  # set to freeze the camera

    @property
    def observation_spec(self):
        return ObservationSpec([ImageSpec(KEY, self.size, self.size)], ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"], [3, 4, 2])

    def observe(self):
        proprio = np.concatenate([self.pos, [1, 0, 0, 0], [0.04, -0.04]]).astype(np.float32)
        stamp = self.t if self.camera_stamp is None else self.camera_stamp
        return Observation({KEY: np.zeros((self.size, self.size, 3), np.uint8)}, proprio, stamp)

    def apply(self, action):
        self.applied.append(np.asarray(action))
        self.pos = self.pos + np.asarray(action[:3]) * 0.05
        self.t += 1 / self.rate_hz

    def hold(self):
        self.holds += 1
        self.t += 1 / self.rate_hz


class ScriptedPolicy:
    """Mirrors OnnxPolicy.predict for fault injection."""

    def __init__(self, actions, model_id="scripted"):
        self.actions = np.asarray(actions, np.float32)
        self.model_id = model_id

    def predict(self, obs):
        return ActionChunk(self.actions.copy(), obs.stamp, self.model_id)


def make_loop(robot, policy, clock=None, watchdog=None, safety=None):
    return ControlLoop(robot, policy, ActionScheduler(SchedulerConfig(rate_hz=robot.rate_hz, interpolate=False)),
                       safety or SafetyFilter(), watchdog=watchdog, clock=clock)


def test_nan_output_holds_and_is_reported():
    robot = PointRobot()
    loop = make_loop(robot, ScriptedPolicy(np.full((4, 7), np.nan)))
    result = loop.tick()
    assert result.held and result.reason == "nonfinite_policy_output" and robot.holds == 1 and not robot.applied
    assert loop.stats.holds == {"nonfinite_policy_output": 1}


def test_stale_camera_holds():
    robot = PointRobot()
    loop = make_loop(robot, ScriptedPolicy(np.zeros((4, 7))), clock=lambda: robot.t, watchdog=Watchdog(observation_timeout_s=0.12))
    assert not loop.tick().held
    robot.camera_stamp = robot.t  # the camera freezes
    results = [loop.tick() for _ in range(5)]
    assert [r.held for r in results] == [False, False, False, True, True]  # ages 0, 0.05, 0.10, then 0.15 > 0.12
    assert loop.stats.holds["stale_observation"] == 2


def test_out_of_workspace_action_is_clamped_and_counted():
    robot = PointRobot()
    robot.pos = np.array([0.5, 0.0, 0.03])
    loop = make_loop(robot, ScriptedPolicy(np.tile([0, 0, -1, 0, 0, 0, 1], (4, 1))), safety=SafetyFilter(SafetyConfig(workspace_min=[0.25, -0.45, 0.02])))
    for _ in range(3):
        loop.tick()
    assert robot.pos[2] >= 0.02 - 1e-9 and loop.safety.interventions["workspace_clamped"] >= 1


def test_corrupt_bundle_during_swap_keeps_the_old_model(tiny_policy, tmp_path):
    good = tmp_path / "good"
    export_bundle(tiny_policy, good)
    robot = PointRobot()
    policy = OnnxPolicy(good, warmup=1)
    loop = make_loop(robot, policy)
    loop.tick()
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    (bad / "model.onnx").write_bytes(b"\x00" * 100)
    loop.request_swap(str(bad)).join()
    loop.tick()
    assert loop.policy is policy and loop.stats.failed_swaps == 1 and "corrupt" in loop.swap_errors[0]
    other = tmp_path / "other"
    export_bundle(tiny_policy, other, steps=2)
    loop.request_swap(str(other), warmup=1).join()
    loop.tick()
    assert loop.policy is not policy and loop.policy.manifest.sampling_steps == 2 and loop.stats.swaps == 1
    assert loop.scheduler.model_id == loop.policy.model_id  # the old model's queue was dropped


def test_swap_to_a_model_the_robot_cannot_feed_is_refused(tiny_policy, tmp_path):
    good = tmp_path / "good"
    export_bundle(tiny_policy, good)
    robot = PointRobot(size=48)  # camera 48x48, model wants 32x32
    loop = make_loop(robot, ScriptedPolicy(np.zeros((4, 7))))
    loop.request_swap(str(good), warmup=0).join()
    loop.tick()
    assert isinstance(loop.policy, ScriptedPolicy) and "expects (32, 32, 3)" in loop.swap_errors[0]


def test_commands_faster_than_the_camera_plan_once_per_frame():
    class CountingPolicy(ScriptedPolicy):
        calls = 0

        def predict(self, obs):
            CountingPolicy.calls += 1
            return super().predict(obs)

    robot = PointRobot()
    robot.rate_hz = 80.0  # commands at 80 Hz, policy actions spaced at 20 Hz, camera at 20 fps
    frame_period = 1 / 20
    clock = lambda: robot.t  # noqa: E731
    robot.observe_raw = robot.observe
    robot.observe = lambda: (lambda o: Observation(o.images, o.proprio, np.floor(robot.t / frame_period + 1e-9) * frame_period))(robot.observe_raw())
    chunk = np.tile(np.linspace(0, 0.3, 4)[:, None], (1, 7)).astype(np.float32)
    loop = ControlLoop(robot, CountingPolicy(chunk), ActionScheduler(SchedulerConfig(rate_hz=20.0, interpolate=True)),
                       SafetyFilter(SafetyConfig(workspace_min=[-5, -5, -5], workspace_max=[5, 5, 5], max_linear_velocity_mps=10.0)),
                       clock=clock)
    results = [loop.tick() for _ in range(8)]
    assert CountingPolicy.calls == 2  # 8 commands, 2 camera frames
    # Between frames the scheduler walks along the chunk: action k/4 of the way to the next one each command.
    np.testing.assert_allclose([r.action[0] for r in results[:4]], [0.0, 0.025, 0.05, 0.075], atol=1e-6)
    assert all(not r.held for r in results)
