"""Export + evaluation of a tiny model end to end in simulation, through the ONNX runtime."""
import json

import numpy as np
import pytest

pytest.importorskip("robosuite")

from dm1_ros.policy.config import HeadConfig, PolicyConfig, VisionConfig  # noqa: E402
from dm1_ros.policy.export import export_bundle  # noqa: E402
from dm1_ros.policy.model import GenerativePolicy  # noqa: E402
from dm1_ros.runtime.bundle import BundleError  # noqa: E402
from dm1_ros.runtime.cpu import cpu_description  # noqa: E402
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
    assert summary["cpu"] == cpu_description()  # latency means little without the CPU it came from
    assert summary["progress"] == {"grasped": 0, "success": 0} and summary["per_episode"][0]["progress"] == []
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
    # how much each re-plan changed the last one's actions: measured when plans overlap, i.e. re-planning only
    assert by_manifest["replan_change"] == {"compared": 0, "arm_rms": None, "gripper_flips": None}
    change = told["per_episode"][0]["replan_change"]
    assert change["compared"] == 5 and change["arm_rms"] > 0 and 0 <= change["gripper_flips"] <= 1
    assert told["replan_change"] == pytest.approx(change)  # one episode pools to itself (to rounding)


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


def test_delayed_observations_are_the_world_of_n_ticks_ago():
    from dm1_ros.sim.env import SimConfig
    from dm1_ros.sim.latency import DelayedObservations
    from dm1_ros.sim.robot import SimRobot
    from dm1_ros.train.evaluate import delay_ticks

    assert delay_ticks(100, 20.0) == 2 and delay_ticks(0, 20.0) == 0
    with pytest.raises(ValueError, match="non-negative"):
        delay_ticks(-50, 20.0)
    sim = SimRobot(SimConfig(task="lift", use_images=False))
    try:
        for restamp in (False, True):
            robot = DelayedObservations(sim, ticks=2, restamp=restamp)
            robot.reset(seed=1)
            truth, seen = [], []
            for _ in range(6):
                truth.append(sim.observe())
                seen.append(robot.observe())
                assert robot.now() == truth[-1].stamp
                robot.apply(np.array([0.5, 0, 0, 0, 0, 0, -1.0]))  # the hand moves: each tick's proprio differs
            for k in range(6):
                np.testing.assert_array_equal(seen[k].proprio, truth[max(0, k - 2)].proprio)  # the world 2 ticks ago
                # stamped: its own capture time (the runtime skips the actions planned for instants now past);
                # naive: stamped now, its actions start at once
                assert seen[k].stamp == (truth[k].stamp if restamp else truth[max(0, k - 2)].stamp)
            assert not np.array_equal(truth[0].proprio, truth[2].proprio)
    finally:
        sim.close()


def test_eval_with_a_delay_records_it(tiny_bundle):
    summary = evaluate(EvalArgs(model=str(tiny_bundle), task="lift", episodes=1, max_steps=6, delay_ms=100), progress=False)
    assert summary["delay_ms"] == 100 and summary["mean_steps"] == 6 and summary["delay_mode"] == "stamped"
    # stamped: the first two actions of each 4-action chunk are in the past when it arrives; the rest ran
    assert summary["per_episode"][0]["holds"].get("no_valid_action", 0) <= 2
    from dm1_ros.train.evaluate import markdown_row

    assert "100 ms delay" in markdown_row(summary)


def _ramp_run(bundle, blending, ticks, **loop_kwargs) -> list[float]:
    """The x of each action the sim robot was sent, from a policy whose actions say their index (0.0, 0.1, ...)."""
    from dm1_ros.runtime.bundle import read_manifest
    from dm1_ros.runtime.contract import ActionChunk
    from dm1_ros.runtime.loop import control_loop
    from dm1_ros.sim.env import SimConfig
    from dm1_ros.sim.robot import SimRobot

    class Ramp:
        def __init__(self, manifest):
            self.manifest, self.model_id = manifest, "ramp"

        def predict(self, obs):
            a = np.zeros((4, 7), np.float32)
            a[:, 0] = np.arange(4) * 0.1
            return ActionChunk(a, obs.stamp, "ramp")

    robot = SimRobot(SimConfig(task="lift"))
    applied = []
    original = robot.apply
    robot.apply = lambda action: (applied.append(round(float(np.asarray(action)[0]), 3)), original(action))
    try:
        loop = control_loop(robot, Ramp(read_manifest(bundle)), blending, interpolate=False, **loop_kwargs)
        robot.reset(seed=0)
        for _ in range(ticks):
            loop.tick()
    finally:
        robot.close()
    return applied


def test_lookahead_runs_the_action_planned_for_later(tiny_bundle, tmp_path):
    """Re-planning every tick at 20 Hz: lookahead 100 ms runs each chunk's third action (index 2); without one, the
    bundle's manifest lookahead_s is used; in chunk mode a chunk runs from that action to its end."""
    import shutil

    from dm1_ros.runtime.bundle import set_execution
    from dm1_ros.train.evaluate import markdown_row

    assert _ramp_run(tiny_bundle, "latest", 3) == [0.0, 0.0, 0.0]
    assert _ramp_run(tiny_bundle, "latest", 3, lookahead_s=0.1) == [0.2, 0.2, 0.2]
    bundle = tmp_path / "ahead"
    shutil.copytree(tiny_bundle, bundle)
    assert set_execution(bundle, lookahead_s=0.05, command="dm1 execution ahead --lookahead-ms 50").lookahead_s == 0.05
    assert _ramp_run(bundle, "latest", 3) == [0.1, 0.1, 0.1]
    assert _ramp_run(bundle, "latest", 2, lookahead_s=0.0) == [0.0, 0.0]  # the caller's setting wins
    assert _ramp_run(bundle, "chunk", 7) == [0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.1]
    summary = evaluate(EvalArgs(model=str(bundle), task="lift", episodes=1, max_steps=4), progress=False)
    assert summary["lookahead_ms"] == 50 and "50 ms lookahead" in markdown_row(summary)
    summary = evaluate(EvalArgs(model=str(bundle), task="lift", episodes=1, max_steps=4, lookahead_ms=0), progress=False)
    assert summary["lookahead_ms"] == 0


def test_execution_verb_changes_the_manifest_not_the_network(tiny_bundle, tmp_path, capsys):
    import shutil

    from dm1_ros.cli import main
    from dm1_ros.runtime.bundle import load_bundle, read_manifest

    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    onnx_before = (bundle / "model.onnx").read_bytes()
    assert main(["execution", str(bundle), "--execution", "chunk", "--lookahead-ms", "50"]) == 0
    assert "execution chunk, lookahead 50 ms" in capsys.readouterr().out
    manifest, _ = load_bundle(bundle)  # the hash still matches: the graph is untouched
    assert manifest.lookahead_s == 0.05 and manifest.execution == "chunk"
    assert (bundle / "model.onnx").read_bytes() == onnx_before and "execution_set_by" in manifest.training
    before = (bundle / "manifest.yaml").read_text()
    assert main(["execution", str(bundle), "--lookahead-ms", "200"]) == 1  # a whole chunk (4 at 20 Hz) ahead
    err = capsys.readouterr().err
    assert "lookahead_s must lie in [0, 0.2)" in err and "left as it was" in err
    assert (bundle / "manifest.yaml").read_text() == before
    assert read_manifest(bundle).lookahead_s == 0.05
    assert not read_manifest(bundle).lookahead_includes_latency  # off unless asked for
    assert main(["execution", str(bundle), "--latency-in-lookahead", "on"]) == 0
    assert "lookahead 50 ms (latency included)" in capsys.readouterr().out
    manifest, _ = load_bundle(bundle)
    assert manifest.lookahead_includes_latency and (manifest.execution, manifest.lookahead_s) == ("chunk", 0.05)
    assert main(["execution", str(bundle), "--latency-in-lookahead", "off"]) == 0
    assert not read_manifest(bundle).lookahead_includes_latency
