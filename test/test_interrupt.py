"""Stopping a run: SIGTERM stops it once, the final save is not cut short, an interrupted save keeps the last one."""
import os
import signal
import subprocess
import sys

import pytest
import torch

from dm1_ros.policy import checkpoint as ckpt
from dm1_ros.policy.checkpoint import load_checkpoint, save_checkpoint
from dm1_ros.train.interrupt import signals_ignored, stop_on_sigterm
from test_meanflow import small_lowdim


def test_first_sigterm_stops_and_repeats_are_ignored():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_sigterm():
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # GNU timeout's second delivery (to the process group): no second stop
    assert signal.getsignal(signal.SIGTERM) is before


def test_signals_are_held_off_during_the_final_save():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with stop_on_sigterm():
        with signals_ignored():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            saved = True
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, before[signal.SIGTERM])
    assert saved and {s: signal.getsignal(s) for s in before} == before


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from dm1_ros.policy.model import GenerativePolicy

    path = tmp_path / "last.pt"
    save_checkpoint(path, GenerativePolicy(small_lowdim()), step=1)
    real_save = torch.save

    def save_then_interrupt(obj, f):
        real_save(obj, f)
        with open(f, "r+b") as fh:  # a half-written file, as Ctrl-C in the middle of the write leaves it
            fh.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.torch, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, GenerativePolicy(small_lowdim()), step=2)
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    assert not (tmp_path / "last.pt.tmp").exists()
    _, payload = load_checkpoint(path)
    assert payload["step"] == 1


CTRL_C_IN_THE_CONTROLLER = """
import os, signal, threading, time
import numpy as np
from robosuite.utils.control_utils import opspace_matrices
from dm1_ros.errors import raised_by_interrupt
armed = False

def ctrl_c(signum, frame):  # Python's own handler, but only while the controller is being called: a Ctrl-C that
    if armed:               # lands on the loop's own lines would end the script with no answer
        raise KeyboardInterrupt

signal.signal(signal.SIGINT, ctrl_c)  # also: a job started in the background inherits SIGINT ignored
mass, jacobian = np.eye(7), np.random.default_rng(0).random((6, 7))
opspace_matrices(mass, jacobian, jacobian[:3], jacobian[3:])  # loaded and compiled before any signal
caught = threading.Event()

def press_ctrl_c():  # until one lands in the compiled code, not between two calls
    while not caught.wait(0.3):
        os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=press_ctrl_c, daemon=True).start()
while True:
    try:
        armed = True
        opspace_matrices(mass, jacobian, jacobian[:3], jacobian[3:])
        armed = False
    except KeyboardInterrupt:
        armed = False
        continue  # it landed in Python, around the call: wait for one inside the compiled code
    except Exception as exc:
        armed = False
        caught.set()
        print(type(exc).__name__, raised_by_interrupt(exc), raised_by_interrupt(ValueError("bad input")))
        break
"""


def test_ctrl_c_inside_the_sim_controller_is_read_as_an_interrupt():
    """Ctrl-C that lands inside robosuite's numba-compiled controller surfaces as a SystemError whose chain holds
    the KeyboardInterrupt (the sim-stack launch test once exited 1 on it). SimEnv.step and the nodes' runner read
    it as a stop, so a checkpoint is saved, a robot holds and a node exits 0; a real error stays an error."""
    pytest.importorskip("robosuite")
    done = subprocess.run([sys.executable, "-c", CTRL_C_IN_THE_CONTROLLER], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["SystemError", "True", "False"], done.stdout + done.stderr[-2000:]
