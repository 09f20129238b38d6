"""The live wire: the phone model's wire over real WebSockets and HTTP, to a real Beacon backend.

:class:`LiveWire` has the interface of the modelled :class:`~simulator.transport.modelled.Wire`
(``at``, ``open``, ``send``, ``close``, ``http``, ``network_changed``, ``events``), so the phone
model runs unchanged on a :class:`~simulator.clock.WallClock` in ``beacon-fleet run``.

WebSockets are ``websockets``' sans-I/O :class:`~websockets.client.ClientProtocol` driven over a
raw asyncio connection this module owns, with the device's link emulator
(:mod:`simulator.transport.link`) between the protocol and the socket. Every byte, either way,
waits for the phone's modelled one-way delay; while the link is a blackhole nothing moves (no
close frame, no pong: the backend sees a half-open connection until its keep-alive pings give
up). What happens to a socket the backend gave up on during a blackhole follows the modelled
wire: what the backend wrote to it is lost, and the phone's next bytes meet a reset, which the
phone hears as a close with 1006.

Socket events enter the model only through :meth:`WallClock.inject`, so each is dated at the model
time its bytes arrived. The fleet never crashes on a misbehaving backend: refused handshakes,
unexpected close codes, 5xx answers, timeouts, garbage frames, and errors in the callbacks they
trigger are counted per cause in :attr:`LiveWire.problems` (for the report) and logged.

Pushes come from :class:`~simulator.transport.push.PushGateway`, the fleet playing the push service
beside the backend. HTTP is not queued behind a blackhole: as on the modelled wire, a request made
while the link is down fails fast with status 0, and one whose request or answer the blackhole
swallows is heard as status 0 when the HTTP timeout expires.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, cast
from urllib.parse import quote

import httpx
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Origin
from websockets.uri import parse_uri

from simulator.clock import WallClock
from simulator.transport.link import DelayLine, Link
from simulator.transport.modelled import SYN_TICKS_S, Endpoint
from simulator.transport.push import PushGateway

log = logging.getLogger(__name__)

CONNECTING, OPEN, CLOSED = "connecting", "open", "closed"
#: Close codes that say the backend failed, not that it refused or the client left.
FAULT_CODES = frozenset({1002, 1003, 1007, 1009, 1010, 1011, 1012, 1013, 1014})
#: Uvicorn's reason for closing a socket whose pong never came: our own blackhole, not a fault.
KEEPALIVE_REASON = "keepalive ping timeout"
HTTP_OVERHEAD = 200  # request line and headers, charged to the link with the body


@dataclass(frozen=True)
class LiveConfig:
    """Timeouts of the live wire, in model seconds (as the modelled wire's; at ``--speed`` X each
    takes 1/X as long on the wall clock)."""

    connect_timeout_s: float = 10.0  # websockets' open_timeout default
    http_timeout_s: float = 10.0
    close_timeout_s: float = 5.0  # wait for the backend to finish a closing handshake
    offline_http_s: float = 0.05  # DNS/TCP fail fast when the OS knows it is offline
    max_frame_bytes: int = 2**20
    push_latency_s: float = 2.0  # the profile's [wire] push_latency_s


class Socket(asyncio.Protocol):
    """One WebSocket of one phone: the sans-I/O protocol, its two delay lines, the TCP transport."""

    def __init__(self, wire: LiveWire, endpoint: Endpoint, link: Link, channel: str,
                 url: str) -> None:
        self.wire, self.endpoint, self.link, self.channel = wire, endpoint, link, channel
        self.state = CONNECTING
        self.opened_at = link.now()
        self.client_closed = False  # the phone closed it (or opened a new one): no more callbacks
        self.reported = False  # on_closed was delivered
        self.peer_gone = False  # the real TCP connection ended
        self.disposed = False
        self.abandoned = False  # closed by the phone while blackholed: left for the backend to drop
        self.transport: asyncio.Transport | None = None
        self.uri = parse_uri(url)
        origin = Origin(wire.origin) if wire.origin else None
        self.protocol = ClientProtocol(self.uri, origin=origin, max_size=wire.config.max_frame_bytes)
        self.up = DelayLine(link, True, self._write)
        self.down = DelayLine(link, False, self._receive)
        self._eof_queued = False
        self._fragments: list[bytes] | None = None
        self._binary = False
        self._task: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._timers = [loop.call_later(link.wall(wire.config.connect_timeout_s),
                                       self._connect_timeout)]

    # -- dialing ---------------------------------------------------------------------------------

    def begin(self) -> None:
        """Dial after a SYN round trip, or, while blackholed, at the first SYN retry after restore."""
        rtt = self.link.rtt()
        if rtt is None:
            self.link.restored.append(self._link_back)
            return
        self._later(self.link.wall(rtt), self._dial)

    def _link_back(self) -> None:
        if self.state != CONNECTING or self.client_closed or self._task is not None:
            return
        now = self.link.now()
        tick = next((self.opened_at + t for t in SYN_TICKS_S if self.opened_at + t >= now), None)
        rtt = self.link.rtt()
        if rtt is None:
            self.link.restored.append(self._link_back)
        elif tick is not None:
            self._later(self.link.wall(tick - now + rtt), self._dial)

    def _dial(self) -> None:
        if self.state != CONNECTING or self.client_closed or self._task is not None:
            return
        if self.link.blackholed:  # down again: the SYN is lost; retry after the next restore
            self.link.restored.append(self._link_back)
            return
        self._task = asyncio.get_running_loop().create_task(self._connect())
        self.wire.tasks.add(self._task)
        self._task.add_done_callback(self.wire.tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: self, self.uri.host, self.uri.port,
                                         ssl=True if self.uri.secure else None)
        except ConnectionRefusedError:
            self._fail("connection refused")
        except OSError as error:
            self._fail(f"connect error: {error.strerror or type(error).__name__}")

    def _connect_timeout(self) -> None:
        if self.state != CONNECTING or self.reported or self.client_closed:
            return
        # The backend's fault only if it holds the handshake: not while the phone is in a tunnel,
        # nor while the emulated network still holds the phone's bytes or the backend's answer (a
        # lossy link's retransmissions can outlast the timeout, as they can in simulate).
        if not self.link.blackholed and self._task is not None and not self.up and not self.down:
            self.wire.problem("timeout")
        self._report(1006)
        self.dispose()

    def _fail(self, cause: str) -> None:
        if not self.client_closed and not self.reported:
            self.wire.problem(cause)
        self._report(1006)
        self.dispose()

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        if self.client_closed or self.disposed:
            self.transport.abort()
            return
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if not self.disposed and not self.abandoned:
            self.down.push(bytes(data))

    def eof_received(self) -> bool | None:
        self._peer_ended()
        return None  # let asyncio close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._peer_ended()

    def _peer_ended(self) -> None:
        if self.peer_gone or self.disposed:
            return
        self.peer_gone = True
        if self.client_closed:
            self.dispose(graceful=True)
        elif self.link.blackholed:
            self.down.clear()  # the backend gave up on a half-open socket: what it wrote is lost
        else:
            self._queue_eof()

    def _queue_eof(self) -> None:
        if not self._eof_queued:
            self._eof_queued = True
            self.down.push(None)

    # -- the delay lines' outputs ----------------------------------------------------------------

    def _write(self, payload: bytes | None) -> None:
        """A chunk reaches the backend (or the end of our stream does)."""
        transport = self.transport
        if self.peer_gone or transport is None or transport.is_closing():
            if payload is not None and not self.disposed:
                self._queue_eof()  # a reset: comes back over the link like any segment
            return
        if payload is None:
            transport.close()
        else:
            transport.write(payload)

    def _receive(self, payload: bytes | None) -> None:
        """A chunk from the backend reaches the phone: feed it to the protocol, act on events."""
        protocol = self.protocol
        try:
            if payload is None:
                protocol.receive_eof()
            elif protocol.state is not State.CLOSED:
                protocol.receive_data(payload)
            for event in protocol.events_received():
                if isinstance(event, Response):
                    self._handshake(event)
                elif isinstance(event, Frame):
                    self._frame(event)
            if self.state == CONNECTING and protocol.handshake_exc is not None and not self.reported:
                self.wire.problem("handshake invalid")
                self._report(1006)
            self._flush()
        except Exception as error:  # a backend that breaks the protocol must not break the fleet
            log.exception("%s %s: bad input from the backend", self.endpoint.name, self.channel)
            self.wire.problem(f"protocol error: {type(error).__name__}")
            self._report(1006)
            self.dispose()
            return
        if protocol.state is State.CLOSED:
            self._report(protocol.close_code or 1006)
            self.dispose(graceful=True)

    def _handshake(self, response: Response) -> None:
        if self.client_closed or self.reported:
            return
        if self.protocol.handshake_exc is None and response.status_code == 101:
            self.state = OPEN
            self._timers[0].cancel()  # the connect timeout
            endpoint, channel = self.endpoint, self.channel
            self.wire.inject(lambda now: endpoint.on_connected(channel, now))
            return
        status = response.status_code
        self.wire.problem(f"handshake {status}")
        self._report(status if status != 101 else 1006)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.CLOSE:
            received = self.protocol.close_rcvd
            code = received.code if received is not None else 1005
            if code in FAULT_CODES and (received is None or received.reason != KEEPALIVE_REASON):
                self.wire.problem(f"close {code}")
            self._report(code)
            self._later(self.link.wall(self.wire.config.close_timeout_s), self.dispose)
            return
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self._fragments, self._binary = [bytes(frame.data)], opcode is Opcode.BINARY
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(bytes(frame.data))
        else:
            return  # ping / pong: the protocol answered pings itself
        if not frame.fin or self._fragments is None:
            return
        data, self._fragments = b"".join(self._fragments), None
        if self._binary:
            self.wire.problem("binary frame")
            return
        try:
            message = json.loads(data)
        except ValueError:
            self.wire.problem("non-json frame")
            return
        if not isinstance(message, dict):
            self.wire.problem("non-object frame")
            return
        if self.state == OPEN and not self.reported and not self.client_closed:
            self.wire.push.saw(message)
            endpoint, channel = self.endpoint, self.channel
            self.wire.inject(lambda now: endpoint.on_frame(channel, message, now))

    # -- the phone's side ------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        if self.state != OPEN or self.reported or self.client_closed:
            return
        if self.protocol.state is not State.OPEN:
            return  # closing: the close will be reported
        self.protocol.send_text(json.dumps(message, separators=(",", ":")).encode())
        self._flush()

    def close_by_client(self) -> None:
        """The phone closes the socket; no callback follows."""
        if self.client_closed:
            return
        self.client_closed = True
        self._timers[0].cancel()
        if self.state != OPEN or self.transport is None or self.peer_gone or self.reported:
            self.dispose()
        elif self.link.blackholed:
            # The close frame cannot get out: the backend keeps a half-open socket until its
            # keep-alive gives up. We read nothing (no pong) and let go when it hangs up.
            self.abandoned = True
            self.up.clear()
            self.down.clear()
        else:
            self.protocol.send_close(1000)
            self._flush()
            self._later(self.link.wall(self.wire.config.close_timeout_s), self.dispose)

    # -- helpers ---------------------------------------------------------------------------------

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            self.up.push(data if data else None)

    def _report(self, code: int) -> None:
        self._timers[0].cancel()
        if self.reported or self.client_closed:
            return
        self.reported = True
        self.state = CLOSED
        self.wire.forget(self)
        endpoint, channel = self.endpoint, self.channel
        self.wire.inject(lambda now: endpoint.on_closed(channel, code, now))

    def _later(self, wall_seconds: float, callback: Callable[[], None]) -> None:
        if not self.disposed:
            self._timers.append(asyncio.get_running_loop().call_later(wall_seconds, callback))

    def dispose(self, graceful: bool = False) -> None:
        """Release everything: timers, delay lines, the TCP connection."""
        if self.disposed:
            return
        self.disposed = True
        self.state = CLOSED
        for timer in self._timers:
            timer.cancel()
        self.up.close()
        self.down.close()
        transport, self.transport = self.transport, None
        if transport is not None:
            if graceful:
                transport.close()
            else:
                transport.abort()
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        self.wire.forget(self)
        self.wire.sockets.discard(self)


class LiveWire:
    """The phone model's wire over real sockets, each device behind its own link emulator.

    Args:
        clock: The wall clock the model runs on (speed scales every emulated delay).
        base_url: The backend, e.g. ``http://127.0.0.1:8000/`` (WebSockets use ws:// or wss://).
        tokens: User id -> access token (looked up at each connect and request, so it may be
            refreshed in place).
        origin: The ``Origin`` header for WebSocket handshakes (servers that check it).
        config: Timeouts.

    Attributes:
        events: Model events scheduled through the wire (``at`` and socket events).
        problems: How the backend misbehaved, per cause (``"handshake 403"``, ``"close 1011"``,
            ``"http 500"``, ``"timeout"``, ``"connection refused"``, ...).
    """

    def __init__(self, clock: WallClock, base_url: str, tokens: Mapping[int, str],
                 origin: str | None = None, config: LiveConfig | None = None) -> None:
        self.clock = clock
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        scheme, rest = self.base_url.split("://", 1)
        self.ws_base = ("wss" if scheme == "https" else "ws") + "://" + rest
        self.tokens = tokens
        self.origin = origin
        self.config = config or LiveConfig()
        self.events = 0
        self.problems: Counter[str] = Counter()
        self.links: dict[str, Link] = {}
        self.open_sockets: dict[tuple[str, str], Socket] = {}
        self.sockets: set[Socket] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient(trust_env=False,
                                         timeout=self.config.http_timeout_s / clock.speed)
        self.push = PushGateway(self.config.push_latency_s, self.at, self._listening,
                                lambda: float(self.clock.now))

    # -- scheduling ------------------------------------------------------------------------------

    def at(self, delay: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` after ``delay`` model seconds (one SimPy event on the wall clock)."""
        self.events += 1
        event = self.clock.timeout(delay if delay > 0.0 else 0.0)
        assert event.callbacks is not None
        event.callbacks.append(lambda _event: callback())

    def inject(self, call: Callable[[float], None]) -> None:
        """Bring a socket event into the model at the mapped time; ``call(now)`` runs there."""
        self.events += 1
        self.clock.inject(lambda _event: self._safely(call))

    def _safely(self, call: Callable[[float], None]) -> None:
        try:
            call(float(self.clock.now))
        except Exception as error:  # what the backend sent broke the model: count, go on
            log.exception("a callback on backend input failed")
            self.problem(f"callback error: {type(error).__name__}")

    def problem(self, cause: str) -> None:
        """Count one backend misbehaviour."""
        self.problems[cause] += 1

    # -- client operations -----------------------------------------------------------------------

    def open(self, endpoint: Endpoint, channel: str, path: str, since: int | None) -> None:
        link = self._link(endpoint)
        old = self.open_sockets.pop((endpoint.name, channel), None)
        if old is not None:
            old.close_by_client()
        query = []
        token = self.tokens.get(endpoint.user_id)
        if token is not None:
            query.append("token=" + quote(token, safe=""))
        if since is not None:
            query.append(f"since={int(since)}")
        url = self.ws_base + path.lstrip("/") + ("?" + "&".join(query) if query else "")
        sock = Socket(self, endpoint, link, channel, url)
        self.push.subscribed(endpoint, channel)
        self.open_sockets[(endpoint.name, channel)] = sock
        self.sockets.add(sock)
        sock.begin()

    def send(self, endpoint: Endpoint, channel: str, message: dict[str, Any]) -> None:
        sock = self.open_sockets.get((endpoint.name, channel))
        if sock is not None:
            sock.send(message)
            self.push.sending(endpoint, channel, message)

    def _listening(self, endpoint: Endpoint, channel: str) -> bool:
        sock = self.open_sockets.get((endpoint.name, channel))
        return sock is not None and sock.state == OPEN

    def close(self, endpoint: Endpoint, channel: str) -> None:
        sock = self.open_sockets.pop((endpoint.name, channel), None)
        if sock is not None:
            sock.close_by_client()

    def http(self, endpoint: Endpoint, request_id: int, method: str, path: str,
             body: dict[str, Any] | None) -> None:
        link = self._link(endpoint)
        rtt = link.rtt()
        if rtt is None:
            self.at(self.config.offline_http_s,
                    lambda: endpoint.on_http(request_id, 0, {}, float(self.clock.now)))
            return
        size = HTTP_OVERHEAD + (len(json.dumps(body)) if body else 0)
        travel = rtt + (link.delay(size, True) or 0.0)
        task = asyncio.get_running_loop().create_task(
            self._exchange(endpoint, link, request_id, method, path, body, travel))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- network changes -------------------------------------------------------------------------

    def handover(self, endpoint: Endpoint) -> None:
        """The device moved to another network (Wi-Fi <-> cellular): its old address is gone.

        As on the modelled wire: the device's sockets die at once on its side (the phone hears
        1006 after 50 ms), while the backend keeps a half-open socket until its keep-alive gives
        up: the socket sends nothing more and reads nothing (no pong), and is released when the
        backend hangs up.
        """
        for sock in [s for s in self.sockets if s.endpoint is endpoint]:
            if sock.client_closed or sock.reported or sock.disposed:
                continue
            sock.abandoned = True
            sock.state = CLOSED  # the phone's sends go nowhere
            sock.up.clear()
            sock.down.clear()
            self.forget(sock)
            self.at(0.05, partial(self._orphaned, sock))

    def _orphaned(self, sock: Socket) -> None:
        sock._report(1006)
        sock.client_closed = True
        if sock.transport is None or sock.peer_gone:
            sock.dispose()

    def network_changed(self, endpoint: Endpoint, up: bool) -> None:
        link = self._link(endpoint)
        if up:
            link.restore()
        else:
            link.hold()

    # -- shutdown --------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every socket and request at once (no closing handshakes) and the HTTP client."""
        for sock in list(self.sockets):
            sock.dispose()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in self.links.values():
            for line in list(link.lines):
                line.close()
        await self._client.aclose()

    # -- internals -------------------------------------------------------------------------------

    def _link(self, endpoint: Endpoint) -> Link:
        link = self.links.get(endpoint.name)
        if link is None:
            link = self.links[endpoint.name] = Link(self.clock, endpoint)
        return link

    def forget(self, sock: Socket) -> None:
        key = (sock.endpoint.name, sock.channel)
        if self.open_sockets.get(key) is sock:
            del self.open_sockets[key]

    async def _exchange(self, endpoint: Endpoint, link: Link, request_id: int, method: str,
                        path: str, body: dict[str, Any] | None, travel: float) -> None:
        def answer(status: int, data: dict[str, Any]) -> None:
            self.inject(lambda now: endpoint.on_http(request_id, status, data, now))

        async def lost() -> None:
            # As on the modelled wire: an exchange the network swallowed is heard as status 0 when
            # the phone's HTTP client times out, not at once.
            await asyncio.sleep(link.wall(self.config.http_timeout_s))
            answer(0, {})

        try:
            await asyncio.sleep(link.wall(travel))
            if link.blackholed:
                await lost()  # the request never got out
                return
            token = self.tokens.get(endpoint.user_id)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            try:
                response = await self._client.request(method, self.base_url + path.lstrip("/"),
                                                       json=body, headers=headers)
            except httpx.TimeoutException:
                self.problem("timeout")
                answer(0, {})
                return
            except httpx.ConnectError as error:
                self.problem("connection refused" if "refused" in str(error).lower()
                             else "http connect error")
                answer(0, {})
                return
            except httpx.HTTPError as error:
                self.problem(f"http error: {type(error).__name__}")
                answer(0, {})
                return
            status = response.status_code
            if status >= 500:
                self.problem(f"http {status}")
            try:
                data = response.json() if response.content else {}
            except ValueError:
                data = None
            if not isinstance(data, dict):
                if status < 500:
                    self.problem("http non-json")
                data = {}
            back = link.delay(HTTP_OVERHEAD + len(response.content), False)
            if back is None:
                await lost()  # the answer met a blackhole on its way back
                return
            await asyncio.sleep(link.wall(back))
            answer(status, data)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("%s: HTTP %s %s failed", endpoint.name, method, path)
            self.problem(f"http error: {type(error).__name__}")
