"""The control loop through ROS 2 (real DDS) against the same loop in one process -> docs/bench_ros_loop.json and the
ROS rows of the loop table in docs/results.md.

    tools/with_ros2 python bench/ros_loop.py        # about 4 minutes on 2 cores; needs ROS 2 and franky-sim

Set-up, all on this machine: this package built with colcon into a temporary workspace; franky-sim (the libfranka
protocol, MuJoCo) in its own process; franka_bridge_node at control_rate 200 against it and policy_node with the
shipped model, each started with `ros2 run` in a fresh ROS domain; this script is the camera: it publishes images on
the realsense-ros topic at 30 fps, each stamped with the time it is published. Measured, per variant:
- image -> trajectory: policy_node plans on each image and publishes the command stamped with the image's stamp;
  this script receives it; latency = receipt time - stamp (one clock), p50 / p99 / max over every image;
- achieved rates from the nodes' diagnostics: plans per second (policy), ticks per second (bridge, target 200);
- CPU % of each node process (psutil), idle (active, no images) and running;
- variants: 96x96 and 640x480 images (the second is resized in the node), and policy_node's rclpy executor
  (`executor`: single-threaded, ControlExecutor, rclpy's MultiThreadedExecutor);
- in the same run, the same loop in one process (`dm1 run --robot franka`'s ControlLoop with the FrankaBridge to the
  same franky-sim at 200 Hz, frames pushed at 30 fps): observation -> command latency, for the ratio.
Figures only, never pass/fail.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psutil  # noqa: E402
import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from dm1_ros.ros import conversions as cv  # noqa: E402
from dm1_ros.ros.node_base import SENSOR_QOS  # noqa: E402
from dm1_ros.ros.topics import ACTION_TRAJECTORY, CAMERA_IMAGE, DIAGNOSTICS  # noqa: E402
from dm1_ros.runtime.cpu import cpu_description  # noqa: E402

MODEL = ROOT / "models" / "lift_image"
FPS = 30.0
IDLE_S, RUN_S = 4.0, 15.0
SIM_START_Q = [0.0, 0.0, 0.0, -1.57, 0.0, 1.57, 0.785]


def stats_ms(seconds):
    a = np.asarray(seconds) * 1e3
    if a.size == 0:
        return {"n": 0}
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2), "n": int(a.size)}


def colcon_env(ws: Path) -> dict:
    subprocess.run([sys.executable, "-m", "colcon", "build", "--base-paths", str(ROOT), "--build-base",
                    str(ws / "build"), "--install-base", str(ws / "install")], cwd=ws, check=True,
                   capture_output=True)
    out = subprocess.run(["bash", "-c", f'source "{ws}/install/local_setup.bash" >/dev/null && env -0'],
                         capture_output=True, check=True)
    env = dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


class Camera:
    """This script's side of DDS: publishes images, receives the policy's commands and everyone's diagnostics."""

    def __init__(self, domain: int):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image
        from trajectory_msgs.msg import MultiDOFJointTrajectory

        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("dm1_bench_camera", context=self.context)
        self.image_pub = self.node.create_publisher(Image, CAMERA_IMAGE, SENSOR_QOS)
        self.latencies: list[float] = []
        self.diagnostics: dict[str, dict] = {}
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(MultiDOFJointTrajectory, ACTION_TRAJECTORY, self._on_command, reliable)
        self.node.create_subscription(DiagnosticArray, DIAGNOSTICS, self._on_diagnostics, reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.01)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def publish_state(self, rate_hz: float):
        """The robot state a bridge would publish, from a timer of this node."""
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import JointState

        from dm1_ros.ros.node_base import STATE_QOS
        from dm1_ros.ros.topics import EEF_POSE, JOINT_STATES

        pubs = (self.node.create_publisher(JointState, JOINT_STATES, STATE_QOS),
                self.node.create_publisher(PoseStamped, EEF_POSE, STATE_QOS))
        proprio = np.array([-0.1, 0.0, 1.0, 1, 0, 0, 0, 0.02, -0.02])

        def tick():
            joints, pose, _ = cv.state_messages(proprio, self.now(), "panda_link0")
            pubs[0].publish(joints)
            pubs[1].publish(pose)

        self.node.create_timer(1.0 / rate_hz, tick)

    def _on_command(self, msg):
        if msg.points:  # holds (no points) are not plans
            self.latencies.append(self.now() - cv.to_sec(msg.header.stamp))

    def _on_diagnostics(self, msg):
        for status in msg.status:
            self.diagnostics[status.name.split(":")[0]] = cv.diagnostic_values(status)

    def stream(self, seconds: float, size: tuple[int, int]):
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8) for _ in range(8)]
        t_next, end, i = time.monotonic(), time.monotonic() + seconds, 0
        while time.monotonic() < end:
            self.image_pub.publish(cv.array_to_image(frames[i % len(frames)], self.now(), "camera_color_optical_frame"))
            i += 1
            t_next += 1.0 / FPS
            time.sleep(max(0.0, t_next - time.monotonic()))

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.node.destroy_node()
        self.executor.shutdown()
        rclpy.try_shutdown(context=self.context)


def cpu_percent(procs: dict, seconds: float) -> dict:
    """CPU % of each process (and its children: `ros2 run` execs the node) over `seconds`."""
    tree = {name: [p, *p.children(recursive=True)] for name, p in procs.items()}
    for ps in tree.values():
        for p in ps:
            p.cpu_percent(None)
    time.sleep(seconds)
    return {name: round(sum(p.cpu_percent(None) for p in ps), 1) for name, ps in tree.items()}


def ros_row(env, domain, host, robot_config, size, executor):
    """host None: no robot; this script publishes the robot state at 50 Hz (the policy node's own latency)."""
    run_env = {**env, "ROS_DOMAIN_ID": str(domain)}
    if host is None:
        bridge = subprocess.Popen(["sleep", "3600"], start_new_session=True)
    else:
        bridge = subprocess.Popen(["ros2", "run", "dm1_ros", "franka_bridge_node", "--ros-args", "-p",
                                   f"robot_ip:={host}", "-p", f"robot_config:={robot_config}", "-p",
                                   "control_rate:=200.0"], env=run_env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
    policy = subprocess.Popen(["ros2", "run", "dm1_ros", "policy_node", "--ros-args", "-p", f"model_path:={MODEL}",
                               "-p", "threads:=2", "-p", f"executor:={executor}", "-p", "blending:=latest"],
                              env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    camera = Camera(domain)
    if host is None:
        camera.publish_state(50.0)
    try:
        deadline = time.monotonic() + 60
        wanted = {"policy"} if host is None else {"policy", "franka_bridge"}
        while time.monotonic() < deadline and not (wanted <= set(camera.diagnostics)
                                                   and camera.diagnostics["policy"].get("state") == "active"):
            time.sleep(0.2)
        procs = {"policy_node": psutil.Process(policy.pid), "franka_bridge_node": psutil.Process(bridge.pid)}
        if host is None:
            procs.pop("franka_bridge_node")
        idle = cpu_percent(procs, IDLE_S)
        camera.latencies.clear()
        load = threading.Thread(target=camera.stream, args=(RUN_S, size))
        load.start()
        time.sleep(2.0)  # measure CPU in the steady state
        running = cpu_percent(procs, RUN_S - 4.0)
        load.join()
        time.sleep(1.5)  # the last diagnostics
        p, b = camera.diagnostics.get("policy", {}), camera.diagnostics.get("franka_bridge", {})
        return {"image": f"{size[0]}x{size[1]}", "policy_executor": executor,
                "image_to_trajectory": stats_ms(camera.latencies[int(FPS):]),  # after the first second
                "policy_plans_hz": float(p.get("achieved_hz", 0)), "policy_infer_p50_ms": float(p.get("infer_p50_ms", 0)),
                "bridge_target_hz": float(b.get("target_hz", 0)), "bridge_achieved_hz": float(b.get("achieved_hz", 0)),
                "bridge_overruns": int(b.get("overruns", 0)), "bridge_ticks": int(b.get("ticks", 0)),
                "franka_command_hz": float(b.get("franka_command_hz", 0)),
                "cpu_percent_idle": idle, "cpu_percent_running": running}
    finally:
        camera.close()
        for proc in (policy, bridge):  # `ros2 run` starts the node as its child: signal the whole group
            os.killpg(proc.pid, signal.SIGINT)
        for proc in (policy, bridge):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def in_process_row(host):
    """The same loop without ROS: bench/loop.py's run_loop with the FrankaBridge to the same franky-sim."""
    from loop import COMMAND_HZ, FramePusher, run_loop

    from dm1_ros.hardware.cameras import SoftwareCamera
    from dm1_ros.hardware.franka import FrankaBridge, FrankaConfig
    from dm1_ros.runtime.onnx_policy import OnnxPolicy

    policy = OnnxPolicy(MODEL, threads=2)
    name = policy.manifest.observation.images[0].name
    cam = SoftwareCamera(name=name).start()
    pusher = FramePusher(cam, FPS)
    pusher.thread.start()
    cam.wait_for_frame(2.0, after=-1)
    config = FrankaConfig(robot_ip=host, realtime="ignore", rate_hz=policy.manifest.control_rate_hz,
                          command_rate_hz=COMMAND_HZ, home_q=SIM_START_Q)
    bridge = FrankaBridge(config, cameras={name: cam})
    bridge.reset()
    process = psutil.Process()
    process.cpu_percent(None)
    try:
        row = run_loop(bridge, policy, RUN_S)
        row["cpu_percent"] = round(process.cpu_percent(None), 1)
    finally:
        bridge.hold()
        bridge.close()
        pusher.stop.set()
        cam.stop()
    return row


def fresh_franky_sim():
    """franky-sim in its own process, started anew for every row (a client that went away may leave it busy)."""
    from loop import start_franky_sim

    return start_franky_sim()


def main():
    domain = 1 + os.getpid() % 100
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        import yaml

        env = colcon_env(Path(tmp))
        config = yaml.safe_load((ROOT / "config" / "robot" / "franka.yaml").read_text())
        config.update(realtime="ignore", home_q=SIM_START_Q, relative_dynamics_factor=0.2)
        robot_config = Path(tmp) / "franky_sim.yaml"
        robot_config.write_text(yaml.safe_dump(config))
        variants = [((96, 96), "control", False), ((96, 96), "single", True), ((96, 96), "control", True),
                    ((96, 96), "multi", True), ((640, 480), "control", True), None]
        for variant in variants:
            proc, host = fresh_franky_sim() if variant is None or variant[2] else (None, None)
            if proc is None and (variant is None or variant[2]):
                return
            try:
                if variant is None:
                    key = "in process (dm1 run): image 96x96"
                    rows[key] = in_process_row(host)
                else:
                    size, executor, robot = variant
                    where = "franka_bridge_node at 200 Hz on franky-sim" if robot else "no robot (state at 50 Hz)"
                    key = f"ROS 2: image {size[0]}x{size[1]}, policy_node executor {executor}, {where}"
                    rows[key] = ros_row(env, domain, host, robot_config, size, executor)
                print(key, json.dumps(rows[key]), flush=True)
            finally:
                if proc is not None:
                    proc.terminate()
                    proc.wait(10)
    result = {"model": MODEL.name, "camera_fps": FPS, "bridge_target_hz": 200, "seconds_per_row": RUN_S,
              "cores": os.cpu_count(), "cpu": cpu_description(), "rows": rows}
    (ROOT / "docs" / "bench_ros_loop.json").write_text(json.dumps(result, indent=1) + "\n")
    inproc = rows["in process (dm1 run): image 96x96"]["obs_to_command"]
    print("\n| loop | image -> command p50 / p99 / max ms | ratio p99 to in-process | policy Hz | bridge Hz "
          "(target 200) | CPU % policy / bridge, idle -> running |")
    print("|---|---|---:|---:|---:|---|")
    for key, r in rows.items():
        if key.startswith("ROS"):
            lat = r["image_to_trajectory"]
            cpu_i, cpu_r = r["cpu_percent_idle"], r["cpu_percent_running"]
            bridge_i, bridge_r = cpu_i.get("franka_bridge_node", 0), cpu_r.get("franka_bridge_node", 0)
            print(f"| {key} | {lat['p50_ms']:.2f} / {lat['p99_ms']:.2f} / {lat['max_ms']:.2f} | "
                  f"{lat['p99_ms'] / inproc['p99_ms']:.2f} | {r['policy_plans_hz']:.1f} | {r['bridge_achieved_hz']:.1f} | "
                  f"{cpu_i['policy_node']:.0f} / {bridge_i:.0f} -> {cpu_r['policy_node']:.0f} / {bridge_r:.0f} |")
        else:
            print(f"| {key} | {inproc['p50_ms']:.2f} / {inproc['p99_ms']:.2f} / {inproc['max_ms']:.2f} | 1.00 | - | "
                  f"{r['command_hz']:.1f} | {r['cpu_percent']:.0f} (one process) |")


if __name__ == "__main__":
    main()
