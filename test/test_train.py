"""Pre-training: the loss goes down, checkpoints load, resume is exact, bad recipes are named."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dm1_ros.configuration import ConfigError, from_dict, load_yaml
from dm1_ros.data.fingerprint import data_hash
from dm1_ros.policy.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from dm1_ros.policy.config import HeadConfig, PolicyConfig, VisionConfig
from dm1_ros.train.augment import random_shift
from dm1_ros.train.dataset import DatasetError, RobomimicDataset
from dm1_ros.train.pretrain import TrainConfig, lr_at, open_split, sampling_gap, train, validation_loss


def tiny_recipe(data, out, **kw):
    policy = PolicyConfig(image_size=[32, 32], vision=VisionConfig(channels=16, heads=2, pool_dim=16), head=HeadConfig(hidden=64))
    base = dict(data=str(data), out_dir=str(out), policy=policy, steps=40, batch_size=16, lr=2e-3, warmup_steps=5,
                checkpoint_every=1000, validate_every=20, log_every=10, threads=1, ema_decay=0.0)
    base.update(kw)
    return TrainConfig(**base)


def test_training_lowers_the_loss_and_writes_a_loadable_checkpoint(fake_dataset, tmp_path):
    cfg = tiny_recipe(fake_dataset, tmp_path / "run", steps=100, lr=5e-3, log_every=25, validate_every=50)
    ds = RobomimicDataset(fake_dataset, ["robot0_eye_in_hand_image"], 4, split=None)
    torch.manual_seed(0)
    from dm1_ros.policy.model import GenerativePolicy

    untrained = GenerativePolicy(cfg.policy)
    stats = ds.stats()
    untrained.action_normalizer.fit(np.stack([stats["action_min"], stats["action_max"]]))
    untrained.proprio_normalizer.fit(np.stack([stats["proprio_min"], stats["proprio_max"]]))
    before = validation_loss(untrained, ds, 16, seed=1)
    path = train(cfg, progress=False)
    policy, payload = load_checkpoint(path)
    after = validation_loss(policy, ds, 16, seed=1)
    assert after < 0.8 * before, (before, after)  # measured: 1.55 -> 1.01
    assert payload["step"] == 100 and payload["provenance"]["episodes"] == 2
    assert payload["provenance"]["data_hash"] == data_hash(fake_dataset)  # what `dm1 dataset hash` prints
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,lr,seconds") and len(log) == 5 and (tmp_path / "run" / "curves.png").is_file()
    assert "val/loss" in log[0] and log[2].split(",")[-1] != ""  # validated at step 50


def test_resume_continues_exactly(fake_dataset, tmp_path):
    straight = train(tiny_recipe(fake_dataset, tmp_path / "a", steps=12, lr=1e-3, ema_decay=0.9), progress=False)
    train(tiny_recipe(fake_dataset, tmp_path / "b", steps=6, lr=1e-3, ema_decay=0.9), progress=False)
    resumed = train(tiny_recipe(fake_dataset, tmp_path / "b", steps=12, lr=1e-3, ema_decay=0.9), resume=True, progress=False)
    a, b = read_checkpoint(straight), read_checkpoint(resumed)
    assert b["step"] == 12
    for k, v in a["state_dict"].items():
        assert torch.allclose(v, b["state_dict"][k], atol=1e-6), k
    for k, v in a["ema_state_dict"].items():
        assert torch.allclose(v, b["ema_state_dict"][k], atol=1e-6), k
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"]


def test_sampling_gap_is_zero_for_a_constant_velocity_and_measures_an_inconsistent_one(tiny_policy, fake_dataset):
    valid = open_split(tiny_policy.config, str(fake_dataset), "valid")
    gap = sampling_gap(tiny_policy, valid, 8, seed=0, steps=5, max_batches=2)
    assert gap > 0.01 and sampling_gap(tiny_policy, valid, 8, seed=0, steps=5, max_batches=2) == gap  # fixed batches
    assert sampling_gap(tiny_policy, valid, 8, seed=0, steps=1, max_batches=2) == 0.0
    with torch.no_grad():  # u(z, r, t) = b everywhere: a straight path, one jump lands where five small ones do
        tiny_policy.head.out.weight.zero_()
        tiny_policy.head.out.bias.copy_(torch.linspace(-0.3, 0.3, tiny_policy.head.out.bias.numel()))
    assert sampling_gap(tiny_policy, valid, 8, seed=0, steps=5, max_batches=2) == pytest.approx(0.0, abs=1e-6)


def test_resuming_a_log_without_the_gap_column_keeps_rows_aligned(fake_dataset, tmp_path):
    import csv

    train(tiny_recipe(fake_dataset, tmp_path / "run", steps=20), progress=False)
    log = tmp_path / "run" / "log.csv"
    rows = list(csv.DictReader(log.open()))
    assert rows[-1]["val/gap_1_vs_5"] and float(rows[-1]["val/gap_1_vs_5"]) > 0  # validated at step 20
    old_columns = [c for c in rows[0] if c != "val/gap_1_vs_5"]  # a log written before the column existed
    with log.open("w", newline="") as f:
        writer = csv.DictWriter(f, old_columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    train(tiny_recipe(fake_dataset, tmp_path / "run", steps=40), resume=True, progress=False)
    lines = list(csv.reader(log.open()))
    assert lines[0] == old_columns and len(lines) == 5 and {len(line) for line in lines} == {len(old_columns)}
    assert float(lines[-1][old_columns.index("val/loss")]) > 0


def test_resuming_a_killed_run_drops_the_rows_logged_after_its_checkpoint(fake_dataset, tmp_path):
    import csv

    log = tmp_path / "run" / "log.csv"
    train(tiny_recipe(fake_dataset, tmp_path / "run", steps=20), progress=False)  # checkpoint at step 20
    rows = list(csv.reader(log.open()))
    with log.open("a", newline="") as f:  # a run killed at step 35 had logged step 30 after that checkpoint
        csv.writer(f).writerow(["30", *rows[-1][1:]])
    train(tiny_recipe(fake_dataset, tmp_path / "run", steps=40), resume=True, progress=False)
    steps = [row["step"] for row in csv.DictReader(log.open())]
    assert steps == ["10", "20", "30", "40"]  # step 30 once, from the resumed run
    assert list(csv.reader(log.open()))[3] != ["30", *rows[-1][1:]]


def test_resumed_run_keeps_counting_its_training_seconds(fake_dataset, tmp_path):
    import csv

    first = train(tiny_recipe(fake_dataset, tmp_path / "run", steps=20), progress=False)
    trained = read_checkpoint(first)["seconds"]
    train(tiny_recipe(fake_dataset, tmp_path / "run", steps=40), resume=True, progress=False)
    seconds = [float(row["seconds"]) for row in csv.DictReader((tmp_path / "run" / "log.csv").open())]
    assert len(seconds) == 4 and trained > 0
    assert seconds == sorted(seconds) and seconds[2] > trained  # the clock goes on from the checkpoint's
    assert read_checkpoint(tmp_path / "run" / "last.pt")["seconds"] >= seconds[-1]


def test_a_dataset_beyond_the_recipes_memory_is_refused_by_name(fake_dataset, tmp_path):
    with pytest.raises(DatasetError, match="images need .* GB, more than max_memory_gb=1e-06 .*training recipe"):
        train(tiny_recipe(fake_dataset, tmp_path / "run", max_memory_gb=1e-6), progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()
    with pytest.raises(ConfigError, match="max_memory_gb must be positive"):
        tiny_recipe(fake_dataset, tmp_path / "run", max_memory_gb=0)


def test_distillation_trains_toward_the_ema_weights_multi_step_sample(fake_dataset, tmp_path):
    import csv

    def distance(weight: float) -> list[float]:  # the logged one-step vs EMA five-step distance, every 20 steps
        cfg = tiny_recipe(fake_dataset, tmp_path / f"w{weight}", steps=60, lr=5e-3, ema_decay=0.9, log_every=20)
        cfg.policy.method.distill_steps, cfg.policy.method.distill_weight = 5, weight
        train(cfg, progress=False)
        return [float(r["loss/distill"]) for r in csv.DictReader((tmp_path / f"w{weight}" / "log.csv").open())]

    distilled, logged_only = distance(1.0), distance(0.0)
    assert len(distilled) == 3 and distilled[:1] == pytest.approx(logged_only[:1], rel=0.5)
    assert distilled[-1] < 0.8 * logged_only[-1], (distilled, logged_only)


def test_init_from_starts_at_a_checkpoints_ema_weights_and_refuses_another_network(fake_dataset, tmp_path):
    first = read_checkpoint(train(tiny_recipe(fake_dataset, tmp_path / "a", steps=20, ema_decay=0.9), progress=False))
    # One step at a vanishing learning rate: the new run holds the first run's EMA weights, normalization included.
    cfg = tiny_recipe(fake_dataset, tmp_path / "b", steps=1, lr=1e-12, warmup_steps=0, lr_min=0.0,
                      init_from=str(tmp_path / "a" / "last.pt"))
    cfg.policy.method.distill_steps = 5  # the method may change
    second = read_checkpoint(train(cfg, progress=False))
    for k, v in first["ema_state_dict"].items():
        assert torch.allclose(v, second["state_dict"][k], atol=1e-6), k
    assert not torch.allclose(first["state_dict"]["head.out.weight"], first["ema_state_dict"]["head.out.weight"])
    assert second["provenance"]["init_from_hash"] and second["provenance"]["recipe"]["init_from"].endswith("last.pt")
    # Resumed later, the run still names the weights it started from, even when that file has moved on.
    (tmp_path / "a" / "last.pt").rename(tmp_path / "a" / "moved.pt")
    cfg.steps = 2
    resumed = read_checkpoint(train(cfg, resume=True, progress=False))
    assert resumed["step"] == 2 and resumed["provenance"]["init_from_hash"] == second["provenance"]["init_from_hash"]
    (tmp_path / "a" / "moved.pt").rename(tmp_path / "a" / "last.pt")
    other = tiny_recipe(fake_dataset, tmp_path / "c", steps=1, init_from=str(tmp_path / "a" / "last.pt"))
    other.policy.head.hidden = 32
    with pytest.raises(CheckpointError, match="init_from .*: policy head differ from this recipe's"):
        train(other, progress=False)


def test_resume_refuses_another_architecture(fake_dataset, tmp_path):
    train(tiny_recipe(fake_dataset, tmp_path / "run", steps=2), progress=False)
    other = tiny_recipe(fake_dataset, tmp_path / "run", steps=4)
    other.policy.head.hidden = 32
    with pytest.raises(CheckpointError, match="another policy config"):
        train(other, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(tiny_recipe(fake_dataset, tmp_path / "empty", steps=2), resume=True, progress=False)


def test_same_seed_same_weights(fake_dataset, tmp_path):
    a = read_checkpoint(train(tiny_recipe(fake_dataset, tmp_path / "a", steps=3), progress=False))
    b = read_checkpoint(train(tiny_recipe(fake_dataset, tmp_path / "b", steps=3), progress=False))
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k


def test_unknown_recipe_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key policy\.method\.nmae"):
        from_dict(TrainConfig, {"policy": {"method": {"nmae": "x"}}})
    result = subprocess.run([sys.executable, "-m", "dm1_ros.cli", "train", "--config", "config/train/lift_image.yaml",
                             "--set", "batch_sise=3"], capture_output=True, text=True)
    assert result.returncode == 1 and "unknown key batch_sise" in result.stderr
    assert load_yaml(TrainConfig, "config/train/lift_image.yaml").policy.dispersive[0].layer == "condition"


@pytest.mark.parametrize("recipe", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "config" / "train").glob("*.yaml")))
def test_every_committed_recipe_parses_and_builds_its_network(recipe):
    from dm1_ros.policy.model import GenerativePolicy

    config = load_yaml(TrainConfig, f"config/train/{recipe}")
    policy = GenerativePolicy(config.policy)
    assert config.steps > 0 and config.out_dir.startswith("runs/")
    assert sum(p.numel() for p in policy.parameters()) > 10_000
    assert len(config.policy.proprio_keys) == len(config.policy.proprio_dims)


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, lr_min=1e-5)
    assert lr_at(0, cfg) == pytest.approx(1e-4) and lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(55, cfg) < lr_at(10, cfg) and lr_at(100, cfg) == pytest.approx(1e-5)


def test_random_shift_moves_content_within_the_pad():
    img = torch.zeros(2, 16, 16, 3, dtype=torch.uint8)
    img[:, 8, 8] = 255
    out = random_shift(img, 4, torch.Generator().manual_seed(0))
    assert out.shape == img.shape and out.dtype == torch.uint8
    for b in range(2):
        ys, xs = torch.nonzero(out[b, ..., 0], as_tuple=True)
        assert len(ys) == 1 and abs(int(ys[0]) - 8) <= 4 and abs(int(xs[0]) - 8) <= 4
    assert torch.equal(random_shift(img, 0), img)


def _torchrun(args, tmp_path, timeout=600):
    """`torchrun --nproc_per_node 2` on gloo (CPU) with the dm1 CLI: what a user runs on several GPUs, here on CPU."""
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "dm1_ros.cli", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)


def test_train_under_torchrun_keeps_two_ranks_identical(fake_dataset, tmp_path):
    """DistributedDataParallel on 2 CPU ranks: the run ends with both ranks holding the same weights (compared by
    hash across ranks), and rank 1's batches count: the result differs from one process with the same seed."""
    import yaml

    from dm1_ros.configuration import to_dict

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(to_dict(tiny_recipe(fake_dataset, tmp_path / "ddp", steps=4))))
    done = _torchrun(["train", "--config", str(recipe), "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "2 ranks in step at step 4: weights" in done.stdout
    ddp = read_checkpoint(tmp_path / "ddp" / "last.pt")
    single = read_checkpoint(train(tiny_recipe(fake_dataset, tmp_path / "one", steps=4), progress=False))
    assert ddp["step"] == 4 and not (tmp_path / "ddp.replaced").exists()
    assert any(not torch.equal(v, single["state_dict"][k]) for k, v in ddp["state_dict"].items())


def write_foreign_robomimic(path, lengths=(7, 9, 8)):
    """A robomimic file as another lab records it: its own obs names, agentview + wrist images, env_args, masks."""
    import json

    import h5py

    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for i, n in enumerate(lengths):
            g = data.create_group(f"demo_{i}")
            g.create_dataset("actions", data=rng.uniform(-1, 1, (n, 7)))
            obs = g.create_group("obs")
            obs["front_rgb"] = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            obs["wrist_rgb"] = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            obs["eef_pos"], obs["eef_quat"], obs["gripper"] = rng.normal(size=(n, 3)), rng.normal(size=(n, 4)), rng.normal(size=(n, 2))
            g.attrs["num_samples"] = n
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 20}})
        f.create_dataset("mask/train", data=np.array([b"demo_0", b"demo_1"]))
        f.create_dataset("mask/valid", data=np.array([b"demo_2"]))
    return path


def test_a_robomimic_file_with_other_key_names_trains_through_the_recipe_key_map(tmp_path):
    data = write_foreign_robomimic(tmp_path / "other_lab.hdf5")
    keys = {"agentview_image": "front_rgb", "robot0_eye_in_hand_image": "wrist_rgb", "robot0_eef_pos": "eef_pos",
            "robot0_eef_quat": "eef_quat", "robot0_gripper_qpos": "gripper"}
    two_cameras = PolicyConfig(image_keys=["agentview_image", "robot0_eye_in_hand_image"], image_size=[32, 32],
                               vision=VisionConfig(channels=16, heads=2, pool_dim=16), head=HeadConfig(hidden=64))
    ds = RobomimicDataset(data, two_cameras.image_keys, 4, split="train", key_map=keys)
    with h5py_file(data) as f:
        np.testing.assert_array_equal(ds.images["robot0_eye_in_hand_image"][:7], f["data/demo_0/obs/wrist_rgb"][()])
        np.testing.assert_allclose(ds.proprio[:7, 3:7], f["data/demo_0/obs/eef_quat"][()], rtol=1e-6)
    path = train(tiny_recipe(data, tmp_path / "run", steps=4, validate_every=2, obs_keys=keys, policy=two_cameras),
                 progress=False)
    assert read_checkpoint(path)["provenance"]["episodes"] == 2

    del keys["robot0_gripper_qpos"]  # the file's 'gripper' is not found under our name: the error says so
    with pytest.raises(DatasetError, match=r"data/demo_0 has no obs/robot0_gripper_qpos; it has \['eef_pos', "):
        RobomimicDataset(data, two_cameras.image_keys, 4, key_map=keys)
    keys["robot0_gripper_qpos"] = "gripper_state"
    with pytest.raises(DatasetError, match="has no obs/gripper_state \\(the recipe's obs_keys maps robot0_gripper_qpos to it\\)"):
        RobomimicDataset(data, two_cameras.image_keys, 4, key_map=keys)


def h5py_file(path):
    import h5py

    return h5py.File(path, "r")
