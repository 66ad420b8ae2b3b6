"""Control-loop benchmark -> docs/bench_loop.json and the loop table in docs/results.md.

    python bench/loop.py                 # about 2 minutes on 2 cores; needs franky-sim for the Franka rows

What it measures, with the shipped model (models/lift_image) in the loop the robot runs (ControlLoop: observe ->
planner -> executor -> the robot's safety filter -> send), commands at 200 Hz, camera frames pushed by a thread at 30, 60 and 90 fps:
- observation -> command latency: from a frame's arrival to the first command computed from it leaving the loop;
- the policy tick (a tick that runs the network) p50 / p99;
- the sustained command rate, against (a) an in-process null robot (software only) and (b) the FrankaBridge
  talking libfranka's protocol to franky-sim running in its own process (as the real arm is its own machine).
"""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dm1_ros.hardware.cameras import SoftwareCamera  # noqa: E402
from dm1_ros.runtime.cadence import CadenceMonitor  # noqa: E402
from dm1_ros.runtime.contract import Observation  # noqa: E402
from dm1_ros.runtime.cpu import cpu_description  # noqa: E402
from dm1_ros.runtime.bundle import ImageSpec, ObservationSpec  # noqa: E402
from dm1_ros.runtime.contract import PROPRIO_DIMS, PROPRIO_KEYS  # noqa: E402
from dm1_ros.runtime.loop import control_loop  # noqa: E402
from dm1_ros.runtime.onnx_policy import OnnxPolicy  # noqa: E402
from dm1_ros.runtime.safety import SafetyConfig, SafetyFilter  # noqa: E402

MODEL = ROOT / "models" / "lift_image"
COMMAND_HZ = 200.0
SECONDS = 8.0
FPS = (30, 60, 90)


class FramePusher:
    """Pushes frames at `fps` into a SoftwareCamera, like a camera driver thread."""

    def __init__(self, camera: SoftwareCamera, fps: float, shape=(96, 96, 3)):
        self.camera, self.period = camera, 1.0 / fps
        self.rng = np.random.default_rng(0)
        self.frames = [self.rng.integers(0, 255, shape, dtype=np.uint8) for _ in range(8)]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        t, i = time.monotonic(), 0
        while not self.stop.is_set():
            self.camera.push(self.frames[i % len(self.frames)])
            i += 1
            t += self.period
            time.sleep(max(0.0, t - time.monotonic()))


class NullRobot:
    """The robot contract with no robot: proprio fixed, apply() returns at once. Software-only figures."""

    def __init__(self, camera, name, rate_hz):
        self.camera, self.name, self.rate_hz = camera, name, rate_hz
        self.proprio = np.array([-0.1, 0, 1.0, 1, 0, 0, 0, 0.02, -0.02], np.float32)
        self.safety = SafetyFilter(SafetyConfig(workspace_min=[-5, -5, -5], workspace_max=[5, 5, 5]))
        image = camera.latest().image
        self.observation_spec = ObservationSpec([ImageSpec(name, *image.shape[:2])], list(PROPRIO_KEYS), list(PROPRIO_DIMS))

    def observe(self):
        frame = self.camera.latest()
        return Observation({self.name: frame.image}, self.proprio, frame.stamp)

    def apply(self, action):
        self.safety.filter(action, self.proprio[:3], 1.0 / 20.0)

    def hold(self):
        pass


def run_loop(robot, policy, seconds):
    cadence = CadenceMonitor(COMMAND_HZ)
    loop = control_loop(robot, policy, "latest", stale_after_s=0.2, cadence=cadence, clock=time.monotonic)
    latencies, plan_ticks = [], []
    period, t_next, end = 1.0 / COMMAND_HZ, time.monotonic(), time.monotonic() + seconds
    t_start, ticks = time.monotonic(), 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        result = loop.tick()
        t1 = time.monotonic()
        ticks += 1
        if result.planned:
            plan_ticks.append(t1 - t0)
            latencies.append(t1 - loop.planner.blender.current.stamp)
        t_next += period
        delay = t_next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            t_next = time.monotonic()
    elapsed = time.monotonic() - t_start

    def stats(x):
        a = np.asarray(x) * 1e3
        return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
                "max_ms": round(float(a.max()), 3), "n": int(a.size)}

    return {"command_hz": round(ticks / elapsed, 1), "obs_to_command": stats(latencies), "policy_tick": stats(plan_ticks),
            "all_ticks": cadence.summary()["tick"], "overruns": cadence.overruns, "holds": dict(loop.stats.holds)}


def start_franky_sim():
    """franky-sim in its own process on a loopback address; returns (process, hostname)."""
    try:
        import franky  # noqa: F401
        import franky_sim  # noqa: F401
    except ImportError as exc:
        print(f"franky-sim rows skipped: {exc} (pip install -e .[test])")
        return None, None
    host = "127.0.0.77"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "franky-sim"), "--simulator", "mujoco", "--hostname", host],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if "Connect to the server" in line:
            return proc, host
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("franky-sim did not start")


def main():
    policy = OnnxPolicy(MODEL, threads=int(os.environ.get("DM1_THREADS", "2")))
    name = policy.manifest.observation.images[0].name
    rows = {}
    for fps in FPS:
        cam = SoftwareCamera(name=name).start()
        pusher = FramePusher(cam, fps)
        pusher.thread.start()
        cam.wait_for_frame(2.0, after=-1)
        rows[f"null robot, camera {fps} fps"] = run_loop(NullRobot(cam, name, COMMAND_HZ), policy, SECONDS)
        pusher.stop.set()
        cam.stop()
        print(f"null robot {fps} fps: {rows[f'null robot, camera {fps} fps']}", flush=True)

    proc, host = start_franky_sim()
    if proc is not None:
        from dm1_ros.hardware.franka import FrankaBridge, FrankaConfig

        try:
            config = FrankaConfig(robot_ip=host, realtime="ignore", rate_hz=policy.manifest.control_rate_hz,
                                  command_rate_hz=COMMAND_HZ, home_q=[0.0, 0.0, 0.0, -1.57, 0.0, 1.57, 0.785],
                                  observation_offset_m=[-0.56, 0.0, 0.912])
            for fps in FPS:
                cam = SoftwareCamera(name=name).start()
                pusher = FramePusher(cam, fps)
                pusher.thread.start()
                cam.wait_for_frame(2.0, after=-1)
                bridge = FrankaBridge(config, cameras={name: cam})
                bridge.reset()
                row = run_loop(bridge, policy, SECONDS)
                row["bridge_retargets_hz"] = bridge.command_rate_hz(last=400)
                row["bridge_fault"] = str(bridge.fault) if bridge.fault else None
                rows[f"Franka bridge (franky-sim), camera {fps} fps"] = row
                bridge.hold()
                bridge.close()
                pusher.stop.set()
                cam.stop()
                print(f"franky-sim {fps} fps: {row}", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)

    result = {"model": policy.model_id, "provider": policy.provider, "threads": policy.threads if hasattr(policy, "threads") else None,
              "command_target_hz": COMMAND_HZ, "seconds_per_row": SECONDS, "cores": os.cpu_count(), "cpu": cpu_description(), "rows": rows}
    (ROOT / "docs" / "bench_loop.json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n| loop | commands Hz | obs -> command p50 / p99 ms | policy tick p50 / p99 ms | overruns |")
    print("|---|---:|---|---|---:|")
    for key, r in rows.items():
        print(f"| {key} | {r['command_hz']:.0f} | {r['obs_to_command']['p50_ms']:.2f} / {r['obs_to_command']['p99_ms']:.2f} | "
              f"{r['policy_tick']['p50_ms']:.2f} / {r['policy_tick']['p99_ms']:.2f} | {r['overruns']} |")


if __name__ == "__main__":
    main()
