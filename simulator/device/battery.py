"""A phone battery: analytic energy accounting, and threshold events from one planning process.

The battery state machine
-------------------------
The level falls from its starting percentage as energy is drawn::

    energy(t) = baseline * t + screen-on time * P_screen + GPS-on time * P_gps + radio energy(t)

Screen and GPS are on/off integrals kept exactly (updated at each switch); the radio integrates its
own RRC promotions and tails (:mod:`simulator.device.radio`). Nothing polls.

Two thresholds matter: battery saver (Android auto-on at 15 %, AOSP ``config.xml``; iOS prompts for
Low Power Mode at 20 % and we ASSUME the user accepts) and empty (0 %: the phone powers off, the
radio stops, and the level stays at 0). States: NORMAL -> SAVER -> EMPTY, never back (no charging).

To announce a crossing without polling, one SimPy process per battery predicts the next crossing
time from the current drain: the exact baseline + screen + GPS power plus the radio's average power
over the last ``radio_window_s`` (radio traffic is too frequent to wake the planner for). It sleeps
until then, or at most ``max_step_s``, or until :meth:`Battery.set_screen` / :meth:`Battery.set_gps`
interrupt it to re-plan. Without radio traffic the crossing is exact; with it, a crossing is
announced at most one planning step late. A phone costs a few planner events per simulated hour.

Device presets carry the press capacities from MODELS.md; the draws (screen 0.50-0.64 W, GPS
0.23-0.45 W, idle 5-6 mA, from ARO device profiles and Haverinen 2007) take the middle of their
ranges (ASSUME: no per-model source); profiles sample around them using the ``*_RANGE`` constants.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import simpy

from simulator.device.radio import SUPPLY_V, Radio

NOMINAL_CELL_V = 12.98 / 3.349
"""Nominal cell voltage (3.876 V) implied by the iPhone 15's 12.98 Wh / 3349 mAh; converts mAh to Wh."""

SCREEN_W_RANGE = (0.50, 0.64)  # ARO device profiles (MODELS.md)
GPS_W_RANGE = (0.23, 0.45)  # ARO device profiles (MODELS.md)
BASELINE_MA_RANGE = (5.0, 6.0)  # idle, screen off, radio camped: Haverinen 2007 6.1 mA (MODELS.md)

DEFAULT_BASELINE_W = sum(BASELINE_MA_RANGE) / 2 * 1e-3 * SUPPLY_V  # 5.5 mA at 3.7 V = 20.35 mW

ANDROID_SAVER_PCT = 15.0  # AOSP config.xml: battery saver auto-on (low 15 %, critical 5 %)
IOS_SAVER_PCT = 20.0  # iOS prompts for Low Power Mode at 20 % (and 10 %) (~)

BatteryListener = Callable[[str, bool | None], None]
"""Receives ``("saver", True)`` when saver turns on and ``("empty", None)`` when the phone dies."""


@dataclass(frozen=True, slots=True)
class DeviceModel:
    """A phone model's battery and power draws.

    Attributes:
        name: marketing name.
        os: ``"ios"`` or ``"android"``.
        capacity_wh: battery capacity in watt-hours.
        screen_w: extra power with the screen on.
        gps_w: extra power with GPS active.
        baseline_ma: idle current (screen off, radio idle) at :data:`SUPPLY_V`.
    """

    name: str
    os: str
    capacity_wh: float
    screen_w: float = sum(SCREEN_W_RANGE) / 2
    gps_w: float = sum(GPS_W_RANGE) / 2
    baseline_ma: float = sum(BASELINE_MA_RANGE) / 2

    def __post_init__(self) -> None:
        if self.os not in ("ios", "android"):
            raise ValueError(f"device {self.name}: os must be 'ios' or 'android', not {self.os!r}")
        if self.capacity_wh <= 0 or min(self.screen_w, self.gps_w, self.baseline_ma) < 0:
            raise ValueError(f"device {self.name}: capacity must be > 0 and draws >= 0")

    @property
    def baseline_w(self) -> float:
        """Idle power in watts."""
        return self.baseline_ma * 1e-3 * SUPPLY_V


def _wh(mah: float) -> float:
    return mah * 1e-3 * NOMINAL_CELL_V


IPHONE_15 = DeviceModel("iPhone 15", "ios", 12.98)  # 3349 mAh, 12.98 Wh (~ press)
IPHONE_15_PRO_MAX = DeviceModel("iPhone 15 Pro Max", "ios", _wh(4422))  # 4422 mAh (~ press)
GALAXY_S24 = DeviceModel("Galaxy S24", "android", _wh(4000))  # 4000 mAh (~ press)
GALAXY_S24_ULTRA = DeviceModel("Galaxy S24 Ultra", "android", _wh(5000))  # 5000 mAh (~ press)

DEVICE_MODELS: Mapping[str, DeviceModel] = {
    m.name: m for m in (IPHONE_15, IPHONE_15_PRO_MAX, GALAXY_S24, GALAXY_S24_ULTRA)
}
"""Device presets by name."""

_EPS_J = 1e-6  # energy below which a threshold counts as reached (float round-off)
_MIN_SPAN_S = 30.0  # shortest span a radio power estimate is taken over


class Battery:
    """A phone battery draining under baseline, screen, GPS and radio load.

    Args:
        env: the SimPy environment; the planning process starts at once.
        capacity_wh: capacity in watt-hours.
        level_pct: starting charge, 0-100.
        radio: the phone's radio; its energy from now on is drawn from this battery.
        os: ``"ios"`` or ``"android"`` (an ``Os`` enum value works): chooses the saver threshold.
        listener: called with ``("saver", True)`` and ``("empty", None)``.
        baseline_w: idle power (default: 5.5 mA at 3.7 V).
        screen_w: extra power with the screen on.
        gps_w: extra power with GPS active.
        saver_pct: override the OS's saver threshold.
        max_step_s: longest the planner sleeps without re-checking.
        radio_window_s: the span over which the radio's average power is estimated.
        min_step_s: shortest planner sleep (bounds the events spent converging on a threshold).
    """

    def __init__(
        self,
        env: simpy.Environment,
        capacity_wh: float,
        level_pct: float,
        radio: Radio,
        os: str,
        listener: BatteryListener | None = None,
        *,
        baseline_w: float = DEFAULT_BASELINE_W,
        screen_w: float = sum(SCREEN_W_RANGE) / 2,
        gps_w: float = sum(GPS_W_RANGE) / 2,
        saver_pct: float | None = None,
        max_step_s: float = 900.0,
        radio_window_s: float = 300.0,
        min_step_s: float = 1.0,
    ) -> None:
        if capacity_wh <= 0 or not 0 <= level_pct <= 100:
            raise ValueError("capacity must be > 0 and level within 0-100")
        if os not in ("ios", "android"):
            raise ValueError(f"os must be 'ios' or 'android', not {os!r}")
        self._env = env
        self._radio = radio
        self._listener = listener
        self.capacity_j = capacity_wh * 3600.0
        self.start_pct = float(level_pct)
        self.os = str(os)
        self.saver_pct = saver_pct if saver_pct is not None else (
            IOS_SAVER_PCT if self.os == "ios" else ANDROID_SAVER_PCT
        )
        self.baseline_w = baseline_w
        self.screen_w = screen_w
        self.gps_w = gps_w
        self._max_step = max_step_s
        self._window = radio_window_s
        self._min_step = min_step_s
        now = env.now
        self._t0 = now
        self._radio0 = radio.energy_j(now)
        self._screen_since: float | None = None
        self._screen_acc = 0.0
        self._gps_since: float | None = None
        self._gps_acc = 0.0
        self._off_at: float | None = None
        self._frozen_j = 0.0
        self._saver_fired = False
        self._sample_t = now
        self._sample_j = self._radio0
        self._radio_w = 0.0
        self._process = env.process(self._run())

    @classmethod
    def for_device(
        cls,
        env: simpy.Environment,
        device: DeviceModel,
        level_pct: float,
        radio: Radio,
        listener: BatteryListener | None = None,
    ) -> Battery:
        """A battery with a :class:`DeviceModel`'s capacity, OS and draws."""
        return cls(
            env, device.capacity_wh, level_pct, radio, device.os, listener,
            baseline_w=device.baseline_w, screen_w=device.screen_w, gps_w=device.gps_w,
        )

    # -- state ---------------------------------------------------------------------------------

    @property
    def is_on(self) -> bool:
        """False once the battery is empty and the phone has turned off."""
        return self._off_at is None

    @property
    def off_at(self) -> float | None:
        """When the phone turned off, if it has."""
        return self._off_at

    @property
    def screen_on(self) -> bool:
        """Whether the screen is on."""
        return self._screen_since is not None

    @property
    def gps_on(self) -> bool:
        """Whether GPS is active."""
        return self._gps_since is not None

    def set_screen(self, on: bool, now: float) -> None:
        """Turn the screen on or off at ``now`` (ignored once the phone is off)."""
        if self._off_at is not None or on == self.screen_on:
            return
        if on:
            self._screen_since = now
        else:
            assert self._screen_since is not None
            self._screen_acc += now - self._screen_since
            self._screen_since = None
        self._replan()

    def set_gps(self, on: bool, now: float) -> None:
        """Turn GPS on or off at ``now`` (ignored once the phone is off)."""
        if self._off_at is not None or on == self.gps_on:
            return
        if on:
            self._gps_since = now
        else:
            assert self._gps_since is not None
            self._gps_acc += now - self._gps_since
            self._gps_since = None
        self._replan()

    def power_w(self) -> float:
        """Present draw without the radio: baseline + screen + GPS (0 once off)."""
        if self._off_at is not None:
            return 0.0
        return (
            self.baseline_w
            + (self.screen_w if self.screen_on else 0.0)
            + (self.gps_w if self.gps_on else 0.0)
        )

    def energy_j(self, now: float) -> float:
        """Energy drawn since the battery was created, up to ``now`` (not before the last switch)."""
        if self._off_at is not None:
            return self._frozen_j
        screen = self._screen_acc + (now - self._screen_since if self._screen_since is not None else 0.0)
        gps = self._gps_acc + (now - self._gps_since if self._gps_since is not None else 0.0)
        radio = self._radio.energy_j(now) - self._radio0
        return self.baseline_w * (now - self._t0) + self.screen_w * screen + self.gps_w * gps + radio

    def drained_pct(self, now: float) -> float:
        """Percentage points of capacity drawn since creation (may exceed the start level)."""
        return 100.0 * self.energy_j(now) / self.capacity_j

    def level(self, now: float) -> float:
        """Charge in percent at ``now``, never below 0."""
        return max(0.0, self.start_pct - self.drained_pct(now))

    def saver(self, now: float) -> bool:
        """Whether battery saver (Android) / Low Power Mode (iOS) is on at ``now``."""
        return self.level(now) <= self.saver_pct

    # -- planning ------------------------------------------------------------------------------

    def _replan(self) -> None:
        proc = self._process
        if proc.is_alive and self._env.active_process is not proc:
            proc.interrupt("replan")

    def _radio_estimate(self, now: float) -> float:
        # Average radio power since the last sample; the sample moves on once a window has passed,
        # so the estimate always covers between _MIN_SPAN_S and about two windows of traffic.
        span = now - self._sample_t
        if span >= _MIN_SPAN_S:
            e = self._radio.energy_j(now)
            self._radio_w = (e - self._sample_j) / span
            if span >= self._window:
                self._sample_t, self._sample_j = now, e
        return self._radio_w

    def _remaining_j(self, now: float, target_pct: float) -> float:
        return (self.start_pct - target_pct) / 100.0 * self.capacity_j - self.energy_j(now)

    def _notify(self, kind: str, value: bool | None) -> None:
        if self._listener is not None:
            self._listener(kind, value)

    def _run(self) -> Generator[simpy.Event, Any, None]:
        env = self._env
        while True:
            now = env.now
            if not self._saver_fired and self._remaining_j(now, self.saver_pct) <= _EPS_J:
                self._saver_fired = True
                self._notify("saver", True)
            remaining = self._remaining_j(now, 0.0)
            if remaining <= _EPS_J:
                self._frozen_j = self.energy_j(now)
                self._off_at = now
                self._screen_since = self._gps_since = None
                self._radio.off(now)
                self._notify("empty", None)
                return
            if not self._saver_fired:
                remaining = self._remaining_j(now, self.saver_pct)
            rate = self.power_w() + self._radio_estimate(now)
            step = remaining / rate if rate > 0 else math.inf
            with contextlib.suppress(simpy.Interrupt):  # a state change: re-plan
                yield env.timeout(min(max(step, self._min_step), self._max_step))
