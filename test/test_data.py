"""Episode storage and the dataset reader, without a simulator."""
import h5py
import numpy as np
import pytest

from dm1_ros.data.episodes import EpisodeRecorder, EpisodeStore
from dm1_ros.runtime.contract import Observation
from dm1_ros.train.dataset import DatasetError, RobomimicDataset

KEY = "robot0_eye_in_hand_image"


def fake_episode(n, seed, size=8):
    rng = np.random.default_rng(seed)
    rec = EpisodeRecorder()
    for t in range(n):
        obs = Observation(images={KEY: rng.integers(0, 256, (size, size, 3), dtype=np.uint8)},
                          proprio=rng.standard_normal(9).astype(np.float32), stamp=t / 20)
        rec.add(obs, rng.uniform(-1, 1, 7), reward=float(t == n - 1), done=t == n - 1, state=rng.standard_normal(5),
                extra_obs={"object": rng.standard_normal(10)})
    return rec, rec.episode(seed=seed, success=True)


def make_dataset(tmp_path, lengths=(5, 7, 6)):
    store = EpisodeStore(tmp_path / "d.hdf5")
    episodes = []
    for i, n in enumerate(lengths):
        _, ep = fake_episode(n, i)
        store.add(f"seed_{i}", ep)
        episodes.append(ep)
    store.assemble({"env_name": "Fake"}, valid_fraction=0.34)
    return store.out, episodes


def test_robomimic_layout_and_round_trip(tmp_path):
    path, episodes = make_dataset(tmp_path)
    with h5py.File(path) as f:
        assert f["data"].attrs["total"] == 18
        assert sorted(f["data"].keys()) == ["demo_0", "demo_1", "demo_2"]
        assert f["data/demo_1"].attrs["num_samples"] == 7
        assert set(f["data/demo_0/obs"].keys()) == {KEY, "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object"}
        assert len(f["mask/train"]) + len(f["mask/valid"]) == 3 and len(f["mask/valid"]) == 1
        assert f["data/demo_0/states"].shape == (5, 5)
        # next_obs for robomimic's default loader: obs shifted by one, the last step repeated, no extra bytes
        nxt = f["data/demo_1/next_obs/robot0_eef_pos"]
        assert nxt.is_virtual
        np.testing.assert_array_equal(nxt[:6], episodes[1].obs["robot0_eef_pos"][1:])
        np.testing.assert_array_equal(nxt[6], episodes[1].obs["robot0_eef_pos"][6])
        np.testing.assert_array_equal(f["data/demo_0/next_obs"][KEY][0], episodes[0].obs[KEY][1])
    assert not (tmp_path / "d.hdf5.parts").exists()  # shards removed once assembled
    ds = RobomimicDataset(path, [KEY], chunk=3, split=None)
    assert len(ds) == 18 and ds.num_episodes == 3
    np.testing.assert_array_equal(ds.images[KEY][:5], episodes[0].obs[KEY])
    np.testing.assert_allclose(ds.proprio[5:12, :3], episodes[1].obs["robot0_eef_pos"])
    item = ds[4]  # last step of episode 0: its action, repeated
    np.testing.assert_allclose(item["actions"], np.repeat(episodes[0].actions[4:5], 3, axis=0))
    item = ds[5]  # first step of episode 1: its own first three actions
    np.testing.assert_allclose(item["actions"], episodes[1].actions[:3])
    stats = ds.stats()
    assert stats["action_min"].shape == (7,) and np.all(stats["action_min"] <= stats["action_max"])


def test_train_and_valid_splits_are_disjoint(tmp_path):
    path, _ = make_dataset(tmp_path)
    train = RobomimicDataset(path, [KEY], chunk=2, split="train")
    valid = RobomimicDataset(path, [KEY], chunk=2, split="valid")
    assert set(train.demos).isdisjoint(valid.demos) and len(train.demos) + len(valid.demos) == 3


def test_max_episodes_keeps_a_prefix_of_the_split(tmp_path):
    path, episodes = make_dataset(tmp_path, lengths=(5, 7, 6, 4))
    full = RobomimicDataset(path, [KEY], chunk=2, split=None)
    two = RobomimicDataset(path, [KEY], chunk=2, split=None, max_episodes=2)
    assert two.demos == full.demos[:2] and len(two) == 12
    np.testing.assert_array_equal(two.actions, full.actions[:12])
    with pytest.raises(DatasetError, match="5 demonstrations asked for, split None holds 4"):
        RobomimicDataset(path, [KEY], chunk=2, split=None, max_episodes=5)


def test_missing_key_is_named(tmp_path):
    path, _ = make_dataset(tmp_path)
    with pytest.raises(DatasetError, match=r"data/demo_0 has no obs/agentview_image"):
        RobomimicDataset(path, ["agentview_image"], chunk=2)
    with h5py.File(path, "a") as f:
        del f["data/demo_2/obs/robot0_eef_quat"]
    with pytest.raises(DatasetError, match=r"d.hdf5: data/demo_2 has no obs/robot0_eef_quat"):
        RobomimicDataset(path, [KEY], chunk=2, split=None)


def test_shape_mismatch_is_named(tmp_path):
    path, _ = make_dataset(tmp_path)
    with pytest.raises(DatasetError, match=r"obs/robot0_eye_in_hand_image has frames of shape \(8, 8, 3\), expected \(96, 96, 3\)"):
        RobomimicDataset(path, [KEY], chunk=2, image_shape=(96, 96, 3))
    with h5py.File(path, "a") as f:
        del f["data/demo_1/actions"]
        f["data/demo_1"].create_dataset("actions", data=np.zeros((7, 6), np.float32))
    with pytest.raises(DatasetError, match=r"data/demo_1/actions has shape \(7, 6\), expected \(T, 7\)"):
        RobomimicDataset(path, [KEY], chunk=2, split=None)


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        RobomimicDataset(tmp_path / "none.hdf5", [KEY], chunk=2)
    (tmp_path / "x.hdf5").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        RobomimicDataset(tmp_path / "x.hdf5", [KEY], chunk=2)


def test_assembled_dataset_can_be_extended(tmp_path):
    path, _ = make_dataset(tmp_path, lengths=(4, 4))
    store = EpisodeStore(path)
    assert store.explode_existing() == 2 and store.shard_names() == ["seed_0", "seed_1"]
    _, ep = fake_episode(3, 9)
    store.add("seed_9", ep)
    store.assemble({"env_name": "Fake"})
    assert RobomimicDataset(path, [KEY], chunk=2, split=None).num_episodes == 3


def test_dataset_info_summarizes_files_and_collections_in_progress(tmp_path, capsys):
    from dm1_ros.cli import main
    from dm1_ros.data.info import dataset_info

    path, _ = make_dataset(tmp_path, lengths=(5, 7, 6))
    info = dataset_info(path)
    assert (info["episodes"], info["steps"], info["episode_steps"]["max"]) == (3, 18, 7)
    assert info["cameras"] == [KEY] and info["keys"][KEY] == {"shape": [8, 8, 3], "dtype": "uint8", "kind": "camera"}
    assert info["keys"]["object"]["kind"] == "low-dim" and info["actions"] == [7] and info["env"] == "Fake"
    assert info["splits"] == {"train": 2, "valid": 1} and info["successes"] == 3
    store = EpisodeStore(tmp_path / "partial.hdf5")
    for i, n in enumerate((4, 6)):
        store.add(f"seed_{i}", fake_episode(n, i)[1])
    partial = dataset_info(tmp_path / "partial.hdf5")
    assert partial["in_progress"] and (partial["episodes"], partial["steps"]) == (2, 10)
    assert main(["dataset", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "episodes 3 (3 successful), steps 18" in out and f"{KEY}  (8, 8, 3)" in out
    assert main(["dataset", "info", str(tmp_path / "none.hdf5")]) == 1
    assert "dataset not found" in capsys.readouterr().err
