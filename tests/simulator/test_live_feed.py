"""The live view's feed: snapshots of a running fleet, and watching a run without changing it.

The snapshot's contents are checked on hand-made ledgers (states, alerts going sent -> open ->
acknowledged -> resolved, capped lists, a bounded timeline, the map's position arrays); the judged
verdicts replace the provisional figures on ``finish``. ``peek`` (what the map reads a phone's
position with) is checked to change nothing: neither a mobility model's later answers nor a whole
simulate run's ledger.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from simulator.device.mobility import TRAVEL_MODES, Area, GaussMarkov, RandomWaypoint
from simulator.ledger import Ledger
from simulator.live.feed import ALERTS_SHOWN, LINES_SHOWN, MAP_BUILDS, TIMELINE_POINTS, LiveFeed, fan_out
from simulator.profile import load
from simulator.rng import Actor, Concern, generator
from simulator.simulate import Progress, Watched, build, run_model, simulate
from tests.simulator.test_determinism import fleet

AREA = Area(51.5074, -0.1278, 2000.0)


@dataclass(frozen=True)
class FakeSpec:
    area: Area


class FakePhone:
    """What the feed reads of a phone: its name, its area and its trajectory."""

    def __init__(self, index: int, area: Area = AREA, seed: int = 5, travel: str = "drive") -> None:
        self.name = f"phone-{index}"
        self.spec = FakeSpec(area)
        rng = generator(seed, Actor.DEVICE, index, Concern.MOBILITY)
        self.mobility = (GaussMarkov(area, TRAVEL_MODES[travel], rng) if index % 2
                         else RandomWaypoint(area, TRAVEL_MODES[travel], rng))


class SyntheticFleet:
    """Phones that connect, lose the network, raise alerts and chat, written straight to a real
    ledger (no SimPy, no backend): a stand-in for a running fleet, for feeding a :class:`LiveFeed`."""

    def __init__(self, phones: int, end_s: float = 3600.0, seed: int = 7) -> None:
        self.phones = [FakePhone(k, seed=seed) for k in range(1, phones + 1)]
        self.ledger = Ledger()
        self.end_s = end_s
        self.t = 0.0
        self.rng = np.random.default_rng(seed)
        self.sent = 0
        self.alerts: dict[str, int] = {}  # phone -> stage (0 created, 1 open, 2 acknowledged, ...)
        for phone in self.phones:
            self.ledger.state(0.0, phone.name, "network", "wifi")
            self.ledger.state(0.0, phone.name, "lifecycle", "foreground")
            self.ledger.connection(0.0, phone.name, "user", "connecting")
        self.open: set[str] = set()

    def _send(self, kind: str, sender: str, recipient: str, receiver: str, latency: float) -> None:
        self.sent += 1
        origin = f"{sender}:{self.sent}"
        self.ledger.originated(self.t, origin, kind, sender, recipient)
        self.ledger.attempt(self.t, origin, "ws", "user", "open")
        self.ledger.received(self.t + latency, origin, receiver, None, None)

    def step(self, dt: float) -> Progress:
        """Advance model time by ``dt`` seconds, write what happened, and report progress."""
        self.t += dt
        t, ledger, rng = self.t, self.ledger, self.rng
        for phone in self.phones:
            name = phone.name
            if name not in self.open and rng.random() < 0.9:
                ledger.connection(t, name, "user", "open")
                self.open.add(name)
            elif name in self.open and rng.random() < 0.2:
                ledger.heartbeat(t, name)
            elif name in self.open and rng.random() < 0.01:
                ledger.state(t, name, "network", "down")
                ledger.connection(t, name, "user", "half_open", "link lost")
                self.open.discard(name)
            elif rng.random() < 0.005:
                ledger.state(t, name, "lifecycle", "suspended" if rng.random() < 0.5 else "foreground")
        ledger.state(t, self.phones[0].name, "network", "wifi")
        if rng.random() < 0.6:  # a new alert
            phone = self.phones[int(rng.integers(len(self.phones)))]
            if phone.name not in self.alerts:
                lat, lon = phone.mobility.peek(t)
                ledger.fix(t, phone.name, lat, lon)
                self._send("create", phone.name, "operators", "operator-0", 0.2)
                self.alerts[phone.name] = 0
        for name, stage in list(self.alerts.items()):
            if stage < 4 and rng.random() < 0.4:
                if stage == 1:
                    self._send("status_update", "operator-0", name, name, 0.1)
                elif stage == 2:
                    self._send("chat_from_phone", name, "operators", "operator-0", 0.15)
                    self._send("chat_from_operator", "operator-0", name, name, 0.12)
                elif stage == 3:
                    self._send("status_update", "operator-0", name, name, 0.1)
                self.alerts[name] = stage + 1
            elif stage >= 4:
                del self.alerts[name]
        return self.progress()

    def progress(self, phase: str = "run") -> Progress:
        return Progress(self.t, self.end_s, len(self.ledger), self.t / 12.0, phase,
                        Watched(self.ledger, self.phones, []))  # type: ignore[arg-type]


class Clock:
    """A wall clock that moves only when told."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def snapshot(feed: LiveFeed) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(feed.snapshot())
    return document


def progress(ledger: Ledger, phones: list[FakePhone], t: float, end_s: float = 600.0,
             phase: str = "run") -> Progress:
    return Progress(t, end_s, len(ledger), t / 10.0, phase, Watched(ledger, phones, []))  # type: ignore[arg-type]


# -- snapshot contents -------------------------------------------------------------------------------


def test_before_any_progress_the_snapshot_says_the_run_is_starting() -> None:
    state = snapshot(LiveFeed(title="ci-smoke"))
    assert state["v"] == 1 and state["seq"] == 0
    assert state["phase"] == "starting" and state["ended"] is False and state["title"] == "ci-smoke"
    assert state["map"]["xy"] == [] and state["alerts"] == [] and state["lines"] == []
    assert [v["id"] for v in state["verdicts"]] == ["connect", "latency", "delivery", "heartbeat"]
    assert all(v["so_far"] for v in state["verdicts"]) and state["verdicts_final"] is False


def test_counts_follow_the_ledger_per_state() -> None:
    ledger = Ledger()
    phones = [FakePhone(k) for k in range(1, 5)]
    for phone in phones:
        ledger.state(0.0, phone.name, "network", "wifi")
        ledger.state(0.0, phone.name, "lifecycle", "foreground")
    ledger.connection(1.0, "phone-1", "user", "connecting")
    ledger.connection(1.5, "phone-1", "user", "open")
    ledger.state(2.0, "phone-2", "network", "down")
    ledger.state(2.0, "phone-3", "lifecycle", "suspended")
    ledger.connection(2.0, "operator-0", "operators", "open")  # operators are not phones
    feed = LiveFeed(min_interval_s=0.0)
    feed(progress(ledger, phones, 3.0))
    state = snapshot(feed)
    assert state["counts"] == {"connected": 1, "reconnecting": 1, "offline": 1, "suspended": 1}
    assert state["phones"] == 4 and state["t"] == 3.0 and state["phase"] == "run"
    xy = state["map"]["xy"]
    assert len(xy) == 3 * 4 and state["map"]["shown"] == state["map"]["of"] == 4
    assert xy[2::3] == [0, 2, 3, 1]  # connected, offline, suspended, reconnecting
    verdicts = {v["id"]: v for v in state["verdicts"]}
    assert verdicts["connect"]["n"] == 1 and verdicts["connect"]["measured"] == pytest.approx(0.5)
    assert verdicts["connect"]["verdict"] == "pass"


def test_alert_goes_sent_open_acknowledged_resolved_with_the_times_seen() -> None:
    ledger = Ledger()
    phones = [FakePhone(1), FakePhone(2)]
    feed = LiveFeed(min_interval_s=0.0)

    def status(t: float) -> dict[str, Any]:
        feed(progress(ledger, phones, t))
        (alert,) = snapshot(feed)["alerts"]
        return dict(alert)

    ledger.fix(10.0, "phone-1", 51.5, -0.12)
    ledger.originated(10.0, "phone-1:1", "create", "phone-1", "operators")
    alert = status(10.0)
    assert (alert["id"], alert["status"], alert["lat"], alert["lon"], alert["t"]) == (
        "phone-1", "sent", 51.5, -0.12, 10.0)
    assert snapshot(feed)["alerts_open"] == 1
    ledger.received(10.3, "phone-1:1", "operator-0", None, None)
    assert status(11.0)["status"] == "open"
    ledger.originated(30.0, "operator-0:1", "status_update", "operator-0", "phone-1")
    assert status(31.0)["status"] == "acknowledged"
    ledger.originated(90.0, "operator-0:2", "status_update", "operator-0", "phone-1")
    alert = status(91.0)
    assert alert["status"] == "resolved"
    assert alert["seen"] == {"open": 11.0, "acknowledged": 31.0, "resolved": 91.0}
    assert snapshot(feed)["alerts_open"] == 0


def test_an_alert_without_a_fix_is_placed_where_its_phone_is() -> None:
    ledger = Ledger()
    phone = FakePhone(2)
    ledger.originated(5.0, "phone-2:1", "create", "phone-2", "operators")
    feed = LiveFeed(min_interval_s=0.0)
    feed(progress(ledger, [phone], 8.0))
    (alert,) = snapshot(feed)["alerts"]
    lat, lon = phone.mobility.peek(8.0)
    assert (alert["lat"], alert["lon"]) == (round(lat, 5), round(lon, 5))


def test_lists_are_capped_open_alerts_first() -> None:
    ledger = Ledger()
    phones = [FakePhone(k) for k in range(1, 151)]
    for k in range(1, 151):
        ledger.originated(float(k), f"phone-{k}:1", "create", f"phone-{k}", "operators")
        if k % 2:
            ledger.originated(float(k), f"phone-{k}:2", "cancel", f"phone-{k}", "operators")
    for k in range(200):
        ledger.originated(200.0 + k, f"operator-0:{k}", "chat_from_operator", "operator-0", "phone-1")
    feed = LiveFeed(min_interval_s=0.0)
    feed(progress(ledger, phones, 400.0))
    state = snapshot(feed)
    alerts = state["alerts"]
    assert len(alerts) == ALERTS_SHOWN
    statuses = [a["status"] for a in alerts]
    assert statuses[:75] == ["sent"] * 75 and set(statuses[75:]) == {"canceled"}
    assert [a["t"] for a in alerts[:75]] == sorted((a["t"] for a in alerts[:75]), reverse=True)
    lines = state["lines"]
    assert len(lines) == LINES_SHOWN
    assert lines[-1] == [399.0, "chat_from_operator", "operator-0", "phone-1", None]


def test_the_timeline_stays_bounded_and_covers_the_whole_run() -> None:
    ledger = Ledger()
    phones = [FakePhone(1)]
    ledger.state(0.0, "phone-1", "network", "wifi")
    clock = Clock()
    feed = LiveFeed(min_interval_s=0.5, now=clock)
    for second in range(1, 3001):
        clock.t += 0.25  # two calls per snapshot interval: every other one is skipped
        feed(progress(ledger, phones, float(second), end_s=3000.0))
    timeline = snapshot(feed)["timeline"]
    points = timeline["points"]
    assert timeline["states"] == ["connected", "reconnecting", "offline", "suspended"]
    assert 150 <= len(points) <= TIMELINE_POINTS
    assert points[0][0] <= 4.0 and points[-1][0] >= 3000.0 - 2 * timeline["bucket_s"]
    assert all(len(p) == 6 and p[1:] == [0, 1, 0, 0, 0] for p in points)
    times = [p[0] for p in points]
    assert times == sorted(times)


def test_snapshots_are_rebuilt_at_most_every_interval_and_always_at_the_end() -> None:
    ledger = Ledger()
    clock = Clock()
    feed = LiveFeed(min_interval_s=0.5, now=clock)
    feed(progress(ledger, [], 1.0))
    assert feed.seq == 1
    clock.t = 0.3
    feed(progress(ledger, [], 2.0))
    assert feed.seq == 1 and snapshot(feed)["t"] == 1.0
    clock.t = 0.6
    feed(progress(ledger, [], 3.0))
    assert feed.seq == 2 and snapshot(feed)["t"] == 3.0
    clock.t = 0.7
    feed(progress(ledger, [], 600.0, phase="drain"))  # the end: shown even inside the interval
    assert feed.seq == 3 and snapshot(feed)["phase"] == "drain" and snapshot(feed)["left_s"] == 0.0


def test_positions_are_each_phones_true_position_in_a_fixed_order() -> None:
    fleet_ = SyntheticFleet(40)
    feed = LiveFeed(min_interval_s=0.0)
    for _ in range(3):
        feed(fleet_.step(30.0))
        state = snapshot(feed)
        xy = state["map"]["xy"]
        assert len(xy) == 3 * 40
        for i, phone in enumerate(fleet_.phones):
            lat, lon = phone.mobility.peek(fleet_.t)
            assert (xy[3 * i], xy[3 * i + 1]) == (round(lon, 5), round(lat, 5))
        min_lon, min_lat, max_lon, max_lat = state["map"]["bounds"]
        assert all(min_lon <= x <= max_lon for x in xy[0::3])
        assert all(min_lat <= y <= max_lat for y in xy[1::3])
        assert set(xy[2::3]) <= {0, 1, 2, 3, 4}


def test_a_large_fleet_shows_a_sample_filled_in_over_a_few_snapshots() -> None:
    phones = [FakePhone(k) for k in range(1, 1001)]
    ledger = Ledger()
    feed = LiveFeed(min_interval_s=0.0, map_max=400)
    shown = []
    for t in (1.0, 2.0, 3.0):
        feed(progress(ledger, phones, t))
        shown.append(snapshot(feed)["map"]["shown"])
    assert shown == [min(334, MAP_BUILDS), min(334, 2 * MAP_BUILDS), 334]  # every 3rd of 1,000
    state = snapshot(feed)
    assert state["map"]["of"] == 1000 and state["phones"] == 1000
    lat, lon = phones[3].mobility.peek(3.0)  # the sample's second phone is phone-4
    assert state["map"]["xy"][3:5] == [round(lon, 5), round(lat, 5)]
    assert state["map"]["xy"][2::3] == [4] * 334  # nothing said yet: starting


def test_finish_swaps_in_the_judged_verdicts_and_ends_the_run() -> None:
    config = load("ci-smoke", devices=6, duration_s=120.0)
    feed = LiveFeed(config.targets, "ci-smoke", min_interval_s=0.0)
    result, _ = simulate(config, feed)
    before = snapshot(feed)
    assert before["verdicts_final"] is False and all(v["so_far"] for v in before["verdicts"])
    assert before["counts"]["connected"] + before["counts"]["suspended"] > 0
    feed.finish(result)
    state = snapshot(feed)
    assert state["ended"] is True and state["phase"] == "ended" and state["left_s"] == 0.0
    assert state["verdicts_final"] is True
    assert state["verdicts"] == [v.to_json() for v in result.verdicts]
    assert state["seq"] == before["seq"] + 1


def test_fan_out_calls_every_callback_in_order() -> None:
    seen: list[tuple[str, float]] = []
    both = fan_out(lambda p: seen.append(("a", p.model_s)), None, lambda p: seen.append(("b", p.model_s)))
    both(Progress(1.0, 2.0, 0, 0.1, "run"))
    assert seen == [("a", 1.0), ("b", 1.0)]


# -- watching changes nothing ---------------------------------------------------------------------


@pytest.mark.parametrize("model", [RandomWaypoint, GaussMarkov])
def test_peek_never_changes_later_answers(model: type[RandomWaypoint] | type[GaussMarkov]) -> None:
    def fresh() -> RandomWaypoint | GaussMarkov:
        return model(AREA, TRAVEL_MODES["drive"], generator(3, Actor.DEVICE, 9, Concern.MOBILITY))

    watched, alone = fresh(), fresh()
    rng = np.random.default_rng(1)
    t = 0.0
    for _ in range(300):
        t += float(rng.exponential(40.0))
        # peeks far ahead, behind, and at the very time the model is asked next
        for ahead in (float(rng.uniform(-100.0, 2000.0)), 0.0, 5000.0):
            peeked = watched.peek(max(0.0, t + ahead))
            assert all(math.isfinite(v) for v in peeked)
        assert watched.peek(t) == alone.position(t)
        assert watched.position(t) == alone.position(t)
        assert watched.speed(t) == alone.speed(t)
        assert watched.heading(t) == alone.heading(t)


@pytest.mark.parametrize("model", [RandomWaypoint, GaussMarkov])
def test_peek_moves_the_phone_beyond_its_drawn_trajectory(
        model: type[RandomWaypoint] | type[GaussMarkov]) -> None:
    moving = model(AREA, TRAVEL_MODES["drive"], generator(3, Actor.DEVICE, 4, Concern.MOBILITY))
    points = {moving.peek(t) for t in np.arange(0.0, 7200.0, 60.0)}
    assert len(points) > 60  # it keeps moving for two hours without being asked position()
    reference = model(AREA, TRAVEL_MODES["drive"], generator(3, Actor.DEVICE, 4, Concern.MOBILITY))
    assert moving.peek(5000.0) == reference.position(5000.0)


def test_a_watched_simulate_run_has_the_same_ledger_as_an_unwatched_one() -> None:
    """The live feed peeks every phone at every slice; the phones take their own fixes (at panics
    and location updates) on the same trajectories, so the ledger is the same record for record."""
    config = fleet(40, duration_s=900.0)
    alone = build(config)
    run_model(alone)
    watched = build(config)
    feed = LiveFeed(min_interval_s=0.0)
    ticks = []

    def on_progress(progress: Progress) -> None:
        feed(progress)
        ticks.append(snapshot(feed)["map"]["shown"])

    run_model(watched, on_progress)
    assert len(ticks) >= 100 and ticks[-1] == 40  # every phone peeked, at every slice
    fixes = [r for r in alone.ledger.records if r[0] == "fix"]
    locations = [r for r in alone.ledger.records if r[0] == "originated" and r[3] == "location"]
    assert len(fixes) >= 5 and locations, "phones must take fixes, or peeking risks nothing"
    kinds = {phone.name: phone.spec.mobility for phone in watched.phones}
    assert {kinds[r[2]] for r in fixes} == {"random_waypoint", "gauss_markov"}  # both models exercised
    assert watched.ledger.records == alone.ledger.records
