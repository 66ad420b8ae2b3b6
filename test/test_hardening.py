"""A careless user and an attacker: no code from checkpoints, no silent overwrite, every bundle value checked, and
every `dm1` mistake one line with a non-zero exit (each test here failed before these were fixed)."""
import math
import os
import shutil

import numpy as np
import pytest
import torch
import yaml

from dm1_ros import cli
from dm1_ros.configuration import ConfigError, load_yaml
from dm1_ros.data.episodes import Episode, EpisodeStore
from dm1_ros.policy import export
from dm1_ros.policy.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from dm1_ros.runtime.bundle import BundleError, read_manifest, sha256_file
from dm1_ros.runtime.contract import Observation
from dm1_ros.runtime.onnx_policy import OnnxPolicy
from dm1_ros.sim.collect import CollectArgs, check_resumable
from dm1_ros.train.dataset import DatasetError
from dm1_ros.train.pretrain import TrainConfig, train

KEY = "robot0_eye_in_hand_image"


def dm1(capsys, *argv):
    """-> (exit status, stderr) of `dm1 ARGV` run in-process."""
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse refusals
        status = exc.code
    return status, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and "Traceback" not in err, err
    return lines[-1]


# --- checkpoints never run code -------------------------------------------------------------------------------
class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_is_refused_without_running_its_code(tiny_policy, tmp_path, capsys):
    marker = tmp_path / "pwned"
    good = save_checkpoint(tmp_path / "good.pt", tiny_policy)
    payload = torch.load(good, weights_only=True)
    payload["provenance"] = Payload(marker)
    torch.save(payload, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="objects other than tensors.*posix.system"):
        read_checkpoint(tmp_path / "evil.pt")
    for argv in (["export", tmp_path / "evil.pt", "--out", tmp_path / "b"],
                 ["eval", "--model", tmp_path / "evil.pt", "--episodes", 1]):
        status, err = dm1(capsys, *argv)
        assert status == 1 and "refused" in one_line(err)
    assert not marker.exists() and not (tmp_path / "b").exists()
    assert read_checkpoint(good)["format"]  # a real checkpoint loads weights-only


# --- outputs are never overwritten silently ----------------------------------------------------------------------
def test_export_replaces_only_a_bundle_and_only_with_force(tiny_policy, tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "run" / "last.pt", tiny_policy)
    status, err = dm1(capsys, "export", ckpt, "--out", tmp_path / "run")  # the run holding the checkpoint
    assert status == 1 and "not a bundle" in one_line(err) and ckpt.is_file()
    status, err = dm1(capsys, "export", ckpt, "--out", tmp_path / "run", "--force")
    assert status == 1 and "not a bundle" in one_line(err) and ckpt.is_file()
    assert dm1(capsys, "export", ckpt, "--out", tmp_path / "b")[0] == 0
    first = read_manifest(tmp_path / "b").model_id
    status, err = dm1(capsys, "export", ckpt, "--out", tmp_path / "b", "--steps", 2)
    assert status == 1 and "--force" in one_line(err) and read_manifest(tmp_path / "b").model_id == first
    assert dm1(capsys, "export", ckpt, "--out", tmp_path / "b", "--steps", 2, "--force")[0] == 0
    assert read_manifest(tmp_path / "b").sampling_steps == 2
    status, err = dm1(capsys, "export", ckpt, "--out", tmp_path / "c", "--steps", -1)
    assert status == 2 and "--steps" in err and not (tmp_path / "c").exists()
    with pytest.raises(export.ExportError, match="steps must be"):
        export.export_bundle(tiny_policy, tmp_path / "c", steps=0)


def test_eval_out_never_overwrites_a_file(tiny_policy, tmp_path, capsys):
    export.export_bundle(tiny_policy, tmp_path / "b")
    dataset = tmp_path / "lift.hdf5"
    dataset.write_bytes(b"weeks of demonstrations")
    status, err = dm1(capsys, "eval", "--model", tmp_path / "b", "--episodes", 1, "--out", dataset)
    assert status == 1 and "exists" in one_line(err) and dataset.read_bytes() == b"weeks of demonstrations"


def tiny_recipe(data, out, **kw):
    from dm1_ros.policy.config import HeadConfig, PolicyConfig, VisionConfig

    policy = PolicyConfig(image_size=[32, 32], vision=VisionConfig(channels=16, heads=2, pool_dim=16), head=HeadConfig(hidden=32))
    return TrainConfig(data=str(data), out_dir=str(out), policy=policy, steps=4, batch_size=8, warmup_steps=1,
                       checkpoint_every=1000, validate_every=1000, log_every=2, threads=1, **kw)


def test_train_refuses_an_existing_run_and_force_moves_it_aside(fake_dataset, tmp_path, monkeypatch):
    run = tmp_path / "run"
    trained = train(tiny_recipe(fake_dataset, run), progress=False)
    original = trained.read_bytes()
    with pytest.raises(FileExistsError, match="already holds a run.*--resume.*--force"):
        train(tiny_recipe(fake_dataset, run), progress=False)
    assert trained.read_bytes() == original
    # a forced run that fails at its first step writes no checkpoint, and the old run is kept aside
    from dm1_ros.policy.model import GenerativePolicy

    monkeypatch.setattr(GenerativePolicy, "compute_loss",
                        lambda self, batch, gen=None, teacher=None: (torch.tensor(float("nan"), requires_grad=True), {}))
    with pytest.raises(FloatingPointError):
        train(tiny_recipe(fake_dataset, run), progress=False, force=True)
    assert not (run / "last.pt").exists()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(aside) == 1 and (aside[0] / "last.pt").read_bytes() == original


def test_collect_refuses_to_mix_another_collection(tmp_path, capsys):
    out = tmp_path / "lift.hdf5"
    n = 3
    episode = Episode(obs={KEY: np.zeros((n, 96, 96, 3), np.uint8), "robot0_eef_pos": np.zeros((n, 3))},
                      actions=np.zeros((n, 7), np.float32), rewards=np.zeros(n, np.float32), dones=np.zeros(n, np.uint8),
                      attrs={"task": "lift"})
    EpisodeStore(out).add("seed_0", episode)
    check_resumable(EpisodeStore(out), CollectArgs(task="lift", out=str(out)))  # the same collection resumes
    with pytest.raises(DatasetError, match="task 'lift', not 'square'"):
        check_resumable(EpisodeStore(out), CollectArgs(task="square", out=str(out)))
    with pytest.raises(DatasetError, match="agentview_image"):
        check_resumable(EpisodeStore(out), CollectArgs(task="lift", out=str(out), cameras=("agentview",)))
    status, err = dm1(capsys, "collect", "--task", "can", "--episodes", 5, "--out", out)
    assert status == 1 and "another collection" in one_line(err)
    assert EpisodeStore(out).shard_names() == ["seed_0"]


# --- every bundle value is range-checked at load -----------------------------------------------------------------
@pytest.fixture
def bundle(tiny_policy, tmp_path):
    out = tmp_path / "tiny"
    export.export_bundle(tiny_policy, out)
    return out


def edit_manifest(bundle, edit):
    path = bundle / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize("edit, named", [
    (lambda m: m.update(control_rate_hz=0.0), "control_rate_hz"),
    (lambda m: m.update(control_rate_hz=-20.0), "control_rate_hz"),
    (lambda m: m.update(control_rate_hz=float("inf")), "control_rate_hz"),
    (lambda m: m.update(sampling_steps=-1), "sampling_steps"),
    (lambda m: m["normalization"]["action_min"].__setitem__(0, float("nan")), "normalization"),
    (lambda m: m["normalization"].update(action_max=[1.0]), "normalization"),
    (lambda m: m["action"].update(chunk=1 << 40), "chunk"),
    (lambda m: m["onnx"].update(file="../model.onnx"), "inside the bundle"),
])
def test_out_of_range_manifest_values_are_named(bundle, edit, named):
    edit_manifest(bundle, edit)
    with pytest.raises(BundleError, match=named):
        OnnxPolicy(bundle)


def test_a_model_whose_output_disagrees_with_its_manifest_is_refused_at_load(bundle):
    edit_manifest(bundle, lambda m: m["action"].update(chunk=m["action"]["chunk"] + 1))
    with pytest.raises(BundleError, match="output"):
        OnnxPolicy(bundle)


def test_a_model_with_nonfinite_output_is_refused_at_load(bundle):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    model = onnx.load(bundle / "model.onnx")
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)) if t.dims else 0)
    init.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(init).shape, np.nan, np.float32), init.name))
    onnx.save(model, bundle / "model.onnx")
    edit_manifest(bundle, lambda m: m["onnx"].update(sha256=sha256_file(bundle / "model.onnx")))
    with pytest.raises(BundleError, match="NaN or Inf"):
        OnnxPolicy(bundle)


def test_proprio_far_outside_the_training_range_is_counted_and_warned(bundle, caplog):
    policy = OnnxPolicy(bundle)
    rng = np.random.default_rng(0)
    image = {KEY: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)}
    low = np.asarray(policy.manifest.normalization.proprio_min)
    policy.predict(Observation(image, low.astype(np.float32), 0.0))
    assert policy.proprio_out_of_range == 0
    far = (low - 100.0).astype(np.float32)
    with caplog.at_level("WARNING"):
        policy.predict(Observation(image, far, 0.1))
    assert policy.proprio_out_of_range == 1 and "outside" in caplog.text


# --- every config value is checked ------------------------------------------------------------------------------
@pytest.mark.parametrize("override, named", [("grad_clip=.nan", "grad_clip"), ("device=tpu", "device"),
                                              ("lr=-1", "lr"), ("batch_size=0", "batch_size"), ("lr=[1", "YAML")])
def test_train_config_values_are_checked(override, named):
    with pytest.raises(ConfigError, match=named):
        load_yaml(TrainConfig, "config/train/lift_image.yaml", [override])


def test_numbers_written_as_text_are_numbers():
    assert load_yaml(TrainConfig, "config/train/lift_image.yaml", ["lr=1e-3"]).lr == 1e-3
    assert math.isclose(load_yaml(TrainConfig, "config/train/lift_image.yaml", ["lr='2e-4'"]).lr, 2e-4)


# --- one line, non-zero, for every subcommand --------------------------------------------------------------------
@pytest.mark.parametrize("argv, status, named", [
    (["eval", "--model", "models/lift_image", "--episodes", "0"], 2, "--episodes"),
    (["eval", "--model", "/nonexistent"], 1, "/nonexistent"),
    (["eval", "--model", "models/lift_image", "--steps", "5"], 2, "checkpoint"),
    (["train", "--config", "config/train/lift_image.yaml", "--set", "lr=[1"], 1, "YAML"),
    (["train", "--config", "/nonexistent.yaml"], 1, "nonexistent"),
    (["train", "--config", "config/train/lift_image.yaml", "--set", "data=/nonexistent.hdf5", "--set", "out_dir=OUT"],
     1, "nonexistent"),
    (["finetune", "--config", "config/finetune/lift_lowdim.yaml", "--init", "/nonexistent.pt", "--set", "out_dir=OUT"],
     1, "nonexistent"),
    (["run", "--model", "/nonexistent"], 1, "/nonexistent"),
    (["run", "--robot", "franka", "--camera", "replay"], 2, "--replay"),
    (["run", "--robot", "franka", "--camera", "replay", "--replay", "a.db3", "b.db3"], 2,
     "--replay takes one value for this one-camera model, got 2"),
    (["collect", "--task", "lift"], 2, "--out"),
    (["export", "/nonexistent.pt", "--out", "OUT"], 1, "nonexistent"),
    (["demo", "--model", "/nonexistent"], 1, "/nonexistent"),
])
def test_every_subcommand_turns_a_mistake_into_one_line(capsys, tmp_path, argv, status, named):
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    got, err = dm1(capsys, *argv)
    assert got == status, err
    assert named in (one_line(err) if status == 1 else err)
    assert len([line for line in err.splitlines() if line.startswith("dm1")]) == 1  # one line names it


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(BundleError):
        cli.main(["--debug", "eval", "--model", "/nonexistent"])


def test_a_bug_is_one_line_that_points_to_debug(capsys, monkeypatch):
    def broken(args):
        raise KeyError("oops")

    monkeypatch.setattr(cli, "cmd_toy", broken)  # build_parser() binds the subcommand when main() calls it
    status, err = dm1(capsys, "toy")
    assert status == 3 and "--debug" in one_line(err) and "KeyError" in err


def test_checkpoints_written_by_training_load_weights_only(fake_dataset, tmp_path):
    payload = read_checkpoint(train(tiny_recipe(fake_dataset, tmp_path / "r"), progress=False))
    assert payload["step"] == 4 and isinstance(payload["numpy_rng"], dict)
    shutil.rmtree(tmp_path / "r")


def test_dm1_run_reloads_its_model_on_sighup_and_stops_on_ctrl_c(tmp_path):
    """The README's `kill -HUP` reload: the loop swaps to the re-read bundle between ticks and keeps running."""
    pytest.importorskip("robosuite")
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "dm1_ros.cli", "run", "--robot", "sim", "--episodes", "3",
                             "--report-every", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    try:
        def read_until(needle, timeout=120.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    return False
                lines.append(line)
                if needle in line:
                    return True
            return False

        assert read_until("cadence: "), "".join(lines)  # the loop is running
        proc.send_signal(signal.SIGHUP)
        assert read_until("model swap done"), "".join(lines)
        proc.send_signal(signal.SIGINT)
        lines.append(proc.communicate(timeout=60)[0])
        assert proc.returncode == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(lines)
    assert "SIGHUP, reloading" in text and "stopped: robot holding" in text and "swaps 1 (0 refused)" in text


def test_run_takes_one_serial_or_recording_per_camera_in_manifest_order():
    cameras = ["robot0_eye_in_hand_image", "agentview_image"]
    assert cli._per_camera(["111", "222"], cameras, "--serial-no") == ["111", "222"]
    assert cli._per_camera(["111"], cameras[:1], "--serial-no") == "111" and cli._per_camera(None, cameras, "x") is None
    with pytest.raises(cli.UsageError, match=r"one value per camera of the model \(2: robot0_eye_in_hand_image, "
                                             r"agentview_image, in this order\), got 1"):
        cli._per_camera(["111"], cameras, "--serial-no")


def test_camera_mounts_of_a_point_cloud_model_on_the_franka():
    mounts = cli._camera_mounts(["agentview=fixed:0.5,0,1.2,0,0,0,1", "wrist=hand:0,0,0.05,0,0,0.7071068,0.7071068"],
                                ["agentview", "wrist"])
    assert mounts["agentview"].mount == "fixed" and mounts["agentview"].transform[:3, 3].tolist() == [0.5, 0, 1.2]
    np.testing.assert_allclose(mounts["wrist"].transform[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-6)  # 90 deg about z
    with pytest.raises(cli.UsageError, match=r"no mount for \['wrist'\]"):
        cli._camera_mounts(["agentview=fixed:0,0,0,0,0,0,1"], ["agentview", "wrist"])
    with pytest.raises(cli.UsageError, match="NAME=fixed:x,y,z,qx,qy,qz,qw"):
        cli._camera_mounts(["agentview=side:0,0,0"], ["agentview"])
    assert cli._camera_mounts([], []) == {}
