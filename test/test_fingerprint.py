"""Dataset fingerprints (training.data_hash in every manifest): the same `dm1 collect` command gives the same
fingerprint, whatever HDF5 writes beside the data; any change to the data changes it."""
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import write_fake_dataset
from dm1_ros.data.fingerprint import data_hash, file_hash
from dm1_ros.sim.collect import CollectArgs, collect


def test_the_same_collect_command_gives_the_same_fingerprint(tmp_path):
    """Two runs of one command (here with 1 and with 2 workers) hold the same episodes: same data_hash. Their bytes
    are not a fingerprint (HDF5 writes each object's creation time into the file)."""
    paths = []
    for workers in (1, 2):
        out = tmp_path / f"lift_{workers}.hdf5"
        collect(CollectArgs(task="lift", episodes=2, out=str(out), workers=workers, images=False, seed=5),
                progress=False)
        paths.append(out)
    assert data_hash(paths[0]) == data_hash(paths[1])
    other = tmp_path / "lift_other_seed.hdf5"
    collect(CollectArgs(task="lift", episodes=2, out=str(other), workers=1, images=False, seed=6), progress=False)
    assert data_hash(other) != data_hash(paths[0])
    cli = subprocess.run([sys.executable, "-m", "dm1_ros.cli", "dataset", "hash", str(paths[0])],
                         capture_output=True, text=True, check=True)
    assert cli.stdout.split() == [data_hash(paths[0]), str(paths[0])]


def test_the_fingerprint_follows_the_data_not_the_bytes(tmp_path):
    original = write_fake_dataset(tmp_path / "a.hdf5")
    fingerprint = data_hash(original)
    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0

    # the same data stored without compression: other bytes, same fingerprint
    plain = tmp_path / "plain.hdf5"
    shutil.copy(original, plain)
    with h5py.File(plain, "r+") as f:
        images = f["data/demo_0/obs/robot0_eye_in_hand_image"]
        assert images.compression == "gzip"
        values, attrs = images[()], dict(images.attrs)
        del f["data/demo_0/obs/robot0_eye_in_hand_image"]
        f["data/demo_0/obs"].create_dataset("robot0_eye_in_hand_image", data=values)
        f["data/demo_0/obs/robot0_eye_in_hand_image"].attrs.update(attrs)
        assert np.array_equal(f["data/demo_0/next_obs/robot0_eye_in_hand_image"][0], values[1])  # views still resolve
    assert file_hash(plain) != file_hash(original)
    assert data_hash(plain) == fingerprint

    # one action, one pixel, one attribute: each changes it
    def flip(dataset, index):
        dataset[index] = dataset[index] + 1 if dataset.dtype != np.uint8 else dataset[index] ^ 1

    for name, change in [("action", lambda f: flip(f["data/demo_1/actions"], (0, 0))),
                         ("pixel", lambda f: flip(f["data/demo_2/obs/robot0_eye_in_hand_image"], (3, 1, 1, 0))),
                         ("attribute", lambda f: f["data"].attrs.__setitem__("env_args", '{"env_name": "Other"}'))]:
        changed = tmp_path / f"{name}.hdf5"
        shutil.copy(original, changed)
        with h5py.File(changed, "r+") as f:
            change(f)
        assert data_hash(changed) != fingerprint, name


def test_a_missing_dataset_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset not found: .*nothing.hdf5"):
        data_hash(tmp_path / "nothing.hdf5")
    cli = subprocess.run([sys.executable, "-m", "dm1_ros.cli", "dataset", "hash", str(tmp_path / "nothing.hdf5")],
                         capture_output=True, text=True)
    assert cli.returncode == 1 and "dataset not found" in cli.stderr
