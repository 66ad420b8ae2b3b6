"""Tests of the ROS nodes run against real rclpy when it is importable, else against test/rclpy_standin.

    from ros_standin import Harness, ros   # noqa: F401  (`ros` is a pytest fixture)

`install()` puts the stand-in on sys.path only when `import rclpy` fails, so on a ROS 2 machine the same tests
exercise the real rclpy, message packages and launch. Harness wraps what differs between the two worlds:
spinning until a message arrives, calling a service, moving the clock (the stand-in's settable clock, or a real
sleep), and firing a node's timers deterministically (timers are cancelled and their callbacks called by hand,
which real rclpy Timers allow too).
"""
from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import pytest

STANDIN_DIR = Path(__file__).resolve().parent / "rclpy_standin"


def install() -> bool:
    """True when the stand-in is in use."""
    try:
        import rclpy  # noqa: F401

        return bool(getattr(rclpy, "STANDIN", False))
    except ImportError:
        pass
    sys.path.insert(0, str(STANDIN_DIR))
    # The repository's launch/ directory is a namespace package on sys.path when pytest runs from the root;
    # forget it so the stand-in's regular `launch` package is found.
    for name in [m for m in sys.modules if m == "launch" or m.startswith("launch.")]:
        if getattr(sys.modules[name], "__file__", None) is None:
            del sys.modules[name]
    importlib.invalidate_caches()
    import rclpy  # noqa: F401

    return True


STANDIN = install()

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402


def params(**values) -> list:
    """parameter_overrides for a node: params(model_path="...", rate=20.0)."""
    return [Parameter(k, value=v) for k, v in values.items()]


class Harness:
    def __init__(self):
        self.node = rclpy.create_node("dm1_test_harness")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.nodes = [self.node]
        self._pubs = {}

    # --- nodes ---------------------------------------------------------------------------------------------------
    def add(self, node):
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def manual_timers(self, node) -> None:
        """Cancel the node's timers so that only fire() runs them (deterministic in both worlds)."""
        for timer in list(node.timers):
            timer.cancel()

    def fire(self, timer) -> None:
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
    def capture(self, msg_type, topic, qos=None):
        from rclpy.qos import qos_profile_sensor_data

        got = []
        self.node.create_subscription(msg_type, topic, got.append, qos or qos_profile_sensor_data)
        return got

    def publish(self, msg, topic, qos=10) -> None:
        key = (type(msg), topic)
        if key not in self._pubs:
            self._pubs[key] = self.node.create_publisher(type(msg), topic, qos)
        self._pubs[key].publish(msg)

    def spin(self, until=None, timeout=2.0) -> bool:
        """Run callbacks until `until()` is true (or, with the stand-in, nothing is left to run)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until is not None and until():
                return True
            if STANDIN:
                if not self.executor._step():
                    if until is None:
                        return True
                    time.sleep(0.002)  # a camera thread may still be delivering
            else:
                self.executor.spin_once(timeout_sec=0.01)
        return until() if until is not None else True

    def call(self, srv_type, name, request=None, timeout=5.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} is not available"
        future = client.call_async(request or srv_type.Request())
        self.spin(future.done, timeout=timeout)
        assert future.done(), f"service {name} did not answer"
        return future.result()

    # --- time ----------------------------------------------------------------------------------------------------
    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def advance(self, seconds: float) -> None:
        if STANDIN:
            rclpy._standin.advance(seconds)
        else:
            time.sleep(seconds)

    def close(self) -> None:
        for node in self.nodes[1:]:
            try:
                close = getattr(node, "close", None)
                if close is not None:
                    close()
            finally:
                node.destroy_node()
        self.node.destroy_node()
        self.executor.shutdown()


@pytest.fixture
def ros():
    rclpy.init()
    harness = Harness()
    try:
        yield harness
    finally:
        harness.close()
        rclpy.try_shutdown()
