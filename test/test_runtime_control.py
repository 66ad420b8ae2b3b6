"""Scheduler, safety filter, watchdog and cadence monitor (plain numpy, no torch)."""
import numpy as np
import pytest

from dm1_ros.runtime.cadence import CadenceMonitor
from dm1_ros.runtime.contract import ActionChunk
from dm1_ros.runtime.gripper import GripperLatch
from dm1_ros.runtime.safety import SafetyConfig, SafetyFilter, Watchdog
from dm1_ros.runtime.scheduler import ActionScheduler, SchedulerConfig


def chunk(stamp, values, model="m"):
    return ActionChunk(actions=np.asarray(values, np.float32)[:, None] * np.ones((1, 7), np.float32), stamp=stamp, model_id=model)


def test_latest_mode_picks_the_action_for_now_and_drops_late_ones():
    s = ActionScheduler(SchedulerConfig(rate_hz=10, interpolate=False))
    assert s.action(0.0) is None
    assert s.add(chunk(1.0, [0, 1, 2, 3]), now=1.0)
    assert s.action(1.0)[0] == 0 and s.action(1.1)[0] == 1 and s.action(1.3)[0] == 3
    assert s.action(1.41) is None  # every action late: hold
    assert not s.add(chunk(0.0, [0, 1, 2, 3]), now=1.0) and s.dropped_late == 1


def test_latencies_shift_the_pick_and_interpolation_fills_between():
    s = ActionScheduler(SchedulerConfig(rate_hz=10, camera_latency_s=0.05, actuation_latency_s=0.05))
    s.add(chunk(1.0, [0, 1, 2, 3]), now=1.0)
    # captured at 0.95; a command at 1.0 acts at 1.05 -> index 1.0
    assert s.action(1.0)[0] == pytest.approx(1.0)
    assert s.action(1.025)[0] == pytest.approx(1.25)  # interpolated for a 400 Hz command stream


def test_ensemble_blends_overlapping_chunks_newer_weighted_more():
    s = ActionScheduler(SchedulerConfig(mode="ensemble", rate_hz=10, ensemble_decay=0.5, interpolate=False))
    s.add(chunk(1.0, [0, 0, 0, 0]), now=1.0)
    s.add(chunk(1.1, [1, 1, 1, 1]), now=1.1)
    w_old, w_new = np.exp(-0.5), 1.0
    assert s.action(1.1)[0] == pytest.approx(w_new / (w_new + w_old))
    assert s.action(1.4)[0] == pytest.approx(1.0)  # the old chunk has run out
    assert len(s.chunks) == 1


def test_chunk_mode_runs_a_chunk_to_its_end():
    s = ActionScheduler(SchedulerConfig(mode="chunk", rate_hz=10, interpolate=False))
    assert s.needs_plan(1.0)
    s.add(chunk(1.0, [0, 1, 2, 3]), now=1.0)
    assert not s.needs_plan(1.0) and not s.add(chunk(1.1, [9, 9, 9, 9]), now=1.1)
    assert s.action(1.2)[0] == 2 and not s.needs_plan(1.3) and s.needs_plan(1.4)
    assert s.add(chunk(1.4, [7, 7, 7, 7]), now=1.4) and s.action(1.4)[0] == 7


def test_a_new_model_drops_the_old_models_queue():
    s = ActionScheduler(SchedulerConfig(mode="ensemble", rate_hz=10, interpolate=False))
    s.add(chunk(1.0, [5, 5, 5, 5], model="old"), now=1.0)
    s.add(chunk(1.05, [1, 1, 1, 1], model="new"), now=1.05)
    assert s.action(1.1)[0] == 1


def test_safety_rejects_nonfinite_and_holds():
    f = SafetyFilter()
    f.filter(np.array([0, 0, 0, 0, 0, 0, 1.0]), np.array([0.5, 0, 0.3]), 0.05)
    out = f.filter(np.array([np.nan, 0, 0, 0, 0, 0, -1]), np.array([0.5, 0, 0.3]), 0.05)
    np.testing.assert_array_equal(out, [0, 0, 0, 0, 0, 0, 1.0])  # hold, gripper as it was
    assert f.interventions["nonfinite"] == 1


def test_safety_clamps_steps_velocity_workspace_and_gripper():
    f = SafetyFilter(SafetyConfig(max_translation_per_tick_m=0.02, max_linear_velocity_mps=0.2))
    out = f.filter(np.array([1, 0, 0, 0, 0, 0, 2.0]), np.array([0.5, 0, 0.3]), dt=0.05)
    assert np.linalg.norm(out[:3] * 0.05) == pytest.approx(0.01)  # velocity 0.2 m/s * 0.05 s beats 0.02 m
    assert out[6] == 1.0 and f.interventions["gripper_clamped"] == 1 and f.interventions["translation_clamped"] == 1
    out = f.filter(np.array([0, 0, -1, 0, 0, 0, 0]), np.array([0.5, 0, 0.025]), dt=0.1)  # floor at z = 0.02
    assert out[2] * 0.05 == pytest.approx(-0.005) and f.interventions["workspace_clamped"] == 1
    out = f.filter(np.array([0, 0, -1, 0, 0, 0, 0]), np.array([0.5, 0, 0.0]), dt=0.1)  # already below: no further
    assert out[2] == 0
    out = f.filter(np.array([0, 0, 1, 0, 0, 0, 0]), np.array([0.5, 0, 0.0]), dt=0.1)  # back in is fine
    assert out[2] > 0
    out = f.filter(np.array([0, 0, 0, 1, 1, 1, 0]), np.array([0.5, 0, 0.3]), dt=0.05)
    assert np.linalg.norm(out[3:6] * 0.5) == pytest.approx(0.075) and f.interventions["rotation_clamped"] == 1


def test_watchdog_holds_on_old_future_backwards_and_nonfinite_stamps():
    w = Watchdog(0.1, "observation", future_tolerance_s=0.05)
    assert w.check(0.0) == "stale_observation"  # nothing seen yet
    w.feed(1.0)
    assert w.check(1.05) is None and w.check(1.2) == "stale_observation"
    w.feed(5.0)  # one frame stamped in the future must not blind the age check...
    assert w.check(1.21) == "stale_observation" and "in the future" in w.problem(1.21)
    w.feed(1.22)  # ...nor may a camera that then goes back in time pass as fresh
    assert w.check(1.23) == "stale_observation" and "went back" in w.problem(1.23)
    w.feed(5.01)  # past the newest stamp again, and fresh at that time: fine
    assert w.check(5.02) is None
    w.feed(float("nan"))
    assert w.check(5.02) == "stale_observation" and "nan" in w.problem(5.02)
    assert w.trips["stale_observation"] == 5
    w.clear()  # a new episode whose clock restarts
    w.feed(0.0)
    assert w.check(0.01) is None
    with pytest.raises(ValueError, match="positive"):
        Watchdog(float("nan"))


def test_a_frame_seen_ahead_of_the_clock_stays_untrusted_when_the_clock_catches_up():
    """The camera sends one frame stamped 1 s ahead and freezes: once the clock passes that stamp the frame would
    look 0.0 s old; it must not be planned on."""
    w = Watchdog(0.2, "observation", future_tolerance_s=0.05)
    w.feed(10.0)
    assert w.check(10.0) is None
    w.feed(11.0)
    assert w.check(10.05) == "stale_observation"  # ahead
    assert w.check(11.05) == "stale_observation" and "not trusted" in w.problem(11.05)  # caught up: still refused
    w.feed(11.1)  # a new, honest frame
    assert w.check(11.12) is None


@pytest.mark.parametrize("field, value", [("max_translation_per_tick_m", float("nan")), ("max_linear_velocity_mps", -0.5),
                                          ("workspace_max", [0.8, float("nan"), 0.7]), ("pos_scale", 0.0)])
def test_safety_config_refuses_limits_that_would_switch_the_filter_off(field, value):
    with pytest.raises(ValueError, match=field):
        SafetyConfig(**{field: value})


def test_safety_filter_holds_when_the_hand_position_is_unknown():
    f = SafetyFilter()
    out = f.filter(np.array([0.1, 0, 0, 0, 0, 0, 1.0]), np.array([np.nan, 0.0, 0.3]), 0.05)
    assert np.all(np.isfinite(out)) and np.all(out[:6] == 0) and f.interventions["nonfinite_position"] == 1


def test_cadence_reports_rates_stages_and_overruns():
    t = [0.0]
    cadence = CadenceMonitor(target_hz=10, clock=lambda: t[0])
    for i in range(20):
        with cadence.tick():
            with cadence.stage("infer"):
                t[0] += 0.02 if i % 10 else 0.15  # two ticks overrun the 0.1 s period
            t[0] += 0.0
        t[0] = round((i + 1) * 0.2, 6)  # the loop runs at 5 Hz
    s = cadence.summary()
    assert s["achieved_hz"] == pytest.approx(5.0) and s["overruns"] == 2 and s["ticks"] == 20
    assert s["stages"]["infer"]["max_ms"] == pytest.approx(150)
    assert "5.0/10 Hz" in cadence.report_line() and "BELOW TARGET" in cadence.report_line()


def test_gripper_latch_changes_state_only_past_its_thresholds():
    latch = GripperLatch(close_above=0.3, open_below=-0.3)
    # A wobble around zero while closing must not re-open the hand.
    out = [latch(v) for v in (-1.0, 0.1, 0.5, -0.2, 0.1, -0.29, 0.9, -0.31, 0.2)]
    assert out == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0]
    latch.reset(closed=True)
    assert latch(0.0) == 1.0
    with pytest.raises(ValueError, match="open_below"):
        GripperLatch(close_above=-0.5, open_below=0.5)


def test_actions_at_reads_a_chunk_of_instants_without_touching_the_queue():
    s = ActionScheduler(SchedulerConfig(mode="ensemble", rate_hz=10, ensemble_decay=0.5))
    s.add(chunk(1.0, [0, 0, 0, 0]), now=1.0)
    s.add(chunk(1.1, [1, 1, 1, 1]), now=1.1)
    out = s.actions_at([1.1, 1.35, 1.4])
    w_old = np.exp(-0.5)
    assert out.shape == (3, 7)
    assert out[0, 0] == pytest.approx(1 / (1 + w_old)) and out[2, 0] == pytest.approx(1.0)
    assert len(s.chunks) == 2  # read-only, unlike action()
    assert s.actions_at([1.6]) is None  # past every chunk


def test_the_last_action_still_counts_at_epoch_second_stamps():
    # float seconds since 1970 carry ~0.2 us of rounding; the exact last instant must not read as late
    s = ActionScheduler(SchedulerConfig(rate_hz=20, interpolate=False))
    stamp = 1_795_000_000.123456
    s.add(chunk(stamp, [0, 1, 2, 3]), now=stamp)
    assert s.action(stamp + 3 / 20)[0] == 3
    assert s.action(stamp + 3 / 20 + 0.001) is None
