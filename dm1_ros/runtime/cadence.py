"""CadenceMonitor: target vs achieved loop rate, per-stage timings (p50/p99/max) and overruns.

    cadence = CadenceMonitor(target_hz=20)
    with cadence.tick():
        with cadence.stage("observe"): ...
        with cadence.stage("infer"): ...
    print(cadence.report_line())
"""
from __future__ import annotations

import time
from collections import defaultdict, deque
from contextlib import contextmanager

import numpy as np

STAGES = ("observe", "preprocess", "infer", "schedule", "send")


class CadenceMonitor:
    def __init__(self, target_hz: float, window: int = 2000, clock=time.perf_counter):
        self.target_hz = target_hz
        self.period = 1.0 / target_hz
        self.clock = clock
        self.stages: dict[str, deque] = defaultdict(lambda: deque(maxlen=window))
        self.tick_starts: deque[float] = deque(maxlen=window)
        self.durations: deque[float] = deque(maxlen=window)
        self.ticks = 0
        self.overruns = 0

    @contextmanager
    def tick(self):
        start = self.clock()
        self.tick_starts.append(start)
        try:
            yield
        finally:
            d = self.clock() - start
            self.durations.append(d)
            self.ticks += 1
            if d > self.period:
                self.overruns += 1

    @contextmanager
    def stage(self, name: str):
        start = self.clock()
        try:
            yield
        finally:
            self.stages[name].append(self.clock() - start)

    def record(self, name: str, seconds: float) -> None:
        self.stages[name].append(seconds)

    def achieved_hz(self) -> float:
        if len(self.tick_starts) < 2:
            return 0.0
        span = self.tick_starts[-1] - self.tick_starts[0]
        return (len(self.tick_starts) - 1) / span if span > 0 else 0.0

    def summary(self) -> dict:
        def stats(x):
            a = np.asarray(x) * 1e3
            return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max()), "n": int(a.size)}

        return {"target_hz": self.target_hz, "achieved_hz": self.achieved_hz(), "ticks": self.ticks, "overruns": self.overruns,
                "tick": stats(self.durations) if self.durations else None,
                "stages": {k: stats(v) for k, v in self.stages.items() if v}}

    def report_line(self) -> str:
        s = self.summary()
        parts = [f"{s['achieved_hz']:.1f}/{self.target_hz:.0f} Hz", f"overruns {self.overruns}/{self.ticks}"]
        for name in [*STAGES, *sorted(set(s["stages"]) - set(STAGES))]:
            if name in s["stages"]:
                st = s["stages"][name]
                parts.append(f"{name} {st['p50_ms']:.2f}/{st['p99_ms']:.2f} ms")
        warn = " BELOW TARGET" if self.ticks > 10 and s["achieved_hz"] < 0.9 * self.target_hz else ""
        return "cadence: " + ", ".join(parts) + warn
