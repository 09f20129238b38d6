"""The Beacon app's lifecycle on a phone: foreground, background, suspension, kills, Doze and push.

What decides whether the app can use the network
------------------------------------------------
The user drives sessions: the app is in the FOREGROUND for an exponential session (screen on), then
the user leaves for an exponential gap, during which the screen is off with a configured probability
(the phone is put away) or on (other apps in use). Then the operating system takes over:

* **iOS** suspends a backgrounded app about 5 s after it leaves the screen (30 s if it began a
  background task, a config flag) and closes all its sockets: state SUSPENDED, no network.
* **Android** keeps a background app running, but once the screen is off the *device* dozes
  (AOSP ``DeviceIdleController``). Light Doze starts after ``LIGHT_IDLE_AFTER_INACTIVE_TIMEOUT`` (1 min)
  + ``LIGHT_PRE_IDLE_TIMEOUT`` (3 min); idle windows of 5 min double to 15 min, separated by 1 min
  maintenance windows (the minimum budget; the budget may grow to 5 min, ASSUME the app's work fits
  in the minimum). If the phone lies still, deep Doze follows ``INACTIVE_TIMEOUT`` (30 min) +
  ``IDLE_AFTER_INACTIVE_TIMEOUT`` (30 min, the IDLE_PENDING step of ``stepIdleStateLocked``) +
  ``SENSING_TIMEOUT`` (4 min) + ``LOCATING_TIMEOUT`` (30 s): idle windows of 1 h doubling to 6 h,
  maintenance windows of 5 min doubling to 10 min (``IDLE_PENDING_TIMEOUT``; ASSUME they run to
  their end). Deep idle overrides light Doze. The app has network only in maintenance windows.
  MODELS.md's summary omits IDLE_PENDING; set ``idle_after_inactive_s=0`` to follow it literally.
* Either OS may kill a background app (memory pressure): state KILLED until the user opens it again
  or a push relaunches it. Kills arrive as a Poisson process with the configured per-hour
  probability; foreground apps and apps in an alert are not killed.

During an alert the app is kept running: iOS location background mode, Android foreground service of
type location (exempt from Doze's network block). So no suspension, no Doze block, no kill while
``alert_active``; Doze itself still runs (``dozing`` reports it).

Push is the wake path (:meth:`Lifecycle.push`). Android: a high-priority FCM message is delivered even
in Doze, (re)starts the app and allowlists it for ``push_allowlist_s`` (<= 5 min,
``MAX_TEMP_APP_ALLOWLIST_DURATION``); a normal-priority one waits for a maintenance window (reported
as not woken). iOS: an alert push (priority 10) wakes the app; a silent push wakes it only within a
quota of ~2-3 per hour (Apple's guidance; ASSUME a rolling hour). A woken iOS app runs for
``push_wake_s`` (~30 s) and is suspended again.

One SimPy process per phone sleeps until the next scheduled change (session boundary, suspension,
Doze step, allowlist expiry, kill) and is interrupted when an external call moves that earlier: a
handful of events per simulated hour. Every random draw comes from the generator passed in, in an
order that depends only on the session sequence, so the same seed gives the same history.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, NamedTuple

import numpy as np
import simpy


class AppState(Enum):
    """The app's process state."""

    FOREGROUND = "foreground"
    BACKGROUND = "background"
    SUSPENDED = "suspended"
    KILLED = "killed"


class Os(StrEnum):
    """The phone's operating system (a ``str``: ``"ios"`` or ``"android"``)."""

    IOS = "ios"
    ANDROID = "android"


class DozePhase(Enum):
    """Android device-idle state as the app feels it."""

    ACTIVE = "active"
    LIGHT_IDLE = "light_idle"
    LIGHT_MAINTENANCE = "light_maintenance"
    DEEP_IDLE = "deep_idle"
    DEEP_MAINTENANCE = "deep_maintenance"


_IDLE_PHASES = (DozePhase.LIGHT_IDLE, DozePhase.DEEP_IDLE)


@dataclass(frozen=True, slots=True)
class DozeConstants:
    """AOSP ``DeviceIdleController.Constants`` defaults, in seconds (names in comments)."""

    light_after_inactive_s: float = 60.0  # LIGHT_IDLE_AFTER_INACTIVE_TIMEOUT
    light_pre_idle_s: float = 180.0  # LIGHT_PRE_IDLE_TIMEOUT
    light_idle_s: float = 300.0  # LIGHT_IDLE_TIMEOUT
    light_idle_factor: float = 2.0  # LIGHT_IDLE_FACTOR
    light_max_idle_s: float = 900.0  # LIGHT_MAX_IDLE_TIMEOUT
    light_maintenance_s: float = 60.0  # LIGHT_IDLE_MAINTENANCE_MIN_BUDGET (MAX_BUDGET 300 s)
    inactive_s: float = 1800.0  # INACTIVE_TIMEOUT
    idle_after_inactive_s: float = 1800.0  # IDLE_AFTER_INACTIVE_TIMEOUT
    sensing_s: float = 240.0  # SENSING_TIMEOUT
    locating_s: float = 30.0  # LOCATING_TIMEOUT
    idle_s: float = 3600.0  # IDLE_TIMEOUT
    idle_factor: float = 2.0  # IDLE_FACTOR
    max_idle_s: float = 21600.0  # MAX_IDLE_TIMEOUT
    idle_pending_s: float = 300.0  # IDLE_PENDING_TIMEOUT (the deep maintenance window)
    idle_pending_factor: float = 2.0  # IDLE_PENDING_FACTOR
    max_idle_pending_s: float = 600.0  # MAX_IDLE_PENDING_TIMEOUT
    max_temp_allowlist_s: float = 300.0  # MAX_TEMP_APP_ALLOWLIST_DURATION_MS


AOSP_DOZE = DozeConstants()


def doze_schedule(
    screen_off_at: float, constants: DozeConstants = AOSP_DOZE, stationary: bool = True
) -> Iterator[tuple[float, DozePhase]]:
    """The Doze phases of a phone whose screen went off at ``screen_off_at`` and stays off.

    Args:
        screen_off_at: when the screen turned off (not charging).
        constants: the ``DeviceIdleController`` timings.
        stationary: whether the phone lies still (deep Doze needs it; otherwise light only).

    Yields:
        ``(start, phase)`` pairs in time order, forever.
    """
    c = constants
    deep_at = screen_off_at + c.inactive_s + c.idle_after_inactive_s + c.sensing_s + c.locating_s
    if not stationary:
        deep_at = math.inf
    t = screen_off_at + c.light_after_inactive_s + c.light_pre_idle_s
    idle = c.light_idle_s
    while t < deep_at:
        yield t, DozePhase.LIGHT_IDLE
        t += idle
        idle = min(idle * c.light_idle_factor, c.light_max_idle_s)
        if t >= deep_at:
            break
        yield t, DozePhase.LIGHT_MAINTENANCE
        t += c.light_maintenance_s
    t, idle, pending = deep_at, c.idle_s, c.idle_pending_s
    while True:
        yield t, DozePhase.DEEP_IDLE
        t += idle
        idle = min(idle * c.idle_factor, c.max_idle_s)
        yield t, DozePhase.DEEP_MAINTENANCE
        t += pending
        pending = min(pending * c.idle_pending_factor, c.max_idle_pending_s)


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    """How a user and the OS treat the app. Defaults marked ASSUME have no source.

    Attributes:
        mean_foreground_s: mean foreground session (exponential). ASSUME.
        mean_background_s: mean gap between sessions (exponential). ASSUME.
        screen_off_probability: chance the screen is off for a whole gap. ASSUME.
        kill_probability_per_hour: chance a background app is killed within an hour. ASSUME.
        background_task: iOS app calls ``beginBackgroundTask`` on leaving the screen.
        start_foreground: begin with a session rather than a gap.
        stationary_when_screen_off: the phone lies still when put away (deep Doze possible).
        ios_suspend_s: iOS grace before suspension (~5 s, Apple DTS).
        ios_background_task_s: the grace with a background task (~30 s).
        push_wake_s: how long a push-woken iOS app runs (~30 s).
        push_allowlist_s: Android temp allowlist after a high-priority FCM (<= 5 min).
        silent_push_quota_per_hour: iOS silent pushes that may wake the app per rolling hour.
        doze: AOSP Doze timings.
    """

    mean_foreground_s: float = 120.0
    mean_background_s: float = 3600.0
    screen_off_probability: float = 0.8
    kill_probability_per_hour: float = 0.02
    background_task: bool = False
    start_foreground: bool = False
    stationary_when_screen_off: bool = True
    ios_suspend_s: float = 5.0
    ios_background_task_s: float = 30.0
    push_wake_s: float = 30.0
    push_allowlist_s: float = 300.0
    silent_push_quota_per_hour: int = 2
    doze: DozeConstants = field(default_factory=DozeConstants)

    def __post_init__(self) -> None:
        if self.mean_foreground_s <= 0 or self.mean_background_s <= 0:
            raise ValueError("mean session and gap lengths must be > 0")
        if not 0 <= self.screen_off_probability <= 1 or not 0 <= self.kill_probability_per_hour < 1:
            raise ValueError("screen-off probability must be in [0, 1] and kill probability in [0, 1)")
        if not 0 <= self.push_allowlist_s <= self.doze.max_temp_allowlist_s:
            raise ValueError("push allowlist must be within 0 and MAX_TEMP_APP_ALLOWLIST_DURATION")
        if self.silent_push_quota_per_hour < 0:
            raise ValueError("silent push quota must be >= 0")


class LifecycleStatus(NamedTuple):
    """What the rest of the phone needs to know: the app's state and whether it may use the network."""

    state: AppState
    network_allowed: bool


LifecycleListener = Callable[[LifecycleStatus, LifecycleStatus], None]

_INF = math.inf
_TOL = 1e-9


class Lifecycle:
    """The app's lifecycle on one phone, driven by user sessions, the OS, alerts and pushes.

    Args:
        env: the SimPy environment.
        rng: this phone's lifecycle generator (``rng.generator(..., Concern.LIFECYCLE)``).
        os: the phone's OS.
        config: user and OS behaviour.
        listener: called as ``listener(old, new)`` whenever ``(state, network_allowed)`` changes.
        screen_listener: called with the new screen state whenever it changes.

    Attributes:
        history: ``(t, state, network_allowed)`` at start and at every change.
        doze_history: ``(t, phase)`` at every Doze phase change (Android).
    """

    def __init__(
        self,
        env: simpy.Environment,
        rng: np.random.Generator,
        os: Os | str,
        config: LifecycleConfig,
        listener: LifecycleListener | None = None,
        *,
        screen_listener: Callable[[bool], None] | None = None,
    ) -> None:
        self._env = env
        self._rng = rng
        self.os = Os(os)
        self.config = config
        self._listener = listener
        self._screen_listener = screen_listener
        self._kill_rate = -math.log1p(-config.kill_probability_per_hour) / 3600.0
        self._state = AppState.BACKGROUND
        self._user_fg = False
        self._screen_on: bool | None = None  # unknown until start()
        self._alert = False
        self._doze = DozePhase.ACTIVE
        self._doze_iter: Iterator[tuple[float, DozePhase]] | None = None
        self._next_doze_phase = DozePhase.ACTIVE
        self._allow_until = -_INF
        self._silent: deque[float] = deque()
        self._t_session = _INF
        self._t_kill = _INF
        self._t_suspend = _INF
        self._t_doze = _INF
        self._t_allow = _INF
        self._planned = _INF
        self._status = LifecycleStatus(self._state, True)
        self._process: simpy.Process | None = None
        self.history: list[tuple[float, AppState, bool]] = []
        self.doze_history: list[tuple[float, DozePhase]] = []

    # -- public state ----------------------------------------------------------------------------

    @property
    def state(self) -> AppState:
        """The app's process state."""
        return self._status.state

    @property
    def network_allowed(self) -> bool:
        """False when suspended, killed, or in a Doze idle window without allowlist or alert."""
        return self._status.network_allowed

    @property
    def dozing(self) -> bool:
        """Whether the device is in Doze (light or deep, maintenance windows included)."""
        return self._doze is not DozePhase.ACTIVE

    @property
    def doze_phase(self) -> DozePhase:
        """The Doze phase in detail."""
        return self._doze

    @property
    def screen_on(self) -> bool:
        """Whether the screen is on."""
        return bool(self._screen_on)

    @property
    def alert_active(self) -> bool:
        """Whether an alert keeps the app running."""
        return self._alert

    def start(self) -> simpy.Process:
        """Begin the first session or gap at the current time and launch the lifecycle process."""
        if self._process is not None:
            raise RuntimeError("lifecycle already started")
        now = self._env.now
        if self.config.start_foreground:
            self._begin_session(now)
        else:
            self._begin_gap(now)
        self._status = self._compute(now)
        self.history.append((now, self._status.state, self._status.network_allowed))
        self._process = self._env.process(self._run())
        return self._process

    def set_alert_active(self, active: bool) -> None:
        """Start or end an alert: while active the app runs with network whatever the OS would do."""
        if active == self._alert:
            return
        now = self._env.now
        self._alert = active
        if active:
            if self._state in (AppState.SUSPENDED, AppState.KILLED):
                self._state = AppState.BACKGROUND
            self._t_suspend = _INF
        elif self._state is AppState.BACKGROUND and self.os is Os.IOS:
            self._t_suspend = now + self._grace()
        self._external_change(now)

    def push(self, now: float, high_priority: bool) -> bool:
        """Deliver a push notification at ``now``.

        Args:
            now: model time (the environment's now).
            high_priority: Android high-priority FCM / iOS alert push (priority 10); otherwise
                Android normal priority / iOS silent (content-available) push.

        Returns:
            Whether the app got woken (or was already running) and can act on it now.
        """
        if self._state is AppState.FOREGROUND:
            return True
        if self.os is Os.IOS:
            if not high_priority:
                window = self._silent
                while window and window[0] <= now - 3600.0:
                    window.popleft()
                if len(window) >= self.config.silent_push_quota_per_hour:
                    return False
                window.append(now)
            self._state = AppState.BACKGROUND
            if not self._alert:
                pending = self._t_suspend if self._t_suspend < _INF else now
                self._t_suspend = max(pending, now + self.config.push_wake_s)
        else:
            restricted = self._doze in _IDLE_PHASES and now >= self._allow_until and not self._alert
            if restricted and not high_priority:
                return False
            if high_priority:
                self._allow_until = max(self._allow_until, now + self.config.push_allowlist_s)
                self._t_allow = self._allow_until
            if self._state is AppState.KILLED:
                self._state = AppState.BACKGROUND
        self._external_change(now)
        return True

    # -- transitions -----------------------------------------------------------------------------

    def _grace(self) -> float:
        c = self.config
        return c.ios_background_task_s if c.background_task else c.ios_suspend_s

    def _begin_session(self, now: float) -> None:
        self._user_fg = True
        self._t_session = now + self._rng.exponential(self.config.mean_foreground_s)
        self._t_kill = _INF
        self._t_suspend = _INF
        self._state = AppState.FOREGROUND
        self._set_screen(True, now)

    def _begin_gap(self, now: float) -> None:
        c = self.config
        rng = self._rng
        self._user_fg = False
        self._t_session = now + rng.exponential(c.mean_background_s)
        screen_off = rng.random() < c.screen_off_probability
        u = rng.random()
        self._t_kill = now - math.log1p(-u) / self._kill_rate if self._kill_rate > 0 else _INF
        self._state = AppState.BACKGROUND  # a gap follows a session, or starts the run
        if self.os is Os.IOS and not self._alert:
            self._t_suspend = now + self._grace()
        self._set_screen(not screen_off, now)

    def _set_screen(self, on: bool, now: float) -> None:
        if on == self._screen_on:
            return
        self._screen_on = on
        if self._screen_listener is not None:
            self._screen_listener(on)
        if self.os is not Os.ANDROID:
            return
        if on:
            self._doze_iter = None
            self._t_doze = _INF
            if self._doze is not DozePhase.ACTIVE:
                self._enter_doze(now, DozePhase.ACTIVE)
        else:
            self._doze_iter = doze_schedule(now, self.config.doze, self.config.stationary_when_screen_off)
            self._t_doze, self._next_doze_phase = next(self._doze_iter)

    def _enter_doze(self, now: float, phase: DozePhase) -> None:
        self._doze = phase
        self.doze_history.append((now, phase))

    def _fire(self, now: float) -> bool:
        """Handle the earliest deadline due at ``now``; False when none is due."""
        due = now + _TOL
        if self._t_session <= due:
            if self._user_fg:
                self._begin_gap(now)
            else:
                self._begin_session(now)
        elif self._t_kill <= due:
            self._t_kill = _INF
            if not self._user_fg and not self._alert and self._state is not AppState.KILLED:
                self._state = AppState.KILLED
                self._t_suspend = _INF
        elif self._t_suspend <= due:
            self._t_suspend = _INF
            if self._state is AppState.BACKGROUND and not self._alert:
                self._state = AppState.SUSPENDED
        elif self._t_doze <= due:
            assert self._doze_iter is not None
            self._enter_doze(now, self._next_doze_phase)
            self._t_doze, self._next_doze_phase = next(self._doze_iter)
        elif self._t_allow <= due:
            self._t_allow = _INF
        else:
            return False
        return True

    def _compute(self, now: float) -> LifecycleStatus:
        state = self._state
        if state in (AppState.SUSPENDED, AppState.KILLED):
            allowed = False
        elif state is AppState.FOREGROUND or self._alert:
            allowed = True
        else:
            allowed = not (self._doze in _IDLE_PHASES and now >= self._allow_until - _TOL)
        return LifecycleStatus(state, allowed)

    def _publish(self, now: float) -> None:
        new = self._compute(now)
        old = self._status
        if new != old:
            self._status = new
            self.history.append((now, new.state, new.network_allowed))
            if self._listener is not None:
                self._listener(old, new)

    def _next_deadline(self) -> float:
        return min(self._t_session, self._t_kill, self._t_suspend, self._t_doze, self._t_allow)

    def _external_change(self, now: float) -> None:
        if self._process is None:
            return
        self._publish(now)
        proc = self._process
        if self._next_deadline() < self._planned and proc.is_alive and self._env.active_process is not proc:
            self._planned = now
            proc.interrupt("replan")

    def _run(self) -> Generator[simpy.Event, Any, None]:
        env = self._env
        while True:
            now = env.now
            while self._fire(now):
                self._publish(now)
            wake = self._next_deadline()
            self._planned = wake
            with contextlib.suppress(simpy.Interrupt):  # an external change: re-plan
                yield env.timeout(max(0.0, wake - now)) if wake < _INF else env.event()
