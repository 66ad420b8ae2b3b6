"""Real ROS 2 for the tests: found or skipped with one line, one ROS domain per test, the package built with colcon
once per session, launched stacks and CLI calls in that domain, and everything started stopped again.

    from ros2_support import ROS2, requires_ros2, ros, ros_domain, ros_ws   # noqa: F401 (fixtures)

ROS 2 comes from the environment the tests run in: `make test` runs pytest through tools/with_ros2, which sources a
ROS 2 it finds (an already sourced one, or ../shared/ros2/jazzy); `source ../shared/ros2/jazzy/env.sh` or
`source /opt/ros/jazzy/setup.bash` before pytest does the same (a tree that lost its symlinks is mended by
tools/ros2_links.py either way). Without one, every ROS test skips with HOW. Environment of every ROS process the tests start:
ROS_DOMAIN_ID of the test (an id no other test run on this machine holds: a lock file per id),
ROS_PYTHON_CHECK_FIELDS=1 (rclpy checks every field assignment), the colcon workspace sourced on top.
"""
from __future__ import annotations

import fcntl
import gc
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOW = ("no ROS 2 found: run the tests through tools/with_ros2 (make test does; it uses ../shared/ros2/jazzy when "
       "present) or `source /opt/ros/jazzy/setup.bash` first")

if os.environ.get("ROS_DISTRO"):  # sourced: mend a tree copied without its symlinks (a no-op otherwise)
    sys.path.insert(0, str(ROOT / "tools"))
    from ros2_links import mend_environment

    mend_environment()

try:
    import rclpy  # noqa: F401

    ROS2 = True
except ImportError:
    ROS2 = False

requires_ros2 = pytest.mark.skipif(not ROS2, reason=HOW)
os.environ.setdefault("ROS_PYTHON_CHECK_FIELDS", "1")


# --- ROS domains -----------------------------------------------------------------------------------------------
class Domain:
    """A ROS domain id held by this process (a lock file per id), so parallel test runs never share one."""

    LOCK_DIR = Path(tempfile.gettempdir()) / "dm1_ros_domains"

    used_here: set[int] = set()  # ids this process held before: the next test gets another one if it can

    def __init__(self):
        self.LOCK_DIR.mkdir(exist_ok=True)
        start = 1 + (os.getpid() * 7) % 100
        order = [1 + (start + k) % 100 for k in range(100)]  # 1..100 (0 is every ROS user's default: never here)
        order.sort(key=lambda d: d in self.used_here)
        for candidate in order:
            handle = open(self.LOCK_DIR / f"{candidate}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self.id, self._handle = candidate, handle
            self.used_here.add(candidate)
            return
        raise RuntimeError("no free ROS domain id in 1..100")

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


@pytest.fixture
def ros_domain():
    if not ROS2:
        pytest.skip(HOW)
    domain = Domain()
    try:
        yield domain.id
    finally:
        domain.release()


# --- the package built with colcon --------------------------------------------------------------------------------
def _sourced_env(script: Path) -> dict:
    out = subprocess.run(["bash", "-c", f'source "{script}" >/dev/null && env -0'], capture_output=True, check=True,
                         env=os.environ.copy())
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


@pytest.fixture(scope="session")
def ros_ws(tmp_path_factory):
    """`colcon build` of this package into a temporary workspace (once per session) -> its environment."""
    if not ROS2:
        pytest.skip(HOW)
    ws = tmp_path_factory.mktemp("colcon_ws")
    cmd = [sys.executable, "-m", "colcon", "build", "--base-paths", str(ROOT), "--build-base", str(ws / "build"),
           "--install-base", str(ws / "install"), "--event-handlers", "console_direct-"]
    done = subprocess.run(cmd, cwd=ws, capture_output=True, text=True)
    assert done.returncode == 0, f"colcon build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    env = _sourced_env(ws / "install" / "local_setup.bash")
    # ROS 2 scripts run `#!/usr/bin/env python3`: the interpreter of these tests, with the package's dependencies
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["ROS_PYTHON_CHECK_FIELDS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return {"path": ws, "env": env}


def ros2_cli(ws: dict, domain: int, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """`ros2 ARGS` in the test's domain, without the daemon (nothing is left running)."""
    env = {**ws["env"], "ROS_DOMAIN_ID": str(domain)}
    return subprocess.run(["ros2", *args], env=env, capture_output=True, text=True, timeout=timeout)


def _default_sigint():
    """In the child: SIGINT back to its default. A shell starts background jobs with SIGINT ignored and that is
    inherited (pytest run as `make test &`, under nohup, by a CI runner); `ros2 launch` then never sees stop()."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Launched:
    """`ros2 launch dm1_ros FILE args...` in its own process group; output goes to a file; stop() ends it with
    SIGINT (what Ctrl-C sends), then SIGTERM / SIGKILL if it does not finish."""

    def __init__(self, ws: dict, domain: int, launch_file: str, *args: str, log: Path, cwd: Path | None = None,
                 env: dict | None = None):
        self.log = Path(log)
        self._out = open(self.log, "w")
        full_env = {**ws["env"], "ROS_DOMAIN_ID": str(domain), **(env or {})}
        self.proc = subprocess.Popen(["ros2", "launch", "dm1_ros", launch_file, *args], env=full_env,
                                     stdout=self._out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True,
                                     preexec_fn=_default_sigint)

    def text(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                return needle in self.text()
            time.sleep(0.2)
        return False

    def stop(self, timeout: float = 120.0) -> int:
        """SIGINT to `ros2 launch` (it forwards it to every node, as on Ctrl-C); whatever is still running after
        `timeout` is terminated, then killed, with its whole process group. -> the exit code of ros2 launch."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            self.stop_seconds = time.monotonic() - t0
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)  # leftovers of a launch that did not end cleanly
            except ProcessLookupError:
                break
            time.sleep(0.5)
        self.proc.wait()
        self._out.close()
        return self.proc.returncode


# --- in-process nodes ------------------------------------------------------------------------------------------
class Harness:
    """rclpy in the test process, on the test's domain: a probe node, the nodes under test, one executor spun by
    the test itself (so callbacks run only inside spin() and ticks fired by hand are deterministic)."""

    def __init__(self, domain: int):
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.domain = domain
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("dm1_test_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.nodes = [self.node]
        self._pubs = {}

    # --- nodes ---------------------------------------------------------------------------------------------------
    def add(self, node_class, **kwargs):
        node = node_class(context=self.context, **kwargs)
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def manual_timers(self, node) -> None:
        """Cancel the node's timers so that only fire() runs them."""
        for timer in list(node.timers):
            timer.cancel()

    @staticmethod
    def fire(timer) -> None:
        timer.callback()

    def configure(self, node, activate=True):
        from rclpy.lifecycle import TransitionCallbackReturn

        ret = node.trigger_configure()
        self.manual_timers(node)
        if ret == TransitionCallbackReturn.SUCCESS and activate:
            ret = node.trigger_activate()
            self.manual_timers(node)
        return ret

    # --- topics and services ---------------------------------------------------------------------------------------
    def capture(self, msg_type, topic, qos=None, reliable=False) -> list:
        """Messages of `topic`, appended as they arrive while spinning."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

        if qos is None:
            qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE) if reliable else qos_profile_sensor_data
        got: list = []
        self.node.create_subscription(msg_type, topic, got.append, qos)
        return got

    def publisher(self, msg_type, topic, qos=10):
        key = (msg_type, topic)
        if key not in self._pubs:
            self._pubs[key] = self.node.create_publisher(msg_type, topic, qos)
        return self._pubs[key]

    def publish(self, msg, topic, qos=10, subscribers: int = 1, timeout: float = 5.0) -> None:
        """Publish once `subscribers` subscriptions have matched (DDS discovery takes a moment), then spin a little
        so the message is delivered in-process."""
        pub = self.publisher(type(msg), topic, qos)
        self.spin(lambda: pub.get_subscription_count() >= subscribers, timeout=timeout)
        assert pub.get_subscription_count() >= subscribers, f"nobody subscribes to {topic}"
        pub.publish(msg)
        self.spin(timeout=0.05)

    def spin(self, until=None, timeout: float = 2.0) -> bool:
        """Run callbacks until `until()` is true or the timeout passes (without `until`: for `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until is not None and until():
                return True
            self.executor.spin_once(timeout_sec=0.005)
        return bool(until()) if until is not None else True

    def call(self, srv_type, name, request=None, timeout=10.0):
        client = self.node.create_client(srv_type, name)
        assert self.spin(client.service_is_ready, timeout=timeout), f"service {name} is not available"
        future = client.call_async(request or srv_type.Request())
        self.spin(future.done, timeout=timeout)
        assert future.done(), f"service {name} did not answer"
        self.node.destroy_client(client)
        return future.result()

    # --- time ----------------------------------------------------------------------------------------------------
    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def close(self) -> None:
        for node in reversed(self.nodes[1:]):
            try:
                close = getattr(node, "close", None)
                if close is not None:
                    close()
            finally:
                self.executor.remove_node(node)
                node.destroy_node()
        self.node.destroy_node()
        self.executor.shutdown()
        _finish(self.context)


def _finish(context) -> None:
    """Shut a context down and release its DDS participant now (not whenever the garbage collector gets to it:
    until then its nodes stay in the graph of the domain, where the next test would meet them)."""
    rclpy.try_shutdown(context=context)
    context.destroy()
    gc.collect()


@pytest.fixture
def ros(ros_domain):
    harness = Harness(ros_domain)
    try:
        yield harness
    finally:
        harness.close()


# --- a background spinner for launched stacks ------------------------------------------------------------------
class Probe:
    """A probe node spun on its own thread, for tests against launched processes (wall-clock time)."""

    def __init__(self, domain: int):
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("dm1_test_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self._waiting = 0  # callers queued for the lock: the spinning thread steps aside for them
        self._clients: dict = {}  # (type, name) -> (client, when created)
        self._publishers: dict = {}  # (type, topic) -> publisher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while not self._stop.is_set():
            if self._waiting:  # threading.Lock is not fair: re-taking it at once starved callers for minutes
                time.sleep(0.001)
                continue
            with self._lock:
                self.executor.spin_once(timeout_sec=0.01)

    @contextmanager
    def lock(self):
        """The node, for the caller's thread: served before the spinning thread takes it again."""
        self._waiting += 1  # only the test's thread changes it; the spinning thread reads it
        try:
            with self._lock:
                yield
        finally:
            self._waiting -= 1

    def capture(self, msg_type, topic, qos=None):
        from rclpy.qos import qos_profile_sensor_data

        got: list = []
        with self.lock():
            self.node.create_subscription(msg_type, topic, got.append, qos or qos_profile_sensor_data)
        return got

    SETTLE_S = 1.0

    def prepare(self, srv_type, *names):
        """Create the clients of services called later, so that discovery runs both ways meanwhile: Cyclone DDS
        drops a response when the server has not yet discovered the client's reply reader (rmw_cyclonedds waits
        100 ms for it, then rclpy logs "failed to send response (timeout)"), which a loaded machine can exceed."""
        for name in names:
            self._client(srv_type, name)

    def _client(self, srv_type, name):
        key = (srv_type, name)
        if key not in self._clients:  # one client per service: discovery happens once
            with self.lock():
                self._clients[key] = (self.node.create_client(srv_type, name), time.monotonic())
        return self._clients[key]

    def call(self, srv_type, name, request=None, timeout=60.0, resend_after=None):
        """The service's answer. resend_after: for a request that is safe to repeat (a query), send it again when no
        answer came within that many seconds, in case the reply was dropped (see prepare())."""
        client, created = self._client(srv_type, name)
        deadline = time.monotonic() + timeout
        while not client.service_is_ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.service_is_ready(), f"service {name} is not available"
        time.sleep(max(0.0, created + self.SETTLE_S - time.monotonic()))  # a new client: let the server find it
        futures, sent = [], 0.0
        while time.monotonic() < deadline:
            if not futures or (resend_after and time.monotonic() - sent > resend_after):
                with self.lock():
                    futures.append(client.call_async(request or srv_type.Request()))
                sent = time.monotonic()
            answered = [f for f in futures if f.done()]
            if answered:
                return answered[0].result()
            time.sleep(0.01)
        raise AssertionError(f"service {name} did not answer within {timeout} s ({len(futures)} request(s) sent)")

    def publish(self, msg, topic, qos=10, subscribers: int = 1, timeout: float = 10.0):
        key = (type(msg), topic)
        if key not in self._publishers:  # one publisher per topic: discovery happens once, not per message
            with self.lock():
                self._publishers[key] = self.node.create_publisher(type(msg), topic, qos)
        pub = self._publishers[key]
        deadline = time.monotonic() + timeout
        while pub.get_subscription_count() < subscribers and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pub.get_subscription_count() >= subscribers, f"nobody subscribes to {topic}"
        with self.lock():
            pub.publish(msg)

    @staticmethod
    def wait(condition, timeout: float, period: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(period)
        return bool(condition())

    def close(self):
        self._stop.set()
        self._thread.join(2.0)
        self.node.destroy_node()
        self.executor.shutdown()
        _finish(self.context)


@pytest.fixture
def probe(ros_domain):
    p = Probe(ros_domain)
    try:
        yield p
    finally:
        p.close()
