"""Demonstrations through the ROS teleop path in robosuite -> `dm1 train` -> `dm1 export` -> policy_node drives the
same simulated robot through the same topics, on real ROS 2.

The "person" at the device is the scripted lift expert (ScriptedTeleop over dm1_ros.sim.experts); sim_bridge_node
runs robosuite in lockstep, teleop_node commands it and records in the background. A 32x32 camera and a tiny
recipe keep this to a few seconds of simulation and training. Timers are fired by hand, messages go over DDS.
"""
import json

import h5py
import numpy as np
import pytest
import yaml

from ros2_support import HOW, ROS2

if not ROS2:
    pytest.skip(HOW, allow_module_level=True)

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from dm1_ros.ros import topics as T  # noqa: E402

OK = TransitionCallbackReturn.SUCCESS
KEY = "robot0_eye_in_hand_image"


def params(**values):
    return [Parameter(k, value=v) for k, v in values.items()]


def lockstep_tick(ros, bridge, teleop=None):
    """The observation reaches the commander, which answers it (teleop on its timer, the policy on the image);
    the command reaches the bridge; one simulation step publishes the next observation."""
    if teleop is not None:
        assert ros.spin(lambda: has_new_image(teleop))
        ros.fire(teleop.timer)
    assert ros.spin(lambda: bridge.commands_since_obs > 0, timeout=5.0)
    ros.fire(bridge.timer)


def has_new_image(teleop):
    return teleop.assembler.image_stamp() is not None and teleop.assembler.image_stamp() != teleop.last_stamp


def test_teleop_demonstrations_train_and_deploy_in_sim(ros, tmp_path):
    pytest.importorskip("robosuite")
    from dm1_ros import cli
    from dm1_ros.hardware.teleop import ScriptedTeleop
    from dm1_ros.ros.policy_node import PolicyNode
    from dm1_ros.ros.sim_bridge_node import SimBridgeNode
    from dm1_ros.ros.teleop_node import TeleopNode
    from dm1_ros.sim.env import SimConfig
    from dm1_ros.sim.experts import make_expert
    from dm1_ros.sim.robot import SimRobot

    robot = SimRobot(SimConfig(task="lift", image_size=[32, 32], max_steps=70))
    bridge = ros.add(SimBridgeNode, robot_factory=lambda config: robot,
                     parameter_overrides=params(image_size=[32, 32], seed=0, auto_reset=False))
    person = {}
    device = ScriptedTeleop(lambda tick: np.clip(person["expert"].act(robot.env), -1.0, 1.0))
    out = tmp_path / "teleop_lift.hdf5"
    teleop = ros.add(TeleopNode, device=device, parameter_overrides=params(
        output=str(out), record_image_size=[32, 32], valid_fraction=0.34, env_args=json.dumps(robot.env.env_args()),
        max_observation_age_s=5.0))
    assert ros.configure(teleop) == OK, teleop.last_error
    ros.spin(lambda: teleop.command_pub.get_subscription_count() > 0, timeout=5.0)
    assert ros.configure(bridge) == OK, bridge.last_error

    for episode in range(3):
        assert ros.call(Trigger, T.ROBOT_RESET).success
        person["expert"] = make_expert("lift", seed=episode)
        person["expert"].reset(robot.env)
        assert ros.call(Trigger, T.TELEOP_START).success
        for _ in range(80):
            if robot.done:
                break
            lockstep_tick(ros, bridge, teleop)
        assert ros.spin(lambda: has_new_image(teleop))  # the last observation, with its success flag
        ros.fire(teleop.timer)
        response = ros.call(Trigger, T.TELEOP_STOP)
        assert response.success and "success=True" in response.message, response.message
    assert bridge.control.holds == {}  # every step ran the operator's command
    teleop.trigger_deactivate()
    assert teleop.trigger_cleanup() == OK  # assembles the dataset
    with h5py.File(out) as f:
        demos = sorted(f["data"].keys())
        assert demos == ["demo_0", "demo_1", "demo_2"] and len(f["mask/valid"]) == 1
        for d in demos:
            g = f["data"][d]
            n = g["actions"].shape[0]
            assert 20 < n <= 72 and g["obs"][KEY].shape == (n, 32, 32, 3) and g.attrs["success"]
            assert g["rewards"][-1] == 1.0 and g["dones"][-1] == 1
            assert np.all(np.diff(g["timestamps"][()]) > 0)  # ROS stamps, increasing
        assert json.loads(f["data"].attrs["env_args"])["env_name"] == "Lift"

    # `dm1 train` reads the recording as it is, then `dm1 export` makes a bundle
    recipe = {"data": str(out), "out_dir": str(tmp_path / "run"), "steps": 20, "batch_size": 16, "lr": 2e-3,
              "warmup_steps": 5, "checkpoint_every": 1000, "validate_every": 1000, "log_every": 10, "threads": 1,
              "ema_decay": 0.0,
              "policy": {"image_keys": [KEY], "image_size": [32, 32],
                         "vision": {"channels": 16, "heads": 2, "pool_dim": 16}, "head": {"hidden": 64, "blocks": 1}}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert cli.main(["train", "--config", str(tmp_path / "recipe.yaml"), "--no-progress"]) == 0
    bundle = tmp_path / "bundle"
    assert cli.main(["export", str(tmp_path / "run" / "last.pt"), "--out", str(bundle)]) == 0

    # the trained model drives the same simulated robot through policy_node
    policy = ros.add(PolicyNode, parameter_overrides=params(model_path=str(bundle), warmup=1, blending="latest"))
    assert ros.configure(policy) == OK, policy.last_error
    ros.spin(lambda: policy.trajectory_pub.get_subscription_count() > 0, timeout=5.0)
    assert ros.call(Trigger, T.ROBOT_RESET).success
    start = robot.observe().proprio[:3].copy()
    holds = dict(bridge.control.holds)
    for _ in range(8):
        lockstep_tick(ros, bridge)
    assert policy.plans >= 8 and policy.skipped == {} and policy.holds == {}
    assert bridge.control.holds == holds  # every tick executed a policy action
    assert np.linalg.norm(robot.observe().proprio[:3] - start) > 1e-4
