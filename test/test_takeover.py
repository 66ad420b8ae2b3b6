"""Recovery demonstrations (`dm1 collect --takeover`): a policy drives, the scripted expert finishes, and only the
expert's part is recorded, starting exactly at the hand-over."""
import h5py
import numpy as np
import pytest

pytest.importorskip("robosuite")

from dm1_ros.sim.collect import CollectArgs, collect  # noqa: E402
from dm1_ros.sim.env import SimConfig, SimEnv  # noqa: E402
from dm1_ros.sim.experts import finish_episode, make_expert  # noqa: E402
from dm1_ros.sim.takeover import takeover_tick  # noqa: E402


def test_takeover_tick_is_drawn_from_the_seed_within_the_range():
    ticks = [takeover_tick(seed, (10, 20)) for seed in range(200)]
    assert min(ticks) == 10 and max(ticks) == 20
    assert ticks == [takeover_tick(seed, (10, 20)) for seed in range(200)]  # a resumed run draws the same
    assert takeover_tick(3, (7, 7)) == 7
    for bad in ((0, 5), (9, 4)):
        with pytest.raises(ValueError, match="takeover ticks"):
            takeover_tick(0, bad)


@pytest.fixture
def tiny_bundle(tiny_policy, tmp_path):
    from dm1_ros.policy.export import export_bundle

    manifest = export_bundle(tiny_policy, tmp_path / "bundle", training={"command": "pytest"})
    return str(tmp_path / "bundle"), manifest.model_id


def test_takeover_collection_records_the_expert_from_the_hand_over(tiny_bundle, tmp_path):
    bundle, model_id = tiny_bundle
    out = tmp_path / "lift.hdf5"
    expert_only = collect(CollectArgs(task="lift", episodes=1, out=str(out), image_size=32), progress=False)
    with h5py.File(out) as f:
        expert_actions = f["data/demo_0/actions"][()]
    # extends the expert's dataset: its episode is kept as it was, the recovery episodes are added
    summary = collect(CollectArgs(task="lift", episodes=3, out=str(out), image_size=32, seed=50, takeover=bundle,
                                  takeover_ticks=(5, 12)), progress=False)
    assert expert_only["kept"] == 1 and summary["kept"] == 3 and summary["new"] == 2
    with h5py.File(out) as f:
        demos = [f["data"][k] for k in sorted(f["data"].keys())]
        expert = [d for d in demos if "takeover_tick" not in d.attrs]
        recovery = [d for d in demos if "takeover_tick" in d.attrs]
        assert len(expert) == 1 and np.array_equal(expert[0]["actions"][()], expert_actions)
        assert len(recovery) == 2
        for d in recovery:
            tick = int(d.attrs["takeover_tick"])
            assert tick == takeover_tick(int(d.attrs["seed"]), (5, 12))
            assert d.attrs["takeover_policy"] == model_id and d.attrs["success"]
            assert d.attrs["policy_progress"] == ""  # an untrained policy in 12 ticks grasps nothing
            assert int(d.attrs["expert_steps"]) == d["actions"].shape[0] == d["obs/robot0_eye_in_hand_image"].shape[0]
            # the first recorded observation is the scene the policy left, tick ticks after the reset
            assert d["timestamps"][0] == pytest.approx(tick / 20.0)
            assert np.all(np.abs(d["actions"][()]) <= 1.0)


def test_takeover_refuses_a_policy_that_cannot_read_the_collection(tiny_bundle, tmp_path):
    bundle, _ = tiny_bundle
    with pytest.raises(ValueError, match="cannot read this collection's observations"):
        collect(CollectArgs(task="lift", episodes=1, out=str(tmp_path / "x.hdf5"), image_size=96, takeover=bundle),
                progress=False)
    assert not (tmp_path / "x.hdf5").exists()


def test_square_expert_resumes_with_the_nut_in_hand_and_finishes():
    env = SimEnv(SimConfig(task="square", use_images=False))
    try:
        env.reset(seed=0)
        fresh = make_expert("square", seed=1)
        fresh.resume(env)
        assert fresh.phase == 0  # the nut on the table: approach it
        driver = make_expert("square", seed=0)
        driver.reset(env)
        while driver.phase < 4:  # grasped and lifted
            env.step(np.clip(driver.act(env), -1, 1))
        assert env.raw_observation()["SquareNut_pos"][2] > 0.9
        taker = make_expert("square", seed=1)
        taker.resume(env)
        assert taker.phase == 3 and taker.holds_nut(env)
        assert taker.nut_yaw_target in (np.pi / 2, np.pi, -np.pi / 2)
        success, steps = finish_episode(env, taker)
        assert success and steps > 10
    finally:
        env.close()
