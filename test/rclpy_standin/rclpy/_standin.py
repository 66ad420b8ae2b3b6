"""State of the stand-in world: a settable clock, an in-process topic bus, captured log lines.

Only tests use this module directly (`rclpy._standin.advance(0.05)`); nodes see the real rclpy API.
"""
from __future__ import annotations

import copy
import itertools
import logging
import threading
from collections import deque

START_NS = 1_700_000_000 * 10**9


class World:
    def __init__(self):
        self.lock = threading.RLock()
        self.now_ns = START_NS
        self.subscriptions: dict[str, list] = {}
        self.publishers: dict[str, list] = {}
        self.services: dict[str, object] = {}
        self.log: list[tuple[str, str, str]] = []
        self.seq = itertools.count()
        self.initialized = False

    def reset(self):
        self.__init__()


WORLD = World()


def now_ns() -> int:
    with WORLD.lock:
        return WORLD.now_ns


def advance(seconds: float) -> None:
    """Move the clock every node sees forward (timers become due accordingly)."""
    with WORLD.lock:
        WORLD.now_ns += int(round(seconds * 1e9))


def set_time(seconds: float) -> None:
    with WORLD.lock:
        WORLD.now_ns = int(round(seconds * 1e9))


def log_lines(level: str | None = None) -> list[str]:
    return [m for _, lv, m in WORLD.log if level is None or lv == level]


def resolve_name(name: str, node_name: str, namespace: str) -> str:
    ns = namespace.rstrip("/")
    if name.startswith("~"):
        return f"{ns}/{node_name}{name[1:]}" if name[1:] else f"{ns}/{node_name}"
    if name.startswith("/"):
        return name
    return f"{ns}/{name}"


def qos_compatible(pub_qos, sub_qos) -> str | None:
    """None when a publisher with `pub_qos` reaches a subscription with `sub_qos`, else why not (as DDS decides)."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    if pub_qos.reliability == ReliabilityPolicy.BEST_EFFORT and sub_qos.reliability == ReliabilityPolicy.RELIABLE:
        return "publisher offers BEST_EFFORT, subscription requests RELIABLE"
    if pub_qos.durability == DurabilityPolicy.VOLATILE and sub_qos.durability == DurabilityPolicy.TRANSIENT_LOCAL:
        return "publisher offers VOLATILE, subscription requests TRANSIENT_LOCAL"
    return None


def check_type(topic: str, msg_type) -> None:
    """The stand-in refuses two message types on one topic (DDS would silently never match them)."""
    with WORLD.lock:
        for ent in WORLD.publishers.get(topic, []) + WORLD.subscriptions.get(topic, []):
            if ent.msg_type is not msg_type:
                raise TypeError(f"topic {topic}: {msg_type.__module__}.{msg_type.__name__} conflicts with "
                                f"{ent.msg_type.__module__}.{ent.msg_type.__name__} already used on it")


def deliver(topic: str, msg, pub_qos) -> None:
    with WORLD.lock:
        subs = list(WORLD.subscriptions.get(topic, []))
        for sub in subs:
            why = qos_compatible(pub_qos, sub.qos_profile)
            if why:
                record("WARN", "standin", f"incompatible QoS on {topic}: {why}; message not delivered")
                continue
            sub._enqueue(next(WORLD.seq), copy.deepcopy(msg))


def record(level: str, name: str, message: str) -> None:
    with WORLD.lock:
        WORLD.log.append((name, level, message))
    logging.getLogger(f"standin.{name}").log(getattr(logging, {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)),
                                             message)


class Queue(deque):
    """A KEEP_LAST queue (depth) of (sequence, message)."""
