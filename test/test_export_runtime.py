"""ONNX export, bundle round trip, and the runtime's refusals (each error names the problem)."""
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from dm1_ros.policy import export
from dm1_ros.runtime.bundle import BundleError, ImageSpec, ObservationSpec, read_manifest
from dm1_ros.runtime.contract import Observation
from dm1_ros.runtime.onnx_policy import OnnxPolicy, PolicyInputError, choose_providers

KEY = "robot0_eye_in_hand_image"


@pytest.fixture
def bundle(tiny_policy, tmp_path):
    out = tmp_path / "tiny"
    export.export_bundle(tiny_policy, out, training={"command": "pytest"})
    return out


def observation(seed=0, size=32):
    rng = np.random.default_rng(seed)
    return Observation(images={KEY: rng.integers(0, 256, (size, size, 3), dtype=np.uint8)},
                       proprio=rng.uniform(-1, 1, 9).astype(np.float32), stamp=12.5)


def test_bundle_round_trip_matches_torch(tiny_policy, bundle):
    manifest = read_manifest(bundle)
    assert manifest.parity.max_abs_diff <= 1e-4 and manifest.sampling_steps == 1
    assert manifest.action.chunk == 4 and manifest.observation.proprio_dim == 9
    assert manifest.training["command"] == "pytest"
    policy = OnnxPolicy(bundle, threads=1, warmup=1)
    obs = observation()
    noise = np.random.default_rng(1).standard_normal((4, 7)).astype(np.float32)
    chunk = policy.predict(obs, noise=noise)
    with torch.no_grad():
        expected = tiny_policy({KEY: torch.from_numpy(obs.images[KEY][None])}, torch.from_numpy(obs.proprio[None]),
                               torch.from_numpy(noise[None]), 1)[0].numpy()
    assert chunk.actions.shape == (4, 7) and chunk.stamp == 12.5 and chunk.model_id == manifest.model_id
    np.testing.assert_allclose(chunk.actions, expected, atol=1e-4)
    assert chunk.latency_ms > 0 and policy.latency_summary()["n"] == 1
    # Dynamic batch.
    batch = policy.predict_batch({KEY: np.stack([obs.images[KEY]] * 3)}, np.stack([obs.proprio] * 3))
    assert batch.shape == (3, 4, 7)


def test_patchify_stem_exports_with_parity(tiny_image_config, tmp_path):
    from dm1_ros.policy.config import VisionConfig
    from dm1_ros.policy.model import GenerativePolicy

    tiny_image_config.vision = VisionConfig(channels=16, heads=2, pool_dim=16, stem_kernel=8, stem_stride=8,
                                            stem_downsample=False)
    torch.manual_seed(0)
    policy = GenerativePolicy(tiny_image_config)
    rng = np.random.default_rng(0)
    policy.action_normalizer.fit(rng.uniform(-0.5, 0.5, (64, 7)))
    policy.proprio_normalizer.fit(rng.uniform(-1.0, 1.0, (64, 9)))
    manifest = export.export_bundle(policy.eval(), tmp_path / "patchify")
    assert policy.image_encoders[KEY].num_tokens == 16  # 32x32 in 8x8 patches
    assert manifest.parity.max_abs_diff <= 1e-4
    assert OnnxPolicy(tmp_path / "patchify", threads=1, warmup=1).predict(observation()).actions.shape == (4, 7)


def test_silu_head_trains_through_the_jvp_and_exports_fused(tiny_image_config, tmp_path):
    import onnx
    import onnxruntime as ort

    from dm1_ros.policy.model import GenerativePolicy

    tiny_image_config.head.activation = "silu"
    torch.manual_seed(0)
    policy = GenerativePolicy(tiny_image_config)
    rng = np.random.default_rng(0)
    policy.action_normalizer.fit(rng.uniform(-0.5, 0.5, (64, 7)))
    policy.proprio_normalizer.fit(rng.uniform(-1.0, 1.0, (64, 9)))
    batch = {"images": {KEY: torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)}, "proprio": torch.rand(4, 9),
             "actions": torch.rand(4, 4, 7) - 0.5}
    loss, _ = policy.compute_loss(batch)  # MeanFlow's JVP runs through the SiLU head
    loss.backward()
    assert torch.isfinite(loss) and policy.head.out.weight.grad.abs().sum() > 0
    manifest = export.export_bundle(policy.eval(), tmp_path / "silu")
    assert manifest.parity.max_abs_diff <= 1e-4
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(tmp_path / "silu" / "model.onnx"), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert ops.count("QuickGelu") == 3 and "Softplus" not in ops  # the head's three activations, one operator each


def test_attention_exports_as_one_fused_operator_with_the_same_actions(tiny_image_config, tmp_path):
    import onnx

    from dm1_ros.policy.graph_fusion import fuse_attention
    from dm1_ros.policy.model import GenerativePolicy

    tiny_image_config.vision.depth = 2
    torch.manual_seed(0)
    policy = GenerativePolicy(tiny_image_config)
    rng = np.random.default_rng(0)
    policy.action_normalizer.fit(rng.uniform(-0.5, 0.5, (64, 7)))
    policy.proprio_normalizer.fit(rng.uniform(-1.0, 1.0, (64, 9)))
    policy.eval()
    fused = export.export_bundle(policy, tmp_path / "fused")
    plain = export.export_bundle(policy, tmp_path / "plain", fuse=False)
    graphs = {name: onnx.load(str(tmp_path / name / "model.onnx")).graph for name in ("fused", "plain")}
    ops = {name: [n.op_type for n in g.node] for name, g in graphs.items()}
    assert ops["fused"].count("Attention") == 2 and "Softmax" not in ops["fused"]  # one per transformer block
    assert "Attention" not in ops["plain"] and ops["plain"].count("Softmax") == 2
    assert len(ops["plain"]) - len(ops["fused"]) >= 2 * 14
    assert fused.parity.max_abs_diff <= 1e-4 and plain.parity.max_abs_diff <= 1e-4
    runs = {name: OnnxPolicy(tmp_path / name, threads=1, warmup=1) for name in ("fused", "plain")}
    noise = np.random.default_rng(1).standard_normal((4, 7)).astype(np.float32)
    for seed in range(3):
        a, b = (runs[name].predict(observation(seed), noise=noise).actions for name in ("fused", "plain"))
        np.testing.assert_allclose(a, b, atol=1e-5)
    # a graph without the exported attention pattern is left as it is
    model = onnx.load(str(tmp_path / "fused" / "model.onnx"))
    before = model.SerializeToString()
    assert fuse_attention(model) == 0 and model.SerializeToString() == before


def test_fixed_noise_seed_reproduces_actions(bundle):
    a = OnnxPolicy(bundle, warmup=0, noise_seed=7).predict(observation()).actions
    b = OnnxPolicy(bundle, warmup=0, noise_seed=7).predict(observation()).actions
    c = OnnxPolicy(bundle, warmup=0, noise_seed=8).predict(observation()).actions
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_every_way_of_waiting_gives_the_same_actions_and_a_bad_one_is_named(bundle):
    # how onnxruntime's threads wait is a speed and CPU choice only: same graph, same noise, same actions
    runs = {mode: OnnxPolicy(bundle, warmup=0, threads=2, noise_seed=7, spinning=mode).predict(observation()).actions
            for mode in ("in_run", "always", "never")}
    np.testing.assert_allclose(runs["in_run"], runs["always"], atol=1e-6)
    np.testing.assert_allclose(runs["in_run"], runs["never"], atol=1e-6)
    session = OnnxPolicy(bundle, warmup=0).session
    assert session.get_session_options().get_session_config_entry("session.force_spinning_stop") == "1"
    with pytest.raises(ValueError, match="spinning must be one of in_run, always, never, got 'yes'"):
        OnnxPolicy(bundle, warmup=0, spinning="yes")


def test_sampling_noise_is_the_generators_stream_in_order(bundle):
    policy = OnnxPolicy(bundle, warmup=0)
    policy.rng = np.random.default_rng(3)
    drawn = [policy.sample_noise(b) for b in (1, 300, 1, 2)]  # across block boundaries, mixed batch sizes
    assert [d.shape for d in drawn] == [(b, *policy.chunk_shape) for b in (1, 300, 1, 2)]
    want = np.random.default_rng(3).standard_normal((304, *policy.chunk_shape), dtype=np.float32)
    np.testing.assert_array_equal(np.concatenate(drawn), want)
    policy.rng = np.random.default_rng(5)  # as dm1 eval does per episode: the next draw is the new generator's first
    np.testing.assert_array_equal(policy.sample_noise(), np.random.default_rng(5).standard_normal(
        (1, *policy.chunk_shape), dtype=np.float32))


def test_multi_step_export(tiny_policy, tmp_path):
    manifest = export.export_bundle(tiny_policy, tmp_path / "k3", steps=3)
    assert manifest.sampling_steps == 3 and manifest.parity.max_abs_diff <= 1e-4


def test_export_refuses_a_bundle_that_fails_parity(tiny_policy, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "parity", lambda *a, **k: 3e-3)
    with pytest.raises(export.ExportError, match="differs from torch"):
        export.export_bundle(tiny_policy, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    assert list(tmp_path.iterdir()) == []  # no staging leftovers


def test_export_replaces_an_existing_bundle_atomically(tiny_policy, bundle):
    first = read_manifest(bundle).created
    with pytest.raises(FileExistsError, match="--force"):  # never without being asked
        export.export_bundle(tiny_policy, bundle, steps=2)
    export.export_bundle(tiny_policy, bundle, steps=2, overwrite=True)
    assert read_manifest(bundle).sampling_steps == 2 and first
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.yaml", "model.onnx"]


def test_missing_files_are_named(bundle, tmp_path):
    with pytest.raises(BundleError, match="not a directory"):
        OnnxPolicy(tmp_path / "nope")
    (bundle / "model.onnx").unlink()
    with pytest.raises(BundleError, match="has no model.onnx"):
        OnnxPolicy(bundle)
    (bundle / "manifest.yaml").unlink()
    with pytest.raises(BundleError, match="has no manifest.yaml"):
        OnnxPolicy(bundle)


def test_wrong_manifest_version_is_refused(bundle):
    data = yaml.safe_load((bundle / "manifest.yaml").read_text())
    data["format_version"] = 99
    (bundle / "manifest.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match="format_version 99 is not supported"):
        OnnxPolicy(bundle)


def test_execution_travels_with_the_bundle_and_a_bad_one_is_named(tiny_policy, bundle, tmp_path):
    assert read_manifest(bundle).execution == "latest"  # the default
    chunked = tmp_path / "chunked"
    export.export_bundle(tiny_policy, chunked, execution="chunk")
    assert read_manifest(chunked).execution == "chunk"
    with pytest.raises(export.ExportError, match="execution 'open_loop'"):
        export.export_bundle(tiny_policy, tmp_path / "bad", execution="open_loop")
    data = yaml.safe_load((chunked / "manifest.yaml").read_text())
    data["execution"] = "smooth"
    (chunked / "manifest.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match="execution 'smooth' is not one of latest, ensemble, chunk"):
        read_manifest(chunked)


def test_unknown_manifest_key_is_named(bundle):
    data = yaml.safe_load((bundle / "manifest.yaml").read_text())
    data["action"]["horizon"] = 8
    (bundle / "manifest.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match="action.horizon"):
        OnnxPolicy(bundle)


def test_corrupt_onnx_is_refused(bundle):
    path = bundle / "model.onnx"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2 : len(blob) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(blob))
    with pytest.raises(BundleError, match="corrupt"):
        OnnxPolicy(bundle)


def test_unloadable_onnx_with_matching_hash_is_refused(bundle):
    from dm1_ros.runtime.bundle import sha256_file

    (bundle / "model.onnx").write_bytes(b"this is not a protobuf")
    data = yaml.safe_load((bundle / "manifest.yaml").read_text())
    data["onnx"]["sha256"] = sha256_file(bundle / "model.onnx")
    (bundle / "manifest.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match="could not be loaded by onnxruntime"):
        OnnxPolicy(bundle)


def test_wrong_inputs_are_named(bundle):
    policy = OnnxPolicy(bundle, warmup=0)
    obs = observation(size=48)
    with pytest.raises(PolicyInputError, match=r"image 'robot0_eye_in_hand_image' has shape \(48, 48, 3\).*\(32, 32, 3\)"):
        policy.predict(obs)
    obs = observation()
    obs.images = {"front": obs.images[KEY]}
    with pytest.raises(PolicyInputError, match="no image 'robot0_eye_in_hand_image'"):
        policy.predict(obs)
    obs = observation()
    obs.images[KEY] = obs.images[KEY].astype(np.float32)
    with pytest.raises(PolicyInputError, match="dtype float32"):
        policy.predict(obs)
    obs = observation()
    obs.proprio = np.zeros(7, np.float32)
    with pytest.raises(PolicyInputError, match=r"proprio has shape \(7,\)"):
        policy.predict(obs)
    obs.proprio = np.full(9, np.nan, np.float32)
    with pytest.raises(PolicyInputError, match="NaN"):
        policy.predict(obs)


def test_manifest_refuses_a_robot_that_does_not_match(bundle):
    manifest = read_manifest(bundle)
    good = ObservationSpec(images=[ImageSpec(KEY, 32, 32)], proprio_keys=manifest.observation.proprio_keys, proprio_dims=[3, 4, 2])
    manifest.check_observation_spec(good)
    with pytest.raises(BundleError, match="expects \\(32, 32, 3\\), robot provides \\(96, 96, 3\\)"):
        manifest.check_observation_spec(ObservationSpec([ImageSpec(KEY, 96, 96)], good.proprio_keys, good.proprio_dims))
    with pytest.raises(BundleError, match="needs camera"):
        manifest.check_observation_spec(ObservationSpec([ImageSpec("agentview_image", 32, 32)], good.proprio_keys, good.proprio_dims))
    with pytest.raises(BundleError, match="proprio layout"):
        manifest.check_observation_spec(ObservationSpec(good.images, ["robot0_joint_pos"], [7]))


def test_providers_fall_back_to_cpu():
    assert choose_providers("auto")[-1] == "CPUExecutionProvider"
    assert choose_providers(["CUDAExecutionProvider"])[-1] == "CPUExecutionProvider"
    with pytest.raises(ValueError, match="unknown execution provider"):
        choose_providers(["cuda"])


def test_runtime_import_does_not_import_torch():
    code = "import sys, dm1_ros.runtime, dm1_ros.runtime.onnx_policy, dm1_ros.runtime.bundle; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
