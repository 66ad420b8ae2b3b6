"""Teleop devices produce the policy's own 7-d delta actions and episode events."""
import numpy as np
import pytest

from dm1_ros.hardware.teleop import (KeyboardMapping, KeyboardTeleop, ScriptedTeleop, SpaceMouseMapping,
                                     SpaceMouseTeleop, TeleopError, make_teleop)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_keyboard_held_keys_move_and_release_stops():
    kb = KeyboardTeleop(KeyboardMapping(speed=0.5, rotation_speed=0.3))
    np.testing.assert_array_equal(kb.action(), [0, 0, 0, 0, 0, 0, -1])
    kb.press("w"), kb.press("f"), kb.press("q")
    np.testing.assert_allclose(kb.action(), [0.5, 0, -0.5, 0, 0, 0.3, -1])
    kb.press("s")  # opposite keys cancel
    np.testing.assert_allclose(kb.action()[:3], [0, 0, -0.5])
    for k in "wsfq":
        kb.release(k)
    np.testing.assert_array_equal(kb.action()[:6], np.zeros(6))


def test_keyboard_gripper_toggles_once_per_press_and_events_queue():
    kb = KeyboardTeleop()
    kb.press("space")
    kb.press("space")  # key repeat while held: no second toggle
    assert kb.action()[6] == 1.0
    kb.release("space"), kb.press("space")
    assert kb.action()[6] == -1.0
    kb.press("enter"), kb.press("backspace"), kb.press("enter")
    assert kb.events() == ["toggle_episode", "discard", "toggle_episode"]
    assert kb.events() == []


def test_terminal_taps_hold_for_a_moment_then_expire():
    clock = FakeClock()
    kb = KeyboardTeleop(KeyboardMapping(tap_hold_s=0.1), clock=clock)
    kb.press("a", tap=True)
    assert kb.action()[1] > 0
    clock.t = 0.05
    kb.press("a", tap=True)  # key repeat refreshes the hold
    clock.t = 0.12
    assert kb.action()[1] > 0
    clock.t = 0.2
    assert kb.action()[1] == 0


def test_mapping_refuses_a_key_bound_twice():
    with pytest.raises(ValueError, match="'w'"):
        KeyboardMapping(rotation={"w": (0, 1)})


def test_spacemouse_deadzone_axes_and_button_edges():
    m = SpaceMouseMapping(deadzone=0.1, speed=1.0, rotation_speed=0.5)
    sm = SpaceMouseTeleop(m)
    sm.update((0.05, -0.05, 0.09, 0.0, 0.0, 0.0), [0, 0])
    np.testing.assert_array_equal(sm.action()[:6], np.zeros(6))  # inside the dead zone
    sm.update((0.0, 1.0, 0.55, 0.0, 0.0, 1.0), [1, 0])
    a = sm.action()
    assert a[0] == pytest.approx(-1.0)  # device y (full push) -> robot x, sign flipped by the default mapping
    assert a[2] == pytest.approx(0.5)  # (0.55 - 0.1) / 0.9, rescaled past the dead zone
    assert a[5] == pytest.approx(-0.5)
    assert a[6] == 1.0  # button 0 pressed: gripper closed
    sm.update((0, 0, 0, 0, 0, 0), [1, 1])  # still held: no second toggle; button 1 rising edge
    assert sm.action()[6] == 1.0
    assert sm.events() == ["toggle_episode"]


def test_scripted_device_and_factory_errors():
    dev = ScriptedTeleop(lambda t: np.array([t, 0, 0, 0, 0, 0, 1.0]))
    assert dev.action()[0] == 0 and dev.action()[0] == 1
    dev.emit("discard")
    assert dev.events() == ["discard"]
    with pytest.raises(ValueError, match="unknown teleop event"):
        dev.emit("explode")
    with pytest.raises(TeleopError, match=r"shape \(3,\)"):
        ScriptedTeleop(lambda t: np.zeros(3)).action()
    with pytest.raises(ValueError, match="joystick"):
        make_teleop("joystick")


def test_terminal_backend_refuses_a_non_terminal_stdin(monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(TeleopError, match="not a terminal"):
        KeyboardTeleop(backend="terminal").start()
