"""robosuite behind the contract, scripted experts, collection (about 40 s on 2 cores)."""
import h5py
import numpy as np
import pytest

pytest.importorskip("robosuite")

from dm1_ros.sim import collect as collect_mod  # noqa: E402
from dm1_ros.sim.collect import CollectArgs, collect  # noqa: E402
from dm1_ros.sim.env import SimConfig, SimEnv  # noqa: E402
from dm1_ros.sim.experts import make_expert, run_expert_episode  # noqa: E402
from dm1_ros.train.dataset import RobomimicDataset  # noqa: E402

KEY = "robot0_eye_in_hand_image"


@pytest.fixture(scope="module")
def lift_env():
    env = SimEnv(SimConfig(task="lift", cameras=["robot0_eye_in_hand", "agentview"]))
    yield env
    env.close()


def test_contract_shapes_and_dtypes(lift_env):
    obs = lift_env.reset(seed=0)
    assert set(obs.images) == {KEY, "agentview_image"}
    assert obs.images[KEY].shape == (96, 96, 3) and obs.images[KEY].dtype == np.uint8
    assert obs.proprio.shape == (9,) and obs.proprio.dtype == np.float32
    assert abs(np.linalg.norm(obs.proprio[3:7]) - 1) < 1e-3  # a unit quaternion
    obs, reward, done, info = lift_env.step(np.zeros(7))
    assert obs.stamp == pytest.approx(0.05) and not done and info["success"] is False
    spec = lift_env.observation_spec
    assert [s.name for s in spec.images] == [KEY, "agentview_image"] and spec.proprio_dim == 9
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        lift_env.step(np.zeros(6))
    with pytest.raises(ValueError, match="NaN"):
        lift_env.step(np.full(7, np.nan))


def test_seeded_resets_repeat(lift_env):
    a = lift_env.reset(seed=5)
    cube_a = lift_env.raw_observation()["cube_pos"].copy()
    lift_env.reset(seed=6)
    cube_b = lift_env.raw_observation()["cube_pos"].copy()
    b = lift_env.reset(seed=5)
    np.testing.assert_allclose(lift_env.raw_observation()["cube_pos"], cube_a)
    assert not np.allclose(cube_a, cube_b)
    np.testing.assert_array_equal(a.images[KEY], b.images[KEY])


def test_images_are_upright(lift_env):
    obs = lift_env.reset(seed=0)
    # Exactly robosuite's (bottom-up) frame flipped ...
    raw = lift_env.raw_observation()["agentview_image"]
    np.testing.assert_array_equal(obs.images["agentview_image"], raw[::-1])
    # ... and the content says so: in the front view the robot (dark) stands above the red cube on the table,
    # and the white table fills the bottom rows.
    img = obs.images["agentview_image"].astype(int)
    red = (img[..., 0] > img[..., 1] + 50) & (img[..., 0] > img[..., 2] + 50)
    dark = img.max(-1) < 80
    assert red.sum() > 20 and dark.sum() > 20
    assert np.nonzero(dark)[0].mean() + 20 < np.nonzero(red)[0].mean()
    assert img[-10:].mean() > 200 > img[:10].mean()


def test_lift_expert_succeeds_on_seeded_episodes():
    env = SimEnv(SimConfig(task="lift", use_images=False))
    results = [run_expert_episode(env, make_expert("lift", seed=s), seed=s)[0] for s in range(3)]
    env.close()
    assert all(results)


def test_a_seeded_episode_is_the_same_in_every_environment_instance():
    # Lift draws its cube size from numpy's global generator when the model is built; without a model seed two
    # processes evaluating "seed 5" would see different cubes.
    def trace(env):
        obs = env.reset(seed=5)
        states = [np.concatenate([obs.proprio, env.env.sim.data.qpos])]
        for _ in range(5):
            obs, *_ = env.step(np.array([0.3, 0, -0.3, 0, 0, 0, 1.0]))
            states.append(np.concatenate([obs.proprio, env.env.sim.data.qpos]))
        return np.asarray(states)

    np.random.seed(123)
    first = SimEnv(SimConfig(task="lift", use_images=False))
    np.random.seed(456)
    second = SimEnv(SimConfig(task="lift", use_images=False))
    try:
        np.testing.assert_array_equal(trace(first), trace(second))
    finally:
        first.close(), second.close()


def test_experts_differ_between_seeds():
    env = SimEnv(SimConfig(task="lift", use_images=False))
    paths = []
    for s in (0, 1):
        actions = []
        run_expert_episode(env, make_expert("lift", seed=s), seed=0, on_step=lambda o, a, *rest: actions.append(a))
        paths.append(np.asarray(actions))
    env.close()
    n = min(len(p) for p in paths)
    assert np.abs(paths[0][:n] - paths[1][:n]).mean() > 0.05  # same scene, different style


def test_collection_round_trip_with_images(tmp_path):
    out = tmp_path / "lift.hdf5"
    summary = collect(CollectArgs(task="lift", episodes=2, out=str(out), images=True), progress=False)
    assert summary["kept"] == 2 and summary["steps"] > 20
    with h5py.File(out) as f:
        assert f["data/demo_0/obs"][KEY].shape[1:] == (96, 96, 3)
        assert "env_args" in f["data"].attrs and f["data"].attrs["total"] == summary["steps"]
        assert f["data/demo_0"].attrs["success"]
    ds = RobomimicDataset(out, [KEY], chunk=4, split=None)
    assert len(ds) == summary["steps"] and ds.batch(np.arange(3))["actions"].shape == (3, 4, 7)


def test_interrupted_collection_keeps_episodes_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "lift_lowdim.hdf5"
    args = CollectArgs(task="lift", episodes=3, out=str(out), images=False)
    real = collect_mod.rollout
    calls = []

    def flaky(env, task, seed):
        calls.append(seed)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(env, task, seed)

    monkeypatch.setattr(collect_mod, "rollout", flaky)
    with pytest.raises(KeyboardInterrupt):
        collect(args, progress=False)
    parts = tmp_path / "lift_lowdim.hdf5.parts"
    assert sorted(p.name for p in parts.glob("*.hdf5")) == ["seed_0.hdf5", "seed_1.hdf5"] and not out.exists()
    monkeypatch.setattr(collect_mod, "rollout", real)
    summary = collect(args, progress=False)
    assert summary["kept"] == 3 and summary["new"] == 1 and summary["tried"] == 1
    with h5py.File(out) as f:
        assert sorted(f["data/demo_{}".format(i)].attrs["seed"] for i in range(3)) == [0, 1, 2]


def test_point_cloud_from_robosuite_depth_finds_the_table_and_the_cube():
    """Metric depth from robosuite, back-projected with its camera model into the world frame: the table top lies
    at its height and the cube at the position the simulator's object state gives, from a fixed and a wrist camera."""
    from dm1_ros.runtime.bundle import PointCloudSpec

    for camera in ("agentview", "robot0_eye_in_hand"):
        spec = PointCloudSpec(cameras=[camera], num_points=512, crop_min=[-0.4, -0.4, 0.78], crop_max=[0.4, 0.4, 1.1])
        env = SimEnv(SimConfig(task="lift", use_images=False, point_cloud=spec))
        try:
            obs = env.reset(seed=3)
            cube = env.raw_observation()["cube_pos"]
            points = obs.points["point_cloud"]
            assert points.shape == (512, 3) and points.dtype == np.float32
            assert env.observation_spec.point_clouds == [spec] and obs.images == {}
            table = points[points[:, 2] < 0.805]
            assert len(table) > 100 and np.all(np.abs(table[:, 2] - 0.8) < 0.006), camera  # Lift's table top: z = 0.8
            near_cube = np.linalg.norm(points - cube, axis=1) < 0.035  # the cube's half size is about 0.02
            assert near_cube.sum() >= 3, camera
            above = points[points[:, 2] > 0.81]  # above the table: the cube or the hand, nothing else
            eef = env.raw_observation()["robot0_eef_pos"]
            on_cube = np.linalg.norm(above[:, :2] - cube[:2], axis=1) < 0.04
            on_hand = np.linalg.norm(above - eef, axis=1) < 0.15
            assert np.all(on_cube | on_hand), camera
            np.testing.assert_array_equal(points, env.observation().points["point_cloud"])  # same state, same cloud
        finally:
            env.close()


def test_a_changed_appearance_changes_the_images_and_not_the_geometry():
    """recolor / relight (evaluation of robustness): the camera sees another scene, the point cloud from depth and
    the robot state are the same, and the change is the same after every reset."""
    from dm1_ros.sim.env import default_point_cloud

    seen = {}
    for appearance in ("default", "recolor", "relight"):
        env = SimEnv(SimConfig(task="lift", cameras=["agentview"], image_size=[32, 32], appearance=appearance,
                               point_cloud=default_point_cloud("lift", ["agentview"], num_points=64)))
        first = env.reset(seed=5)
        env.reset(seed=6)
        again = env.reset(seed=5)
        env.close()
        np.testing.assert_array_equal(first.images["agentview_image"], again.images["agentview_image"])
        seen[appearance] = first
    image = {k: o.images["agentview_image"].astype(int) for k, o in seen.items()}
    for changed in ("recolor", "relight"):
        assert np.abs(image[changed] - image["default"]).mean() > 20, changed
        np.testing.assert_allclose(seen[changed].points["point_cloud"], seen["default"].points["point_cloud"], atol=1e-6)
        np.testing.assert_array_equal(seen[changed].proprio, seen["default"].proprio)
    with pytest.raises(ValueError, match="appearance 'dark'"):
        SimConfig(appearance="dark")
