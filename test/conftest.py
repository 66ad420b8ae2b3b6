import os

import pytest

# Tests are small; one thread each keeps them from fighting over the two cores (and a long run beside them).
os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # the runtime tests need no torch
    torch = None


@pytest.fixture
def tiny_image_config():
    """A ViT policy small enough to export and run in a second: 32x32 image -> 3x3 tokens."""
    from dm1_ros.policy.config import HeadConfig, PolicyConfig, VisionConfig

    return PolicyConfig(
        image_size=[32, 32],
        vision=VisionConfig(channels=16, heads=2, pool_dim=16),
        head=HeadConfig(hidden=64, blocks=1),
    )


@pytest.fixture
def tiny_policy(tiny_image_config):
    import numpy as np

    from dm1_ros.policy.model import GenerativePolicy

    torch.manual_seed(0)
    policy = GenerativePolicy(tiny_image_config)
    rng = np.random.default_rng(0)
    policy.action_normalizer.fit(rng.uniform(-0.5, 0.5, (64, 7)))
    policy.proprio_normalizer.fit(rng.uniform(-1.0, 1.0, (64, 9)))
    return policy.eval()


def write_fake_dataset(path, lengths=(6, 8, 7), size=32, seed=0, extra_obs=None):
    """A robomimic file of random episodes whose actions depend on proprio (so there is something to learn).
    extra_obs(rng, proprio, t) -> {key: array}: more observations of each step (e.g. an object state)."""
    import numpy as np

    from dm1_ros.data.episodes import EpisodeRecorder, EpisodeStore
    from dm1_ros.runtime.contract import Observation

    rng = np.random.default_rng(seed)
    store = EpisodeStore(path)
    for i, n in enumerate(lengths):
        rec = EpisodeRecorder()
        for t in range(n):
            proprio = rng.uniform(-1, 1, 9).astype(np.float32)
            obs = Observation(images={"robot0_eye_in_hand_image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8)},
                              proprio=proprio, stamp=t / 20)
            action = np.tanh(np.concatenate([proprio[:6], [1.0 if t > n // 2 else -1.0]]))
            rec.add(obs, action, reward=0.0, done=t == n - 1, state=np.zeros(3),
                    extra_obs=extra_obs(rng, proprio, t) if extra_obs else None)
        store.add(f"seed_{i}", rec.episode(seed=i))
    return store.assemble({"env_name": "Fake"}, valid_fraction=0.34)


@pytest.fixture
def fake_dataset(tmp_path):
    return write_fake_dataset(tmp_path / "fake.hdf5")


# Real ROS 2 fixtures (skipped with one line when no ROS 2 is found): see ros2_support.py.
from ros2_support import probe, ros, ros_domain, ros_ws  # noqa: E402,F401
