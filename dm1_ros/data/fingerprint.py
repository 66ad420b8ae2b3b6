"""Short fingerprints of datasets and checkpoints, as the manifests record them (16 hex digits of sha256).

    data_hash("data/lift.hdf5")    # what the data holds: the same for every `dm1 collect` run of one command
    file_hash("runs/x/last.pt")    # the file's bytes

An HDF5 file's bytes are not a fingerprint of its data: HDF5 writes the time each object was made into the file,
so two runs of the same `dm1 collect` command give identical episodes in files whose bytes differ. data_hash
therefore hashes the content of an HDF5 file (every group's and dataset's name, attributes, dtype, shape and
values, in sorted order; `next_obs` views only by name and shape, their values are `obs`), independent of write
times, chunking and compression. Other paths (LeRobot directories) are hashed by their files' bytes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np

_BLOCK_BYTES = 64 << 20  # values are hashed in blocks along the first axis, so memory stays bounded


def file_hash(path: str | Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, in sorted order); 16 hex digits."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:16]


def data_hash(path: str | Path) -> str:
    """Fingerprint of a training data set: content_hash for an HDF5 file, file_hash for anything else."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset not found: {path}")
    if path.is_file() and h5py.is_hdf5(path):
        return content_hash(path)
    return file_hash(path)


def content_hash(path: str | Path) -> str:
    """sha256 of an HDF5 file's content (see the module docstring); 16 hex digits."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        objects = {"/": f}

        def add(name, obj):  # returns None: visititems stops at the first callback that returns a value
            objects["/" + name] = obj

        f.visititems(add)
        for name in sorted(objects):
            obj = objects[name]
            h.update(b"\0" + name.encode() + b"\0")
            _hash_attrs(h, obj.attrs)
            if isinstance(obj, h5py.Dataset):
                h.update(f"{obj.dtype.str}{obj.shape}".encode())
                if not obj.is_virtual:
                    _hash_values(h, obj)
    return h.hexdigest()[:16]


def _hash_attrs(h, attrs) -> None:
    for key in sorted(attrs):
        h.update(b"\1" + key.encode() + b"\0" + _value_bytes(attrs[key]))


def _hash_values(h, ds: h5py.Dataset) -> None:
    if ds.shape is None:  # an empty dataset
        return
    if ds.ndim == 0:
        h.update(_value_bytes(ds[()]))
        return
    row_bytes = max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64)))
    rows = max(1, _BLOCK_BYTES // row_bytes)
    for start in range(0, ds.shape[0], rows):
        h.update(_value_bytes(ds[start:start + rows]))


def _value_bytes(value) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    array = np.asarray(value)
    if array.dtype.kind == "O":  # variable-length strings: the values, not the pointers
        return repr(array.tolist()).encode()
    return array.dtype.str.encode() + np.ascontiguousarray(array).tobytes()
