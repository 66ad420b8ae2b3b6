"""Teleoperation devices for recording demonstrations: keyboard, SpaceMouse, scripted input.

Every device produces the policy's own action: a 7-d delta in policy units (dx dy dz in [-1, 1], x 0.05 m per
tick on the robot; drx dry drz in [-1, 1], x 0.5 rad; gripper -1 open / +1 closed), so a recorded demonstration
trains a policy with no conversion. Devices also report episode events: "toggle_episode" (start or stop
recording) and "discard" (drop the episode being recorded).

    with KeyboardTeleop() as device:
        while True:
            robot.apply(device.action())
            for event in device.events(): ...

No torch, no rclpy. pynput and pyspacemouse are imported when a device starts, so this module imports anywhere.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from dm1_ros.errors import Dm1Error

EVENTS = ("toggle_episode", "discard")


class TeleopError(Dm1Error, RuntimeError):
    pass


class TeleopDevice:
    """A background reader keeps the device state; action() and events() never block the control loop."""

    def __init__(self):
        self._lock = threading.Lock()
        self._events: list[str] = []
        self.gripper_closed = False

    def start(self) -> "TeleopDevice":
        return self

    def stop(self) -> None:
        pass

    def action(self) -> np.ndarray:
        raise NotImplementedError

    def events(self) -> list[str]:
        """Events since the last call, oldest first."""
        with self._lock:
            out, self._events = self._events, []
        return out

    def _emit(self, event: str) -> None:
        with self._lock:
            self._events.append(event)

    def _gripper(self) -> float:
        return 1.0 if self.gripper_closed else -1.0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --- keyboard --------------------------------------------------------------------------------------------------

@dataclass
class KeyboardMapping:
    """Keys -> action. Held keys move at `speed` (policy units); a terminal has no key-release events, so a press
    there counts as held for `tap_hold_s`, which key repeat keeps refreshing while the key is down."""

    translation: dict = field(default_factory=lambda: {"w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1),
                                                        "r": (2, 1), "f": (2, -1)})
    rotation: dict = field(default_factory=lambda: {"j": (0, 1), "l": (0, -1), "i": (1, 1), "k": (1, -1),
                                                     "q": (2, 1), "e": (2, -1)})
    gripper_key: str = "space"
    episode_key: str = "enter"
    discard_key: str = "backspace"
    speed: float = 0.5
    rotation_speed: float = 0.3
    tap_hold_s: float = 0.12

    def __post_init__(self):
        used = [*self.translation, *self.rotation, self.gripper_key, self.episode_key, self.discard_key]
        dupes = {k for k in used if used.count(k) > 1}
        if dupes:
            raise ValueError(f"keyboard mapping binds {sorted(dupes)} more than once")

    def motion(self, held: set[str]) -> np.ndarray:
        out = np.zeros(6)
        for key in held:
            if key in self.translation:
                axis, sign = self.translation[key]
                out[axis] += sign * self.speed
            elif key in self.rotation:
                axis, sign = self.rotation[key]
                out[3 + axis] += sign * self.rotation_speed
        return np.clip(out, -1.0, 1.0)


KEYBOARD_BACKENDS = ("auto", "pynput", "terminal", "none")


class KeyboardTeleop(TeleopDevice):
    """backend: "pynput" (a desktop session: true press/release), "terminal" (raw stdin, works over ssh), "none"
    (no reader of its own: keys arrive through press(), e.g. from the ROS topic /dm1/teleop/keys), or "auto":
    pynput when a display is set and pynput works, else the terminal when stdin is one, else none (under
    `ros2 launch` a node has neither). `active_backend` says which one start() took."""

    def __init__(self, mapping: KeyboardMapping | None = None, backend: str = "auto", clock=time.monotonic):
        super().__init__()
        if backend not in KEYBOARD_BACKENDS:
            raise ValueError(f"keyboard backend {backend!r}: choose {', '.join(KEYBOARD_BACKENDS)}")
        self.mapping = mapping or KeyboardMapping()
        self.backend = backend
        self.clock = clock
        self._held: dict[str, float] = {}  # key -> release deadline (inf while physically held)
        self._stop = threading.Event()
        self._listener = None
        self._thread: threading.Thread | None = None
        self.active_backend: str | None = None

    # Event entry points, also used by tests and by the ROS teleop node's key topic.
    def press(self, key: str, tap: bool = False) -> None:
        m = self.mapping
        if key == m.gripper_key:
            if key not in self._held or tap:
                self.gripper_closed = not self.gripper_closed
        elif key == m.episode_key:
            self._emit("toggle_episode")
        elif key == m.discard_key:
            self._emit("discard")
        with self._lock:
            self._held[key] = self.clock() + m.tap_hold_s if tap else float("inf")

    def release(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def action(self) -> np.ndarray:
        now = self.clock()
        with self._lock:
            held = {k for k, deadline in self._held.items() if deadline > now}
        return np.concatenate([self.mapping.motion(held), [self._gripper()]]).astype(np.float32)

    def start(self) -> "KeyboardTeleop":
        backend = self.backend
        if backend == "auto":
            backend = "none"
            if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
                try:
                    self._start_pynput()
                    backend = "pynput"
                except TeleopError:
                    pass
            if backend == "none" and sys.stdin is not None and sys.stdin.isatty():
                self._start_terminal()
                backend = "terminal"
        elif backend == "pynput":
            self._start_pynput()
        elif backend == "terminal":
            self._start_terminal()
        self.active_backend = backend
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.stop()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _start_pynput(self) -> None:
        try:
            from pynput import keyboard
        except Exception as exc:  # pynput raises at import when no X server / uinput is reachable
            raise TeleopError(f"keyboard teleop: pynput is unusable here ({exc}); use backend='terminal'") from None

        def name(key) -> str:
            if hasattr(key, "char") and key.char:
                return key.char.lower()
            return str(key).removeprefix("Key.")

        self._listener = keyboard.Listener(on_press=lambda k: self.press(name(k)), on_release=lambda k: self.release(name(k)))
        self._listener.start()

    def _start_terminal(self) -> None:
        if not sys.stdin.isatty():
            raise TeleopError("keyboard teleop: stdin is not a terminal; run it in a terminal or use backend='pynput'")
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)

        def read_keys():
            import select

            tty.setcbreak(fd)
            try:
                while not self._stop.is_set():
                    if select.select([fd], [], [], 0.05)[0]:
                        ch = os.read(fd, 1).decode(errors="ignore")
                        key = {" ": "space", "\n": "enter", "\r": "enter", "\x7f": "backspace"}.get(ch, ch.lower())
                        self.press(key, tap=True)
            finally:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)

        self._thread = threading.Thread(target=read_keys, name="keyboard-teleop", daemon=True)
        self._thread.start()


# --- SpaceMouse ------------------------------------------------------------------------------------------------

@dataclass
class SpaceMouseMapping:
    """pyspacemouse state (x, y, z, roll, pitch, yaw in [-1, 1]; buttons) -> action. The device's axes point
    differently from the robot base frame: `signs` and `order` map them (defaults: a SpaceMouse lying in front of
    the robot, cable away from the operator)."""

    deadzone: float = 0.08
    speed: float = 1.0
    rotation_speed: float = 0.5
    order: tuple = (1, 0, 2, 4, 3, 5)  # action axis i takes device axis order[i] of (x, y, z, roll, pitch, yaw)
    signs: tuple = (-1.0, 1.0, 1.0, -1.0, 1.0, -1.0)
    gripper_button: int = 0
    episode_button: int = 1

    def motion(self, axes: np.ndarray) -> np.ndarray:
        axes = np.asarray(axes, np.float64)
        # Rescale past the dead zone so small pushes start from zero instead of jumping.
        mag = np.clip((np.abs(axes) - self.deadzone) / (1.0 - self.deadzone), 0.0, 1.0)
        shaped = np.sign(axes) * mag
        out = np.array([self.signs[i] * shaped[self.order[i]] for i in range(6)])
        out[:3] *= self.speed
        out[3:] *= self.rotation_speed
        return np.clip(out, -1.0, 1.0)


class SpaceMouseTeleop(TeleopDevice):
    """A 3Dconnexion SpaceMouse through pyspacemouse (HID; needs libhidapi and read access to /dev/hidraw*)."""

    def __init__(self, mapping: SpaceMouseMapping | None = None, device: str | None = None):
        super().__init__()
        self.mapping = mapping or SpaceMouseMapping()
        self.device_name = device
        self._axes = np.zeros(6)
        self._buttons: list[int] = []
        self._device = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, axes, buttons) -> None:
        """Feed one device state (what the reader thread does); button presses toggle on the rising edge."""
        buttons = list(buttons)
        m = self.mapping
        for index, event in ((m.gripper_button, "gripper"), (m.episode_button, "toggle_episode")):
            was = self._buttons[index] if index < len(self._buttons) else 0
            now = buttons[index] if index < len(buttons) else 0
            if now and not was:
                if event == "gripper":
                    self.gripper_closed = not self.gripper_closed
                else:
                    self._emit(event)
        with self._lock:
            self._axes = np.asarray(axes, np.float64)
            self._buttons = buttons

    def action(self) -> np.ndarray:
        with self._lock:
            axes = self._axes.copy()
        return np.concatenate([self.mapping.motion(axes), [self._gripper()]]).astype(np.float32)

    def start(self) -> "SpaceMouseTeleop":
        try:
            import pyspacemouse
        except Exception as exc:
            raise TeleopError(f"SpaceMouse teleop needs pyspacemouse (pip install pyspacemouse; apt install "
                              f"libhidapi-dev): {exc}") from None
        self._device = pyspacemouse.open(device=self.device_name) if self.device_name else pyspacemouse.open()
        if not self._device:
            raise TeleopError("no SpaceMouse found: check the USB connection and read permission on /dev/hidraw*")

        def read_states():
            while not self._stop.is_set():
                s = pyspacemouse.read()
                self.update((s.x, s.y, s.z, s.roll, s.pitch, s.yaw), getattr(s, "buttons", getattr(s, "button", [])))
                time.sleep(0.002)

        self._thread = threading.Thread(target=read_states, name="spacemouse-teleop", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._device is not None:
            try:
                self._device.close()
            except Exception:
                pass


# --- scripted ---------------------------------------------------------------------------------------------------

class ScriptedTeleop(TeleopDevice):
    """A function of the tick count -> action; stands in for a person in tests and sim recordings (e.g. a
    scripted expert's act())."""

    def __init__(self, script: Callable[[int], np.ndarray]):
        super().__init__()
        self.script = script
        self.tick = 0

    def action(self) -> np.ndarray:
        a = np.asarray(self.script(self.tick), np.float32)
        if a.shape != (7,):
            raise TeleopError(f"scripted teleop returned shape {a.shape}; expected (7,)")
        self.tick += 1
        return a

    def emit(self, event: str) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown teleop event {event!r}; expected one of {EVENTS}")
        self._emit(event)


def make_teleop(kind: str, **kwargs) -> TeleopDevice:
    kinds = {"keyboard": KeyboardTeleop, "spacemouse": SpaceMouseTeleop}
    if kind not in kinds:
        raise ValueError(f"unknown teleop device {kind!r}; choose one of {sorted(kinds)}")
    return kinds[kind](**kwargs)
