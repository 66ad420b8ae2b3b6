"""bench/pose_reader.py: square scenes with the nut's true pose (renders skipped between sampled ticks), and a camera
encoder + pose head trained on them into a checkpoint bench/pose_cascade.py reads; tiny images, a few ticks."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dm1_ros.data.fingerprint import file_hash
from dm1_ros.policy.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from pose_reader import scene_worker  # noqa: E402


def test_skipping_renders_between_sampled_ticks_changes_no_scene():
    fast = scene_worker(([700_000, 700_001], 3, 8, 32))
    slow = scene_worker(([700_000, 700_001], 3, 8, 32, True))
    assert fast["proprio"].shape[1] == 9 + 14 and len(fast["seed"]) == len(fast["tick"]) >= 2
    assert set(fast["seed"]) == {700_000, 700_001} and fast["tick"].max() <= 8
    for key in ("proprio", "seed", "tick"):
        np.testing.assert_array_equal(fast[key], slow[key])
    for name, images in fast["images"].items():
        assert images.shape == (len(fast["seed"]), 32, 32, 3) and images.dtype == np.uint8
        np.testing.assert_array_equal(images, slow["images"][name])
    # robosuite's object state: the pose relative to the hand, then the nut's own; the nut starts on the table
    nut_z = fast["proprio"][:, 9 + 7 + 2]
    assert np.all((nut_z > 0.8) & (nut_z < 0.9))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reader")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "pose_reader.py"), "scenes", "--scenes", "3",
                          "--max-tick", "4", "--image-size", "32", "--workers", "1", "--out", str(tmp / "s.npz")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return tmp


def recipe(tmp: Path, **policy) -> Path:
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump({"policy": {
        "image_keys": ["robot0_eye_in_hand_image", "agentview_image"], "image_size": [32, 32],
        "proprio_keys": ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"], "proprio_dims": [3, 4, 2],
        "vision": {"channels": 16, "heads": 2, "pool_dim": 16}, "head": {"hidden": 32},
        "state_prediction": {"keys": ["object"], "dims": [14], "quaternions": [3, 10], "weight": 1.0, "hidden": 16},
        **policy}}))
    return path


def reader(scenes: Path, config: Path, *extra):
    return subprocess.run([sys.executable, str(ROOT / "bench" / "pose_reader.py"), "train", "--scenes",
                           str(scenes / "s.npz"), "--config", str(config), "--threads", "1", *extra],
                          capture_output=True, text=True, timeout=300)


def test_the_reader_trains_into_a_checkpoint_that_predicts_the_pose(scenes):
    run = reader(scenes, recipe(scenes), "--steps", "4", "--validate-every", "2", "--set", "batch_size=4",
                 "--out", str(scenes / "reader.pt"))
    assert run.returncode == 0, run.stderr
    policy, payload = load_checkpoint(scenes / "reader.pt")
    assert [entry["step"] for entry in payload["log"]] == [2, 4] and payload["scene_count"] == 3
    for entry in payload["log"]:
        assert set(entry) >= {"val_rotation_deg", "val_position_mm", "val_relative_rotation_deg", "val_relative_position_mm"}
        assert 0 <= entry["val_rotation_deg"][0] <= entry["val_rotation_deg"][1] <= 180  # median, p90
        assert np.isfinite(entry["val_position_mm"]).all()
    assert policy.config.state_prediction.keys == ["object"]  # what bench/pose_cascade.py checks
    # what `dm1 export --actor` copies into a chained bundle's manifest: the command and the scenes it read
    made = payload["provenance"]
    assert made["command"].startswith("python ") and "pose_reader.py train --scenes" in made["command"]
    assert made["data_hash"] == file_hash(scenes / "s.npz") and made["scenes"] == 3 and made["steps"] == 4
    assert made["recipe"]["batch_size"] == 4


def test_a_recipe_that_predicts_no_nut_pose_is_refused(scenes):
    run = reader(scenes, recipe(scenes, state_prediction={}), "--steps", "1", "--out", str(scenes / "no.pt"))
    assert run.returncode != 0 and "state_prediction" in run.stderr and not (scenes / "no.pt").exists()


def test_the_report_compares_held_out_scenes_with_the_hand_pose_shuffled(scenes):
    if not (scenes / "reader.pt").exists():
        run = reader(scenes, recipe(scenes), "--steps", "2", "--validate-every", "2", "--set", "batch_size=4",
                     "--out", str(scenes / "reader.pt"))
        assert run.returncode == 0, run.stderr
    out = scenes / "report.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "pose_reader.py"), "report", "--checkpoint",
                          str(scenes / "reader.pt"), "--scenes", str(scenes / "s.npz"), "--threads", "1",
                          "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["medians"]
    assert {"training scenes", "held-out scenes", "held-out, hand pose shuffled"} <= set(rows)
    held_out = rows["held-out scenes"]
    assert held_out["samples"] >= 1 and 0 <= held_out["rotation_deg"] <= 180
    assert rows["held-out, hand pose shuffled"]["samples"] == held_out["samples"]
