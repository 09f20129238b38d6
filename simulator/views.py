"""The data behind report.html's plots ("views"), derived from the judged ledger.

report.html is a pure function of the :class:`~simulator.result.RunResult`, so what its plots draw is
aggregated here, once, by the checker (:func:`simulator.checks.judge` calls :func:`build`), from
what it has already grouped: each actor's records and timeline (:mod:`simulator.checks_devices`),
the outcome of every (message, recipient) pair (:mod:`simulator.checks_messages`) and the ``fix``
records. Every part is bounded, so a 10,000-phone hour stays small in report.json, and deterministic:
actors in sorted order, selections spread evenly over sorted lists, floats rounded with
:func:`~simulator.result.stable_float`. Times are model seconds from the start of the run.

- ``timeline``: phones per status in each of at most 240 buckets over [0, the last record], each
  phone counted once per bucket by its status at the bucket's midpoint (``offline``: network down
  or power off; ``suspended``: the lifecycle keeps the app off the network; ``connected``: user
  channel open; else ``reconnecting``), from its first record on; and the outages: intervals when
  at least max(1, 10 % of the phones) had no network, merged across gaps shorter than a bucket.
- ``delivery_by_network``: (message, recipient) pairs originated and delivered, by the network of
  the phone involved at the originated time (the sender's; for an operator's message, the
  receiving phone's) and by message kind.
- ``battery``: the battery readings of up to 20 phones, drawn in turn from each majority network.
- ``map``: the fixes of up to 400 phones (at most 150 a phone and 2,000 in all, evenly spaced, the
  first and last kept), each with the phone's status then; each alert (``create``, up to 2,000) at
  the fix the phone took as it was raised, with whether it reached an operator.
- ``worst``: up to 5 phones that lost messages, failed or were slow to connect or reconnect, or were
  not connected for longer than the uptime target allows, worst first, with their own history.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

import numpy as np

from simulator.checks_devices import NO_NETWORK, POWERED_OFF, STATUSES, UNKNOWN, ActorFigures, Timeline
from simulator.checks_messages import MessageFigures, Originated, is_operator
from simulator.ledger import CONNECTION, OPERATORS, STATE, Record
from simulator.result import Targets, stable_float

T = TypeVar("T")

SERIES = ("connected", "reconnecting", "offline", "suspended")  # the timeline's, by status name
MAX_BUCKETS = 240
# Bucket widths (s) a time axis reads well with; the narrowest giving at most MAX_BUCKETS is used.
NICE_BUCKETS_S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
                  600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0, 43200.0, 86400.0)
OUTAGE_DIVISOR = 10  # an outage: at least one phone in ten (and at least one) without network
BATTERY_PHONES = 20
BATTERY_POINTS = 120
MAX_TRACKS = 400
TRACK_POINTS = 150
# All tracks together: about 100 bytes a point in report.json, so the map stays a few hundred KB;
# when phones are many, fewer tracks of at least MIN_TRACK_POINTS each rather than many stubs.
TRACK_POINTS_TOTAL = 2000
MIN_TRACK_POINTS = 20
MAX_ALERTS = 2000
WORST_PHONES = 5
WORST_TIMELINE = 400
WORST_LOST = 200
CREATE = "create"

_time = itemgetter(1)
_t = attrgetter("t")


def build(actor_events: Mapping[str, list[Record]], timelines: Mapping[str, Timeline],
          devices: Mapping[str, ActorFigures], originated: Mapping[str, Originated],
          found: MessageFigures, fixes: Iterable[Record], targets: Targets) -> dict[str, Any]:
    """The views of a judged run (the schema in the module docstring), JSON-ready.

    Args:
        actor_events: Actor -> its ``state`` and ``connection`` records, sorted by time.
        timelines: Actor -> its timeline (see :mod:`simulator.checks_devices`).
        devices: Phone -> what its sweep measured.
        originated: origin_id -> message.
        found: What the message half measured (delivery by network, the lost and stored-only pairs).
        fixes: The ``fix`` records, in any order.
        targets: The claims' targets (what counts as a slow connection or too much downtime).

    Returns:
        ``timeline``, ``delivery_by_network``, ``battery``, ``map`` and ``worst``.
    """
    phones = sorted(devices)
    by_network, creates, last_sent = _messages(originated, found)
    fixes_of: defaultdict[str, list[Record]] = defaultdict(list)
    for record in fixes:
        fixes_of[record[2]].append(record)
    ends = [events[-1][1] for events in actor_events.values() if events]
    for records in fixes_of.values():
        records.sort(key=_time)
        ends.append(records[-1][1])
    if last_sent is not None:
        ends.append(last_sent)
    end = max(ends) if ends else None
    return {
        "timeline": _timeline(phones, timelines, end),
        "delivery_by_network": by_network,
        "battery": {"sample": _battery(phones, devices, actor_events)},
        "map": _map(fixes_of, timelines, creates),
        "worst": _worst(phones, devices, actor_events, timelines, originated, found, targets,
                        0.0 if end is None else end),
    }


# -- messages --------------------------------------------------------------------------------------

def _messages(originated: Mapping[str, Originated], found: MessageFigures
              ) -> tuple[dict[str, Any], list[tuple[float, str, str, bool]], float | None]:
    """Pairs originated and delivered per network and kind; the creates; the last originated time."""
    by_network: dict[str, dict[str, dict[str, int]]] = {}
    for (net, kind), (sent, delivered) in sorted(found.delivery_by_network.items()):
        by_network.setdefault(net, {})[kind] = {"originated": sent, "delivered": delivered}
    undelivered = set(found.lost_pairs)
    undelivered.update(found.stored_only_pairs)
    creates = [(message.t, oid, message.actor,
                any((oid, recipient) not in undelivered for recipient in message.recipients))
               for oid, message in originated.items()
               if message.kind == CREATE and not is_operator(message.actor)]
    last = max(map(_t, originated.values()), default=None)
    creates.sort()
    return by_network, creates, last


# -- the fleet timeline ----------------------------------------------------------------------------

def bucket_width(end: float) -> float:
    """The narrowest readable bucket width (s) that covers ``[0, end]`` in at most MAX_BUCKETS."""
    raw = end / MAX_BUCKETS
    for width in NICE_BUCKETS_S:
        if width >= raw:
            return width
    return math.ceil(raw / NICE_BUCKETS_S[-1]) * NICE_BUCKETS_S[-1]


def _timeline(phones: Sequence[str], timelines: Mapping[str, Timeline], end: float | None) -> dict[str, Any]:
    """Phones per status per bucket (at its midpoint), and the fleet's outages."""
    if end is None:
        return {"bucket_s": 1.0, "t": [], **{name: [] for name in SERIES}, "outages": []}
    width = bucket_width(end)
    n = min(MAX_BUCKETS, max(1, math.ceil(end / width)))
    times: array[float] = array("d")
    codes: array[int] = array("b")
    lasts: list[int] = []  # the index of each phone's last change point
    for actor in phones:
        line = timelines[actor]
        if line.status_times:
            times.extend(line.status_times)
            codes.extend(line.statuses)
            lasts.append(len(times) - 1)
    counts = {name: [0] * n for name in SERIES}
    outages: list[list[float]] = []
    if times:
        # A phone holds each status from one change point until its next (its last, for ever): it
        # counts in the buckets whose midpoints fall in between.
        since = np.frombuffer(times, dtype=np.float64)
        until = np.empty_like(since)
        until[:-1] = since[1:]
        until[lasts] = np.inf
        code = np.frombuffer(codes, dtype=np.int8).astype(np.int64)
        mids = (np.arange(n, dtype=np.float64) + 0.5) * width
        starts = np.searchsorted(mids, since, side="left")
        stops = np.empty_like(starts)
        stops[:-1] = starts[1:]
        stops[lasts] = n
        first, after = code * (n + 1) + starts, code * (n + 1) + stops
        size = len(STATUSES) * (n + 1)
        diff = np.bincount(first, minlength=size) - np.bincount(after, minlength=size)
        by_code = np.cumsum(diff.reshape(len(STATUSES), n + 1)[:, :n], axis=1)
        merged = {name: np.zeros(n, dtype=np.int64) for name in SERIES}
        for c, name in enumerate(STATUSES):  # both offline codes in one series
            merged[name] += by_code[c]
        counts = {name: [int(v) for v in merged[name].tolist()] for name in SERIES}
        threshold = max(1, -(-len(phones) // OUTAGE_DIVISOR))
        down = code == NO_NETWORK
        outages = _outages(since[down], until[down], end, threshold, width)
    return {
        "bucket_s": stable_float(width),
        "t": [stable_float(i * width) for i in range(n)],
        **counts,
        "outages": outages,
    }


def _outages(since: np.ndarray, until: np.ndarray, end: float, threshold: int,
             merge_gap: float) -> list[list[float]]:
    """Intervals when at least ``threshold`` phones had no network (gaps under ``merge_gap`` closed).

    Args:
        since: When each spell without network began.
        until: When it ended (``inf``: it lasted to the end).
        end: The end of the last record.
        threshold: The phones without network an outage needs.
        merge_gap: Outages closer than this are one.
    """
    if not since.size:
        return []
    ended = until[np.isfinite(until)]
    at = np.concatenate((since, ended))
    delta = np.concatenate((np.ones(since.size, dtype=np.int64), np.full(ended.size, -1, dtype=np.int64)))
    order = np.argsort(at, kind="stable")
    at, count = at[order], np.cumsum(delta[order])
    # The count after each instant: changes at one instant (a handover's down and up) go together.
    settled = np.flatnonzero(np.append(at[1:] != at[:-1], True))
    instants, count = at[settled], count[settled]
    above = np.concatenate(([False], count >= threshold, [False]))
    crossings = np.flatnonzero(above[1:] != above[:-1]).tolist()  # start, stop, start, stop, ...
    edges = [*instants.tolist(), end]
    intervals: list[list[float]] = []
    for first, last in zip(crossings[::2], crossings[1::2], strict=True):
        start, stop = edges[first], edges[last]
        if stop <= start:
            continue
        if intervals and start - intervals[-1][1] < merge_gap:
            intervals[-1][1] = stop
        else:
            intervals.append([start, stop])
    return [[stable_float(a), stable_float(b)] for a, b in intervals]


# -- battery ---------------------------------------------------------------------------------------

def _battery(phones: Sequence[str], devices: Mapping[str, ActorFigures],
             actor_events: Mapping[str, list[Record]]) -> list[dict[str, Any]]:
    """Up to BATTERY_PHONES phones with a drain figure, in turn from each majority network."""
    members: defaultdict[str, list[str]] = defaultdict(list)
    for actor in phones:
        figures = devices[actor]
        if figures.battery_pct_per_hour is not None:
            members[figures.majority_network].append(actor)
    nets = sorted(members)
    quota = dict.fromkeys(nets, 0)
    left = BATTERY_PHONES
    while left > 0:
        took = False
        for net in nets:
            if left > 0 and quota[net] < len(members[net]):
                quota[net] += 1
                left -= 1
                took = True
        if not took:
            break
    sample: list[dict[str, Any]] = []
    for net in nets:
        for actor in spread(members[net], quota[net]):
            readings = [r for r in actor_events.get(actor, ()) if r[0] == STATE and r[3] == "battery"]
            points = [[stable_float(r[1]), stable_float(float(r[4]))]
                      for r in downsample(readings, BATTERY_POINTS)]
            sample.append({"actor": actor, "network": net, "points": points})
    return sample


# -- map -------------------------------------------------------------------------------------------

def _map(fixes_of: Mapping[str, list[Record]], timelines: Mapping[str, Timeline],
         creates: Sequence[tuple[float, str, str, bool]]) -> dict[str, Any]:
    """Phones' tracks (status at each fix) and alerts at their create's fix; the bounds of both."""
    tracks: list[dict[str, Any]] = []
    lats: list[float] = []
    lons: list[float] = []
    located_phones = sorted(fixes_of)
    n_tracks = min(MAX_TRACKS, len(located_phones), TRACK_POINTS_TOTAL // MIN_TRACK_POINTS)
    per_track = min(TRACK_POINTS, TRACK_POINTS_TOTAL // max(1, n_tracks))
    for actor in spread(located_phones, n_tracks):
        line = timelines.get(actor)
        points = []
        for record in downsample(fixes_of[actor], per_track):
            t, lat, lon = record[1], float(record[3]), float(record[4])
            status = line.status_at(t) if line is not None else UNKNOWN
            points.append([stable_float(t), stable_float(lat), stable_float(lon), status])
            lats.append(lat)
            lons.append(lon)
        tracks.append({"actor": actor, "points": points})
    located: list[dict[str, Any]] = []
    for t, _oid, actor, reached in creates:
        own = fixes_of.get(actor)
        if not own:
            continue
        i = bisect_right(own, t, key=_time) - 1  # the fix the phone took as it pressed panic
        if i < 0:
            continue
        lat, lon = float(own[i][3]), float(own[i][4])
        located.append({"actor": actor, "t": stable_float(t), "lat": stable_float(lat),
                        "lon": stable_float(lon), "delivered": reached})
    alerts = spread(located, MAX_ALERTS)
    lats.extend(a["lat"] for a in alerts)
    lons.extend(a["lon"] for a in alerts)
    bounds = [stable_float(min(lats)), stable_float(min(lons)), stable_float(max(lats)),
              stable_float(max(lons))] if lats else None
    return {"bounds": bounds, "tracks": tracks, "alerts": alerts}


# -- the worst phones ------------------------------------------------------------------------------

def _worst(phones: Sequence[str], devices: Mapping[str, ActorFigures],
           actor_events: Mapping[str, list[Record]], timelines: Mapping[str, Timeline],
           originated: Mapping[str, Originated], found: MessageFigures, targets: Targets,
           end: float) -> list[dict[str, Any]]:
    """Up to WORST_PHONES phones with something wrong, ranked by (lost, bad (re)connects, downtime)."""
    lost_by_phone: defaultdict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for oid, recipient in found.lost_pairs:
        message = originated[oid]
        entry = (message.t, message.kind, oid)
        if not is_operator(message.actor):
            lost_by_phone[message.actor].append(entry)
        if recipient != OPERATORS and recipient != message.actor and not is_operator(recipient):
            lost_by_phone[recipient].append(entry)
    reconnect_limit, connect_limit = targets.reconnect_p99_s, targets.connect_p99_s
    downtime_share = 1.0 - targets.uptime_min
    ranked: list[tuple[tuple[int, int, float, str], _Trouble]] = []
    for actor in [*phones, *sorted(lost_by_phone.keys() - devices.keys())]:
        lost = lost_by_phone.get(actor, [])
        figures = devices.get(actor)
        if figures is None:  # a phone with no record of its own, only messages it lost
            trouble = _Trouble(lost)
        else:
            slow = sum(s >= reconnect_limit for s in figures.reconnect_s) if figures.reconnect_s else 0
            never = figures.connect_attempted and figures.connect_s is None
            connect_s = figures.connect_s
            slow_connect = connect_s is not None and connect_s >= connect_limit
            downtime = max(0.0, figures.eligible_s - figures.up_s)
            over = downtime > 0 and downtime > figures.eligible_s * downtime_share
            if not (lost or slow or figures.reconnect_failed or never or slow_connect or over):
                continue
            trouble = _Trouble(lost, slow, figures.reconnect_failed, never,
                               connect_s if slow_connect else None, downtime, figures.eligible_s, over,
                               figures.majority_network)
        ranked.append(((-len(trouble.lost), -trouble.bad_connects, -trouble.downtime, actor), trouble))
    ranked.sort(key=itemgetter(0))
    worst: list[dict[str, Any]] = []
    for (*_, actor), trouble in ranked[:WORST_PHONES]:
        events = actor_events.get(actor, [])
        network = [[stable_float(r[1]), str(r[4])] for r in events if r[0] == STATE and r[3] == "network"]
        lifecycle = [[stable_float(r[1]), str(r[4])] for r in events
                     if r[0] == STATE and r[3] == "lifecycle"]
        connection = [[stable_float(r[1]), str(r[3]), str(r[4]), str(r[5])] for r in events
                      if r[0] == CONNECTION]
        lost = sorted(trouble.lost)
        notes = trouble.reasons(reconnect_limit, _offline_s(timelines.get(actor), end))
        if len(lost) > WORST_LOST:
            notes.append(f"first {WORST_LOST} of {len(lost)} lost messages listed")
        for name, entries in (("network", network), ("lifecycle", lifecycle), ("connection", connection)):
            if len(entries) > WORST_TIMELINE:
                notes.append(f"{name} history cut to its first {WORST_TIMELINE} of {len(entries)} changes")
        worst.append({
            "actor": actor, "why": "; ".join(notes), "lost": len(lost), "network": trouble.network,
            "timeline": {"network": network[:WORST_TIMELINE], "lifecycle": lifecycle[:WORST_TIMELINE],
                         "connection": connection[:WORST_TIMELINE]},
            "lost_messages": [[stable_float(t), kind, oid] for t, kind, oid in lost[:WORST_LOST]],
        })
    return worst


@dataclass(slots=True)
class _Trouble:
    """What went wrong for one phone."""

    lost: list[tuple[float, str, str]]  # (originated time, kind, origin_id), to or from it
    slow: int = 0  # reconnections that took the reconnect target or more
    failed: int = 0  # reconnections that never completed
    never: bool = False  # never connected at all
    connect_s: float | None = None  # the initial connection, when it took the connect target or more
    downtime: float = 0.0  # seconds not connected while the app could have been
    eligible: float = 0.0  # seconds the app could have been connected
    over: bool = False  # the downtime alone misses the uptime target
    network: str = UNKNOWN  # the phone's majority network

    @property
    def bad_connects(self) -> int:
        """Failed or slow reconnections, plus a failed or slow initial connection."""
        return self.slow + self.failed + int(self.never) + int(self.connect_s is not None)

    def reasons(self, reconnect_limit: float, offline_s: float) -> list[str]:
        """One clause per problem, worst first, then the time the phone was offline."""
        notes: list[str] = []
        if self.lost:
            kinds = sorted(Counter(kind for _, kind, _ in self.lost).items(), key=lambda kv: (-kv[1], kv[0]))
            each = ", ".join(f"{n} {kind}" for kind, n in kinds)
            notes.append(f"{_plural(len(self.lost), 'message')} lost ({each})")
        if self.slow:
            notes.append(f"{_plural(self.slow, 'reconnect')} of {reconnect_limit:g} s or more")
        if self.failed:
            notes.append(f"{_plural(self.failed, 'reconnect')} never completed")
        if self.never:
            notes.append("never connected")
        elif self.connect_s is not None:
            notes.append(f"first connection took {_seconds(self.connect_s)} s")
        if self.over:
            notes.append(f"not connected {_seconds(self.downtime)} s of the {_seconds(self.eligible)} s "
                         "it could have been")
        if offline_s > 0:
            notes.append(f"offline {_seconds(offline_s)} s")
        return notes


def _offline_s(line: Timeline | None, end: float) -> float:
    """Seconds the phone was offline (network down or power off) from its first record to ``end``."""
    if line is None:
        return 0.0
    total = 0.0
    times, statuses = line.status_times, line.statuses
    for i, status in enumerate(statuses):
        if status in (NO_NETWORK, POWERED_OFF):
            stop = times[i + 1] if i + 1 < len(times) else max(end, times[i])
            total += stop - times[i]
    return total


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


# -- sampling --------------------------------------------------------------------------------------

def spread(items: Sequence[T], k: int) -> list[T]:
    """At most ``k`` of ``items``, evenly spaced from the first (all of them if there are no more)."""
    n = len(items)
    if n <= k:
        return list(items)
    return [items[i * n // k] for i in range(k)]


def downsample(items: Sequence[T], k: int) -> list[T]:
    """At most ``k`` of ``items``, evenly spaced, keeping the first and the last."""
    n = len(items)
    if n <= k:
        return list(items)
    if k <= 1:
        return list(items[:k])
    return [items[(i * (n - 1) + (k - 1) // 2) // (k - 1)] for i in range(k)]
