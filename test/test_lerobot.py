"""LeRobotDataset v3.0: export, read back by the format's own rules, import, and training from the directory."""
import json

import h5py
import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
av = pytest.importorskip("av")
import pyarrow.parquet as pq  # noqa: E402

from dm1_ros.cli import main  # noqa: E402
from dm1_ros.data.episodes import Episode, write_dataset  # noqa: E402
from dm1_ros.data.info import dataset_info  # noqa: E402
from dm1_ros.data.lerobot import LeRobotError, export_lerobot, import_lerobot, read_lerobot  # noqa: E402
from dm1_ros.train.dataset import DatasetError, RobomimicDataset  # noqa: E402

FPS = 20


def smooth_frames(n, size, phase):
    """Frames a video codec keeps well: a colour gradient with a square that moves (so frames differ)."""
    yy, xx = np.mgrid[0:size, 0:size]
    frames = np.empty((n, size, size, 3), np.uint8)
    for t in range(n):
        frames[t, ..., 0] = (xx * 255 // size)
        frames[t, ..., 1] = (yy * 255 // size)
        frames[t, ..., 2] = 80 + phase * 20
        x0 = (2 * t) % (size - 8)
        frames[t, 8:16, x0:x0 + 8] = (250, 250, 40)
    return frames


def episode(n, seed):
    rng = np.random.default_rng(seed)
    return Episode(
        obs={"agentview_image": smooth_frames(n, 32, seed), "robot0_eye_in_hand_image": smooth_frames(n, 32, seed + 3),
             "robot0_eef_pos": rng.normal(size=(n, 3)).astype(np.float32),
             "robot0_eef_quat": rng.normal(size=(n, 4)).astype(np.float32),
             "robot0_gripper_qpos": rng.normal(size=(n, 2)).astype(np.float32),
             "object": rng.normal(size=(n, 10)).astype(np.float32),
             "point_cloud": rng.normal(size=(n, 16, 3)).astype(np.float32)},
        actions=rng.uniform(-1, 1, (n, 7)).astype(np.float32), rewards=rng.uniform(size=n).astype(np.float32),
        dones=(np.arange(n) == n - 1).astype(np.uint8), states=rng.normal(size=(n, 5)),
        timestamps=np.arange(n) / FPS + 100.0, attrs={"seed": seed, "success": True})


@pytest.fixture
def source(tmp_path):
    lengths = (12, 9, 15)
    masks = {"train": ["demo_0", "demo_2"], "valid": ["demo_1"]}
    return write_dataset(tmp_path / "src.hdf5", ((f"demo_{i}", episode(n, i)) for i, n in enumerate(lengths)),
                         {"env_name": "Lift", "env_kwargs": {"control_freq": FPS}}, masks)


def test_export_follows_the_v3_layout(source, tmp_path):
    out = tmp_path / "lerobot"
    info = export_lerobot(source, out)
    on_disk = json.loads((out / "meta/info.json").read_text())
    assert on_disk == info and info["codebase_version"] == "v3.0" and info["fps"] == FPS
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 36, 1)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    features = info["features"]
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert features[name]["shape"] == [1]
    assert features["observation.state"]["shape"] == [9] and features["observation.state"]["names"][0] == "robot0_eef_pos.0"
    assert features["observation.images.agentview"]["dtype"] == "video"
    assert features["observation.images.agentview"]["info"]["video.codec"] == "av1"
    assert features["observation.point_cloud"] == {"dtype": "float32", "shape": [16, 3], "names": None}

    # frames: one row per step, the global index in file order, timestamps = frame_index / fps, no video columns
    frames = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert frames.num_rows == 36 and "observation.images.agentview" not in frames.column_names
    assert frames.schema.field("action").type == pa.list_(pa.float32(), 7)
    assert frames.schema.field("observation.point_cloud").type == pa.list_(pa.list_(pa.float32(), 3), 16)
    assert frames.column("index").to_pylist() == list(range(36))
    episode_index = np.asarray(frames.column("episode_index").to_pylist())
    frame_index = np.asarray(frames.column("frame_index").to_pylist())
    assert episode_index.tolist() == [0] * 12 + [1] * 9 + [2] * 15
    assert frame_index.tolist() == list(range(12)) + list(range(9)) + list(range(15))
    np.testing.assert_allclose(frames.column("timestamp").to_numpy(), frame_index / FPS, atol=1e-6)

    # episodes: ranges into the frames, spans into each camera's one video stream
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(e["dataset_from_index"], e["dataset_to_index"], e["length"]) for e in episodes] == \
        [(0, 12, 12), (12, 21, 9), (21, 36, 15)]
    assert episodes[1]["tasks"] == ["lift the cube"] and episodes[2]["stats/action/count"] == [15]
    spans = [(e["videos/observation.images.agentview/from_timestamp"],
              e["videos/observation.images.agentview/to_timestamp"]) for e in episodes]
    assert spans == [(0.0, 12 / FPS), (12 / FPS, 21 / FPS), (21 / FPS, 36 / FPS)]
    with av.open(str(out / "videos/observation.images.agentview/chunk-000/file-000.mp4")) as video:
        stream = video.streams.video[0]
        times = [float(f.pts * f.time_base) for f in video.decode(stream)]
    np.testing.assert_allclose(times, np.arange(36) / FPS, atol=1e-4)  # LeRobot's decoding tolerance

    # tasks: looked up by the task text (pandas index), stats per feature, images per channel in [0, 1]
    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    assert tasks.column("task").to_pylist() == ["lift the cube"] and tasks.column("task_index").to_pylist() == [0]
    stats = json.loads((out / "meta/stats.json").read_text())
    assert set(stats["action"]) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert np.asarray(stats["observation.images.agentview"]["mean"]).shape == (3, 1, 1)
    assert 0 <= np.min(stats["observation.images.agentview"]["min"]) <= np.max(stats["observation.images.agentview"]["max"]) <= 1


def test_round_trip_keeps_every_array_and_images_within_the_codec_loss(source, tmp_path):
    export_lerobot(source, tmp_path / "lerobot")
    back = import_lerobot(tmp_path / "lerobot", tmp_path / "back.hdf5")
    with h5py.File(source) as a, h5py.File(back) as b:
        assert sorted(a["data"]) == sorted(b["data"])
        assert {k: sorted(a["mask"][k][()].tolist()) for k in a["mask"]} == {k: sorted(b["mask"][k][()].tolist()) for k in b["mask"]}
        for demo in a["data"]:
            ga, gb = a["data"][demo], b["data"][demo]
            for name in ("actions", "rewards", "dones", "states", "timestamps"):
                np.testing.assert_array_equal(ga[name][()], gb[name][()], err_msg=f"{demo}/{name}")
            assert sorted(ga["obs"]) == sorted(gb["obs"])
            for key in ga["obs"]:
                x, y = ga["obs"][key][()], gb["obs"][key][()]
                assert x.shape == y.shape and x.dtype == y.dtype, key
                if key.endswith("_image"):  # yuv420 halves colour resolution: sharp colour edges cost most here
                    err = np.abs(x.astype(int) - y.astype(int)).mean(axis=(1, 2, 3))
                    assert err.mean() < 6.0, (demo, key, err)  # measured 3-4 grey levels (lift's frames: 1.7)
                    shifted = np.abs(x[:-1].astype(int) - y[1:].astype(int)).mean(axis=(1, 2, 3))
                    assert (err[:-1] < shifted).all(), (demo, key, err, shifted)  # each frame in its place
                else:
                    np.testing.assert_array_equal(x, y, err_msg=f"{demo}/obs/{key}")
            assert gb.attrs["seed"] == ga.attrs["seed"] and bool(gb.attrs["success"])


def test_training_reads_the_directory_as_it_reads_the_hdf5(source, tmp_path):
    export_lerobot(source, tmp_path / "lerobot")
    keys = dict(image_keys=["agentview_image"], chunk=4, point_cloud_keys=["point_cloud"])
    for split in ("train", "valid"):
        h5 = RobomimicDataset(source, split=split, **keys)
        lr = RobomimicDataset(tmp_path / "lerobot", split=split, **keys)
        assert lr.num_episodes == h5.num_episodes and len(lr) == len(h5)
        idx = np.arange(len(h5))
        a, b = h5.batch(idx), lr.batch(idx)
        np.testing.assert_array_equal(a["actions"], b["actions"])
        np.testing.assert_array_equal(a["proprio"], b["proprio"])
        np.testing.assert_array_equal(a["points"]["point_cloud"], b["points"]["point_cloud"])
        assert np.abs(a["images"]["agentview_image"].astype(int) - b["images"]["agentview_image"]).mean() < 6.0


def test_pretraining_runs_on_a_lerobot_directory(fake_dataset, tmp_path):
    pytest.importorskip("torch")
    from test_train import tiny_recipe

    from dm1_ros.policy.checkpoint import read_checkpoint
    from dm1_ros.train.pretrain import train

    export_lerobot(fake_dataset, tmp_path / "lerobot")
    path = train(tiny_recipe(tmp_path / "lerobot", tmp_path / "run", steps=6, validate_every=3), progress=False)
    provenance = read_checkpoint(path)["provenance"]
    assert provenance["episodes"] == 2 and len(provenance["data_hash"]) == 16  # the 2 training demos of 3


def test_cli_export_info_import(source, tmp_path, capsys):
    out = tmp_path / "lerobot"
    assert main(["dataset", "export", str(source), "--format", "lerobot", "--out", str(out), "--vcodec", "h264"]) == 0
    assert "3 episodes, 36 frames at 20 Hz" in capsys.readouterr().out
    info = dataset_info(out)
    assert info["format"] == "LeRobotDataset v3.0" and info["episodes"] == 3 and info["fps"] == 20
    assert info["cameras"] == ["agentview_image", "robot0_eye_in_hand_image"] and info["point_clouds"] == ["point_cloud"]
    assert info["keys"]["robot0_eef_quat"]["shape"] == [4] and info["splits"] == {"train": 2, "valid": 1}
    assert main(["dataset", "export", str(source), "--out", str(out)]) == 1  # exists: nothing replaced
    assert "--force" in capsys.readouterr().err and (out / "meta/info.json").is_file()
    assert main(["dataset", "import", str(out), "--out", str(tmp_path / "back.hdf5")]) == 0
    assert "episodes 3" in capsys.readouterr().out


def test_a_dataset_written_elsewhere_reads_by_the_format_rules(source, tmp_path):
    """No dm1_ros.json beside it and an observation.state without key names: one 'state' key, splits from info."""
    out = tmp_path / "lerobot"
    export_lerobot(source, out)
    (out / "meta/dm1_ros.json").unlink()
    info = json.loads((out / "meta/info.json").read_text())
    info["features"]["observation.state"]["names"] = [f"joint{i}" for i in range(9)]
    info["splits"] = {"train": "0:2", "valid": "2:3"}
    (out / "meta/info.json").write_text(json.dumps(info))
    contents = read_lerobot(out)
    assert contents.names == ["demo_0", "demo_1", "demo_2"] and contents.masks == {"train": ["demo_0", "demo_1"], "valid": ["demo_2"]}
    assert contents.episodes[0].obs["state"].shape == (12, 9) and "robot0_eef_pos" not in contents.episodes[0].obs
    ds = RobomimicDataset(out, image_keys=[], chunk=2, proprio_keys=["state"], split="valid")
    assert ds.num_episodes == 1 and ds.proprio.shape == (15, 9)


def test_bad_directories_are_named(source, tmp_path):
    out = tmp_path / "lerobot"
    export_lerobot(source, out)
    with pytest.raises(DatasetError, match="not a LeRobotDataset"):
        RobomimicDataset(tmp_path, image_keys=[], chunk=2)
    video = out / "videos/observation.images.agentview/chunk-000/file-000.mp4"
    video.rename(video.with_suffix(".moved"))
    with pytest.raises(LeRobotError, match="video file missing: .*observation.images.agentview"):
        read_lerobot(out)
    info = json.loads((out / "meta/info.json").read_text())
    (out / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match="LeRobot v2.1 dataset; only v3.0"):
        RobomimicDataset(out, image_keys=[], chunk=2)
    with pytest.raises(LeRobotError, match="video codec 'vp9'"):
        export_lerobot(source, tmp_path / "other", vcodec="vp9")


def test_dataset_view_writes_the_episode_with_cameras_clouds_and_actions(source, tmp_path, capsys):
    import cv2

    export_lerobot(source, tmp_path / "lerobot")
    for path in (source, tmp_path / "lerobot"):  # HDF5 and LeRobot alike
        out = tmp_path / f"view_{path.suffix or 'dir'}.mp4"
        assert main(["dataset", "view", str(path), "--episode", "1", "--out", str(out)]) == 0
        assert "demo_1, 9 steps at 20 Hz; agentview_image, robot0_eye_in_hand_image, point_cloud (from above)" in \
            capsys.readouterr().out
        video = cv2.VideoCapture(str(out))
        frames = []
        while True:
            ok, frame = video.read()
            if not ok:
                break
            frames.append(frame)
        assert len(frames) == 9 and frames[0].shape == (192 + 160, 3 * 192, 3)
        assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 1  # the cameras move and the cursor walks
    assert main(["dataset", "view", str(source), "--episode", "3", "--out", str(tmp_path / "x.mp4")]) == 1
    assert "holds episodes 0..2; episode 3 asked for" in capsys.readouterr().err
