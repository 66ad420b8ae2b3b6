"""franky-sim for the tests: its libfranka-protocol server started in the test process, with server-side fault
injection (reflexes, contact forces) the way a real robot reports them. Used by test_franka.py (the bridge) and the
ROS tests (franka_bridge_node, panda_policy.launch.py).

franky-sim simulates neither reflexes nor contact forces, so they are injected on the server side: a reflex = robot
state in Reflex mode with `cartesian_reflex` set and the running Move command answered with kReflexAborted (cleared by
the automatic error recovery command); a contact = an external force estimate (O_F_ext_hat_K) in the streamed state.
"""
from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from dm1_ros.hardware.franka import FrankaConfig, GripperConfig

SIM_START_Q = [0.0, 0.0, 0.0, -1.57, 0.0, 1.57, 0.785]  # franky-sim's initial configuration


class SimFaults:
    """Server-side fault injection into a franky-sim FrankaRobotServer (runs inside the simulation thread)."""

    def __init__(self, sim, robot_sim):
        from franky_sim.franka_robot_protocol import (AutomaticErrorRecoveryCommand, BaseCommand, MoveStatus,
                                                      RobotCommand, RobotMode)

        self.srv = robot_sim.server
        self.reflex = False
        self.force: tuple | None = None
        # what automatic error recovery does to a reflex: clear it at once (0), clear it this many simulation steps
        # after acknowledging the command (the robot's state lags the reply), or never (None: the user stop is pressed)
        self.recovery_clears_after_steps: int | None = 0
        self._clear_countdown = 0
        self._pending = 0
        self._motion_id = 0
        self._countdown = 0
        self._names = SimpleNamespace(BaseCommand=BaseCommand, MoveStatus=MoveStatus, RobotCommand=RobotCommand,
                                      RobotMode=RobotMode)
        self._errors = tuple(i == 7 for i in range(41))  # libfranka Errors index 7: cartesian_reflex
        self._state = type(self.srv).robot_state.fget
        self.srv._get_state_bytes = self._state_bytes
        sim.register_pre_step_callback(self._step)
        self._recovery_cls = AutomaticErrorRecoveryCommand
        self._orig_recovery = AutomaticErrorRecoveryCommand.handle
        faults = self

        def recovery(cmd, server):  # the robot clears its reflex on automatic error recovery
            if faults.recovery_clears_after_steps == 0:
                faults.reflex = False
            elif faults.recovery_clears_after_steps is not None:
                faults._clear_countdown = faults.recovery_clears_after_steps
            faults._orig_recovery(cmd, server)

        AutomaticErrorRecoveryCommand.handle = recovery

    def restore(self):
        self._recovery_cls.handle = self._orig_recovery

    def _state_bytes(self):
        st = self._state(self.srv)
        if self.reflex:
            st = st.replace(robot_mode=self._names.RobotMode.kReflex, current_errors=self._errors,
                            last_motion_errors=self._errors, errors=self._errors)
        if self.force is not None:
            st = st.replace(O_F_ext_hat_K=tuple(self.force), K_F_ext_hat_K=tuple(self.force))
        return st.pack_state()

    def trigger_reflex(self):
        self._pending = 1

    def _step(self, _sim):
        n = self._names
        if self._clear_countdown > 0:
            self._clear_countdown -= 1
            self.reflex = self.reflex and self._clear_countdown > 0
        if self._pending == 1:  # enter Reflex mode: the arm holds, the motion generator stops
            self._motion_id = self.srv.current_motion_id
            self.reflex = True
            self.srv.stop_motion(send_preemption_signal=False)
            self._pending, self._countdown = 2, 5
        elif self._pending == 2:
            self._countdown -= 1
            if self._countdown <= 0:  # a few ms later: answer the Move command like the robot does
                if self._motion_id:
                    n.BaseCommand.send_response(self.srv._tcp_socket, n.RobotCommand.kMove, self._motion_id,
                                                n.MoveStatus.kReflexAborted)
                self.srv.reset_current_motion_id()
                self._pending = 0


_SERVERS_STARTED = [0]


def _fresh_hostnames():
    """Loopback addresses no other server of this test run has used. franky-sim binds its first free candidate, and
    a server a test stopped mid-motion (never cleaned up) may still hold its port: a new server on the same address
    would share it with the dead one."""
    import os

    _SERVERS_STARTED[0] += 1
    block = 1 + os.getpid() % 250
    return [f"127.{block}.{_SERVERS_STARTED[0]}.{k}" for k in range(1, 250)]


@contextmanager
def franky_sim_server(hostnames=None):
    """A franky-sim server on a loopback address, running in real time on a thread of this process; skips the
    test when franky / franky-sim are not installed."""
    pytest.importorskip("franky", reason="franky-control is not installed (pip install franky-control==2.0.0)")
    pytest.importorskip("franky_sim", reason="franky-sim is not installed (pip install franky-sim==1.0.4)")
    pytest.importorskip("franky_sim.mujoco_simulator", reason="franky-sim's MuJoCo simulator cannot be imported")
    import franky_sim
    from franky_sim.mujoco_simulator import MujocoSimulator

    sim = MujocoSimulator()
    sim.init()
    robot_sim = sim.add_robot()
    server = franky_sim.SimulationServer(sim, hostname_candidates=hostnames or _fresh_hostnames())
    server.init()
    faults = SimFaults(sim, robot_sim)
    server.run_async(realtime=True)
    handle = SimpleNamespace(sim=sim, server=server, hostname=robot_sim.hostname, faults=faults, alive=True)
    try:
        yield handle
    finally:
        faults.restore()
        if handle.alive:
            server.cleanup()
        sim.cleanup()


def sim_config(hostname: str, **overrides) -> FrankaConfig:
    kwargs = dict(robot_ip=hostname, realtime="ignore", relative_dynamics_factor=0.2, home_q=list(SIM_START_Q),
                  state_timeout_s=0.5, gripper=GripperConfig(speed_mps=0.05, reset_timeout_s=3.0))
    kwargs.update(overrides)
    return FrankaConfig(**kwargs)


class _ServerProcess:
    """franky_sim_server() in a process of its own (`python franky_sim_support.py`): its 1 kHz loop then does not
    share this process's interpreter lock with the tests. SIGUSR1 injects a reflex."""

    def __init__(self):
        import os
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-u", __file__], stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": os.path.dirname(__file__) + os.pathsep
                                          + os.environ.get("PYTHONPATH", ""),
                                          "DM1_FRANKY_HOSTNAMES": ",".join(_fresh_hostnames()[:20])})
        self.hostname = None
        for line in self.proc.stdout:
            if line.startswith("HOSTNAME "):
                self.hostname = line.split()[1]
                break
            if line.startswith("SKIP "):
                pytest.skip(line[5:].strip())
        if self.hostname is None:
            raise RuntimeError(f"franky-sim did not start (exit code {self.proc.poll()})")

    def trigger_reflex(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGUSR1)

    def close(self) -> None:
        import signal
        import subprocess

        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def franky_sim_process():
    """A franky-sim server (with fault injection) in its own process; `.hostname`, `.trigger_reflex()`."""
    pytest.importorskip("franky_sim", reason="franky-sim is not installed (pip install franky-sim==1.0.4)")
    handle = _ServerProcess()
    try:
        yield handle
    finally:
        handle.close()


if __name__ == "__main__":  # the server process of franky_sim_process()
    import signal
    import threading

    import os

    try:
        with franky_sim_server(os.environ.get("DM1_FRANKY_HOSTNAMES", "").split(",") or None) as server:
            stop = threading.Event()
            signal.signal(signal.SIGUSR1, lambda *_: server.faults.trigger_reflex())
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            print(f"HOSTNAME {server.hostname}", flush=True)
            while not stop.wait(0.2):
                pass
    except pytest.skip.Exception as exc:
        print(f"SKIP {exc}", flush=True)
