"""dm1_ros/policy/cascade.py: the object state computed in the graph is robosuite's, and a pose reader chained to a
state bundle is one camera bundle the runtime runs, equal to its two parts run one after the other."""
import numpy as np
import pytest
import torch

from dm1_ros.errors import Dm1Error
from dm1_ros.policy.cascade import (
    matrix_from_columns,
    matrix_from_quaternion,
    nut_object_state,
    quaternion_from_matrix,
)
from dm1_ros.policy.config import HeadConfig, LowDimConfig, PolicyConfig, StatePredictionConfig, VisionConfig
from dm1_ros.policy.export import export_bundle
from dm1_ros.policy.model import GenerativePolicy
from dm1_ros.runtime.bundle import read_manifest
from dm1_ros.runtime.contract import Observation
from dm1_ros.runtime.onnx_policy import OnnxPolicy

ROBOT = (["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"], [3, 4, 2])


def random_quaternions(n, seed):
    q = np.random.default_rng(seed).standard_normal((n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_quaternion_from_matrix_inverts_matrix_from_quaternion_with_robosuites_sign():
    import robosuite.utils.transform_utils as T

    q = random_quaternions(500, 0)
    # rotations near a half turn about each axis: w near 0, where the formula on w alone is ill-conditioned
    q[:3] = [[1, 1e-4, 0, 1e-5], [0, 1, 1e-4, -1e-5], [1e-4, 0, 1, 0]]
    q[:3] /= np.linalg.norm(q[:3], axis=1, keepdims=True)
    matrices = matrix_from_quaternion(torch.tensor(q, dtype=torch.float64))
    np.testing.assert_allclose(matrices.numpy(), np.stack([T.quat2mat(x) for x in q]), atol=1e-6)  # robosuite: float32
    got = quaternion_from_matrix(matrices).numpy()
    np.testing.assert_allclose(got, np.where(q[:, 3:4] < 0, -q, q), atol=1e-7)
    np.testing.assert_allclose(got[3:], np.stack([T.mat2quat(m) for m in matrices.numpy()[3:]]), atol=1e-5)


def test_columns_give_back_the_rotation_they_were_taken_from():
    from dm1_ros.train.rotations import rotation_columns, rotation_from_columns

    q = random_quaternions(50, 1)
    columns = rotation_columns(q) + np.random.default_rng(2).normal(0, 0.05, (50, 6))  # a prediction, not orthonormal
    got = matrix_from_columns(torch.tensor(columns)).numpy()
    np.testing.assert_allclose(got, rotation_from_columns(columns), atol=1e-12)
    np.testing.assert_allclose(got @ got.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (50, 3, 3)), atol=1e-12)


def test_object_state_is_robosuites_from_the_nut_and_hand_poses():
    """robosuite's square `object` observables: the nut's pose in the hand's frame (transform_utils, as its
    SquareNut_to_robot0_eef_* observables compute it), then the nut's own, quaternion with the sampler's z >= 0."""
    import robosuite.utils.transform_utils as T

    rng = np.random.default_rng(3)
    n = 200
    nut_q, eef_q = random_quaternions(n, 4), random_quaternions(n, 5)
    nut_p, eef_p = rng.uniform(-0.3, 0.3, (n, 3)) + [0, 0, 0.85], rng.uniform(-0.3, 0.3, (n, 3)) + [0, 0, 1.0]
    got = nut_object_state(torch.tensor(nut_p), matrix_from_quaternion(torch.tensor(nut_q)), torch.tensor(eef_p),
                           torch.tensor(eef_q)).numpy()
    for i in range(n):
        world_in_hand = T.pose_inv(T.pose2mat((eef_p[i], eef_q[i])))
        pos, quat = T.mat2pose(T.pose_in_A_to_pose_in_B(T.pose2mat((nut_p[i], nut_q[i])), world_in_hand))
        own = nut_q[i] if nut_q[i, 2] >= 0 else -nut_q[i]
        np.testing.assert_allclose(got[i], np.concatenate([pos, quat, nut_p[i], own]), atol=2e-5)


def test_object_state_is_what_robosuite_reports_on_square():
    """From the nut's true world pose and the hand's, the whole 14-d `object` state robosuite's square reports,
    quaternion signs included (the sampler's z >= 0 for the nut is what robosuite keeps on these seeds)."""
    from dm1_ros.sim.env import SimConfig, SimEnv

    env = SimEnv(SimConfig(task="square", use_images=False, proprio_keys=[*ROBOT[0], "object"]))
    rng = np.random.default_rng(0)
    for seed in (100_000, 100_001, 100_002):
        obs = env.reset(seed=seed)
        for _ in range(10):  # robosuite's hand-relative observables settle over the first ~7 steps after a reset
            obs, *_ = env.step(rng.uniform(-1, 1, 7))
        p = torch.from_numpy(obs.proprio.astype(np.float64))[None]
        for nut_quat in (p[:, 19:23], -p[:, 19:23]):  # either sign of the nut's rotation gives robosuite's
            got = nut_object_state(p[:, 16:19], matrix_from_quaternion(nut_quat), p[:, 0:3], p[:, 3:7])
            np.testing.assert_allclose(got[0].numpy(), p[0, 9:].numpy(), atol=1e-5)
    env.close()


def reader_policy(image_keys=("robot0_eye_in_hand_image", "agentview_image"), keys=("object",), quaternions=(3, 10)):
    torch.manual_seed(0)
    cfg = PolicyConfig(image_keys=list(image_keys), image_size=[32, 32], proprio_keys=ROBOT[0], proprio_dims=ROBOT[1],
                       vision=VisionConfig(channels=16, heads=2, pool_dim=16), head=HeadConfig(hidden=32),
                       state_prediction=StatePredictionConfig(keys=list(keys), dims=[14], quaternions=list(quaternions), weight=1.0,
                                                              hidden=16))
    policy = GenerativePolicy(cfg)
    rng = np.random.default_rng(0)
    policy.proprio_normalizer.fit(np.concatenate([rng.uniform(-0.3, 0.3, (64, 3)) + [0, 0, 1.0],
                                                  random_quaternions(64, 6), rng.uniform(0, 0.04, (64, 2))], 1))
    policy.state_normalizer.fit(rng.uniform(-1, 1, (64, 18)))
    return policy.eval()


@pytest.fixture(scope="module")
def actor_bundle(tmp_path_factory):
    torch.manual_seed(1)
    cfg = PolicyConfig(image_keys=[], encoder="mlp", proprio_keys=ROBOT[0] + ["object"], proprio_dims=ROBOT[1] + [14],
                       lowdim=LowDimConfig(hidden=32, layers=1, out_dim=16), head=HeadConfig(hidden=32))
    actor = GenerativePolicy(cfg)
    actor.action_normalizer.fit(np.stack([-np.ones(7), np.ones(7)]))
    actor.proprio_normalizer.fit(np.stack([-np.ones(23), np.ones(23)]))
    out = tmp_path_factory.mktemp("actor") / "actor"
    export_bundle(actor.eval(), out, execution="chunk", lookahead_s=0.05, training={"command": "dm1 train actor"})
    return out


def test_chained_bundle_runs_in_the_runtime_as_its_two_parts(actor_bundle, tmp_path):
    from dm1_ros.policy.cascade import StateReader, export_cascade, reader_from_policy

    reader = reader_policy()
    manifest = export_cascade(reader_from_policy(reader, {"command": "reader"}), actor_bundle, tmp_path / "cascade",
                              command="dm1 export reader.pt --actor actor")
    assert manifest.parity.max_abs_diff < 1e-4
    assert [i.name for i in manifest.observation.images] == list(reader.config.image_keys)
    assert manifest.observation.proprio_keys == ROBOT[0] and manifest.onnx.inputs[-2:] == ["proprio", "noise"]
    assert (manifest.execution, manifest.lookahead_s) == ("chunk", 0.05)  # the actor's, which it was measured with
    saved = read_manifest(tmp_path / "cascade")
    assert saved.training["reader"] == {"command": "reader"} and saved.training["command"].startswith("dm1 export")
    assert saved.training["actor"]["command"] == "dm1 train actor"

    policy = OnnxPolicy(tmp_path / "cascade")
    actor = OnnxPolicy(actor_bundle)
    rng = np.random.default_rng(7)
    images = {k: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for k in reader.config.image_keys}
    proprio = np.concatenate([[0.1, 0.0, 1.0], random_quaternions(1, 8)[0], [0.02, -0.02]]).astype(np.float32)
    noise = rng.standard_normal((4, 7)).astype(np.float32)
    got = policy.predict(Observation(images, proprio), noise=noise).actions
    with torch.no_grad():
        state = StateReader(reader)(*(torch.from_numpy(v[None]) for v in images.values()),
                                    torch.from_numpy(proprio[None]))[0].numpy()
    np.testing.assert_array_equal(state[:9], proprio)
    want = actor.predict(Observation({}, state), noise=noise).actions
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.abs(got).max() <= 1.0 and got.shape == (4, 7)


def test_parts_that_do_not_chain_are_refused_by_name(actor_bundle, tmp_path):
    from dm1_ros.policy.cascade import export_cascade, reader_from_cascade, reader_from_policy

    with pytest.raises(Dm1Error, match="must predict robosuite's `object`"):
        reader_from_policy(reader_policy(keys=("cube",)), {})
    with pytest.raises(Dm1Error, match="quaternions at"):
        reader_from_policy(reader_policy(quaternions=(0, 7)), {})
    camera_actor = tmp_path / "camera_actor"
    export_bundle(reader_policy(), camera_actor)
    with pytest.raises(Dm1Error, match="must be a state policy"):
        export_cascade(reader_from_policy(reader_policy(), {}), camera_actor, tmp_path / "c")
    with pytest.raises(Dm1Error, match="is not a cascade"):
        reader_from_cascade(actor_bundle)
    assert not (tmp_path / "c").exists()


def test_dm1_export_actor_writes_the_cascade_and_records_both_parts(actor_bundle, tmp_path, capsys):
    from dm1_ros.cli import main
    from dm1_ros.policy.checkpoint import save_checkpoint

    reader = reader_policy()
    ckpt = save_checkpoint(tmp_path / "reader.pt", reader, provenance={"command": "python bench/pose_reader.py train",
                                                                        "data_hash": "abc"})
    assert main(["export", str(ckpt), "--actor", str(actor_bundle), "--out", str(tmp_path / "c"), "--steps", "2"]) == 2
    assert "--steps does not apply with --actor" in capsys.readouterr().err and not (tmp_path / "c").exists()
    assert main(["export", str(ckpt), "--actor", str(actor_bundle), "--out", str(tmp_path / "c")]) == 0
    training = read_manifest(tmp_path / "c").training
    assert training["reader"]["command"] == "python bench/pose_reader.py train"
    assert training["reader"]["data_hash"] == "abc" and training["actor"]["bundle"] == str(actor_bundle)
    assert training["command"].startswith("dm1 export")
    # an existing bundle is kept unless --force, as for any export
    assert main(["export", str(ckpt), "--actor", str(actor_bundle), "--out", str(tmp_path / "c")]) == 1


def test_a_cascades_actor_is_swapped_without_the_readers_checkpoint(actor_bundle, tmp_path):
    """dm1 export CASCADE --actor OTHER: the reader cut out of the first cascade feeds the other actor; the new
    bundle acts as that reader then that actor, and keeps the reader's record."""
    from dm1_ros.cli import main
    from dm1_ros.policy.cascade import StateReader, export_cascade, reader_from_policy

    reader = reader_policy()
    export_cascade(reader_from_policy(reader, {"command": "python bench/pose_reader.py train"}), actor_bundle,
                   tmp_path / "first")
    torch.manual_seed(5)
    cfg = PolicyConfig(image_keys=[], encoder="mlp", proprio_keys=ROBOT[0] + ["object"], proprio_dims=ROBOT[1] + [14],
                       lowdim=LowDimConfig(hidden=32, layers=1, out_dim=16), head=HeadConfig(hidden=32))
    other = GenerativePolicy(cfg)
    other.action_normalizer.fit(np.stack([-2 * np.ones(7), 2 * np.ones(7)]))
    other.proprio_normalizer.fit(np.stack([-np.ones(23), np.ones(23)]))
    export_bundle(other.eval(), tmp_path / "other", execution="latest", training={"command": "dm1 train other"})

    assert main(["export", str(tmp_path / "first"), "--actor", str(tmp_path / "other"), "--out",
                 str(tmp_path / "swapped")]) == 0
    saved = read_manifest(tmp_path / "swapped")
    assert saved.training["reader"]["command"] == "python bench/pose_reader.py train"
    assert saved.training["reader"]["from_cascade"]["bundle"] == str(tmp_path / "first")
    assert saved.training["actor"]["command"] == "dm1 train other" and saved.execution == "latest"
    assert saved.parity.max_abs_diff < 1e-4

    rng = np.random.default_rng(3)
    images = {k: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for k in reader.config.image_keys}
    proprio = np.concatenate([[0.0, 0.1, 0.9], random_quaternions(1, 4)[0], [0.01, -0.01]]).astype(np.float32)
    noise = rng.standard_normal((4, 7)).astype(np.float32)
    with torch.no_grad():
        state = StateReader(reader)(*(torch.from_numpy(v[None]) for v in images.values()),
                                    torch.from_numpy(proprio[None]))[0].numpy()
    want = OnnxPolicy(tmp_path / "other").predict(Observation({}, state), noise=noise).actions
    got = OnnxPolicy(tmp_path / "swapped").predict(Observation(images, proprio), noise=noise).actions
    first = OnnxPolicy(tmp_path / "first").predict(Observation(images, proprio), noise=noise).actions
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.abs(got - first).max() > 1e-2  # the actor did change
