"""rclpy stand-in for tests on machines without ROS 2 (test/rclpy_standin; see test/ros_standin.py).

Mirrors the part of rclpy the dm1_ros nodes use, with the same names and signatures, over an in-process topic
bus and a clock that only tests move (`rclpy._standin.advance`). Not a ROS implementation.
"""
from __future__ import annotations

from rclpy import _standin

STANDIN = True
_global_executor = None


def init(*, args=None, context=None, domain_id=None, signal_handler_options=None) -> None:
    if _standin.WORLD.initialized:
        raise RuntimeError("Context.init() must only be called once")
    _standin.WORLD.reset()
    _standin.WORLD.initialized = True


def ok(*, context=None) -> bool:
    return _standin.WORLD.initialized


def shutdown(*, context=None, uninstall_handlers=None) -> None:
    if not _standin.WORLD.initialized:
        raise RuntimeError("Context must be initialized before it can be shutdown")
    _standin.WORLD.initialized = False


def try_shutdown(*, context=None, uninstall_handlers=None) -> None:
    _standin.WORLD.initialized = False


def create_node(node_name, **kwargs):
    from rclpy.node import Node

    return Node(node_name, **kwargs)


def get_global_executor():
    global _global_executor
    if _global_executor is None:
        from rclpy.executors import SingleThreadedExecutor

        _global_executor = SingleThreadedExecutor()
    return _global_executor


def spin_once(node, *, executor=None, timeout_sec=None) -> None:
    executor = executor or get_global_executor()
    added = executor.add_node(node)
    try:
        executor.spin_once(timeout_sec=timeout_sec)
    finally:
        if added:
            executor.remove_node(node)


def spin(node, executor=None) -> None:
    executor = executor or get_global_executor()
    added = executor.add_node(node)
    try:
        executor.spin()
    finally:
        if added:
            executor.remove_node(node)


def spin_until_future_complete(node, future, executor=None, timeout_sec=None) -> None:
    executor = executor or get_global_executor()
    added = executor.add_node(node)
    try:
        executor.spin_until_future_complete(future, timeout_sec)
    finally:
        if added:
            executor.remove_node(node)
