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
