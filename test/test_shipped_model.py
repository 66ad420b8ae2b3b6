"""The shipped models: valid bundles with their provenance, made by their committed recipes, and they lift the
cube (seeded, through the same control loop the robot uses). The default is models/lift_image_fast_500
(dm1_ros/paths.py); models/lift_image is DMPO's network, the default before it."""
from pathlib import Path

import numpy as np
import pytest

from dm1_ros.runtime.bundle import load_bundle
from dm1_ros.runtime.onnx_policy import OnnxPolicy

BUNDLE = Path(__file__).resolve().parents[1] / "models" / "lift_image"


def committed_recipe(name: str) -> dict:
    """config/train/<name>.yaml as the trainer reads it."""
    from dm1_ros.configuration import load_yaml, to_dict
    from dm1_ros.train.pretrain import TrainConfig

    return to_dict(load_yaml(TrainConfig, BUNDLE.parents[1] / "config" / "train" / f"{name}.yaml"))


def trained_recipe(manifest) -> dict:
    """The recipe a bundle's manifest recorded, read the same way (keys added since take their defaults)."""
    from dm1_ros.configuration import from_dict, to_dict
    from dm1_ros.train.pretrain import TrainConfig

    return to_dict(from_dict(TrainConfig, manifest.training["recipe"]))


def test_bundle_is_valid_and_records_how_it_was_made():
    manifest, onnx_path = load_bundle(BUNDLE)
    assert manifest.method == "meanflow" and manifest.sampling_steps == 1
    assert [s.name for s in manifest.observation.images] == ["robot0_eye_in_hand_image"]
    assert manifest.observation.images[0].shape == (96, 96, 3) and manifest.observation.proprio_dim == 9
    assert manifest.action.chunk == 4 and manifest.action.dim == 7 and manifest.control_rate_hz == 20
    assert manifest.parity.max_abs_diff <= 1e-4
    # re-planning every tick, running the action planned 50 ms after each observation: 97/100, as many as open-loop
    # chunks on the same seeds (48/50 each; the chunk's first action: 42/50; docs/results_notes.md)
    assert manifest.execution == "latest" and manifest.lookahead_s == 0.05
    # ... counting the latency toward those 50 ms: 46/50 with 100 ms of latency, against 31/50 without (seeds
    # 100000-100049, docs/results.md "Closed loop and latency")
    assert manifest.lookahead_includes_latency
    training = manifest.training
    assert training["command"].startswith("dm1 train --config config/train/lift_image.yaml")
    assert len(training["data_hash"]) == 16 and training["episodes"] >= 90 and training["steps"] == training["recipe"]["steps"]
    assert onnx_path.stat().st_size < 10e6


def test_committed_recipe_is_the_one_the_model_was_trained_with():
    manifest, _ = load_bundle(BUNDLE)
    recipe, trained = committed_recipe("lift_image"), trained_recipe(manifest)
    for r in (recipe, trained):
        del r["out_dir"]  # where the run was written is not part of the recipe
    assert trained == recipe


def test_predicts_finite_actions_in_range():
    policy = OnnxPolicy(BUNDLE, threads=1, noise_seed=0)
    chunk = policy.predict(policy.dummy_observation())
    lo = np.asarray(policy.manifest.normalization.action_min)
    hi = np.asarray(policy.manifest.normalization.action_max)
    assert chunk.actions.shape == (4, 7) and np.all(np.isfinite(chunk.actions))
    assert np.all(chunk.actions >= lo - 1e-5) and np.all(chunk.actions <= hi + 1e-5)


def test_lifts_the_cube_on_seeded_episodes():
    pytest.importorskip("robosuite")
    from dm1_ros.train.evaluate import EvalArgs, evaluate

    # Three seeds of the committed 100-episode evaluation (100001-100003, all lifted there the manifest's way,
    # re-planning every tick with a 50 ms lookahead; 97 of the 100 lifted). Episodes are deterministic given the
    # seed; one miss is tolerated for another CPU's arithmetic.
    summary = evaluate(EvalArgs(model=str(BUNDLE), task="lift", episodes=3, seed_base=100_001), progress=False)
    assert summary["successes"] >= 2, summary["per_episode"]


FAST = BUNDLE.parent / "lift_image_fast"


def test_fast_bundle_is_its_recipe_and_replans_every_tick_100_ms_ahead():
    """models/lift_image_fast: config/train/lift_image_fast.yaml's network (0.93 M parameters, 1.7x cheaper
    inference), trained in 14 min. Re-planning every tick and running the action planned 100 ms after each
    observation lifts 98/100 (its chunks open loop 95/100, the 50 ms lookahead 91/100, same seeds), and its manifest
    says so (set with dm1 execution, the network untouched). Latency counts toward those 100 ms: what this model's
    success follows is which action of the chunk runs (docs/results_notes.md)."""
    manifest, onnx_path = load_bundle(FAST)
    assert manifest.sampling_steps == 1 and manifest.parity.max_abs_diff <= 1e-4
    assert (manifest.execution, manifest.lookahead_s, manifest.lookahead_includes_latency) == ("latest", 0.1, True)
    assert manifest.training["execution_set_by"] == ("dm1 execution models/lift_image_fast --execution latest "
                                                     "--lookahead-ms 100 --latency-in-lookahead on")
    assert manifest.training["command"].startswith("dm1 train --config config/train/lift_image_fast.yaml")
    assert trained_recipe(manifest) == committed_recipe("lift_image_fast")
    assert onnx_path.stat().st_size < 0.55 * (BUNDLE / "model.onnx").stat().st_size  # about half the weights


def test_fast_bundle_lifts_the_cube_on_seeded_episodes():
    pytest.importorskip("robosuite")
    from dm1_ros.train.evaluate import EvalArgs, evaluate

    # seeds 100001-100003 of the committed evaluation (results/int8/replan/lift_image_fast_first_lookahead100_100ep.json:
    # all lifted), run the way the manifest says
    summary = evaluate(EvalArgs(model=str(FAST), task="lift", episodes=3, seed_base=100_001), progress=False)
    assert (summary["execute"], summary["lookahead_ms"]) == ("first", 100.0), summary
    assert summary["successes"] >= 2, summary["per_episode"]


DEFAULT = BUNDLE.parent / "lift_image_fast_500"


def test_default_bundle_is_the_fast_recipe_on_500_demonstrations():
    """models/lift_image_fast_500: config/train/lift_image_fast.yaml's network and method on 500 demonstrations,
    15,000 steps (config/train/lift_image_fast_500.yaml). Re-planning every tick 100 ms ahead (latency included), as
    the fast bundle runs: 99/100 on seeds 100000-100099 and 99/100 on 100100-100199; chunks open loop 100/100 on each
    (docs/results.md "More demonstrations")."""
    from dm1_ros.paths import default_model_path

    assert default_model_path() == DEFAULT
    manifest, _ = load_bundle(DEFAULT)
    assert manifest.method == "meanflow" and manifest.sampling_steps == 1 and manifest.parity.max_abs_diff <= 1e-4
    assert (manifest.execution, manifest.lookahead_s, manifest.lookahead_includes_latency) == ("latest", 0.1, True)
    assert manifest.training["execution_set_by"] == ("dm1 execution models/lift_image_fast_500 --execution latest "
                                                     "--lookahead-ms 100 --latency-in-lookahead on")
    assert manifest.training["command"].startswith("dm1 train --config config/train/lift_image_fast_500.yaml")
    assert manifest.training["episodes"] == 450  # 500 collected, the validation split held out
    recipe, fast = committed_recipe("lift_image_fast_500"), committed_recipe("lift_image_fast")
    assert trained_recipe(manifest) == recipe
    assert {k for k in recipe if recipe[k] != fast[k]} == {"data", "out_dir", "steps"}  # same network and method


def test_default_bundle_lifts_the_cube_on_seeded_episodes():
    pytest.importorskip("robosuite")
    from dm1_ros.train.evaluate import EvalArgs, evaluate

    # seeds 100001-100003 of the committed evaluation (all lifted), run the way the manifest says
    summary = evaluate(EvalArgs(model=str(DEFAULT), task="lift", episodes=3, seed_base=100_001), progress=False)
    assert (summary["execute"], summary["lookahead_ms"]) == ("first", 100.0), summary
    assert summary["successes"] >= 2, summary["per_episode"]


def test_two_camera_can_bundle_is_its_recipe():
    """models/can_image_2cam: config/train/can_image.yaml with agentview beside the wrist camera (one ViT each)."""
    bundle = BUNDLE.parent / "can_image_2cam"
    manifest, _ = load_bundle(bundle)
    assert [s.name for s in manifest.observation.images] == ["robot0_eye_in_hand_image", "agentview_image"]
    assert manifest.execution == "latest" and manifest.lookahead_s == 0.05
    recipe, one_camera = committed_recipe("can_image_2cam"), committed_recipe("can_image")
    assert trained_recipe(manifest) == recipe
    differ = {k for k in recipe if recipe[k] != one_camera[k]}
    assert differ == {"data", "out_dir", "policy"}  # the same schedule; the policies differ in their cameras only
    assert {k for k in recipe["policy"] if recipe["policy"][k] != one_camera["policy"][k]} == {"image_keys"}
    policy = OnnxPolicy(bundle, threads=1, noise_seed=0)
    assert policy.predict(policy.dummy_observation()).actions.shape == (4, 7)


def test_can_bundle_on_300_demonstrations_is_its_recipe_and_the_graph_its_row_measured():
    """models/can_image_2cam_300: config/train/can_image_2cam.yaml's networks and method on 300 demonstrations, 7,500
    steps (config/train/can_image_2cam_300.yaml); its committed evaluation names its graph."""
    import json

    root = BUNDLE.parents[1]
    policy = OnnxPolicy(root / "models" / "can_image_2cam_300", threads=1, warmup=0)  # checks the file's digest
    manifest = policy.manifest
    assert [s.name for s in manifest.observation.images] == ["robot0_eye_in_hand_image", "agentview_image"]
    assert (manifest.execution, manifest.lookahead_s, manifest.lookahead_includes_latency) == ("latest", 0.05, False)
    assert manifest.training["command"].startswith("dm1 train --config config/train/can_image_2cam_300.yaml")
    assert manifest.training["episodes"] == 270
    recipe, fewer = committed_recipe("can_image_2cam_300"), committed_recipe("can_image_2cam")
    assert trained_recipe(manifest) == recipe
    assert {k for k in recipe if recipe[k] != fewer[k]} == {"data", "out_dir", "steps"}
    rows = sorted((root / "results" / "demos").glob("can_image_2cam_300_*.json"))
    assert rows and all(json.loads(r.read_text())["model_id"].endswith(manifest.onnx.sha256[:8]) for r in rows)
    assert policy.predict(policy.dummy_observation()).actions.shape == (4, 7)


def test_committed_square_state_policy_is_its_recipe_and_the_graph_its_rows_measured():
    """results/square_lowdim/square_lowdim: config/train/square_lowdim.yaml (24,000 steps), the model behind the
    committed square rows (their model ids end with its ONNX file's digest)."""
    import json

    root = BUNDLE.parents[1]
    bundle = root / "results" / "square_lowdim" / "square_lowdim"
    policy = OnnxPolicy(bundle, threads=1, warmup=0)  # checks the file's digest against its manifest
    manifest = policy.manifest
    assert manifest.observation.images == [] and manifest.observation.proprio_keys[-1] == "object"
    assert trained_recipe(manifest) == committed_recipe("square_lowdim")
    assert manifest.training["command"].startswith("dm1 train --config config/train/square_lowdim.yaml")
    for row in sorted((root / "results" / "square_lowdim").glob("*.json")):
        assert json.loads(row.read_text())["model_id"].endswith(manifest.onnx.sha256[:8]), row
    assert policy.predict(policy.dummy_observation()).actions.shape == (4, 7)


def test_distilled_square_state_policy_is_its_recipe_and_the_graph_its_rows_measured():
    """results/square_lowdim/square_lowdim_1000_distill: config/train/square_lowdim_1000_distill.yaml started from
    config/train/square_lowdim_1000.yaml's run; its one-step rows name its ONNX file, and it re-plans every tick."""
    import json

    root = BUNDLE.parents[1]
    bundle = root / "results" / "square_lowdim" / "square_lowdim_1000_distill"
    policy = OnnxPolicy(bundle, threads=1, warmup=0)
    manifest = policy.manifest
    trained, committed = trained_recipe(manifest), committed_recipe("square_lowdim_1000_distill")
    # The run directories had other names; the teacher's weights are pinned by their hash.
    assert {k for k in committed if committed[k] != trained[k]} == {"out_dir", "init_from"}
    assert committed["policy"]["method"]["distill_steps"] == 5 and committed["policy"]["method"]["distill_weight"] == 10
    assert manifest.training["init_from_hash"] == "6bb5ade918d49df3"
    teacher = committed_recipe("square_lowdim_1000")
    assert {k for k in teacher if teacher[k] != committed[k]} == {"out_dir", "init_from", "steps", "lr", "policy"}
    assert manifest.execution == "latest" and manifest.lookahead_s == 0.0 and manifest.sampling_steps == 1
    rows = sorted((root / "results" / "square_lowdim" / "onestep").glob("sq900_72k_distill5_w10_8k_1step_*.json"))
    assert len(rows) == 4 and all(json.loads(r.read_text())["model_id"].endswith(manifest.onnx.sha256[:8]) for r in rows)
    assert policy.predict(policy.dummy_observation()).actions.shape == (4, 7)


def test_int8_bundle_is_dm1_quantize_of_the_fast_bundle_and_the_graph_its_rows_measured(tmp_path):
    """models/lift_image_fast_int8: `dm1 quantize models/lift_image_fast` (int8 weight products, 7-bit weights, right
    on every CPU); remade here bit for bit, within tolerance of its float graph on this CPU, and the committed
    evaluations name its graph or its 8-bit predecessor's (results/int8/lift_image_fast_int8_w8)."""
    import json

    from dm1_ros.policy.quantize import quantize_bundle

    bundle = BUNDLE.parent / "lift_image_fast_int8"
    manifest, _ = load_bundle(bundle)
    source, _ = load_bundle(FAST)
    assert manifest.training["quantization"]["source_sha256"] == source.onnx.sha256
    assert manifest.training["quantization"]["weight_bits"] == 7
    assert manifest.training["quantization"]["command"] == "dm1 quantize models/lift_image_fast --out models/lift_image_fast_int8"
    assert (manifest.execution, manifest.lookahead_s, manifest.lookahead_includes_latency) == (
        source.execution, source.lookahead_s, source.lookahead_includes_latency)
    again = quantize_bundle(FAST, tmp_path / "lift_image_fast_int8")  # its parity check runs on this CPU
    assert again.onnx.sha256 == manifest.onnx.sha256 and again.parity.max_abs_diff <= 0.1
    predecessor, _ = load_bundle(BUNDLE.parents[1] / "results" / "int8" / "lift_image_fast_int8_w8")
    named = {json.loads(row.read_text())["model_id"]
             for row in (BUNDLE.parents[1] / "results" / "int8").rglob("lift_image_fast_int8*.json")}
    assert manifest.model_id in named and named <= {manifest.model_id, predecessor.model_id}


@pytest.mark.parametrize("name", ["lift_image", "can_image_2cam", "lift_image_fast"])
def test_committed_8bit_int8_bundles_are_dm1_quantize_of_shipped_models_and_the_graphs_their_rows_measured(name, tmp_path):
    """results/int8/*_int8*: the int8 bundles behind docs/results.md's 8-bit int8 rows (measured on a CPU with VNNI;
    not shipped): `dm1 quantize --weight-bits 8` remakes each graph bit for bit, and on a CPU without VNNI the
    runtime refuses them instead of running wrong actions."""
    import json

    from dm1_ros.policy.quantize import write_int8_graph
    from dm1_ros.runtime.bundle import BundleError, sha256_file
    from dm1_ros.runtime.cpu import this_cpu_saturates_int8

    root = BUNDLE.parents[1]
    bundle = root / "results" / "int8" / (f"{name}_int8_w8" if name == "lift_image_fast" else f"{name}_int8")
    manifest, _ = load_bundle(bundle)
    source, source_graph = load_bundle(root / "models" / name)
    assert manifest.training["quantization"]["source_sha256"] == source.onnx.sha256
    assert manifest.training["quantization"].get("weight_bits", 8) == 8
    write_int8_graph(source_graph, tmp_path / "model.onnx", weight_bits=8)
    assert sha256_file(tmp_path / "model.onnx") == manifest.onnx.sha256
    if this_cpu_saturates_int8():
        with pytest.raises(BundleError, match="8-bit int8 weights"):
            OnnxPolicy(bundle, warmup=0)
    else:
        policy = OnnxPolicy(bundle, warmup=0)
        assert policy.predict(policy.dummy_observation()).actions.shape == (4, 7)
    if name != "lift_image_fast":  # lift_image_fast's rows: the test above
        rows = [r for r in sorted((root / "results" / "int8").glob(f"{name}_int8_*.json")) if "_w7_" not in r.name]
        assert rows and all(json.loads(r.read_text())["model_id"] == manifest.model_id for r in rows)


@pytest.mark.parametrize("name", ["lift_image", "can_image_2cam"])
def test_committed_7bit_int8_bundles_are_dm1_quantize_of_shipped_models_and_the_graphs_their_rows_measured(name, tmp_path):
    """results/int8/<name>_int8_w7: `dm1 quantize models/<name>` with the default 7-bit weights, evaluated on a CPU
    without VNNI (docs/results.md's int8 rows); remade bit for bit, within tolerance on this CPU."""
    import json

    from dm1_ros.policy.quantize import quantize_bundle

    root = BUNDLE.parents[1]
    manifest, _ = load_bundle(root / "results" / "int8" / f"{name}_int8_w7")
    source, _ = load_bundle(root / "models" / name)
    quantization = manifest.training["quantization"]
    assert quantization["source_sha256"] == source.onnx.sha256 and quantization["weight_bits"] == 7
    again = quantize_bundle(root / "models" / name, tmp_path / f"{name}_int8_w7")
    assert again.onnx.sha256 == manifest.onnx.sha256 and again.parity.max_abs_diff <= 0.1
    rows = sorted((root / "results" / "int8").glob(f"{name}_int8_w7_*.json"))
    assert rows and all(json.loads(r.read_text())["model_id"] == manifest.model_id for r in rows)


def test_square_camera_bundle_is_the_pose_reader_chained_to_the_distilled_state_policy():
    """models/square_image: `dm1 export --actor` of a pose reader (bench/pose_reader.py: config/train/
    square_image_dagger2.yaml's encoder and pose head with DMPO's stem, 16,000 steps on 4,000 scenes) and
    results/square_lowdim/square_lowdim_1000_distill; its committed evaluation names its graph."""
    import json

    from dm1_ros.configuration import from_dict, to_dict
    from dm1_ros.train.pretrain import TrainConfig

    root = BUNDLE.parents[1]
    policy = OnnxPolicy(root / "models" / "square_image", threads=1, warmup=0)  # checks the file's digest
    manifest = policy.manifest
    assert [s.name for s in manifest.observation.images] == ["robot0_eye_in_hand_image", "agentview_image"]
    assert manifest.observation.proprio_keys == ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
    assert (manifest.method, manifest.sampling_steps, manifest.execution) == ("meanflow", 1, "latest")
    reader, actor = manifest.training["reader"], manifest.training["actor"]
    assert reader["command"].startswith("python bench/pose_reader.py train --scenes data/pose_scenes.npz")
    assert reader["data_hash"] == "b848df043035fbf6" and reader["steps"] == 16000
    trained, committed = to_dict(from_dict(TrainConfig, reader["recipe"])), committed_recipe("square_image_dagger2")
    assert {k for k in committed if committed[k] != trained[k]} == {"steps", "policy"}
    assert {k for k in committed["policy"] if committed["policy"][k] != trained["policy"][k]} == {"vision"}
    assert (trained["policy"]["vision"]["stem_kernel"], trained["policy"]["vision"]["stem_stride"]) == (8, 4)
    shipped_actor = load_bundle(root / "results" / "square_lowdim" / "square_lowdim_1000_distill")[0]
    assert actor["model_id"] == shipped_actor.model_id and actor["command"] == shipped_actor.training["command"]
    row = json.loads((root / "results" / "demos" / "square_image_first_100ep.json").read_text())
    assert row["model_id"] == manifest.model_id and row["episodes"] == 100
    assert policy.predict(policy.dummy_observation()).actions.shape == (4, 7)
