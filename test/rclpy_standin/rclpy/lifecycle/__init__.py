"""rclpy.lifecycle (stand-in): the managed-node state machine with rclpy's callbacks and trigger_* methods."""
from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

from rclpy.node import Node as _Node
from rclpy.node import Publisher as _Publisher


class TransitionCallbackReturn(IntEnum):
    SUCCESS = 97
    FAILURE = 98
    ERROR = 99

    def to_label(self) -> str:
        return {97: "success", 98: "failure", 99: "error"}[int(self)]


class LifecycleState(NamedTuple):
    label: str
    state_id: int


State = LifecycleState

_STATES = {"unconfigured": 1, "inactive": 2, "active": 3, "finalized": 4}
# transition -> (from states, intermediate callback, goal on success)
_TRANSITIONS = {
    "configure": (("unconfigured",), "on_configure", "inactive"),
    "cleanup": (("inactive",), "on_cleanup", "unconfigured"),
    "activate": (("inactive",), "on_activate", "active"),
    "deactivate": (("active",), "on_deactivate", "inactive"),
    "shutdown": (("unconfigured", "inactive", "active"), "on_shutdown", "finalized"),
}


class LifecyclePublisher(_Publisher):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._enabled = False

    def publish(self, msg) -> None:
        if not self._enabled:
            self.node.get_logger().warning(f"Trying to publish on the topic '{self.topic}', but the publisher is not "
                                           "activated", once=True)
            return
        super().publish(msg)

    def on_activate(self, state):
        self._enabled = True
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state):
        self._enabled = False
        return TransitionCallbackReturn.SUCCESS

    def on_configure(self, state):
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state):
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state):
        return TransitionCallbackReturn.SUCCESS


Publisher = LifecyclePublisher


class LifecycleNodeMixin:
    def _lifecycle_init(self):
        self._lifecycle_state = "unconfigured"
        self._managed_entities = set()

    def _managed(self, name, state):
        for entity in self._managed_entities:
            ret = getattr(entity, name)(state)
            if ret != TransitionCallbackReturn.SUCCESS:
                return ret
        return TransitionCallbackReturn.SUCCESS

    def on_configure(self, state):
        return self._managed("on_configure", state)

    def on_cleanup(self, state):
        return self._managed("on_cleanup", state)

    def on_shutdown(self, state):
        return self._managed("on_shutdown", state)

    def on_activate(self, state):
        return self._managed("on_activate", state)

    def on_deactivate(self, state):
        return self._managed("on_deactivate", state)

    def on_error(self, state):
        return self._managed("on_error", state)

    def add_managed_entity(self, entity) -> None:
        self._managed_entities.add(entity)

    def create_lifecycle_publisher(self, *args, **kwargs):
        if "publisher_class" in kwargs:
            raise TypeError("create_publisher() got an unexpected keyword argument 'publisher_class'")
        pub = _Node.create_publisher(self, *args, **kwargs, publisher_class=LifecyclePublisher)
        self._managed_entities.add(pub)
        return pub

    def _change_state(self, transition: str):
        sources, callback, goal = _TRANSITIONS[transition]
        if self._lifecycle_state not in sources:
            raise RuntimeError(f"Transition '{transition}' is not registered for state '{self._lifecycle_state}'")
        previous = LifecycleState(self._lifecycle_state, _STATES[self._lifecycle_state])
        try:
            ret = getattr(self, callback)(previous)
        except Exception:  # rclpy turns an exception into ERROR
            ret = TransitionCallbackReturn.ERROR
        if ret == TransitionCallbackReturn.SUCCESS:
            self._lifecycle_state = goal
        elif ret == TransitionCallbackReturn.ERROR:
            try:
                err = self.on_error(previous)
            except Exception:
                err = TransitionCallbackReturn.ERROR
            self._lifecycle_state = "unconfigured" if err == TransitionCallbackReturn.SUCCESS else "finalized"
        return ret

    def trigger_configure(self):
        return self._change_state("configure")

    def trigger_cleanup(self):
        return self._change_state("cleanup")

    def trigger_activate(self):
        return self._change_state("activate")

    def trigger_deactivate(self):
        return self._change_state("deactivate")

    def trigger_shutdown(self):
        return self._change_state("shutdown")


class LifecycleNode(LifecycleNodeMixin, _Node):
    def __init__(self, node_name, *, enable_communication_interface: bool = True, **kwargs):
        _Node.__init__(self, node_name, **kwargs)
        self._lifecycle_init()


Node = LifecycleNode
