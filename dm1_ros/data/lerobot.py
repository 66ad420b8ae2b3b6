"""LeRobotDataset v3.0 <-> our episodes: `dm1 dataset export --format lerobot`, `dm1 dataset import`, and the
reader through which `dm1 train` takes a LeRobot directory as it takes an HDF5 file.

    info = export_lerobot("data/lift.hdf5", "data/lift_lerobot")      # writes the v3.0 layout below
    contents = read_lerobot("data/lift_lerobot")                       # episodes back, videos decoded
    import_lerobot("data/lift_lerobot", "data/lift_again.hdf5")       # robomimic-layout HDF5 again

Layout (LeRobot's v3.0 constants: 1000 files per chunk, data files <= 100 MB, video files <= 200 MB):
    meta/info.json                          codebase_version "v3.0", fps, features, totals, path templates
    meta/stats.json                         per feature min max mean std count q01 q10 q50 q90 q99; cameras per
                                            channel (3, 1, 1) in [0, 1]
    meta/tasks.parquet                      task_index, indexed by the task text (pandas index metadata)
    meta/episodes/chunk-000/file-000.parquet   per episode: length, frame range, video file and span, stats/...
    data/chunk-000/file-000.parquet         per frame: action, observation.state, ..., timestamp (= frame_index /
                                            fps), frame_index, episode_index, index, task_index
    videos/observation.images.<camera>/chunk-000/file-000.mp4   one stream per file, episodes back to back
    meta/dm1_ros.json                       what LeRobot has no field for: env_args, episode attributes, splits

Keys: actions -> action; robot0_eef_pos, robot0_eef_quat, robot0_gripper_qpos -> observation.state (names
"<key>.<i>", which is how reading splits it again); <camera>_image -> observation.images.<camera> (video);
any other obs key -> observation.<key>; rewards -> next.reward; dones -> next.done; states -> sim.state;
recorded timestamps -> recorded.timestamp. A dataset written elsewhere reads by the same rules (an
observation.state without such names stays one key, "state").
Images go through a video codec (AV1 by default, as LeRobot): the round trip keeps every other array exactly and
images within the codec's loss. No torch.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from dm1_ros.data.episodes import Episode, _natural, _read_group, write_dataset
from dm1_ros.errors import Dm1Error
from dm1_ros.runtime.contract import ACTION_NAMES, PROPRIO_DIMS, PROPRIO_KEYS

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILE_MB = 100
VIDEO_FILE_MB = 200
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
TASKS_PATH = "meta/tasks.parquet"
SIDECAR = "meta/dm1_ros.json"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
DEFAULT_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                    "task_index": "int64"}
VIDEO_CODECS = {"libsvtav1": {"g": "2", "crf": "30", "preset": "12", "svtav1-params": "fast-decode=0"},
                "h264": {"g": "2", "crf": "30"}}
TASK_TEXT = {"Lift": "lift the cube", "PickPlaceCan": "pick up the can and place it in its bin",
             "NutAssemblySquare": "fit the square nut onto the square peg"}
IMAGE_PREFIX = "observation.images."


class LeRobotError(Dm1Error, ValueError):
    """A LeRobot directory that does not follow the v3.0 layout; the message names the file and what is wrong."""


# --- key mapping -----------------------------------------------------------------------------------------------
def feature_of(key: str) -> str:
    """Our obs key -> LeRobot feature name."""
    if key.endswith("_image"):
        return IMAGE_PREFIX + key[: -len("_image")]
    return "observation." + key


def key_of(feature: str) -> str:
    """LeRobot feature name -> our obs key (the inverse of feature_of for the features it writes)."""
    if feature.startswith(IMAGE_PREFIX):
        return feature[len(IMAGE_PREFIX):] + "_image"
    return feature[len("observation."):]


def state_names() -> list[str]:
    return [f"{k}.{i}" for k, d in zip(PROPRIO_KEYS, PROPRIO_DIMS) for i in range(d)]


def split_state(names: list[str] | None, dim: int) -> list[tuple[str, int]]:
    """(key, width) parts of observation.state from its names "<key>.<i>"; one part "state" otherwise."""
    parts: list[tuple[str, int]] = []
    for name in names or []:
        key, _, index = str(name).rpartition(".")
        if not key or not index.isdigit():
            return [("state", dim)]
        if parts and parts[-1][0] == key and int(index) == parts[-1][1]:
            parts[-1] = (key, parts[-1][1] + 1)
        elif int(index) == 0 and key not in dict(parts):
            parts.append((key, 1))
        else:
            return [("state", dim)]
    return parts if parts and sum(w for _, w in parts) == dim else [("state", dim)]


# --- statistics ------------------------------------------------------------------------------------------------
def _stats(values: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
    """LeRobot's per-feature statistics of (T, ...) values: over time for vectors, per channel for images
    ((3, 1, 1), scaled to [0, 1]); count is the number of frames."""
    count = np.asarray([values.shape[0]], np.int64)
    if image:
        step = max(1, values.shape[0] // 100)  # LeRobot samples about 100 frames per episode
        x = values[::step].reshape(-1, values.shape[-1]).astype(np.float64) / 255.0
        shape = (values.shape[-1], 1, 1)
    else:
        x = values.reshape(values.shape[0], -1).astype(np.float64)
        shape = values.shape[1:] if values.ndim > 1 else (1,)
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": count}
    for q, v in zip(QUANTILES, np.quantile(x, QUANTILES, axis=0)):
        out[f"q{int(round(q * 100)):02d}"] = v
    return {k: (v if k == "count" else np.asarray(v).reshape(shape)) for k, v in out.items()}


# --- writing ---------------------------------------------------------------------------------------------------
class _FileIndex:
    """(chunk, file) numbering as LeRobot's update_chunk_file_indices: file 0..999 in a chunk, then the next chunk."""

    def __init__(self):
        self.chunk, self.file = 0, 0

    def advance(self) -> None:
        self.file += 1
        if self.file == CHUNKS_SIZE:
            self.chunk, self.file = self.chunk + 1, 0

    def path(self, template: str, **kw) -> str:
        return template.format(chunk_index=self.chunk, file_index=self.file, **kw)


class _VideoWriter:
    """One camera's mp4 files: frames at pts k / fps, episodes back to back; a new file past VIDEO_FILE_MB."""

    def __init__(self, root: Path, video_key: str, fps: int, vcodec: str, crf: int | None):
        self.root, self.key, self.fps, self.vcodec = root, video_key, fps, vcodec
        self.options = dict(VIDEO_CODECS[vcodec], **({"crf": str(crf)} if crf is not None else {}))
        self.index = _FileIndex()
        self.container = None
        self.frames_in_file = 0
        self.stream_info: dict = {}

    def _open(self, height: int, width: int) -> None:
        import av

        path = self.root / self.index.path(VIDEO_PATH, video_key=self.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(path), "w")
        stream = self.container.add_stream(self.vcodec, rate=self.fps, options=self.options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, self.fps)
        self.stream, self.path, self.frames_in_file, self.bytes_in_file = stream, path, 0, 0

    def add_episode(self, frames: np.ndarray) -> tuple[int, int, float, float]:
        """(chunk, file, from_timestamp, to_timestamp) of this episode's frames (T, H, W, 3) uint8."""
        import av

        if self.container is not None and self.bytes_in_file > VIDEO_FILE_MB * 1e6:
            self._close()
            self.index.advance()
        if self.container is None:
            self._open(frames.shape[1], frames.shape[2])
        start = self.frames_in_file
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = self.frames_in_file, Fraction(1, self.fps)
            for packet in self.stream.encode(frame):
                self.bytes_in_file += packet.size
                self.container.mux(packet)
            self.frames_in_file += 1
        return self.index.chunk, self.index.file, start / self.fps, self.frames_in_file / self.fps

    def _close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        self.container = None

    def close(self) -> dict:
        """Close the last file; the stream's description for info.json."""
        if self.container is not None:
            self._close()
        import av

        with av.open(str(self.path)) as c:
            s = c.streams.video[0]
            return {"video.height": s.height, "video.width": s.width, "video.codec": s.codec_context.codec.canonical_name,
                    "video.pix_fmt": s.pix_fmt, "video.fps": self.fps, "video.channels": 3, "has_audio": False,
                    "video.g": int(self.options["g"]), "video.crf": int(self.options["crf"]),
                    "video.video_backend": "pyav", "is_depth_map": False}


def _arrow_column(values: np.ndarray):
    """(T, ...) values -> an arrow column: scalars for (T,), fixed-size lists (nested for 2-D) otherwise."""
    import pyarrow as pa

    arr = pa.array(np.ascontiguousarray(values).reshape(-1))
    for size in reversed(values.shape[1:]):
        arr = pa.FixedSizeListArray.from_arrays(arr, size)
    return arr


def _frames_table(columns: dict[str, np.ndarray]):
    import pyarrow as pa

    return pa.table({name: _arrow_column(v) for name, v in columns.items()})


def _episode_columns(ep: Episode, state_keys: list[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(non-video frame columns by feature, video frames by feature) of one episode."""
    n = len(ep)
    columns = {"action": ep.actions.astype(np.float32)}
    if state_keys:
        columns["observation.state"] = np.concatenate(
            [ep.obs[k].astype(np.float32).reshape(n, -1) for k in state_keys], axis=1)
    videos = {}
    for k, v in ep.obs.items():
        if k in state_keys:
            continue
        if k.endswith("_image") and v.dtype == np.uint8 and v.ndim == 4:
            videos[feature_of(k)] = v
        else:
            columns[feature_of(k)] = v
    columns["next.reward"] = ep.rewards.astype(np.float32).reshape(n)
    columns["next.done"] = ep.dones.astype(bool).reshape(n)
    if ep.states is not None:
        columns["sim.state"] = ep.states
    if ep.timestamps is not None:
        columns["recorded.timestamp"] = ep.timestamps.astype(np.float64).reshape(n)
    return columns, videos


def _feature(values: np.ndarray, names=None) -> dict:
    shape = list(values.shape[1:]) or [1]
    return {"dtype": "bool" if values.dtype == bool else str(values.dtype), "shape": shape, "names": names}


def _write_pandas_tasks(path: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet as pandas writes it (LeRobot reads it with pandas and looks tasks up by the index)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pandas_meta = {"index_columns": ["task"], "column_indexes": [], "columns": [
        {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
        {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None}],
        "pandas_version": "2.2.0"}
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()}), path)


def export_lerobot(src: str | Path, out: str | Path, task: str | None = None, fps: int | None = None,
                   vcodec: str = "libsvtav1", crf: int | None = None, robot_type: str = "panda",
                   overwrite: bool = False) -> dict:
    """Write the HDF5 dataset `src` as a LeRobotDataset v3.0 directory `out`; returns info.json's contents.
    fps: the control rate (default: the one recorded in the dataset's env_args, else 20)."""
    import h5py
    import pyarrow.parquet as pq

    src, out = Path(src), Path(out)
    if vcodec not in VIDEO_CODECS:
        raise LeRobotError(f"video codec {vcodec!r} is not one of {sorted(VIDEO_CODECS)}")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise LeRobotError(f"{out} exists and is not empty (--force replaces it)")
    if not src.is_file():
        raise LeRobotError(f"dataset not found: {src}")
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration at level 3; errors only
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with h5py.File(src, "r") as f:
        if "data" not in f or not len(f["data"]):
            raise LeRobotError(f"{src} holds no episodes (not a robomimic-layout dataset)")
        env_args = json.loads(f["data"].attrs.get("env_args", "{}") or "{}")
        fps = int(round(fps or env_args.get("env_kwargs", {}).get("control_freq", 20)))
        if fps <= 0:
            raise LeRobotError(f"fps must be positive, got {fps}")
        task = task or TASK_TEXT.get(env_args.get("env_name"), env_args.get("env_name") or "demonstration")
        demos = sorted(f["data"].keys(), key=_natural)
        masks = {k: [m.decode() if isinstance(m, bytes) else str(m) for m in f["mask"][k][()]] for k in f["mask"]} \
            if "mask" in f else {}
        first = _read_group(f["data"][demos[0]], f"{src}:data/{demos[0]}")
        state_keys = [k for k in PROPRIO_KEYS if k in first.obs]
        columns, videos = _episode_columns(first, state_keys)
        features = {name: _feature(v, list(ACTION_NAMES) if name == "action" and v.shape[1:] == (7,) else
                                   state_names() if name == "observation.state" and state_keys == list(PROPRIO_KEYS)
                                   else None) for name, v in columns.items()}
        if "observation.state" in features and features["observation.state"]["names"] is None:
            features["observation.state"]["names"] = [f"{k}.{i}" for k in state_keys
                                                      for i in range(int(np.prod(first.obs[k].shape[1:])))]
        for name, v in videos.items():
            features[name] = {"dtype": "video", "shape": list(v.shape[1:]), "names": ["height", "width", "channels"]}
        features.update({name: {"dtype": dtype, "shape": [1], "names": None} for name, dtype in DEFAULT_FEATURES.items()})

        writers = {name: _VideoWriter(tmp, name, fps, vcodec, crf) for name in videos}
        data_index, data_writer, data_bytes = _FileIndex(), None, 0
        episode_rows, attrs, total = [], [], 0
        all_columns: dict[str, list] = {name: [] for name in columns}
        all_videos: dict[str, list] = {name: [] for name in videos}
        for e, demo in enumerate(demos):
            ep = first if e == 0 else _read_group(f["data"][demo], f"{src}:data/{demo}")
            columns, videos = _episode_columns(ep, state_keys)
            if set(columns) | set(videos) != set(all_columns) | set(all_videos):
                raise LeRobotError(f"{src}:data/{demo} has other keys than data/{demos[0]}")
            n = len(ep)
            frame_index = np.arange(n, dtype=np.int64)
            columns.update({"timestamp": (frame_index / fps).astype(np.float32), "frame_index": frame_index,
                            "episode_index": np.full(n, e, np.int64), "index": total + frame_index,
                            "task_index": np.zeros(n, np.int64)})
            table = _frames_table(columns)
            if data_writer is not None and data_bytes + table.nbytes > DATA_FILE_MB * 1e6:
                data_writer.close()
                data_writer, data_bytes = None, 0
                data_index.advance()
            if data_writer is None:
                path = tmp / data_index.path(DATA_PATH)
                path.parent.mkdir(parents=True, exist_ok=True)
                data_writer = pq.ParquetWriter(path, table.schema, compression="snappy", use_dictionary=True)
            data_writer.write_table(table)
            data_bytes += table.nbytes
            row = {"episode_index": e, "tasks": [task], "length": n, "data/chunk_index": data_index.chunk,
                   "data/file_index": data_index.file, "dataset_from_index": total, "dataset_to_index": total + n}
            for name, frames in videos.items():
                chunk, file, start, end = writers[name].add_episode(frames)
                row.update({f"videos/{name}/chunk_index": chunk, f"videos/{name}/file_index": file,
                            f"videos/{name}/from_timestamp": start, f"videos/{name}/to_timestamp": end})
                all_videos[name].append(frames[:: max(1, n // 100)])
            for name, v in columns.items():
                if name in all_columns:
                    all_columns[name].append(v)
            for name, v in {**columns, **videos}.items():
                for stat, value in _stats(v, image=name in videos).items():
                    row[f"stats/{name}/{stat}"] = value.tolist()
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            episode_rows.append(row)
            attrs.append({"demo": demo, **{k: (v.item() if hasattr(v, "item") else v)
                                           for k, v in f["data"][demo].attrs.items() if k != "num_samples"}})
            total += n
        if data_writer is not None:
            data_writer.close()
    for name, writer in writers.items():
        features[name]["info"] = writer.close()

    stats = {name: {k: v.tolist() for k, v in _stats(np.concatenate(vs)).items()} for name, vs in all_columns.items()}
    for name, vs in all_videos.items():
        stats[name] = {k: v.tolist() for k, v in _stats(np.concatenate(vs), image=True).items()}
        stats[name]["count"] = [total]
    for name in DEFAULT_FEATURES:
        stats.setdefault(name, {})
    frame_index = np.concatenate([np.arange(r["length"]) for r in episode_rows])
    for name, values in {"timestamp": frame_index / fps, "frame_index": frame_index,
                         "episode_index": np.repeat(np.arange(len(episode_rows)), [r["length"] for r in episode_rows]),
                         "index": np.arange(total), "task_index": np.zeros(total)}.items():
        stats[name] = {k: v.tolist() for k, v in _stats(values.astype(np.float64)).items()}
    (tmp / "meta/episodes/chunk-000").mkdir(parents=True, exist_ok=True)
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(episode_rows), tmp / EPISODES_PATH.format(chunk_index=0, file_index=0))
    _write_pandas_tasks(tmp / TASKS_PATH, [task])
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": len(episode_rows),
            "total_frames": total, "total_tasks": 1, "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILE_MB,
            "video_files_size_in_mb": VIDEO_FILE_MB, "fps": fps, "splits": {"train": f"0:{len(episode_rows)}"},
            "data_path": DATA_PATH, "video_path": VIDEO_PATH if writers else None, "features": features}
    (tmp / "meta/info.json").write_text(json.dumps(info, indent=4))
    (tmp / "meta/stats.json").write_text(json.dumps(stats, indent=4))
    (tmp / SIDECAR).write_text(json.dumps({"source": str(src), "env_args": env_args, "masks": masks,
                                           "episodes": attrs}, indent=1, default=str))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return info


# --- reading ---------------------------------------------------------------------------------------------------
@dataclass
class LeRobotContents:
    """A LeRobot directory read back: episodes in our layout, the split masks and env_args where known."""

    path: Path
    fps: int
    episodes: list[Episode]
    names: list[str]
    env_args: dict = field(default_factory=dict)
    masks: dict[str, list[str]] = field(default_factory=dict)


def is_lerobot(path: str | Path) -> bool:
    return (Path(path) / "meta/info.json").is_file()


def read_info(path: str | Path) -> dict:
    path = Path(path)
    try:
        info = json.loads((path / "meta/info.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LeRobotError(f"{path}/meta/info.json cannot be read: {exc}") from None
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise LeRobotError(f"{path} is a LeRobot {version} dataset; only {CODEBASE_VERSION} is read (convert it "
                           f"with LeRobot's convert_dataset_v21_to_v30 first)")
    for key in ("fps", "features", "data_path"):
        if key not in info:
            raise LeRobotError(f"{path}/meta/info.json has no {key!r}")
    return info


def _read_parquets(root: Path, folder: str, skip_prefix: str | None = None):
    """Every parquet file of `folder` (chunk-*/file-*.parquet, in path order, as LeRobot reads them) as one table;
    columns starting with skip_prefix are not read (the episodes' per-episode stats: large, unused here)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((root / folder).glob("*/*.parquet"))
    if not files:
        raise LeRobotError(f"{root}/{folder} holds no parquet file")
    tables = []
    for path in files:
        names = pq.read_schema(path).names
        columns = [n for n in names if not (skip_prefix and n.startswith(skip_prefix))]
        tables.append(pq.read_table(path, columns=columns))
    return pa.concat_tables(tables)


def _column(table, name: str, n_rows: int) -> np.ndarray:
    """A frame column as (T, ...) numpy, nested fixed-size lists unfolded."""
    import pyarrow as pa

    col = table.column(name).combine_chunks()
    shape = []
    while pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
        if pa.types.is_fixed_size_list(col.type):
            shape.append(col.type.list_size)
        col = col.flatten()
    values = col.to_numpy(zero_copy_only=False)
    if not shape:
        return values.reshape(n_rows)
    return values.reshape(n_rows, *shape) if int(np.prod(shape)) * n_rows == values.size else \
        values.reshape(n_rows, -1)


def _decode_video(path: Path, fps: int) -> np.ndarray:
    """All frames of one mp4 as (N, H, W, 3) uint8, indexed by round(pts * fps)."""
    import av
    from av.video.reformatter import VideoReformatter

    if not path.is_file():
        raise LeRobotError(f"video file missing: {path}")
    frames: dict[int, np.ndarray] = {}
    rgb = VideoReformatter()  # one converter for the file: to_ndarray(format=...) sets one up per frame (20x slower)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            k = int(round(float(frame.pts * frame.time_base) * fps))
            frames[k] = rgb.reformat(frame, format="rgb24").to_ndarray()
    if not frames:
        raise LeRobotError(f"{path} holds no video frame")
    first = next(iter(frames.values()))
    out = np.zeros((max(frames) + 1, *first.shape), np.uint8)
    for k, image in frames.items():
        out[k] = image
    return out


def read_lerobot(path: str | Path) -> LeRobotContents:
    """Every episode of a LeRobotDataset v3.0 directory in our layout (videos decoded, images as uint8)."""
    path = Path(path)
    info = read_info(path)
    fps = int(info["fps"])
    features = info["features"]
    frames = _read_parquets(path, "data")
    episodes_table = _read_parquets(path, "meta/episodes", skip_prefix="stats/").sort_by("episode_index")
    n_rows = frames.num_rows
    for name in ("action", "episode_index", "index"):
        if name not in frames.column_names:
            raise LeRobotError(f"{path}/data has no column {name!r} (has {frames.column_names})")
    index = _column(frames, "index", n_rows)
    if not np.array_equal(index, np.arange(n_rows)):
        raise LeRobotError(f"{path}/data: the 'index' column is not 0..{n_rows - 1} in file order")
    sidecar = json.loads((path / SIDECAR).read_text()) if (path / SIDECAR).is_file() else {}
    state = features.get("observation.state")
    state_parts = split_state(state.get("names") if state else None, int(np.prod(state["shape"])) if state else 0)
    arrays: dict[str, np.ndarray] = {}
    for name in frames.column_names:
        if name in DEFAULT_FEATURES and name != "timestamp":
            continue
        arrays[name] = _column(frames, name, n_rows)
    for name, ft in features.items():
        if ft.get("dtype") == "image" and name in frames.column_names:
            import cv2

            structs = frames.column(name).to_pylist()
            arrays[name] = np.stack([cv2.cvtColor(cv2.imdecode(np.frombuffer(s["bytes"], np.uint8), cv2.IMREAD_COLOR),
                                                  cv2.COLOR_BGR2RGB) for s in structs])
    videos = [name for name, ft in features.items() if ft.get("dtype") == "video"]
    decoded: dict[tuple, np.ndarray] = {}
    rows = episodes_table.to_pylist()
    episodes, names = [], []
    for e, row in enumerate(rows):
        if row["episode_index"] != e:
            raise LeRobotError(f"{path}/meta/episodes: episode {e} is missing (found {row['episode_index']})")
        lo, hi = int(row["dataset_from_index"]), int(row["dataset_to_index"])
        n = hi - lo
        obs: dict[str, np.ndarray] = {}
        if "observation.state" in arrays:
            s = arrays["observation.state"][lo:hi].reshape(n, -1)
            for (key, width), start in zip(state_parts, np.cumsum([0] + [w for _, w in state_parts])[:-1]):
                obs[key] = s[:, start:start + width]
        for name, values in arrays.items():
            if name.startswith("observation.") and name != "observation.state":
                obs[key_of(name)] = values[lo:hi]
        for name in videos:
            where = (row[f"videos/{name}/chunk_index"], row[f"videos/{name}/file_index"])
            if (name, where) not in decoded:
                file = path / info["video_path"].format(video_key=name, chunk_index=where[0], file_index=where[1])
                decoded[(name, where)] = _decode_video(file, fps)
            start = int(round(float(row[f"videos/{name}/from_timestamp"]) * fps))
            video = decoded[(name, where)]
            steps = start + np.round(arrays["timestamp"][lo:hi].astype(np.float64) * fps).astype(int)
            if steps.max() >= len(video):
                raise LeRobotError(f"{name} of episode {e}: frame {steps.max()} asked for, its video holds {len(video)}")
            obs[key_of(name)] = video[steps]
        attrs = dict(sidecar["episodes"][e]) if e < len(sidecar.get("episodes", [])) else {}
        demo = str(attrs.pop("demo", f"demo_{e}"))
        episodes.append(Episode(
            obs=obs, actions=arrays["action"][lo:hi].reshape(n, -1).astype(np.float32),
            rewards=arrays["next.reward"][lo:hi].astype(np.float32) if "next.reward" in arrays else np.zeros(n, np.float32),
            dones=arrays["next.done"][lo:hi].astype(np.uint8) if "next.done" in arrays else np.zeros(n, np.uint8),
            states=arrays["sim.state"][lo:hi] if "sim.state" in arrays else None,
            timestamps=arrays["recorded.timestamp"][lo:hi] if "recorded.timestamp" in arrays else None,
            attrs=attrs))
        names.append(demo)
    masks = sidecar.get("masks") or _splits(info.get("splits") or {}, names, path)
    return LeRobotContents(path, fps, episodes, names, sidecar.get("env_args", {}), masks)


def _splits(splits: dict, names: list[str], path: Path) -> dict[str, list[str]]:
    """info.json's splits ({"train": "0:40", "valid": "40:50"}, episode ranges) as lists of episode names."""
    out = {}
    for split, span in splits.items():
        try:
            lo, hi = (int(x) for x in str(span).split(":"))
        except ValueError:
            raise LeRobotError(f"{path}/meta/info.json: split {split!r} is {span!r}, expected 'start:end'") from None
        out[split] = names[lo:hi]
    return out or {"train": names}


def import_lerobot(src: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """A LeRobotDataset v3.0 directory -> robomimic-layout HDF5 (episodes named demo_0..., splits kept)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise LeRobotError(f"{out} exists (--force replaces it)")
    contents = read_lerobot(src)
    env_args = dict(contents.env_args)
    env_args.setdefault("env_kwargs", {}).setdefault("control_freq", contents.fps)
    rename = {name: f"demo_{i}" for i, name in enumerate(contents.names)}
    masks = {k: [rename[n] for n in v if n in rename] for k, v in contents.masks.items()}
    return write_dataset(out, ((rename[n], ep) for n, ep in zip(contents.names, contents.episodes)), env_args, masks)


class _Group(dict):
    """Enough of an h5py group for the training reader: items, `.attrs`, and a context manager."""

    def __init__(self, *args, attrs: dict | None = None, **kw):
        super().__init__(*args, **kw)
        self.attrs = attrs or {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def as_robomimic_tree(path: str | Path) -> _Group:
    """A LeRobot directory as the robomimic tree `f["data"][demo]["obs"][key]`, `f["mask"][split]` in memory, so
    that training reads it through the same code as an HDF5 file."""
    contents = read_lerobot(path)
    data = _Group({f"demo_{i}": _Group({"obs": _Group(ep.obs), "actions": ep.actions})
                   for i, ep in enumerate(contents.episodes)},
                  attrs={"env_args": json.dumps(contents.env_args), "total": sum(len(ep) for ep in contents.episodes)})
    rename = {name: f"demo_{i}" for i, name in enumerate(contents.names)}
    mask = _Group({k: np.array([rename[n].encode() for n in v if n in rename], dtype="S") for k, v in contents.masks.items()})
    return _Group({"data": data, "mask": mask})
