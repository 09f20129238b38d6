"""The modelled wire: sockets and HTTP between fleet actors and a :class:`BackendModel`, in SimPy.

Every frame is one SimPy timeout whose callback delivers it; nothing polls. An actor's side of the
wire is an :class:`Endpoint`: it says how long a frame takes over its current network (or ``None``
while the network is down) and takes the deliveries.

What a network outage does, as TCP would (the point of the model — a drop must look to the
backend like a real one):

* nothing crosses; frames sent meanwhile wait in the socket buffer (``pending``) and are
  retransmitted on the RTO schedule (0.2 s doubling, capped at 120 s) — so after the network
  returns they arrive at the next retransmission tick, not at once;
* the backend keeps a half-open socket until its own keep-alive notices: Uvicorn pings every
  ``server_ping_s`` and gives up ``server_ping_timeout_s`` later. Frames written to a socket the
  backend has given up on are lost, and the client's next frame is answered with a reset (the
  client sees a close with 1006);
* a connection attempt made while down completes at the next SYN retransmission after the
  network returns (1, 3, 7, 15 s ...), or fails after ``connect_timeout_s``.

The backend serves requests one at a time: ``service_mean_s`` (exponential) per request, queued
behind whatever it is busy with, computed analytically (no events).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np
import simpy

from simulator.transport.backend_model import BackendModel

NORMAL = simpy.events.NORMAL  # the priority of a plain timeout

CONNECTING, OPEN, CLOSED = "connecting", "open", "closed"
RTO_MIN_S = 0.2
RTO_MAX_S = 120.0
SYN_TICKS_S = (1.0, 3.0, 7.0, 15.0, 31.0, 63.0)


class Endpoint(Protocol):
    """An actor's side of the wire."""

    name: str
    user_id: int

    def link_delay(self, size: int, up: bool, now: float) -> float | None:
        """One-way delay for ``size`` bytes, or None while the network is down."""

    def on_connected(self, channel: str, now: float) -> None: ...

    def on_closed(self, channel: str, code: int, now: float) -> None: ...

    def on_frame(self, channel: str, message: dict[str, Any], now: float) -> None: ...

    def on_http(self, request_id: int, status: int, body: dict[str, Any], now: float) -> None: ...

    def on_push(self, now: float) -> None:
        """A high-priority push notification reached the device."""


class Transport(Protocol):
    """What actors need from a wire: the modelled :class:`Wire` and the live one both provide it."""

    def at(self, delay: float, callback: Callable[[], None]) -> None: ...

    def open(self, endpoint: Endpoint, channel: str, path: str, since: int | None) -> None: ...

    def send(self, endpoint: Endpoint, channel: str, message: dict[str, Any]) -> None: ...

    def close(self, endpoint: Endpoint, channel: str) -> None: ...

    def http(self, endpoint: Endpoint, request_id: int, method: str, path: str,
             body: dict[str, Any] | None) -> None: ...

    def network_changed(self, endpoint: Endpoint, up: bool) -> None: ...

    def handover(self, endpoint: Endpoint) -> None: ...


@dataclass(frozen=True)
class WireConfig:
    server_ping_s: float = 20.0  # Uvicorn's ws_ping_interval default
    server_ping_timeout_s: float = 20.0  # Uvicorn's ws_ping_timeout default
    connect_timeout_s: float = 10.0  # websockets' open_timeout default
    http_timeout_s: float = 10.0
    service_mean_s: float = 0.002
    push_latency_s: float = 2.0  # ASSUME: FCM/APNs high-priority delivery takes a few seconds


@dataclass
class Connection:
    id: int
    endpoint: Endpoint
    channel: str
    path: str
    since: int | None
    opened_at: float
    state: str = CONNECTING
    server_open: bool = False
    down_since: float | None = None
    pending_up: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    pending_down: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    dropped_at: float | None = None  # when the backend gave up on it
    orphaned: bool = False  # its address is gone (a handover): nothing of it crosses any more


def rto_tick(first_sent: float, now: float) -> float:
    """The first TCP retransmission of a segment sent at ``first_sent`` at or after ``now``."""
    t, rto = first_sent + RTO_MIN_S, RTO_MIN_S
    while t < now:
        rto = min(rto * 2, RTO_MAX_S)
        t += rto
    return t


def frame_size(message: dict[str, Any]) -> int:
    """A cheap size estimate (JSON text plus WebSocket and TCP/IP framing)."""
    size = 80 + 24 * len(message)
    for value in message.values():
        if isinstance(value, str):
            size += len(value)
    return size


def _fire(event: _Call) -> None:
    event.callback()


_FIRE = (_fire,)  # shared and never mutated: SimPy only reads an event's callbacks, then drops them
_NO_CONNECTIONS: dict[str, Connection] = {}  # read-only: what an endpoint without sockets has


class _Call:
    """A SimPy event that calls one function when processed: what :meth:`Wire.at` schedules.

    A :class:`simpy.Timeout` with a callback appended behaves the same, but builds a callbacks list,
    a closure and a few attributes per frame; this carries just the function. It is scheduled
    through :meth:`simpy.Environment.schedule` exactly as a timeout is (same time, priority and
    event id), so the order of events, and every result, is unchanged.
    """

    __slots__ = ("callback", "callbacks")
    _ok = True  # it never fails (SimPy checks this after the callbacks ran)
    _value = None

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.callbacks: tuple[Callable[[_Call], None], ...] | None = _FIRE


class Wire:
    """Connections between endpoints and one modelled backend."""

    def __init__(self, env: simpy.Environment, backend: BackendModel, rng: np.random.Generator,
                 config: WireConfig | None = None) -> None:
        self.env = env
        self.backend = backend
        self.rng = rng
        self.config = config or WireConfig()
        self._ids = 0
        self.connections: dict[int, Connection] = {}
        self._by_endpoint: dict[str, dict[str, Connection]] = {}
        self._busy_until = 0.0
        self.events = 0
        self._endpoints: dict[int, Endpoint] = {}  # user id -> device, for push notifications
        self._schedule = env.schedule
        self._service_mean_s = self.config.service_mean_s
        self._exponential = rng.exponential

    # -- scheduling ------------------------------------------------------------------------------

    def at(self, delay: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` after ``delay`` model seconds (one SimPy event)."""
        self.events += 1
        self._schedule(_Call(callback), NORMAL, delay if delay > 0.0 else 0.0)  # type: ignore[arg-type]

    def _service(self, arrival: float) -> float:
        """When the backend finishes a request arriving at ``arrival`` (single server, FIFO)."""
        start = max(arrival, self._busy_until)
        self._busy_until = start + self._exponential(self._service_mean_s)
        return self._busy_until

    # -- client operations -----------------------------------------------------------------------

    def open(self, endpoint: Endpoint, channel: str, path: str, since: int | None) -> None:
        now = self.env.now
        self._endpoints[endpoint.user_id] = endpoint
        old = self._by_endpoint.get(endpoint.name, _NO_CONNECTIONS).get(channel)
        if old is not None and old.state != CLOSED:
            self._client_gone(old, now)
        self._ids += 1
        conn = Connection(self._ids, endpoint, channel, path, since, now)
        self.connections[conn.id] = conn
        self._by_endpoint.setdefault(endpoint.name, {})[channel] = conn
        self.at(self.config.connect_timeout_s, lambda: self._connect_timeout(conn))
        rtt = self._rtt(endpoint, now)
        if rtt is None:
            conn.down_since = now
            return
        self.at(rtt, lambda: self._handshake(conn))

    def send(self, endpoint: Endpoint, channel: str, message: dict[str, Any]) -> None:
        conn = self._by_endpoint.get(endpoint.name, _NO_CONNECTIONS).get(channel)
        if conn is None or conn.state != OPEN or conn.orphaned:
            return
        now = self.env.now
        delay = endpoint.link_delay(frame_size(message), True, now)
        if delay is None:
            conn.pending_up.append((now, message))
            return
        self.at(delay, lambda: self._arrive_up(conn, message))

    def close(self, endpoint: Endpoint, channel: str) -> None:
        conn = self._by_endpoint.get(endpoint.name, _NO_CONNECTIONS).get(channel)
        if conn is not None and conn.state != CLOSED:
            self._client_gone(conn, self.env.now)

    def http(self, endpoint: Endpoint, request_id: int, method: str, path: str,
             body: dict[str, Any] | None) -> None:
        now = self.env.now
        rtt = self._rtt(endpoint, now)
        if rtt is None:
            # DNS/TCP fail fast when the OS knows there is no network.
            self.at(0.05, lambda: endpoint.on_http(request_id, 0, {}, self.env.now))
            return
        travel = rtt + (endpoint.link_delay(frame_size(body or {}), True, now) or 0.0)

        def arrive() -> None:
            self.at(self._service(self.env.now) - self.env.now, serve)

        def serve() -> None:
            result = self.backend.http(endpoint.user_id, method, path, body)
            self._dispatch(result.frames)
            self._push(result.pushes)
            back = endpoint.link_delay(frame_size(result.body), False, self.env.now)
            if back is None:
                self.at(self.config.http_timeout_s,
                        lambda: endpoint.on_http(request_id, 0, {}, self.env.now))
                return
            self.at(back, lambda: endpoint.on_http(request_id, result.status, result.body,
                                                   self.env.now))

        self.at(travel, arrive)

    # -- network changes -------------------------------------------------------------------------

    def network_changed(self, endpoint: Endpoint, up: bool) -> None:
        now = self.env.now
        for conn in list(self._by_endpoint.get(endpoint.name, _NO_CONNECTIONS).values()):
            if conn.state == CLOSED or conn.orphaned:
                continue
            if not up:
                if conn.down_since is None:
                    conn.down_since = now
                    if conn.server_open:
                        self.at(self._server_detects_at(conn, now) - now,
                                partial(self._server_check, conn, now))
                continue
            conn.down_since = None
            if conn.state == CONNECTING:
                start = conn.opened_at
                tick = next((start + t for t in SYN_TICKS_S if start + t >= now), None)
                if tick is not None and tick - start <= self.config.connect_timeout_s:
                    self.at(tick - now + (self._rtt(endpoint, now) or 0.0),
                            partial(self._handshake, conn))
                continue
            self._flush(conn, now)

    def handover(self, endpoint: Endpoint) -> None:
        """The device moved to another network (Wi-Fi <-> cellular): its old address is gone.

        Every connection dies at once on the device's side (the OS reports an error on the
        socket), while the backend keeps a half-open socket until its keep-alive gives up: no FIN
        or close frame can come from an address that no longer exists.
        """
        now = self.env.now
        for conn in list(self._by_endpoint.get(endpoint.name, _NO_CONNECTIONS).values()):
            if conn.state == CLOSED:
                continue
            conn.orphaned = True
            conn.pending_up, conn.pending_down = [], []
            if conn.server_open:
                self.at(self._server_detects_at(conn, now) - now, partial(self._orphan_check, conn))
            self.at(0.05, partial(self._closed_by_server, conn, 1006))

    def _orphan_check(self, conn: Connection) -> None:
        if conn.server_open:
            self._server_drop(conn)

    # -- internals -------------------------------------------------------------------------------

    def _rtt(self, endpoint: Endpoint, now: float) -> float | None:
        up = endpoint.link_delay(120, True, now)
        down = endpoint.link_delay(120, False, now)
        if up is None or down is None:
            return None
        return up + down

    def _handshake(self, conn: Connection) -> None:
        if conn.state != CONNECTING:
            return
        now = self.env.now
        if conn.endpoint.link_delay(200, True, now) is None:
            return  # went down again; the timeout or the next restoration decides
        result = self.backend.connect(conn.id, conn.endpoint.user_id, conn.path, conn.since)
        back = conn.endpoint.link_delay(200, False, now) or 0.0
        if result.close is not None:
            conn.state = CLOSED
            self.at(back, lambda: conn.endpoint.on_closed(conn.channel, result.close or 1006,
                                                          self.env.now))
            return
        conn.state = OPEN
        conn.server_open = True
        self.at(back, lambda: self._client_open(conn))
        self._dispatch(result.frames)

    def _client_open(self, conn: Connection) -> None:
        if conn.state == OPEN:
            conn.endpoint.on_connected(conn.channel, self.env.now)

    def _connect_timeout(self, conn: Connection) -> None:
        if conn.state == CONNECTING:
            conn.state = CLOSED
            conn.endpoint.on_closed(conn.channel, 1006, self.env.now)

    def _arrive_up(self, conn: Connection, message: dict[str, Any]) -> None:
        if not conn.server_open:
            self._reset(conn)
            return
        done = self._service(self.env.now)

        def serve() -> None:
            if not conn.server_open:
                return
            result = self.backend.receive(conn.id, message)
            self._dispatch(result.frames)
            self._push(result.pushes)
            if result.close is not None:
                self._server_close(conn, result.close)

        self.at(done - self.env.now, serve)

    def _push(self, users: list[int]) -> None:
        """Deliver push notifications (a few seconds through FCM/APNs; none while offline)."""
        for user in users:
            endpoint = self._endpoints.get(user)
            if endpoint is None:
                continue
            self.at(self.config.push_latency_s, partial(self._pushed, endpoint))

    def _pushed(self, endpoint: Endpoint) -> None:
        now = self.env.now
        if endpoint.link_delay(100, False, now) is not None:  # the device has network
            endpoint.on_push(now)

    def _dispatch(self, frames: list[tuple[int, dict[str, Any]]]) -> None:
        now = self.env.now
        for conn_id, message in frames:
            conn = self.connections.get(conn_id)
            if conn is None or not conn.server_open or conn.orphaned:
                continue  # an orphaned socket: written into the void, lost
            delay = conn.endpoint.link_delay(frame_size(message), False, now)
            if delay is None:
                conn.pending_down.append((now, message))
                continue
            self.at(delay, partial(self._arrive_down, conn, message))

    def _arrive_down(self, conn: Connection, message: dict[str, Any]) -> None:
        if conn.state == OPEN and not conn.orphaned:
            conn.endpoint.on_frame(conn.channel, message, self.env.now)

    def _flush(self, conn: Connection, now: float) -> None:
        """The network is back: retransmit what waited, on the RTO schedule."""
        ups, downs = conn.pending_up, conn.pending_down
        conn.pending_up, conn.pending_down = [], []
        for sent, message in ups:
            self.at(rto_tick(sent, now) - now, partial(self._arrive_up, conn, message))
        if not conn.server_open:
            # The backend gave up on it: what it had written is lost, and its FIN (or reset)
            # reaches the client at the next retransmission tick.
            if conn.state == OPEN:
                dropped = conn.dropped_at if conn.dropped_at is not None else now
                self.at(rto_tick(dropped, now) - now, partial(self._closed_by_server, conn, 1006))
            return
        for sent, message in downs:
            self.at(rto_tick(sent, now) - now, partial(self._arrive_down, conn, message))

    def _server_detects_at(self, conn: Connection, down_since: float) -> float:
        ping = self.config.server_ping_s
        elapsed = down_since - conn.opened_at
        next_ping = conn.opened_at + ping * (int(elapsed // ping) + 1)
        return next_ping + self.config.server_ping_timeout_s

    def _server_check(self, conn: Connection, down_since: float) -> None:
        if conn.down_since == down_since and conn.server_open:
            self._server_drop(conn)

    def _server_drop(self, conn: Connection) -> None:
        conn.dropped_at = self.env.now
        conn.server_open = False
        conn.pending_down = []
        self.backend.disconnect(conn.id)

    def _server_close(self, conn: Connection, code: int) -> None:
        self._server_drop(conn)
        back = conn.endpoint.link_delay(100, False, self.env.now)
        if back is not None:
            self.at(back, lambda: self._closed_by_server(conn, code))

    def _closed_by_server(self, conn: Connection, code: int) -> None:
        if conn.state != CLOSED:
            conn.state = CLOSED
            conn.endpoint.on_closed(conn.channel, code, self.env.now)

    def _reset(self, conn: Connection) -> None:
        """A frame reached a socket the backend had dropped: the client gets a reset."""
        back = conn.endpoint.link_delay(60, False, self.env.now)
        self.at(back or 0.0, lambda: self._closed_by_server(conn, 1006))

    def _client_gone(self, conn: Connection, now: float) -> None:
        conn.state = CLOSED
        conn.pending_up = []
        if not conn.server_open or conn.orphaned:
            return
        delay = conn.endpoint.link_delay(60, True, now)
        if delay is None:
            return  # the close frame cannot get through: the backend keeps a half-open socket
        self.at(delay, lambda: self._server_drop(conn) if conn.server_open else None)
