"""Dm1Node: the lifecycle node every dm1_ros node is, plus `run()` for console_scripts.

A node declares its parameters in PARAMETERS (name, default, description, flags); this base declares them,
validates every later change in one set-parameters callback (`validate()` per node), refuses changes to
configure-time parameters while the node is configured (with the reason), publishes DiagnosticArray on
/diagnostics every diagnostics_period_s, and maps the lifecycle transitions onto configure() / activate() /
deactivate() / cleanup() hooks that raise on failure (the reason is logged, kept in `last_error` and shown in
the diagnostics). With autostart (default) `run()` configures and activates at startup; with autostart:=false a
lifecycle manager (or `ros2 lifecycle set`) drives the node.

Threads: everything a node does on its own (subscriptions, timers, its services, lifecycle transitions) runs in one
mutually exclusive callback group, `control_group`, so no two of them ever overlap; only the parameter services
(rclpy's own, in the default group) may run beside them, on the worker thread of a ControlExecutor, which is what
lets policy_node load and check a new model inside `ros2 param set` while the old one keeps planning.
"""
from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import (ConditionReachedException, ExternalShutdownException, MultiThreadedExecutor,
                             ShutdownException, SingleThreadedExecutor, TimeoutException)
from rclpy.lifecycle import LifecycleNode, LifecycleNodeMixin, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from dm1_ros.errors import raised_by_interrupt
from dm1_ros.ros.conversions import diagnostic_array
from dm1_ros.ros.topics import DIAGNOSTICS

# realsense-ros and the REP-2003 sensor profile: best effort, keep the newest few.
SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
# Subscribers of sensor data want only the newest sample (best effort matches any publisher).
LATEST_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
STATE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    read_only: bool = False  # fixed at launch (ROS refuses later sets)
    configure_only: bool = False  # changes accepted only while unconfigured (they take effect at configure)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Dm1Node(LifecycleNode):
    PARAMETERS: tuple[Param, ...] = ()
    COMMON = (
        Param("autostart", True, "configure and activate at startup; false: wait for a lifecycle manager", True),
        Param("diagnostics_period_s", 1.0, "period of the DiagnosticArray on /diagnostics (s)", True),
        Param("executor", "", "rclpy executor: single | control (control callbacks inline, parameter changes on a "
              "worker thread) | multi (rclpy's MultiThreadedExecutor, 2 threads); '' = the node's choice", True),
    )

    def __init__(self, node_name: str, **kwargs):
        # LifecycleNode.__init__, with the lifecycle services in the control group (see the module doc)
        Node.__init__(self, node_name, **kwargs)
        self.control_group = MutuallyExclusiveCallbackGroup()
        LifecycleNodeMixin.__init__(self, enable_communication_interface=True, callback_group=self.control_group)
        self.state = "unconfigured"
        self.last_error = ""
        self.declaring = True  # validate() may skip expensive checks of launch-time values (configure does them)
        self._dm1_params = {p.name: p for p in (*self.COMMON, *self.PARAMETERS)}
        for p in self._dm1_params.values():
            floaty = isinstance(p.default, float)
            descriptor = ParameterDescriptor(description=p.description, read_only=p.read_only,
                                             dynamic_typing=floaty)  # 20 and 20.0 both mean 20 Hz
            self.declare_parameter(p.name, p.default, descriptor)
            reason = self._check(p.name, self.get_parameter(p.name).value)
            if reason:
                raise ValueError(f"parameter {p.name}: {reason}")
        self.declaring = False
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS, 10)
        self.diagnostics_timer = self.create_timer(self.p("diagnostics_period_s"), self.publish_diagnostics,
                                                   callback_group=self.control_group)

    # --- parameters --------------------------------------------------------------------------------------------
    def p(self, name: str):
        value = self.get_parameter(name).value
        if isinstance(self._dm1_params[name].default, float):
            return float(value)
        if isinstance(value, (list, tuple)) or type(value).__name__ == "array":
            return list(value)
        return value

    def _check(self, name: str, value) -> str | None:
        spec = self._dm1_params.get(name)
        if spec is None:
            return None
        if isinstance(spec.default, float) and not _is_number(value):
            return f"expected a number, got {type(value).__name__} {value!r}"
        if name == "executor" and value not in EXECUTORS:
            return f"{value!r}: choose one of {', '.join(repr(e) for e in EXECUTORS)}"
        if name == "diagnostics_period_s" and not value > 0:
            return "must be positive"
        return self.validate(name, value)

    def validate(self, name: str, value) -> str | None:
        """Per-node checks: the reason a value is refused, or None."""
        return None

    def on_parameter(self, name: str, value) -> None:
        """Called for every accepted change, before the parameter holds the new value."""

    def _on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            spec = self._dm1_params.get(param.name)
            if spec is not None and spec.configure_only and self.state != "unconfigured":
                return SetParametersResult(successful=False, reason=(
                    f"{param.name} takes effect at configure; deactivate and clean up the node first "
                    f"(ros2 lifecycle set {self.get_fully_qualified_name()} cleanup)"))
            reason = self._check(param.name, param.value)
            if reason:
                return SetParametersResult(successful=False, reason=f"{param.name}: {reason}")
        for param in params:
            self.on_parameter(param.name, param.value)
        return SetParametersResult(successful=True)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def configure(self) -> None:
        """Connect and load; raise with a clear message on failure."""

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    def cleanup(self) -> None:
        """Release what configure() took; must work after a partial configure()."""

    def _fail(self, what: str, exc: BaseException) -> TransitionCallbackReturn:
        self.last_error = f"{what} failed: {exc}"
        self.get_logger().error(self.last_error)
        return TransitionCallbackReturn.FAILURE

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.configure()
        except Exception as exc:
            try:
                self.cleanup()
            except Exception as inner:  # noqa: BLE001 - report the first failure
                self.get_logger().warning(f"cleanup after the failed configure: {inner}")
            return self._fail("configure", exc)
        self.last_error = ""
        self.state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        try:
            self.activate()
        except Exception as exc:
            return self._fail("activate", exc)
        self.state = "active"
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        try:
            self.deactivate()
        except Exception as exc:
            return self._fail("deactivate", exc)
        self.state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        try:
            self.cleanup()
        except Exception as exc:
            return self._fail("cleanup", exc)
        self.state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        self.close()
        self.state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Release everything whatever the state (shutdown, Ctrl-C); safe to call twice."""
        if self.state in ("active",):
            try:
                self.deactivate()
            except Exception as exc:  # noqa: BLE001
                self.get_logger().warning(f"deactivate at close: {exc}")
        if self.state in ("active", "inactive"):
            try:
                self.cleanup()
            except Exception as exc:  # noqa: BLE001
                self.get_logger().warning(f"cleanup at close: {exc}")
        self.state = "finalized" if self.state != "unconfigured" else "unconfigured"

    def destroy_node(self) -> None:
        super().destroy_node()
        # rclpy's lifecycle state machine holds the node's handle: drop it, or the node stays in the ROS graph for as
        # long as anything still references this Python object
        self._state_machine = None

    # --- helpers -----------------------------------------------------------------------------------------------
    def now(self) -> float:
        """ROS time in seconds (the clock every stamp of the stack uses)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def trigger_service(self, name: str, fn: Callable[[], tuple[bool, str]]):
        """A std_srvs/Trigger service whose answer is fn() -> (success, message); an exception answers failure."""
        def callback(request, response):
            try:
                ok, message = fn()
            except Exception as exc:  # noqa: BLE001 - the caller gets the reason
                ok, message = False, f"{type(exc).__name__}: {exc}"
            response.success = bool(ok)
            response.message = str(message)
            # rclpy refuses one logging call site used at two severities: one call per severity
            if ok:
                self.get_logger().info(f"{name}: {message}")
            else:
                self.get_logger().warning(f"{name}: {message}")
            return response

        return self.create_service(Trigger, name, callback, callback_group=self.control_group)

    def subscribe(self, msg_type, topic: str, callback, qos):
        """A subscription in the control group."""
        return self.create_subscription(msg_type, topic, callback, qos, callback_group=self.control_group)

    def every(self, period_s: float, callback):
        """A timer in the control group."""
        return self.create_timer(period_s, callback, callback_group=self.control_group)

    def diagnostics(self) -> list[tuple[str, str, str, dict]]:
        """(name, level, message, values) per status; the default reports the lifecycle state."""
        level = "ERROR" if self.last_error else ("OK" if self.state == "active" else "WARN")
        return [("lifecycle", level, self.last_error or self.state, {"state": self.state})]

    def publish_diagnostics(self) -> None:
        try:
            statuses = [(f"{self.get_name()}: {name}", level, message, f"dm1_ros/{self.get_name()}", values)
                        for name, level, message, values in self.diagnostics()]
        except Exception as exc:  # noqa: BLE001 - diagnostics must never take the node down
            statuses = [(f"{self.get_name()}: diagnostics", "ERROR", str(exc), f"dm1_ros/{self.get_name()}", {})]
        self.diagnostics_pub.publish(diagnostic_array(self.now(), statuses))


EXECUTORS = ("", "single", "control", "multi")


class ControlExecutor(SingleThreadedExecutor):
    """Callbacks of the nodes' control groups run on the spinning thread, exactly as a single-threaded executor
    runs them (no hand-off to a pool); everything else, which for dm1 nodes is rclpy's parameter services, runs on
    one worker thread, so a slow parameter change (policy_node loading and checking a model inside `ros2 param
    set`) never stalls planning. Measured against rclpy's MultiThreadedExecutor in bench/ros_loop.py."""

    def __init__(self, *, context=None):
        super().__init__(context=context)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="dm1-parameters")
        self._pending: list = []

    def _spin_once_impl(self, timeout_sec=None, wait_condition=lambda: False):
        try:
            handler, entity, node = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (ShutdownException, TimeoutException, ConditionReachedException, ExternalShutdownException):
            return
        if getattr(entity, "callback_group", None) is getattr(node, "control_group", None):
            handler()
            handler.result()  # raise any exception
        else:
            self._pending.append(self._worker.submit(handler))
        for future in [f for f in self._pending if f.done()]:
            self._pending.remove(future)
            future.result()

    def shutdown(self, timeout_sec=None) -> bool:
        done = super().shutdown(timeout_sec)
        self._worker.shutdown(wait=False)
        return done


def make_executor(kind: str):
    if kind == "multi":
        return MultiThreadedExecutor(num_threads=2)
    if kind == "control":
        return ControlExecutor()
    return SingleThreadedExecutor()


def run(node_class, args=None, executor: str = "single") -> int:
    """console_scripts entry: init, build the node, autostart, spin until Ctrl-C, release, shut down.
    executor: the node's choice of EXECUTORS (its `executor` parameter overrides it)."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = node_class()
        if node.p("autostart"):
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
            else:
                node.get_logger().error(f"not configured ({node.last_error}); fix it and run "
                                        f"`ros2 lifecycle set {node.get_fully_qualified_name()} configure`")
        spinner = make_executor(node.p("executor") or executor)
        spinner.add_node(node)
        try:
            spinner.spin()
        finally:
            spinner.shutdown()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001 - a clear last word instead of a bare traceback
        if raised_by_interrupt(exc):
            pass
        elif rclpy.ok():
            print(f"{node_class.__name__}: {type(exc).__name__}: {exc}", flush=True)
            code = 1
        else:  # SIGINT shut the context down under a running callback: rclpy's bindings raise then (seen under load)
            print(f"{node_class.__name__}: shut down during a callback ({type(exc).__name__}: {exc})", flush=True)
    finally:
        # A second Ctrl-C (ros2 launch forwards one, a terminal may send another) must not cut the release short:
        # closing writes what is being recorded and stops the robot.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code
