"""dm1_ros/train/augment.py object_pose_noise: the nut's world pose perturbed by the stated amounts, its hand-relative
part recomputed as robosuite computes it, the robot's own state untouched; and a recipe that cannot apply it refused."""
import math

import numpy as np
import pytest
import torch

from dm1_ros.configuration import ConfigError
from dm1_ros.policy.cascade import matrix_from_quaternion
from dm1_ros.policy.config import PolicyConfig
from dm1_ros.train.augment import object_pose_noise
from dm1_ros.train.pretrain import TrainConfig, check_object_noise

KEYS = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object"]
DIMS = [3, 4, 2, 14]


@pytest.fixture(scope="module")
def square_proprio():
    """(3, 23) proprio robosuite's square reports on three seeds, after its hand-relative observables settle."""
    from dm1_ros.sim.env import SimConfig, SimEnv

    env = SimEnv(SimConfig(task="square", use_images=False, proprio_keys=KEYS))
    rng, rows = np.random.default_rng(0), []
    for seed in (100_000, 100_001, 100_002):
        obs = env.reset(seed=seed)
        for _ in range(10):
            obs, *_ = env.step(rng.uniform(-1, 1, 7))
        rows.append(obs.proprio)
    env.close()
    return torch.from_numpy(np.stack(rows).astype(np.float32))


def test_a_vanishing_perturbation_gives_back_robosuites_state(square_proprio):
    """The recomputed hand-relative pose (and the signs of both quaternions) is what robosuite reported."""
    got = object_pose_noise(square_proprio, KEYS, DIMS, 1e-9, 1e-9, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(got.numpy(), square_proprio.numpy(), atol=2e-5)


def test_the_world_pose_moves_by_the_stated_amounts_and_the_relative_pose_follows(square_proprio):
    n = 4000
    proprio = square_proprio.repeat(n // 3 + 1, 1)[:n]
    got = object_pose_noise(proprio, KEYS, DIMS, 0.005, 2.0, torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(got[:, :9].numpy(), proprio[:, :9].numpy())  # the robot's state is not touched
    shift = (got[:, 16:19] - proprio[:, 16:19]).numpy()
    np.testing.assert_allclose(shift.std(0), 0.005, rtol=0.08)
    np.testing.assert_allclose(shift.mean(0), 0.0, atol=5e-4)
    before, after = matrix_from_quaternion(proprio[:, 19:23].double()), matrix_from_quaternion(got[:, 19:23].double())
    cos = ((before * after).sum((-1, -2)) - 1) / 2
    angle = torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))
    assert float(angle.mean()) == pytest.approx(2.0 * math.sqrt(8 / math.pi), rel=0.08)  # |3-d Gaussian|, sigma 2 deg
    hand = matrix_from_quaternion(got[:, 3:7].double())
    rel = (hand.transpose(-1, -2) @ (got[:, 16:19] - got[:, 0:3]).double()[..., None]).squeeze(-1)
    np.testing.assert_allclose(got[:, 9:12].numpy(), rel.numpy(), atol=1e-5)
    assert (got[:, 15] >= 0).all() and (got[:, 21] >= 0).all()  # w >= 0 in the hand's frame, z >= 0 in the world's


def test_off_by_default_and_refused_where_there_is_no_nut_state():
    proprio = torch.randn(4, 23)
    assert object_pose_noise(proprio, KEYS, DIMS, 0.0, 0.0) is proprio
    check_object_noise(TrainConfig(policy=PolicyConfig(image_keys=[], encoder="mlp", proprio_keys=KEYS, proprio_dims=DIMS),
                                   object_position_noise_m=0.004))
    lift = PolicyConfig(proprio_keys=KEYS[:3], proprio_dims=DIMS[:3])
    with pytest.raises(ConfigError, match="object_position_noise_m.*'object': 14"):
        check_object_noise(TrainConfig(policy=lift, object_rotation_noise_deg=1.0))
    with pytest.raises(ConfigError, match="object_position_noise_m must not be negative"):
        TrainConfig(object_position_noise_m=-0.001)
