"""BagRecorder: raw ROS topics -> a rosbag2 (MCAP or sqlite3) through `rosbags`, on a background thread.

Takes rclpy messages without importing rclpy: a message is converted field by field into
the rosbags type of the same name (sensor_msgs/msg/Image, ...) and serialized to CDR there, so neither ROS nor
rclpy's serializer is needed. write() only queues; conversion and disk writes happen on the thread.

    bag = BagRecorder("data/teleop_bag", storage="mcap")
    bag.write("/camera/camera/color/image_raw", msg, stamp_ns)
    bag.close()
"""
from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger("dm1_ros.data.rosbag")

_NUMPY = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8, "int8": np.int8, "uint8": np.uint8,
          "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
          "uint64": np.uint64, "float32": np.float32, "float64": np.float64}


def ros_type_name(msg) -> str:
    """'sensor_msgs/msg/Image' for an rclpy message (read from its class, no rclpy import)."""
    return f"{type(msg).__module__.split('.')[0]}/msg/{type(msg).__name__}"


def to_rosbags(msg, msgtype: str, typestore):
    """Copy a ROS message into the rosbags dataclass of `msgtype`, recursively."""
    _, fields = typestore.fielddefs[msgtype]
    cls = typestore.types[msgtype]
    values = {}
    for name, (node, detail) in fields:
        value = getattr(msg, name)
        kind = int(node)
        if kind == 1:  # BASE
            base = detail[0]
            if base == "string":
                values[name] = str(value)
            elif isinstance(value, (bytes, bytearray)):  # rclpy's octet fields are 1-byte bytes
                values[name] = value[0]
            elif base == "bool":
                values[name] = bool(value)
            elif base.startswith("float"):
                values[name] = float(value)
            else:
                values[name] = int(value)
        elif kind == 2:  # NAME: a nested message
            values[name] = to_rosbags(value, detail, typestore)
        else:  # ARRAY or SEQUENCE
            (inner_node, inner), _ = detail
            if int(inner_node) == 2:
                values[name] = [to_rosbags(v, inner, typestore) for v in value]
            elif inner[0] == "string":
                values[name] = [str(v) for v in value]
            elif inner[0] in ("uint8", "byte", "char", "octet"):
                values[name] = np.frombuffer(bytes(value), np.uint8).copy()
            else:
                values[name] = np.asarray(value, dtype=_NUMPY.get(inner[0], np.float64))
    return cls(**values)


class BagRecorder:
    def __init__(self, path: str | Path, storage: str = "mcap", distro: str = "humble", max_queue: int = 2000):
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        if storage not in ("mcap", "sqlite3"):
            raise ValueError(f"bag storage {storage!r}: choose mcap or sqlite3")
        stores = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
        if distro not in stores:
            raise ValueError(f"bag distro {distro!r}: choose one of {sorted(stores)}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"bag {self.path} exists; rosbag2 writes a new directory")
        self.typestore = get_typestore(stores[distro])
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(self.path, version=8, storage_plugin=plugin)
        self.writer.open()
        self.connections: dict[tuple[str, str], object] = {}
        self.written = 0
        self.dropped = 0
        self.errors: list[str] = []
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="bag-recorder", daemon=True)
        self._thread.start()

    def write(self, topic: str, msg, stamp_ns: int) -> bool:
        """Queue one message (never blocks); False when the queue is full and the message is dropped."""
        try:
            self._queue.put_nowait((topic, msg, int(stamp_ns)))
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            topic, msg, stamp_ns = item
            try:
                msgtype = ros_type_name(msg)
                key = (topic, msgtype)
                if key not in self.connections:
                    self.connections[key] = self.writer.add_connection(topic, msgtype, typestore=self.typestore)
                data = self.typestore.serialize_cdr(to_rosbags(msg, msgtype, self.typestore), msgtype)
                self.writer.write(self.connections[key], stamp_ns, data)
                self.written += 1
            except Exception as exc:  # one bad message must not end the recording
                self.errors.append(f"{topic}: {type(exc).__name__}: {exc}")
                log.error("bag: %s", self.errors[-1])

    def close(self, timeout: float = 30.0) -> Path:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
            self.writer.close()
        return self.path
