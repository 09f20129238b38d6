"""What the live view shows, as one compact JSON snapshot rebuilt from the running fleet.

:class:`LiveFeed` is an ``on_progress`` callback. It runs on the fleet's own thread, between two
slices of model time, so it may read the fleet's ledger and phones safely; at most every
``min_interval_s`` of wall time it folds the ledger's new records into a
:class:`~simulator.tally.Tally` and encodes a snapshot (UTF-8 JSON bytes). The HTTP server's threads
only ever read the latest snapshot, one immutable ``bytes`` object swapped in whole.

Phones move on the map even when they take no GPS fix (most never do): their positions come from
each phone's mobility model through :meth:`~simulator.device.mobility.RandomWaypoint.peek`, which
changes neither the model's state nor its random draws, so watching a run does not change it.

The snapshot (``v`` 1; times are model seconds, positions degrees)::

    {"v": 1, "seq": 12, "title": "ci-smoke", "phase": "run" | "drain" | "ended" | "starting",
     "ended": false, "t": 61.5, "end": 720.0, "wall": 5.1, "left_s": 54.6,
     "phones": 20, "counts": {"connected": 18, "reconnecting": 1, "offline": 1, "suspended": 0},
     "alerts_open": 2, "originated": 31, "received": 40, "rate": 0.8, "worst_ms": 212.0,
     "heartbeats": 310,
     "alerts": [{"id": "phone-7", "status": "acknowledged", "lat": 51.50741, "lon": -0.12781,
                 "t": 40.2, "seen": {"open": 40.3, "acknowledged": 61.0}}, ...],
     "lines": [[t, kind, sender, receiver, latency_ms or null], ...],
     "timeline": {"states": ["connected", ...], "bucket_s": 1.0,
                  "points": [[t, connected, reconnecting, offline, suspended, alerts_open], ...]},
     "map": {"bounds": [min_lon, min_lat, max_lon, max_lat], "shown": 20, "of": 20,
             "states": ["connected", "reconnecting", "offline", "suspended", "starting"],
             "xy": [lon0, lat0, state0, lon1, lat1, state1, ...]},
     "verdicts": [...], "verdicts_final": false}

``alerts`` lists the open ones first (newest first), then the closed ones, at most
:data:`ALERTS_SHOWN`; ``seen`` holds the model time each status was first seen at (to the
snapshot's resolution). ``lines`` are the last :data:`LINES_SHOWN` message events, oldest first.
The timeline keeps at most :data:`TIMELINE_POINTS` points over the whole run: when full, every other
point is dropped and the bucket doubles. ``map.xy`` holds a fixed sample of at most ``map_max``
phones (every k-th), in the same order in every snapshot so the page can interpolate between two;
a large fleet's sample fills in over its first few snapshots (``shown`` of ``of``), as the phones'
trajectories are built :data:`MAP_BUILDS` at a time.
Until :meth:`LiveFeed.finish`, ``verdicts`` are provisional figures marked ``"so_far": true``;
after it they are the judged verdicts, exactly as report.json has them, and ``verdicts_final`` is
true.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from simulator.checks import CLAIMS
from simulator.device.mobility import GaussMarkov, RandomWaypoint, metres_per_degree
from simulator.device.phone import Phone
from simulator.result import RunResult, Targets
from simulator.simulate import Progress, Watched
from simulator.tally import OPEN_ALERT, STATES, Tally

VERSION = 1
ALERTS_SHOWN = 100
LINES_SHOWN = 30
TIMELINE_POINTS = 600
MAP_MAX = 2000
MAP_BUILDS = 250  # phone trajectories built per snapshot at most
MAP_STATES = (*STATES, "starting")  # "starting": the ledger has said nothing about the phone yet
STARTING = len(STATES)


class LiveFeed:
    """Turns a running fleet's progress into snapshots for the live view.

    Args:
        targets: The claims' targets, for the provisional verdict figures.
        title: What the run is (the profile's name), shown in the page's header.
        min_interval_s: The shortest wall time between two snapshots (the page polls every 0.5 s).
        map_max: The most phones drawn on the map (a larger fleet shows every k-th phone).
        now: The wall clock (a parameter so tests need not sleep).
    """

    def __init__(self, targets: Targets | None = None, title: str = "", min_interval_s: float = 0.5,
                 map_max: int = MAP_MAX, now: Callable[[], float] = time.monotonic) -> None:
        self.targets = targets if targets is not None else Targets()
        self.title = title
        self.min_interval_s = min_interval_s
        self.map_max = max(1, map_max)
        self.now = now
        self.tally = Tally()
        self.seq = 0
        self._last_build = -math.inf
        self._progress: Progress | None = None
        self._sample: list[Phone] = []
        self._models: list[tuple[str, RandomWaypoint | GaussMarkov]] = []  # the sample's, as built
        self._counts = dict.fromkeys(STATES, 0)
        self._by_name: dict[str, Phone] = {}
        self._bounds: list[float] | None = None
        self._points: list[list[float]] = []
        self._bucket_s = 1.0
        self._seen: dict[str, tuple[float, dict[str, float]]] = {}  # actor -> (created, status -> t)
        self._verdicts: list[dict[str, Any]] | None = None
        self._ended = False
        self._snapshot = self._encode(self._document())

    # -- the two ways in ---------------------------------------------------------------------------

    def __call__(self, progress: Progress) -> None:
        """Take one progress report; rebuild the snapshot if ``min_interval_s`` has passed (or the
        run has reached its end)."""
        self._progress = progress
        wall = self.now()
        if wall - self._last_build < self.min_interval_s and progress.model_s < progress.end_s:
            return
        self._last_build = wall
        self._build()

    def finish(self, result: RunResult) -> None:
        """The run is over: fold the last records, show the judged verdicts, mark the run ended."""
        self._verdicts = [verdict.to_json() for verdict in result.verdicts]
        self._ended = True
        self._build()

    def snapshot(self) -> bytes:
        """The latest snapshot (UTF-8 JSON); safe to call from any thread."""
        return self._snapshot

    # -- building ----------------------------------------------------------------------------------

    def _build(self) -> None:
        fleet = self._progress.fleet if self._progress is not None else None
        if fleet is not None:
            self.tally.update(fleet.ledger)
            if not self._by_name:
                self._watch(fleet)
        self._counts = self.tally.counts()
        self._sample_timeline()
        self._note_alerts()
        self.seq += 1
        self._snapshot = self._encode(self._document())

    def _watch(self, fleet: Watched) -> None:
        """Choose the phones on the map (a fixed sample) and the map's bounds, once."""
        phones = list(fleet.phones)
        self._by_name = {phone.name: phone for phone in phones}
        stride = max(1, math.ceil(len(phones) / self.map_max))
        self._sample = phones[::stride]
        areas = {phone.spec.area for phone in phones}
        if areas:
            boxes = []
            for area in areas:
                per_lat, per_lon = metres_per_degree(area.latitude)
                d_lat, d_lon = area.radius_m / per_lat, area.radius_m / per_lon
                boxes.append((area.longitude - d_lon, area.latitude - d_lat,
                              area.longitude + d_lon, area.latitude + d_lat))
            self._bounds = [round(min(b[0] for b in boxes), 5), round(min(b[1] for b in boxes), 5),
                            round(max(b[2] for b in boxes), 5), round(max(b[3] for b in boxes), 5)]

    def _model_now(self) -> float:
        return self._progress.model_s if self._progress is not None else 0.0

    def _sample_timeline(self) -> None:
        t = self._model_now()
        points = self._points
        if points and t < points[-1][0] + self._bucket_s:
            return
        points.append([round(t, 1), *(self._counts[s] for s in STATES), self.tally.alerts_open])
        if len(points) > TIMELINE_POINTS:
            self._points = points[::2]
            self._bucket_s *= 2

    def _note_alerts(self) -> None:
        """Remember when each alert's status was first seen (a phone's new alert starts afresh)."""
        t = round(self._model_now(), 1)
        for actor, alert in self.tally.alerts.items():
            created, seen = self._seen.get(actor, (math.nan, {}))
            if created != alert.t:
                created, seen = alert.t, {}
                self._seen[actor] = (created, seen)
            if alert.status != "sent" and alert.status not in seen:
                seen[alert.status] = t

    def _document(self) -> dict[str, Any]:
        tally = self.tally
        progress = self._progress
        phase = "ended" if self._ended else progress.phase if progress is not None else "starting"
        worst = tally.worst_latency_s
        return {
            "v": VERSION, "seq": self.seq, "title": self.title, "phase": phase, "ended": self._ended,
            "t": round(self._model_now(), 1),
            "end": round(progress.end_s, 1) if progress is not None else None,
            "wall": round(progress.wall_s, 1) if progress is not None else 0.0,
            "left_s": 0.0 if self._ended else _left_s(progress),
            "phones": len(self._by_name) or len(tally.phones),
            "counts": dict(self._counts),
            "alerts_open": tally.alerts_open,
            "originated": tally.originated, "received": tally.received,
            "rate": round(tally.rate(), 2),
            "worst_ms": None if worst is None else round(worst * 1000.0, 1),
            "heartbeats": tally.heartbeats,
            "alerts": self._alerts(),
            "lines": [[round(line.t, 1), line.kind, line.sender, line.receiver,
                       None if line.latency_s is None else round(line.latency_s * 1000.0, 1)]
                      for line in list(tally.lines)[-LINES_SHOWN:]],
            "timeline": {"states": list(STATES), "bucket_s": self._bucket_s, "points": self._points},
            "map": self._map(),
            "verdicts": self._verdicts if self._verdicts is not None else self._provisional(),
            "verdicts_final": self._verdicts is not None,
        }

    def _alerts(self) -> list[dict[str, Any]]:
        alerts = sorted(self.tally.alerts.values(), key=lambda a: (a.status not in OPEN_ALERT, -a.t))
        t = self._model_now()
        shown = []
        for alert in alerts[:ALERTS_SHOWN]:
            lat, lon = alert.lat, alert.lon
            if lat is None or lon is None:  # no fix recorded: where the phone is
                phone = self._by_name.get(alert.actor)
                lat, lon = phone.mobility.peek(t) if phone is not None else (None, None)
            seen = self._seen.get(alert.actor, (alert.t, {}))[1]
            shown.append({"id": alert.actor, "status": alert.status,
                          "lat": None if lat is None else round(lat, 5),
                          "lon": None if lon is None else round(lon, 5),
                          "t": round(alert.t, 1), "seen": dict(seen)})
        return shown

    def _map(self) -> dict[str, Any]:
        t = self._model_now()
        models = self._models
        # A phone's trajectory is built on first use (a few geodesic calls): a few hundred a
        # snapshot, so a large fleet's first snapshots do not hold up its event loop.
        for phone in self._sample[len(models):len(models) + MAP_BUILDS]:
            models.append((phone.name, phone.mobility))
        states = self.tally.phones
        codes = {state: i for i, state in enumerate(STATES)}
        xy: list[float | int] = []
        for name, model in models:
            lat, lon = model.peek(t)
            known = states.get(name)
            xy += (round(lon, 5), round(lat, 5), STARTING if known is None else codes[known.state])
        return {"bounds": self._bounds, "shown": len(models), "of": len(self._by_name),
                "states": list(MAP_STATES), "xy": xy}

    def _provisional(self) -> list[dict[str, Any]]:
        """The figures the claims will be judged on, as far as the run has got (not verdicts yet)."""
        tally, targets = self.tally, self.targets
        rows: list[dict[str, Any]] = []
        connect = tally.connect
        p99 = connect.percentile(99) if connect.count else None
        rows.append(_row("connect", f"p99 < {targets.connect_p99_s:g} s",
                         p99, "s", connect.count, None if p99 is None else p99 < targets.connect_p99_s,
                         f"{connect.count} of {len(self._by_name) or len(tally.phones)} phones connected"))
        worst: float | None = None
        parts = []
        n = 0
        for direction, hist in tally.latency.items():
            n += hist.count
            if hist.count:
                p = hist.percentile(99) * 1000.0
                worst = p if worst is None else max(worst, p)
                parts.append(f"{direction.replace('_', ' ')} p99 {p:,.0f} ms (n={hist.count})")
        rows.append(_row("latency", f"p99 < {targets.latency_p99_ms:g} ms", worst, "ms", n,
                         None if worst is None else worst < targets.latency_p99_ms,
                         "; ".join(parts) or "nothing received yet"))
        rows.append(_row("delivery", f">= {targets.delivery_min * 100:g}% per kind",
                         None, "ratio", tally.originated, None,
                         f"{tally.originated:,} messages sent, {tally.received:,} receipts; "
                         "judged after the drain"))
        rows.append(_row("heartbeat",
                         f"{targets.heartbeat_interval_s:g} s +- {targets.heartbeat_tolerance * 100:g}%",
                         None, "count", tally.heartbeats, None,
                         f"{tally.heartbeats:,} heartbeats so far; spacing judged after the run"))
        return rows

    @staticmethod
    def _encode(document: dict[str, Any]) -> bytes:
        return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def _row(claim_id: str, target: str, measured: float | None, unit: str, n: int,
         passing: bool | None, note: str) -> dict[str, Any]:
    verdict = "pending" if passing is None else "pass" if passing else "fail"
    return {"id": claim_id, "claim": CLAIMS[claim_id], "target": target,
            "measured": None if measured is None else float(f"{measured:.4g}"), "verdict": verdict,
            "n": n, "note": note, "unit": unit, "so_far": True}


def _left_s(progress: Progress | None) -> float | None:
    """Wall seconds left at the pace so far (as the console's progress line reckons it)."""
    if progress is None or progress.model_s <= 0 or progress.wall_s <= 0:
        return None
    return round(max(0.0, progress.end_s - progress.model_s) * progress.wall_s / progress.model_s, 1)


def fan_out(*callbacks: Callable[[Progress], None] | None) -> Callable[[Progress], None]:
    """One ``on_progress`` callback that calls each of ``callbacks`` (``None`` ones skipped) in turn."""
    chosen: Sequence[Callable[[Progress], None]] = [c for c in callbacks if c is not None]

    def on_progress(progress: Progress) -> None:
        for callback in chosen:
            callback(progress)

    return on_progress
