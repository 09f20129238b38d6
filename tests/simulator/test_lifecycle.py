"""App lifecycle: iOS suspension, Android Doze windows, alerts, push wake paths, determinism."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import pytest
import simpy

from simulator.device.lifecycle import (
    AppState,
    DozePhase,
    Lifecycle,
    LifecycleConfig,
    LifecycleListener,
    LifecycleStatus,
    Os,
    doze_schedule,
)
from simulator.rng import Actor, Concern, generator

HOUR = 3600.0
MIN = 60.0

# A phone put away for good: one endless screen-off gap from t = 0, no kills.
PUT_AWAY = LifecycleConfig(mean_background_s=1e12, screen_off_probability=1.0, kill_probability_per_hour=0.0)
# One foreground session, then the user leaves for good, screen off.
ONE_SESSION = LifecycleConfig(
    start_foreground=True, mean_background_s=1e12, screen_off_probability=1.0, kill_probability_per_hour=0.0
)

# Screen on, app in the background, almost surely killed within the hour.
KILLER = LifecycleConfig(mean_background_s=1e12, screen_off_probability=0.0, kill_probability_per_hour=0.99)


def make(
    os: Os, config: LifecycleConfig, seed: int = 1, listener: LifecycleListener | None = None
) -> tuple[simpy.Environment, Lifecycle]:
    env = simpy.Environment()
    lifecycle = Lifecycle(env, generator(seed, Actor.DEVICE, 0, Concern.LIFECYCLE), os, config, listener)
    return env, lifecycle


def at(env: simpy.Environment, t: float, action: Callable[[], Any]) -> None:
    def proc() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(t - env.now)
        action()

    env.process(proc())


def status_now(lifecycle: Lifecycle) -> tuple[AppState, bool]:
    return lifecycle.state, lifecycle.network_allowed


def status_at(lifecycle: Lifecycle, t: float) -> tuple[AppState, bool]:
    """(state, network_allowed) in force at ``t`` according to the history."""
    current = lifecycle.history[0]
    for entry in lifecycle.history:
        if entry[0] <= t:
            current = entry
    return current[1], current[2]


# -- iOS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("background_task", "grace"), [(False, 5.0), (True, 30.0)])
def test_ios_suspends_after_grace_and_loses_network(background_task: bool, grace: float) -> None:
    config = LifecycleConfig(
        start_foreground=True, mean_background_s=1e12, kill_probability_per_hour=0.0,
        background_task=background_task,
    )
    seen: list[tuple[LifecycleStatus, LifecycleStatus]] = []
    env, lifecycle = make(Os.IOS, config, listener=lambda old, new: seen.append((old, new)))
    lifecycle.start()
    env.run(until=HOUR)
    (_, s0, n0), (t1, s1, n1), (t2, s2, n2) = lifecycle.history
    assert (s0, n0) == (AppState.FOREGROUND, True)
    assert (s1, n1) == (AppState.BACKGROUND, True)
    assert (s2, n2) == (AppState.SUSPENDED, False)
    assert t2 - t1 == pytest.approx(grace)
    assert lifecycle.state is AppState.SUSPENDED and not lifecycle.network_allowed
    assert not lifecycle.dozing
    assert seen == [
        (LifecycleStatus(AppState.FOREGROUND, True), LifecycleStatus(AppState.BACKGROUND, True)),
        (LifecycleStatus(AppState.BACKGROUND, True), LifecycleStatus(AppState.SUSPENDED, False)),
    ]


def test_ios_alert_keeps_app_running_then_suspends_after_it() -> None:
    env, lifecycle = make(Os.IOS, ONE_SESSION)
    lifecycle.start()
    at(env, 0.5, lambda: lifecycle.set_alert_active(True))
    at(env, 2 * HOUR, lambda: lifecycle.set_alert_active(False))
    env.run(until=2 * HOUR - 1)
    assert lifecycle.state is AppState.BACKGROUND and lifecycle.network_allowed
    env.run(until=3 * HOUR)
    assert lifecycle.history[-1][1:] == (AppState.SUSPENDED, False)
    assert lifecycle.history[-1][0] == pytest.approx(2 * HOUR + 5.0)


def test_ios_alert_revives_a_suspended_app() -> None:
    env, lifecycle = make(Os.IOS, PUT_AWAY)
    lifecycle.start()
    env.run(until=60.0)
    assert status_now(lifecycle) == (AppState.SUSPENDED, False)
    lifecycle.set_alert_active(True)
    assert status_now(lifecycle) == (AppState.BACKGROUND, True)
    env.run(until=HOUR)
    assert lifecycle.network_allowed


def test_ios_alert_push_wakes_for_30_s_and_silent_push_quota_is_enforced() -> None:
    env, lifecycle = make(Os.IOS, PUT_AWAY)
    lifecycle.start()
    woken: list[tuple[float, bool]] = []

    def send(high: bool) -> None:
        woken.append((env.now, lifecycle.push(env.now, high)))

    at(env, 100.0, lambda: send(True))
    for t in (200.0, 300.0, 400.0, 500.0):
        at(env, t, lambda: send(False))
    at(env, 600.0, lambda: send(True))  # alert pushes are not rationed
    at(env, 200.0 + HOUR + 1, lambda: send(False))  # the first silent push left the rolling hour
    env.run(until=2 * HOUR)
    assert woken == [
        (100.0, True), (200.0, True), (300.0, True), (400.0, False), (500.0, False), (600.0, True),
        (200.0 + HOUR + 1, True),
    ]
    assert status_at(lifecycle, 110.0) == (AppState.BACKGROUND, True)
    assert status_at(lifecycle, 131.0) == (AppState.SUSPENDED, False)  # woken for 30 s
    assert status_at(lifecycle, 401.0) == (AppState.SUSPENDED, False)  # over quota: not woken


# -- Android Doze -------------------------------------------------------------------------------


def expected_aosp_windows(until: float) -> list[tuple[float, DozePhase]]:
    """The AOSP DeviceIdleController schedule of a still phone whose screen went off at 0."""
    windows: list[tuple[float, DozePhase]] = []
    deep_at = 30 * MIN + 30 * MIN + 4 * MIN + 30.0  # INACTIVE + IDLE_AFTER_INACTIVE + SENSING + LOCATING
    t, idle = 1 * MIN + 3 * MIN, 5 * MIN  # LIGHT_IDLE_AFTER_INACTIVE + LIGHT_PRE_IDLE; LIGHT_IDLE
    while t < deep_at:
        windows.append((t, DozePhase.LIGHT_IDLE))
        t, idle = t + idle, min(2 * idle, 15 * MIN)
        if t >= deep_at:
            break
        windows.append((t, DozePhase.LIGHT_MAINTENANCE))
        t += 1 * MIN  # LIGHT_IDLE_MAINTENANCE_MIN_BUDGET
    t, idle, pending = deep_at, 1 * HOUR, 5 * MIN
    while t < until:
        windows.append((t, DozePhase.DEEP_IDLE))
        t, idle = t + idle, min(2 * idle, 6 * HOUR)
        windows.append((t, DozePhase.DEEP_MAINTENANCE))
        t, pending = t + pending, min(2 * pending, 10 * MIN)
    return [w for w in windows if w[0] < until]


def test_android_doze_windows_follow_aosp_constants() -> None:
    env, lifecycle = make(Os.ANDROID, PUT_AWAY)
    lifecycle.start()
    env.run(until=12 * HOUR)
    expected = expected_aosp_windows(12 * HOUR)
    # spelled out: light idle 5, 10, 15, 15, ... min with 1 min maintenance; deep from 64.5 min
    assert [(t / MIN, p.value) for t, p in expected[:7]] == [
        (4.0, "light_idle"), (9.0, "light_maintenance"), (10.0, "light_idle"),
        (20.0, "light_maintenance"), (21.0, "light_idle"), (36.0, "light_maintenance"), (37.0, "light_idle"),
    ]
    assert [(t / MIN, p.value) for t, p in expected if p.value.startswith("deep")][:6] == [
        (64.5, "deep_idle"), (124.5, "deep_maintenance"), (129.5, "deep_idle"),
        (249.5, "deep_maintenance"), (259.5, "deep_idle"), (499.5, "deep_maintenance"),
    ]
    assert len(lifecycle.doze_history) == len(expected)
    for (t, phase), (t_expected, phase_expected) in zip(lifecycle.doze_history, expected, strict=True):
        assert phase is phase_expected and t == pytest.approx(t_expected)
    # the network is allowed exactly in the maintenance windows
    network = [(t, allowed) for t, _, allowed in lifecycle.history[1:]]
    maintenance = (DozePhase.LIGHT_MAINTENANCE, DozePhase.DEEP_MAINTENANCE)
    flips: list[tuple[float, bool]] = []
    for t, p in expected:
        if not flips or flips[-1][1] != (p in maintenance):
            flips.append((t, p in maintenance))
    assert len(flips) < len(expected)  # deep idle began inside a light idle window
    assert [allowed for _, allowed in network] == [allowed for _, allowed in flips]
    assert [t for t, _ in network] == pytest.approx([t for t, _ in flips])
    assert lifecycle.history[0][1:] == (AppState.BACKGROUND, True)
    assert all(state is AppState.BACKGROUND for _, state, _ in lifecycle.history)
    assert lifecycle.dozing


def test_doze_schedule_is_light_only_when_the_phone_moves() -> None:
    phases = doze_schedule(0.0, stationary=False)
    first = [next(phases) for _ in range(40)]
    assert {p for _, p in first} == {DozePhase.LIGHT_IDLE, DozePhase.LIGHT_MAINTENANCE}
    assert first[-1][0] - first[-2][0] in (15 * MIN, 1 * MIN)


def test_screen_on_ends_doze() -> None:
    config = LifecycleConfig(mean_background_s=2 * HOUR, mean_foreground_s=60.0, screen_off_probability=1.0,
                             kill_probability_per_hour=0.0)
    env, lifecycle = make(Os.ANDROID, config, seed=3)
    lifecycle.start()
    env.run(until=12 * HOUR)
    foreground_starts = [t for t, s, _ in lifecycle.history if s is AppState.FOREGROUND]
    assert foreground_starts
    assert DozePhase.DEEP_IDLE in {p for _, p in lifecycle.doze_history}
    for t in foreground_starts:
        before = [p for start, p in lifecycle.doze_history if start <= t]
        assert not before or before[-1] is DozePhase.ACTIVE
        assert status_at(lifecycle, t) == (AppState.FOREGROUND, True)


def test_high_priority_push_allowlists_for_at_most_5_min_in_deep_doze() -> None:
    env, lifecycle = make(Os.ANDROID, PUT_AWAY)
    lifecycle.start()
    results: list[bool] = []
    at(env, 80 * MIN, lambda: results.append(lifecycle.push(env.now, False)))  # deep idle: deferred
    at(env, 90 * MIN, lambda: results.append(lifecycle.push(env.now, True)))
    env.run(until=3 * HOUR)
    assert results == [False, True]
    assert status_at(lifecycle, 80 * MIN) == (AppState.BACKGROUND, False)
    assert status_at(lifecycle, 90 * MIN) == (AppState.BACKGROUND, True)
    assert status_at(lifecycle, 94.9 * MIN) == (AppState.BACKGROUND, True)
    assert status_at(lifecycle, 95 * MIN) == (AppState.BACKGROUND, False)
    assert lifecycle.doze_phase is DozePhase.DEEP_IDLE
    allowed_at = [t for t, _, allowed in lifecycle.history if allowed and 80 * MIN < t < 120 * MIN]
    assert allowed_at == [pytest.approx(90 * MIN)]


def test_android_alert_runs_through_doze() -> None:
    env, lifecycle = make(Os.ANDROID, PUT_AWAY)
    lifecycle.start()
    at(env, 2 * HOUR, lambda: lifecycle.set_alert_active(True))
    at(env, 3 * HOUR, lambda: lifecycle.set_alert_active(False))
    env.run(until=2 * HOUR + 1)
    assert lifecycle.dozing and lifecycle.doze_phase is DozePhase.DEEP_IDLE
    assert lifecycle.network_allowed
    env.run(until=3 * HOUR - 1)
    assert lifecycle.network_allowed
    env.run(until=3 * HOUR + 1)
    assert not lifecycle.network_allowed


def test_kill_and_push_relaunch() -> None:
    env, lifecycle = make(Os.ANDROID, KILLER)
    lifecycle.start()
    env.run(until=24 * HOUR)
    assert status_now(lifecycle) == (AppState.KILLED, False)
    assert lifecycle.push(env.now, True)
    assert status_now(lifecycle) == (AppState.BACKGROUND, True)


def test_no_kill_during_alert() -> None:
    env, lifecycle = make(Os.ANDROID, KILLER)
    lifecycle.start()
    lifecycle.set_alert_active(True)
    env.run(until=24 * HOUR)
    assert lifecycle.state is AppState.BACKGROUND


# -- determinism and cost ---------------------------------------------------------------------


def busy_history(seed: int, os: Os) -> list[tuple[float, AppState, bool]]:
    config = LifecycleConfig(mean_foreground_s=300.0, mean_background_s=1800.0, kill_probability_per_hour=0.2)
    env, lifecycle = make(os, config, seed=seed)
    lifecycle.start()

    def pushes() -> Generator[simpy.Event, Any, None]:
        k = 0
        while True:
            yield env.timeout(700.0)
            lifecycle.push(env.now, k % 3 == 0)
            if k % 5 == 0:
                lifecycle.set_alert_active(not lifecycle.alert_active)
            k += 1

    env.process(pushes())
    env.run(until=24 * HOUR)
    return lifecycle.history


@pytest.mark.parametrize("os", [Os.IOS, Os.ANDROID])
def test_same_seed_same_history(os: Os) -> None:
    first = busy_history(7, os)
    assert len(first) > 20
    assert busy_history(7, os) == first
    assert busy_history(8, os) != first


def test_lifecycle_costs_a_handful_of_events_per_hour() -> None:
    class CountingEnvironment(simpy.Environment):
        scheduled = 0

        def schedule(self, event: simpy.Event, priority: Any = 1, delay: float = 0) -> None:
            type(self).scheduled += 1
            super().schedule(event, priority, delay)

    env = CountingEnvironment()
    lifecycle = Lifecycle(env, np.random.default_rng(5), Os.ANDROID, LifecycleConfig())
    lifecycle.start()
    env.run(until=48 * HOUR)
    assert CountingEnvironment.scheduled / 48 < 12


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        LifecycleConfig(push_allowlist_s=301.0)
    with pytest.raises(ValueError):
        LifecycleConfig(mean_foreground_s=0.0)
    _, lifecycle = make(Os.IOS, PUT_AWAY)
    lifecycle.start()
    with pytest.raises(RuntimeError):
        lifecycle.start()
