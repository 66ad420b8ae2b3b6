"""rclpy.executors (stand-in): run one ready callback per spin_once, on the calling thread."""
from __future__ import annotations

from rclpy import _standin


class ExternalShutdownException(Exception):
    pass


class Executor:
    def __init__(self, *, context=None):
        self._nodes = []

    def add_node(self, node) -> bool:
        if node in self._nodes:
            return False
        self._nodes.append(node)
        node.executor = self
        return True

    def remove_node(self, node) -> None:
        if node in self._nodes:
            self._nodes.remove(node)

    def get_nodes(self):
        return list(self._nodes)

    def _step(self) -> bool:
        ready = []
        for node in list(self._nodes):
            ready.extend(node._ready())
        if not ready:
            return False
        ready.sort(key=lambda r: (r[0], r[1]))
        ready[0][2]()
        return True

    def spin_once(self, timeout_sec=None) -> None:
        """Runs one ready callback if there is one; returns at once otherwise (the stand-in clock only moves
        when a test moves it, so waiting could not make anything ready)."""
        self._step()

    def spin_until_future_complete(self, future, timeout_sec=None) -> None:
        while not future.done() and self._step():
            pass

    def spin(self) -> None:
        """Runs callbacks until nothing is ready (a real executor would then wait for more)."""
        while _standin.WORLD.initialized and self._step():
            pass

    def shutdown(self, timeout_sec=None) -> bool:
        self._nodes.clear()
        return True


class SingleThreadedExecutor(Executor):
    pass


class MultiThreadedExecutor(Executor):
    def __init__(self, num_threads=None, *, context=None):
        super().__init__(context=context)
