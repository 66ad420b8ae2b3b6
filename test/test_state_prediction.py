"""Privileged state as an auxiliary training target: the targets, the data they come from, the loss, a deployed
graph that does not contain the predictor, and one that does where the prediction is fed to the head."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import write_fake_dataset

from dm1_ros.policy.checkpoint import load_checkpoint
from dm1_ros.policy.config import HeadConfig, PolicyConfig, StatePredictionConfig, VisionConfig
from dm1_ros.policy.export import export_bundle, to_onnx_bytes
from dm1_ros.policy.model import GenerativePolicy
from dm1_ros.runtime.bundle import read_manifest
from dm1_ros.runtime.contract import Observation
from dm1_ros.runtime.onnx_policy import OnnxPolicy
from dm1_ros.train.dataset import DatasetError, RobomimicDataset
from dm1_ros.train.rotations import rotation_columns, with_rotation_columns
from dm1_ros.train.pretrain import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
OBJECT = StatePredictionConfig(keys=["object"], dims=[14], quaternions=[3, 10], weight=1.0, hidden=32)


def quaternion_z(angle: float) -> np.ndarray:
    return np.array([0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)])


def test_rotation_columns_are_the_rotation_matrix_and_the_same_for_q_and_minus_q():
    np.testing.assert_allclose(rotation_columns(np.array([0.0, 0.0, 0.0, 1.0])), [1, 0, 0, 0, 1, 0], atol=1e-12)
    # a quarter turn about z takes x to y and y to -x
    np.testing.assert_allclose(rotation_columns(quaternion_z(math.pi / 2)), [0, 1, 0, -1, 0, 0], atol=1e-12)
    q = np.random.default_rng(0).normal(size=(50, 4))
    np.testing.assert_allclose(rotation_columns(q), rotation_columns(-q), atol=1e-12)
    np.testing.assert_allclose(rotation_columns(3.0 * q), rotation_columns(q), atol=1e-12)  # unnormalized input
    cols = rotation_columns(q).reshape(50, 2, 3)
    np.testing.assert_allclose(np.linalg.norm(cols, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose((cols[:, 0] * cols[:, 1]).sum(-1), 0.0, atol=1e-12)


def test_rotation_from_columns_inverts_them_and_measures_the_angle_between_rotations():
    from dm1_ros.train.rotations import rotation_angle_deg, rotation_from_columns

    quarter, small = rotation_from_columns(rotation_columns(np.stack([quaternion_z(math.pi / 2), quaternion_z(0.1)])))
    np.testing.assert_allclose(quarter, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    assert rotation_angle_deg(quarter, small) == pytest.approx(90 - math.degrees(0.1))
    assert rotation_angle_deg(quarter, quarter) == pytest.approx(0.0, abs=1e-5)
    noisy = rotation_columns(quaternion_z(0.3)) + np.array([0.02, -0.01, 0.0, 0.01, 0.03, -0.02])
    r = rotation_from_columns(noisy)  # a prediction, not orthonormal: the nearest rotation, still one
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_with_rotation_columns_replaces_each_quaternion_block_in_place():
    pos, rel = np.array([[1.0, 2.0, 3.0]]), np.array([[7.0, 8.0, 9.0]])
    qa, qb = quaternion_z(0.3)[None], quaternion_z(-1.2)[None]
    state = np.concatenate([pos, qa, rel, qb], axis=1)  # 14 wide: the square / can object state's layout
    out, valid = with_rotation_columns(state, [10, 3])
    assert out.shape == (1, 18) and out.dtype == np.float32 and valid.tolist() == [True]
    np.testing.assert_allclose(out[0, :3], pos[0])
    np.testing.assert_allclose(out[0, 3:9], rotation_columns(qa)[0], atol=1e-6)
    np.testing.assert_allclose(out[0, 9:12], rel[0])
    np.testing.assert_allclose(out[0, 12:], rotation_columns(qb)[0], atol=1e-6)


def test_a_step_whose_quaternion_is_zero_holds_no_state_and_is_left_out():
    # robosuite's object state at the reset step: the object's pose all zeros
    good = np.concatenate([[0.1, 0.2, 0.3], quaternion_z(0.5), [0.0, 0.0, 0.9], quaternion_z(-0.5)])
    state = np.stack([np.concatenate([np.zeros(7), good[7:]]), good])
    out, valid = with_rotation_columns(state, [3, 10])
    assert valid.tolist() == [False, True] and np.isfinite(out).all() and not out[0].any()
    policy = GenerativePolicy(tiny_config(state_prediction=OBJECT))
    features = {"condition": torch.randn(2, policy.cond_dim)}
    second_row = {"condition": features["condition"][1:]}
    targets = torch.from_numpy(out)
    with torch.no_grad():
        only_valid = policy.state_prediction_loss(second_row, {"state_targets": targets[1:]})
        masked = policy.state_prediction_loss(features, {"state_targets": targets, "state_valid": torch.tensor([0.0, 1.0])})
        unmasked = policy.state_prediction_loss(features, {"state_targets": targets})
    assert float(masked) == pytest.approx(float(only_valid)) and float(unmasked) != pytest.approx(float(masked))


@pytest.mark.parametrize("kwargs, words", [
    (dict(keys=["object"], dims=[14, 3], weight=1.0), "same length"),
    (dict(keys=["object"], dims=[14]), "positive weight"),
    (dict(weight=1.0), "without keys"),
    (dict(keys=["object"], dims=[14], quaternions=[11], weight=1.0), "4-wide block"),
    (dict(keys=["object"], dims=[14], quaternions=[3, 5], weight=1.0), "without overlap"),
    (dict(feed=True), "no predicted state to feed"),
])
def test_a_state_prediction_that_cannot_work_is_refused_with_its_reason(kwargs, words):
    with pytest.raises(ValueError, match=words):
        StatePredictionConfig(**kwargs)


def object_dataset(path, lengths=(30, 34, 32), seed=0):
    """Random episodes with an `object` observation (position, pose, relative position, relative pose) that is a
    function of the proprio, each quaternion stored with a random sign, as robosuite's are, and the object's pose
    zero at each episode's first step, as robosuite's is."""
    def object_state(rng, proprio, t):
        qa, qb = (quaternion_z(2.5 * proprio[k]) * rng.choice([-1.0, 1.0]) for k in (3, 4))
        obj = np.concatenate([proprio[:3], qa, proprio[:3] - proprio[5:8], qb]).astype(np.float32)
        if t == 0:
            obj[:7] = 0.0  # as robosuite's object state at the reset step
        return {"object": obj}

    return write_fake_dataset(path, lengths, seed=seed, extra_obs=object_state)


def tiny_config(**kw) -> PolicyConfig:
    return PolicyConfig(image_size=[32, 32], vision=VisionConfig(channels=16, heads=2, pool_dim=16),
                        head=HeadConfig(hidden=64), **kw)


def test_the_dataset_serves_state_targets_with_rotation_columns(tmp_path):
    data = object_dataset(tmp_path / "object.hdf5")
    ds = RobomimicDataset(data, ["robot0_eye_in_hand_image"], 4, split=None, state_keys=["object"], state_dims=[14],
                          state_quaternions=[3, 10])
    batch = ds.batch(np.arange(1, 6))
    assert batch["state_targets"].shape == (5, 18) and batch["proprio"].shape == (5, 9)
    np.testing.assert_allclose(batch["state_targets"][:, :3], batch["proprio"][:, :3], atol=1e-6)
    assert np.flatnonzero(~ds.state_valid).tolist() == [0, 30, 64]  # the three episodes' first steps
    assert ds.batch(np.array([0, 1]))["state_valid"].tolist() == [0.0, 1.0]
    stats = ds.stats()  # of the steps that hold a state: the rotation columns' ranges, not the zeros of the resets
    assert stats["state_min"].shape == (18,) and (stats["state_min"] <= stats["state_max"]).all()
    np.testing.assert_allclose(stats["state_min"][:3], ds.state_targets[ds.state_valid, :3].min(0))
    assert "state_targets" not in RobomimicDataset(data, ["robot0_eye_in_hand_image"], 4, split=None).batch(np.arange(2))


def test_state_targets_missing_or_of_another_width_are_named(tmp_path, fake_dataset):
    with pytest.raises(DatasetError, match="no obs/object"):
        RobomimicDataset(fake_dataset, ["robot0_eye_in_hand_image"], 4, split=None, state_keys=["object"])
    data = object_dataset(tmp_path / "object.hdf5", lengths=(5, 5))
    with pytest.raises(DatasetError, match="obs/object has dimension 14, expected 10"):
        RobomimicDataset(data, ["robot0_eye_in_hand_image"], 4, split=None, state_keys=["object"], state_dims=[10])


def test_training_learns_the_state_and_the_deployed_graph_does_not_contain_the_predictor(tmp_path):
    data = object_dataset(tmp_path / "object.hdf5")
    cfg = TrainConfig(data=str(data), out_dir=str(tmp_path / "run"), policy=tiny_config(state_prediction=OBJECT),
                      steps=120, batch_size=32, lr=3e-3, warmup_steps=5, checkpoint_every=1000, validate_every=1000,
                      log_every=20, threads=1, ema_decay=0.0)
    policy, payload = load_checkpoint(train(cfg, progress=False))
    header, *rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    column = header.split(",").index("loss/state")
    first, last = float(rows[0].split(",")[column]), float(rows[-1].split(",")[column])
    assert last < 0.5 * first, (first, last)  # the encoder learns what the object state says
    assert payload["config"]["state_prediction"]["keys"] == ["object"]
    assert policy.state_normalizer.low.shape == (18,)

    # bench/state_readout.py reads the predictor back on the validation split: better than chance on every block
    out = tmp_path / "readout.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "state_readout.py"), str(tmp_path / "run" / "last.pt"),
                    "--data", str(data), "--out", str(out)], check=True, capture_output=True)
    entry = json.loads(out.read_text())["checkpoints"][f"{tmp_path / 'run' / 'last.pt'}@120"]
    assert list(entry["policy"]) == ["values 0-2", "rotation at 3", "values 7-9", "rotation at 10"]
    for name, figure in entry["policy"].items():
        key = "median_deg" if name.startswith("rotation") else "rms"
        assert figure[key] < 0.7 * entry["chance"][name][key], (name, figure, entry["chance"][name])

    # The same weights without the predictor export to the same graph: the same operators and weights (only the
    # exporter's numbered value names differ), nothing of the predictor.
    plain = GenerativePolicy(tiny_config())
    missing, unexpected = plain.load_state_dict(policy.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("state_") for k in unexpected)
    graphs = [onnx.load_from_string(to_onnx_bytes(p.eval(), 1, True)).graph for p in (policy, plain)]
    assert [n.op_type for n in graphs[0].node] == [n.op_type for n in graphs[1].node]
    assert sorted(i.raw_data for i in graphs[0].initializer) == sorted(i.raw_data for i in graphs[1].initializer)
    assert not [i.name for i in graphs[0].initializer if "state_" in i.name]


def test_a_seed_initializes_encoder_and_head_alike_with_or_without_the_predictor():
    weights = []
    for config in (tiny_config(), tiny_config(state_prediction=OBJECT)):
        torch.manual_seed(3)
        weights.append(GenerativePolicy(config).state_dict())
    plain, predicting = weights
    assert set(predicting) - set(plain) and all(k.startswith("state_") for k in set(predicting) - set(plain))
    for name, value in plain.items():
        torch.testing.assert_close(predicting[name], value, rtol=0, atol=0, msg=name)


def test_a_fed_prediction_is_part_of_the_condition_and_of_the_deployed_graph(tmp_path):
    fed = StatePredictionConfig(**{**OBJECT.__dict__, "feed": True})
    torch.manual_seed(0)
    policy = GenerativePolicy(tiny_config(state_prediction=fed)).eval()
    assert policy.cond_dim == GenerativePolicy(tiny_config()).cond_dim + 18
    images = {"robot0_eye_in_hand_image": torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)}
    proprio, noise = torch.rand(3, 9), torch.randn(3, 4, 7)
    cond, features = policy.encode(images, proprio)
    torch.testing.assert_close(cond[:, -18:], features["predicted_state"])
    torch.testing.assert_close(features["predicted_state"], policy.predict_state({"condition": features["condition"]}))

    # the head reads the prediction: other predictor weights, other actions
    with torch.no_grad():
        before = policy(images, proprio, noise)
        policy.state_predictor.net[-1].bias.add_(1.0)
        after = policy(images, proprio, noise)
    assert not torch.allclose(before, after, atol=1e-4)

    # ... and the runtime runs it in the one exported graph, with the torch model's actions
    bundle = tmp_path / "fed"
    export_bundle(policy, bundle, training={"command": "pytest"})
    assert read_manifest(bundle).parity.max_abs_diff <= 1e-4
    graph = onnx.load(str(bundle / "model.onnx")).graph
    assert [i.name for i in graph.initializer if "state_predictor" in i.name]
    obs = Observation(images={k: v[0].numpy() for k, v in images.items()}, proprio=proprio[0].numpy(), stamp=0.0)
    got = OnnxPolicy(bundle, threads=1, warmup=0).predict(obs, noise=noise[0].numpy()).actions
    np.testing.assert_allclose(got, after[0].numpy(), atol=1e-4)


def test_a_policy_that_predicts_state_says_so_when_the_batch_has_none():
    policy = GenerativePolicy(tiny_config(state_prediction=OBJECT))
    batch = {"images": {"robot0_eye_in_hand_image": torch.zeros(2, 32, 32, 3, dtype=torch.uint8)},
             "proprio": torch.zeros(2, 9), "actions": torch.zeros(2, 4, 7)}
    with pytest.raises(ValueError, match="no state_targets"):
        policy.compute_loss(batch)
    loss, logs = policy.compute_loss({**batch, "state_targets": torch.zeros(2, 18)})
    assert torch.isfinite(loss) and logs["loss/state"] >= 0
