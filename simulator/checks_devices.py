"""The checker's per-actor sweep: connection windows, uptime, heartbeats, battery, and timelines.

Each actor's ``state`` and ``connection`` records are walked once, in time order (ties keep ledger
order), then its heartbeats, with the actor's current situation held in a few variables:

- the network (``"down"`` or a kind: ``"wifi"``, ``"lte"``, ...; up and of unknown kind until the
  first record), the app's lifecycle (``"foreground"`` until told otherwise) and power (on);
- the *primary* channel's state: ``user`` for phones and for anyone with user-channel records, else
  the first channel the actor used; an operator with no connection record is taken as connected.

The app *could be connected* while the network is up, power is on, and the lifecycle lets it use the
network (foreground, background, doze_maintenance). From that:

- **Connect**: the first ``connecting`` of the user channel to the first ``open`` after it, counting
  only time the app could be connected (see below); a device that never opens by the end of the
  run is a failed connection, unless it never had a moment to connect (then it is ``skipped``).
- **Reconnect**: a network restoration (``down`` -> any kind) opens a window that the next user
  ``open`` at or after it closes. The window's clock runs only while the app could be connected
  (time spent suspended, killed, in Doze or powered off is the OS's, not the client's). If the
  network drops again, or the run ends, first, it is a failed reconnection, unless the app never
  had a moment to act (then it is ``skipped``). A connection that survived the outage must be
  recorded as ``open`` again at the restoration, or it counts as never reconnected.
- **Uptime**: time the user channel was open (and no reconnect window pending) while the app could
  be connected / time the app could be connected, both clipped to the run's duration.
- **Heartbeat spacing**: between consecutive heartbeats of one device, both sent in the foreground,
  with no user-channel connection record and no lifecycle or power change in between.
- **Battery**: the sum of level drops (charging is ignored) / hours between first and last reading.
- **Timeline**: change points of (impaired, primary channel not open), where *impaired* means the
  app could not be connected or a reconnect window was pending, so the message checker can ask
  "was the sender connected when it meant to send?" with one bisection; and change points of the
  actor's *status* for the report's fleet timeline (first match wins): ``offline`` (network down or
  power off), ``suspended`` (the lifecycle keeps the app off the network: suspended, killed, Doze),
  ``connected`` (primary channel open), else ``reconnecting``, from the actor's first record on.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise

from simulator.ledger import CONNECTION, STATE, Record

ALLOWED_LIFECYCLE = frozenset({"foreground", "background", "doze_maintenance"})
DOWN = "down"
USER = "user"
UNKNOWN = "unknown"

NOT_OPEN = 1  # timeline bit: the primary channel was not open
IMPAIRED = 2  # timeline bit: no network, app not allowed to use it, power off, or reconnecting

# Status codes, each with its name in STATUSES. Offline has two: no network (whether powered or not)
# and powered off with a network, so the fleet's network outages can be told from dead batteries.
# The app could be connected exactly in the two lowest (status <= RECONNECTING).
CONNECTED, RECONNECTING, NO_NETWORK, SUSPENDED, POWERED_OFF = range(5)
STATUSES = ("connected", "reconnecting", "offline", "suspended", "offline")


@dataclass(slots=True)
class Timeline:
    """Change points of an actor's situation, for point queries by time."""

    first_code: int
    times: list[float] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    net_times: list[float] = field(default_factory=list)
    net_kinds: list[str] = field(default_factory=list)
    # Status change points as machine arrays, so the report's views join a fleet's without copying.
    status_times: array[float] = field(default_factory=lambda: array("d"))
    statuses: array[int] = field(default_factory=lambda: array("b"))

    def code_at(self, t: float) -> int:
        """The ``NOT_OPEN | IMPAIRED`` bits in force at time ``t``."""
        i = bisect_right(self.times, t) - 1
        return self.codes[i] if i >= 0 else self.first_code

    def network_at(self, t: float) -> str:
        """The network kind (or ``"down"``) at time ``t``; ``"unknown"`` before the first record."""
        i = bisect_right(self.net_times, t) - 1
        return self.net_kinds[i] if i >= 0 else UNKNOWN

    def status_at(self, t: float) -> str:
        """The status's name (see :data:`STATUSES`) at time ``t``; ``"unknown"`` before the first record."""
        i = bisect_right(self.status_times, t) - 1
        return STATUSES[self.statuses[i]] if i >= 0 else UNKNOWN


@dataclass(slots=True)
class Stopwatch:
    """A window's clock that runs only while the app could be connected."""

    running: bool = False
    counted: float = 0.0
    since: float = 0.0

    def start(self, t: float) -> None:
        """Open the window at ``t`` (its clock runs from the first moment the app can connect)."""
        self.running, self.counted, self.since = True, 0.0, t

    def switch(self, t: float, was_allowed: bool) -> None:
        """The app just lost (``was_allowed``) or gained the ability to connect, at ``t``."""
        if self.running:
            if was_allowed:
                self.counted += t - self.since
            else:
                self.since = t

    def stop(self, t: float, allowed: bool) -> float:
        """Close the window at ``t``; returns the time counted."""
        self.running = False
        return self.counted + (max(0.0, t - self.since) if allowed else 0.0)


@dataclass(slots=True)
class ActorFigures:
    """What one actor's sweep measured."""

    timeline: Timeline
    connect_attempted: bool = False
    connect_skipped: bool = False
    connect_s: float | None = None
    reconnect_s: list[float] = field(default_factory=list)
    reconnect_failed: int = 0
    reconnect_skipped: int = 0
    eligible_s: float = 0.0
    up_s: float = 0.0
    heartbeat_spacings: list[float] = field(default_factory=list)
    battery_pct_per_hour: float | None = None
    majority_network: str = UNKNOWN
    os: str = UNKNOWN


def sweep(events: list[Record], end: float, device: bool, heartbeats: list[float]) -> ActorFigures:
    """Walk one actor's ``state`` and ``connection`` records (sorted by time), then its heartbeats.

    Args:
        events: The actor's records, sorted by time (index 1).
        end: The end of the run in model seconds; time after it is not counted.
        device: Whether the actor is a phone (connect, reconnect, uptime, heartbeat and battery are
            measured for phones only; operators get a timeline).
        heartbeats: The times of the actor's heartbeats, sorted.

    Returns:
        The actor's figures.
    """
    primary = _primary_channel(events) or (USER if device else None)
    net_up, net_kind, lifecycle, power = True, UNKNOWN, "foreground", True
    is_open = primary is None
    connect, reconnect = Stopwatch(), Stopwatch()
    breaks: list[tuple[float, bool]] = []  # (time, foreground and on): they end a run of heartbeats
    network_time: dict[str, float] = {}
    battery: list[tuple[float, float]] = []
    prev = events[0][1] if events else 0.0  # an actor exists from its first record (phones boot staggered)

    def code() -> int:
        allowed = net_up and power and lifecycle in ALLOWED_LIFECYCLE
        return (0 if is_open else NOT_OPEN) | (0 if allowed and not reconnect.running else IMPAIRED)

    figures = ActorFigures(Timeline(code()))
    timeline = figures.timeline
    last_code = timeline.first_code
    last_status = -1  # none yet; as allowed as the situation before the first record (up, on, foreground)
    for record in events:
        t = record[1]
        allowed = last_status <= RECONNECTING
        if t > prev:
            span = (t if t < end else end) - prev
            if span > 0:
                if allowed:
                    figures.eligible_s += span
                    if is_open and not reconnect.running:
                        figures.up_s += span
                key = net_kind if net_up else DOWN
                network_time[key] = network_time.get(key, 0.0) + span
            prev = t
        if record[0] == STATE:
            dimension, value = record[3], record[4]
            if dimension == "network":
                if value == DOWN:
                    if net_up and reconnect.running:
                        _close_failed(figures, reconnect.stop(t, allowed))
                    net_up = False
                else:
                    if not net_up and t < end:
                        reconnect.start(t)
                    net_up, net_kind = True, str(value)
                timeline.net_times.append(t)
                timeline.net_kinds.append(net_kind if net_up else DOWN)
            elif dimension == "lifecycle":
                lifecycle = str(value)
                breaks.append((t, power and lifecycle == "foreground"))
            elif dimension == "power":
                power = value == "on"
                breaks.append((t, power and lifecycle == "foreground"))
            elif dimension == "battery":
                battery.append((t, float(value)))
            elif dimension == "os":
                figures.os = str(value)
            if (net_up and power and lifecycle in ALLOWED_LIFECYCLE) != allowed:
                connect.switch(t, allowed)
                reconnect.switch(t, allowed)
        elif record[0] == CONNECTION:
            channel, state = record[3], record[4]
            if channel == USER:
                breaks.append((t, power and lifecycle == "foreground"))
            if channel == primary:
                is_open = state == "open"
                if device and channel == USER:
                    if state == "connecting" and not figures.connect_attempted and not connect.running:
                        connect.start(t)
                    elif is_open and connect.running:
                        figures.connect_attempted = True
                        figures.connect_s = connect.stop(t, allowed)
                    if is_open and reconnect.running:
                        figures.reconnect_s.append(reconnect.stop(t, allowed))
        status = (NO_NETWORK if not net_up else POWERED_OFF if not power
                  else SUSPENDED if lifecycle not in ALLOWED_LIFECYCLE else CONNECTED if is_open
                  else RECONNECTING)
        if status != last_status:
            timeline.status_times.append(t)
            timeline.statuses.append(status)
            last_status = status
        current = (0 if is_open else NOT_OPEN) | (
            0 if status <= RECONNECTING and not reconnect.running else IMPAIRED)  # as code() does
        if current != last_code:
            timeline.times.append(t)
            timeline.codes.append(current)
            last_code = current
    allowed = net_up and power and lifecycle in ALLOWED_LIFECYCLE
    if end > prev:
        if allowed:
            figures.eligible_s += end - prev
            if is_open and not reconnect.running:
                figures.up_s += end - prev
        key = net_kind if net_up else DOWN
        network_time[key] = network_time.get(key, 0.0) + end - prev
    final = max(end, prev)
    if reconnect.running:
        _close_failed(figures, reconnect.stop(final, allowed))
    if connect.running:  # never opened: a failed connection, if the app ever had a moment to connect
        figures.connect_attempted = connect.stop(final, allowed) > 0
        figures.connect_skipped = not figures.connect_attempted
    if not device:
        figures.reconnect_s.clear()
        figures.reconnect_failed = figures.reconnect_skipped = 0
        figures.eligible_s = figures.up_s = 0.0
        return figures
    figures.heartbeat_spacings = _spacings(heartbeats, breaks)
    figures.battery_pct_per_hour = _battery_drain(battery)
    figures.majority_network = _majority(network_time)
    return figures


def _spacings(heartbeats: list[float], breaks: list[tuple[float, bool]]) -> list[float]:
    """Spacings of consecutive foreground heartbeats with no break in ``(previous, next]``.

    Args:
        heartbeats: Heartbeat times, sorted.
        breaks: (time, whether the app is in the foreground and powered on from then), sorted:
            user-channel connection records and lifecycle or power changes.
    """
    spacings: list[float] = []
    previous: float | None = None
    last_break, foreground = -math.inf, True
    j, n_breaks = 0, len(breaks)
    for t in heartbeats:
        while j < n_breaks and breaks[j][0] <= t:
            last_break, foreground = breaks[j]
            j += 1
        if not foreground:
            previous = None
            continue
        if previous is not None and last_break <= previous:
            spacings.append(t - previous)
        previous = t
    return spacings


def _close_failed(figures: ActorFigures, allowed_s: float) -> None:
    if allowed_s > 0:
        figures.reconnect_failed += 1
    else:
        figures.reconnect_skipped += 1


def _primary_channel(events: Iterable[Record]) -> str | None:
    first: str | None = None
    for record in events:
        if record[0] == CONNECTION:
            if record[3] == USER:
                return USER
            if first is None:
                first = str(record[3])
    return first


def _battery_drain(readings: list[tuple[float, float]]) -> float | None:
    if len(readings) < 2 or readings[-1][0] <= readings[0][0]:
        return None
    drained = sum(max(0.0, a[1] - b[1]) for a, b in pairwise(readings))
    return drained / ((readings[-1][0] - readings[0][0]) / 3600.0)


def _majority(network_time: dict[str, float]) -> str:
    up = {kind: s for kind, s in network_time.items() if kind != DOWN and s > 0}
    if up:
        return min(up, key=lambda kind: (-up[kind], kind))
    return DOWN if network_time.get(DOWN, 0.0) > 0 else UNKNOWN
