"""Running figures of a fleet while it runs, folded from the ledger's new records.

The console's progress line and the live view show what is happening *now*: phones connected,
alerts open, messages per second, the worst latency so far. :class:`Tally` reads only the records
appended since its last :meth:`Tally.update`, so a call costs time in proportion to what happened
since, never to the length of the run. Its figures are provisional: messages still in flight are
neither delivered nor lost yet. A latency here is first receipt minus intended send time, for messages
sent on an open channel (or over HTTP) when they were meant to be, as the checker's network latency
(time a message waited in an outbox offline is delivery delay, not latency).
The verdicts come from :mod:`simulator.checks` after the drain.

A phone's state follows the report's fleet timeline, first match wins:

- ``offline``: its network is down or it is powered off;
- ``suspended``: the OS does not let the app use the network (suspended, killed, in Doze);
- ``connected``: its user channel is open;
- ``reconnecting``: it could connect but is not connected.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from simulator.checks_messages import ATTEMPT_SLACK_S, is_operator
from simulator.hdr import Histogram
from simulator.ledger import ATTEMPT, CONNECTION, HEARTBEAT, ORIGINATED, RECEIVED, STATE, Ledger

FIX = "fix"
ALLOWED_LIFECYCLE = frozenset({"foreground", "background", "doze_maintenance"})
STATES = ("connected", "reconnecting", "offline", "suspended")
OPEN_ALERT = frozenset({"sent", "open", "acknowledged"})
DIRECTIONS = ("phone_to_operator", "operator_to_phone")
LINES_KEPT = 100


@dataclass(slots=True)
class PhoneState:
    """What the ledger has said about one phone so far."""

    network: str = "unknown"
    lifecycle: str = "foreground"
    powered: bool = True
    user_open: bool = False
    connecting_since: float | None = None
    connected_once: bool = False
    lat: float | None = None
    lon: float | None = None

    @property
    def state(self) -> str:
        """``offline``, ``suspended``, ``connected`` or ``reconnecting`` (see the module docstring)."""
        if self.network == "down" or not self.powered:
            return "offline"
        if self.lifecycle not in ALLOWED_LIFECYCLE:
            return "suspended"
        return "connected" if self.user_open else "reconnecting"


@dataclass(slots=True)
class AlertState:
    """A phone's latest alert: ``sent`` (created, no operator has it yet), ``open`` (an operator
    received it), ``acknowledged``, ``resolved`` or ``canceled``."""

    actor: str
    t: float
    status: str = "sent"
    lat: float | None = None
    lon: float | None = None
    updates: int = 0  # status updates operators sent for it: the first acknowledges, the second resolves


@dataclass(frozen=True, slots=True)
class MessageLine:
    """One message event for a ticker: sent (``latency_s`` None) or first received."""

    t: float
    kind: str
    sender: str
    receiver: str
    latency_s: float | None


@dataclass(slots=True)
class _Sent:
    t: float
    kind: str
    sender: str
    live: bool = False  # attempted on an open channel (or HTTP) at its intended time
    seen_by: set[str] = field(default_factory=set)


class Tally:
    """Folds a growing ledger into running figures (see the module docstring)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.expected = 0  # phones in the fleet, including those the ledger has not mentioned yet
        self.phones: dict[str, PhoneState] = {}
        self.alerts: dict[str, AlertState] = {}
        self.originated = 0
        self.received = 0
        self.heartbeats = 0
        self.worst_latency_s: float | None = None
        self.latency = {d: Histogram() for d in DIRECTIONS}
        self.connect = Histogram()
        self.lines: deque[MessageLine] = deque(maxlen=LINES_KEPT)
        self._seen = 0
        self._sent: dict[str, _Sent] = {}
        self._receipts: deque[float] = deque()

    @property
    def alerts_open(self) -> int:
        """Alerts created and not yet resolved or canceled."""
        return sum(a.status in OPEN_ALERT for a in self.alerts.values())

    def counts(self) -> dict[str, int]:
        """Phones per state, every state present."""
        counts = dict.fromkeys(STATES, 0)
        for phone in self.phones.values():
            counts[phone.state] += 1
        return counts

    def rate(self, window_s: float = 10.0) -> float:
        """First receipts per model second over the last ``window_s`` of model time."""
        horizon = self.now - window_s
        while self._receipts and self._receipts[0] < horizon:
            self._receipts.popleft()
        span = min(window_s, self.now)
        return len(self._receipts) / span if span > 0 else 0.0

    def update(self, ledger: Ledger) -> None:
        """Fold the records appended to ``ledger`` since the last call."""
        records = ledger.records
        end = len(records)
        for i in range(self._seen, end):
            record = records[i]
            kind = record[0]
            if kind == CONNECTION:
                self._connection(record[1], record[2], record[3], record[4])
            elif kind == STATE:
                self._state(record[2], record[3], record[4])
            elif kind == ORIGINATED:
                self._originated(record[1], record[2], record[3], record[4], record[5])
            elif kind == RECEIVED:
                self._received(record[1], record[2], record[3])
            elif kind == ATTEMPT:
                sent = self._sent.get(record[2])
                if sent is not None and record[1] <= sent.t + ATTEMPT_SLACK_S \
                        and (record[3] == "http" or record[5] == "open"):
                    sent.live = True
            elif kind == HEARTBEAT:
                self.heartbeats += 1
            elif kind == FIX:
                phone = self._phone(record[2])
                if phone is not None:
                    phone.lat, phone.lon = float(record[3]), float(record[4])
            else:
                continue
            if isinstance(record[1], float | int) and record[1] > self.now:
                self.now = float(record[1])
        self._seen = end

    def _phone(self, actor: str) -> PhoneState | None:
        if is_operator(actor):
            return None
        phone = self.phones.get(actor)
        if phone is None:
            phone = self.phones[actor] = PhoneState()
        return phone

    def _connection(self, t: float, actor: str, channel: str, state: str) -> None:
        phone = self._phone(actor)
        if phone is None or channel != "user":
            return
        if state == "connecting" and phone.connecting_since is None and not phone.connected_once:
            phone.connecting_since = t
        phone.user_open = state == "open"
        if state == "open" and not phone.connected_once:
            phone.connected_once = True
            if phone.connecting_since is not None:
                self.connect.record(max(0.0, t - phone.connecting_since))

    def _state(self, actor: str, dimension: str, value: object) -> None:
        phone = self._phone(actor)
        if phone is None:
            return
        if dimension == "network":
            phone.network = str(value)
        elif dimension == "lifecycle":
            phone.lifecycle = str(value)
        elif dimension == "power":
            phone.powered = value != "off"

    def _originated(self, t: float, origin_id: str, kind: str, actor: str, recipient: str) -> None:
        if origin_id in self._sent:
            return  # another recipient of the same message
        self.originated += 1
        self._sent[origin_id] = _Sent(t, kind, actor)
        self.lines.append(MessageLine(t, kind, actor, recipient, None))
        if kind == "create":
            phone = self.phones.get(actor)
            self.alerts[actor] = AlertState(actor, t, lat=phone.lat if phone else None,
                                            lon=phone.lon if phone else None)
        elif kind == "cancel" and actor in self.alerts:
            self.alerts[actor].status = "canceled"
        elif kind == "status_update" and recipient in self.alerts:
            alert = self.alerts[recipient]
            alert.updates += 1
            if alert.status != "canceled":
                alert.status = "acknowledged" if alert.updates == 1 else "resolved"

    def _received(self, t: float, origin_id: str, receiver: str) -> None:
        sent = self._sent.get(origin_id)
        if sent is None or receiver in sent.seen_by:
            return
        sent.seen_by.add(receiver)
        self.received += 1
        self._receipts.append(t)
        latency = max(0.0, t - sent.t)
        if sent.live:
            direction = "operator_to_phone" if is_operator(sent.sender) else "phone_to_operator"
            self.latency[direction].record(latency)
            if self.worst_latency_s is None or latency > self.worst_latency_s:
                self.worst_latency_s = latency
        self.lines.append(MessageLine(t, sent.kind, sent.sender, receiver, latency))
        if sent.kind == "create":
            alert = self.alerts.get(sent.sender)
            if alert is not None and alert.status == "sent":
                alert.status = "open"
