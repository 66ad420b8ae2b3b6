"""bench/pose_cascade.py: a state-only square policy driven, in robosuite, by the object pose a camera policy
predicts (or by the simulator's own, --object true); untrained tiny models, a few ticks."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dm1_ros.policy.checkpoint import save_checkpoint
from dm1_ros.policy.config import HeadConfig, LowDimConfig, PolicyConfig, StatePredictionConfig, VisionConfig
from dm1_ros.policy.export import export_bundle
from dm1_ros.policy.model import GenerativePolicy

ROOT = Path(__file__).resolve().parents[1]
ROBOT = dict(proprio_keys=["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"], proprio_dims=[3, 4, 2])


def fitted(config: PolicyConfig, proprio_dim: int, state_dim: int = 0) -> GenerativePolicy:
    torch.manual_seed(0)
    policy = GenerativePolicy(config)
    rng = np.random.default_rng(0)
    policy.action_normalizer.fit(rng.uniform(-0.5, 0.5, (64, 7)))
    policy.proprio_normalizer.fit(rng.uniform(-1.0, 1.0, (64, proprio_dim)))
    if state_dim:
        policy.state_normalizer.fit(rng.uniform(-1.0, 1.0, (64, state_dim)))
    return policy.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cascade")
    predict = StatePredictionConfig(keys=["object"], dims=[14], quaternions=[3, 10], weight=1.0, hidden=16)
    camera = fitted(PolicyConfig(image_size=[32, 32], vision=VisionConfig(channels=16, heads=2, pool_dim=16),
                                 head=HeadConfig(hidden=64), state_prediction=predict, **ROBOT), 9, 18)
    save_checkpoint(tmp / "camera.pt", camera, camera, step=0)
    state = fitted(PolicyConfig(image_keys=[], encoder="mlp", lowdim=LowDimConfig(32, 2, 16), head=HeadConfig(hidden=64),
                                proprio_keys=[*ROBOT["proprio_keys"], "object"], proprio_dims=[3, 4, 2, 14]), 23)
    export_bundle(state, tmp / "state", training={"command": "pytest"})
    export_bundle(camera, tmp / "camera_bundle", training={"command": "pytest"})
    return tmp


def cascade(models, *extra):
    return subprocess.run([sys.executable, str(ROOT / "bench" / "pose_cascade.py"), "--camera", str(models / "camera.pt"),
                           "--episodes", "1", "--workers", "1", "--max-steps", "4", *extra],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("source", ["predicted", "derived", "true"])
def test_the_cascade_runs_an_episode_and_logs_the_pose_error(models, source):
    out = models / f"{source}.json"
    run = cascade(models, "--state", str(models / "state"), "--object", source, "--out", str(out))
    assert run.returncode == 0, run.stderr
    entry = json.loads(out.read_text())[f"{source}_first"]
    assert entry["episodes"] == 1 and entry["object"] == source and entry["per_episode"][0]["steps"] == 4
    errors = entry["per_episode"][0]["pose_error"]
    assert set(errors) == {"rotation_deg", "relative_rotation_deg", "position_mm", "relative_position_mm"}
    assert all(0 <= p50 <= p90 and np.isfinite(p90) for p50, p90 in errors.values())  # untrained: large, but finite
    assert 0 <= errors["rotation_deg"][1] <= 180
    approach = entry["per_episode"][0]["pose_error_approach"]
    assert set(approach) == set(errors) and all(np.isfinite(v) for v in approach.values())
    assert "camera.pt" in entry["camera"] and entry["drive"] == "state"


def test_the_camera_policy_can_drive_while_its_reading_is_logged(models):
    out = models / "camera.json"
    run = cascade(models, "--drive", "camera", "--execute", "chunk", "--lookahead-ms", "50", "--out", str(out))
    assert run.returncode == 0, run.stderr
    entry = json.loads(out.read_text())["camera_drives_chunk"]
    assert entry["drive"] == "camera" and entry["lookahead_ms"] == 50 and entry["per_episode"][0]["steps"] == 4


def test_the_expert_can_take_over_after_the_policy(models):
    out = models / "takeover.json"
    run = cascade(models, "--state", str(models / "state"), "--expert-after", "2", "--out", str(out))
    assert run.returncode == 0, run.stderr
    entry = json.loads(out.read_text())["predicted_first_expert_after_2"]
    episode = entry["per_episode"][0]
    assert entry["expert_after"] == 2 and episode["steps"] == 2 and episode["expert_ticks"] == 2  # 4 ticks in all
    assert episode["policy_success"] is False and isinstance(episode["success"], bool)


def test_a_state_policy_that_reads_no_object_state_is_refused(models):
    run = cascade(models, "--state", str(models / "camera_bundle"))
    assert run.returncode != 0 and "not a state-only policy" in run.stderr
