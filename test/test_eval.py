"""Export + evaluation of a tiny model end to end in simulation, through the ONNX runtime."""
import json

import numpy as np
import pytest

pytest.importorskip("robosuite")

from dm1_ros.policy.config import HeadConfig, PolicyConfig, VisionConfig  # noqa: E402
from dm1_ros.policy.export import export_bundle  # noqa: E402
from dm1_ros.policy.model import GenerativePolicy  # noqa: E402
from dm1_ros.runtime.bundle import BundleError  # noqa: E402
from dm1_ros.train.evaluate import EvalArgs, evaluate, wilson_interval, write_summary  # noqa: E402


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    policy = GenerativePolicy(PolicyConfig(vision=VisionConfig(channels=8, heads=2, pool_dim=8), head=HeadConfig(hidden=32)))
    policy.action_normalizer.fit(np.array([[-0.3] * 6 + [-1.0], [0.3] * 6 + [1.0]]))
    policy.proprio_normalizer.fit(np.random.default_rng(0).uniform(-1, 1, (32, 9)))
    out = tmp_path_factory.mktemp("b") / "tiny"
    export_bundle(policy, out)
    return out


def test_eval_runs_end_to_end_and_writes_summary(tiny_bundle, tmp_path):
    summary = evaluate(EvalArgs(model=str(tiny_bundle), task="lift", episodes=2, max_steps=8, video=str(tmp_path / "v.mp4")),
                       progress=False)
    assert summary["episodes"] == 2 and summary["mean_steps"] == 8 and summary["successes"] == 0
    assert summary["ci95"][0] == 0.0 and 0 < summary["ci95"][1] < 1
    assert summary["policy_latency_ms"]["p50"] > 0 and (tmp_path / "v.mp4").stat().st_size > 1000
    write_summary(summary, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())["task"] == "lift"
    assert "| lift | meanflow | 1 | first | 0/2" in (tmp_path / "s.md").read_text()


def test_eval_runs_chunks_the_way_the_bundle_says_unless_told(tmp_path):
    policy = GenerativePolicy(PolicyConfig(vision=VisionConfig(channels=8, heads=2, pool_dim=8), head=HeadConfig(hidden=32)))
    policy.action_normalizer.fit(np.array([[-0.3] * 6 + [-1.0], [0.3] * 6 + [1.0]]))
    policy.proprio_normalizer.fit(np.random.default_rng(0).uniform(-1, 1, (32, 9)))
    export_bundle(policy, tmp_path / "chunked", execution="chunk")
    args = dict(model=str(tmp_path / "chunked"), task="lift", episodes=1, max_steps=6)
    by_manifest = evaluate(EvalArgs(**args), progress=False)
    told = evaluate(EvalArgs(**args, execute="first"), progress=False)
    assert by_manifest["execute"] == "chunk" and told["execute"] == "first"
    # open loop: one plan per 4-action chunk (2 in 6 steps) against one per step
    assert by_manifest["per_episode"][0]["cadence"]["infer"]["n"] == 2
    assert told["per_episode"][0]["cadence"]["infer"]["n"] == 6


def test_eval_refuses_a_model_the_robot_cannot_feed(tiny_bundle, tmp_path):
    import shutil

    import yaml

    other = tmp_path / "other"
    shutil.copytree(tiny_bundle, other)
    manifest = yaml.safe_load((other / "manifest.yaml").read_text())
    manifest["observation"]["proprio_keys"] = ["robot0_joint_pos"]
    manifest["observation"]["proprio_dims"] = [9]
    (other / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(BundleError, match="proprio layout"):
        evaluate(EvalArgs(model=str(other), task="lift", episodes=1, max_steps=2), progress=False)


def test_wilson_interval():
    lo, hi = wilson_interval(50, 50)
    assert hi == 1.0 and 0.92 < lo < 0.94
    lo, hi = wilson_interval(25, 50)
    assert lo < 0.5 < hi and hi - lo < 0.3
