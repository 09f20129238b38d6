"""The live wire against a real ``backend serve`` on loopback, through the link emulator.

The backend pings every second and drops a socket whose pong is a second late, so a half-open
connection dies within about two seconds. The endpoint is a fake with fixed one-way delays
(``UP`` = ``DOWN`` = 0.1 s) and a ``down`` flag; it records every callback with the model time it
was dated at. The clock runs at speed 1, so model seconds are wall seconds.

Timing tolerance: nothing may arrive *before* its emulated delay (``EARLY_S`` allows for the
loop's timer resolution); the upper bounds are loose (``LATE_S``) because they check the emulator
adds the delay once, not how fast the host is.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from simulator.clock import WallClock
from simulator.transport.link import DelayLine, Link
from simulator.transport.live import LiveConfig, LiveWire
from tests.backend.fixtures import LiveBackend, start_backend

pytestmark = pytest.mark.live

UP = DOWN = 0.1
RTT = UP + DOWN
EARLY_S = 0.005
LATE_S = 0.5


class Endpoint:
    """A fake actor: fixed delays while up, ``None`` while down, and a log of what reached it."""

    def __init__(self, name: str, user_id: int) -> None:
        self.name, self.user_id = name, user_id
        self.down = False
        self.log: list[tuple[float, str, Any, Any]] = []

    def link_delay(self, size: int, up: bool, now: float) -> float | None:
        assert size > 0
        return None if self.down else (UP if up else DOWN)

    def on_connected(self, channel: str, now: float) -> None:
        self.log.append((now, "connected", channel, None))

    def on_closed(self, channel: str, code: int, now: float) -> None:
        self.log.append((now, "closed", channel, code))

    def on_frame(self, channel: str, message: dict[str, Any], now: float) -> None:
        self.log.append((now, "frame", channel, message))

    def on_http(self, request_id: int, status: int, body: dict[str, Any], now: float) -> None:
        self.log.append((now, "http", request_id, (status, body)))

    def on_push(self, now: float) -> None:
        self.log.append((now, "push", None, None))

    def times(self, kind: str, what: Any = None) -> list[float]:
        return [t for t, k, w, _ in self.log if k == kind and (what is None or w == what)]

    def frames(self, channel: str, kind: str | None = None) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, k, w, m in self.log
                if k == "frame" and w == channel and (kind is None or m["type"] == kind)]

    def closes(self, channel: str) -> list[tuple[float, int]]:
        return [(t, code) for t, k, w, code in self.log if k == "closed" and w == channel]


@dataclass
class Deployment:
    backend: LiveBackend
    phone: int
    other: int
    operator: int
    tokens: dict[int, str]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    data = Path(tmp_path_factory.mktemp("live-wire")) / "data"
    backend = start_backend(data, "--ws-ping-interval", "1", "--ws-ping-timeout", "1")
    try:
        creds = backend.provision(phones=2, operators=1)
        users = [*creds["phones"], *creds["operators"]]
        tokens = {int(entry["id"]): backend.login(entry) for entry in users}
        yield Deployment(backend, int(creds["phones"][0]["id"]), int(creds["phones"][1]["id"]),
                         int(creds["operators"][0]["id"]), tokens)
    finally:
        backend.stop()


@dataclass
class World:
    clock: WallClock
    wire: LiveWire
    phone: Endpoint
    operator: Endpoint
    deployment: Deployment

    def at(self, when: float, action: Callable[[], None]) -> None:
        """Do ``action`` inside the model at model time ``when``."""
        self.clock.timeout(when - self.clock.now).callbacks.append(lambda _event: action())

    def network(self, endpoint: Endpoint, up: bool, when: float) -> None:
        def change() -> None:
            endpoint.down = not up
            self.wire.network_changed(endpoint, up)

        self.at(when, change)

    async def run(self, until: float) -> None:
        await asyncio.wait_for(self.clock.run(until=until), timeout=until - self.clock.now + 10)

    async def create_alert(self) -> str:
        token = self.deployment.tokens[self.deployment.phone]
        async with httpx.AsyncClient(base_url=self.deployment.backend.url, trust_env=False) as client:
            response = await client.post("api/auth/panic/create/",
                                         headers={"Authorization": f"Bearer {token}"},
                                         json={"latitude": 52.52, "longitude": 13.405, "accuracy": 8.0})
        assert response.status_code == 201, response.text
        return str(response.json()["alert_id"])


@pytest.fixture
async def world(deployment: Deployment) -> AsyncIterator[World]:
    clock = WallClock()
    wire = LiveWire(clock, deployment.backend.url, deployment.tokens)
    phone = Endpoint("phone-0", deployment.phone)
    operator = Endpoint("operator-0", deployment.operator)
    try:
        yield World(clock, wire, phone, operator, deployment)
    finally:
        await wire.aclose()


async def test_connect_snapshot_then_ping_pong_with_the_emulated_delays(world: World) -> None:
    wire, phone, operator = world.wire, world.phone, world.operator
    world.at(0.0, lambda: wire.open(operator, "console", "/ws/alerts/", None))
    world.at(0.0, lambda: wire.open(phone, "user", f"/ws/user/{phone.user_id}/", None))
    await world.run(1.5)
    # a SYN round trip, then the upgrade request up and the 101 down
    [connected] = phone.times("connected", "user")
    assert 2 * RTT - EARLY_S <= connected <= 2 * RTT + LATE_S
    assert operator.times("connected", "console")
    [(_, snapshot)] = operator.frames("console")
    assert snapshot["type"] == "active_alerts" and snapshot["count"] == len(snapshot["alerts"])
    world.at(1.6, lambda: wire.send(phone, "user", {"type": "ping", "timestamp": 1}))
    await world.run(3.0)
    [(pong_at, pong)] = phone.frames("user", "pong")
    assert pong["timestamp"] == 1
    assert 1.6 + 2 * DOWN - EARLY_S <= pong_at <= 1.6 + RTT + LATE_S
    assert phone.closes("user") == [] and not wire.problems
    assert wire.events > 0


async def test_another_users_channel_is_refused_with_4003(world: World) -> None:
    wire, phone = world.wire, world.phone
    world.at(0.0, lambda: wire.open(phone, "user", f"/ws/user/{world.deployment.other}/", None))
    await world.run(1.5)
    assert [code for _, code in phone.closes("user")] == [4003]
    assert not wire.problems  # a refusal is the protocol, not a fault
    assert not wire.open_sockets


async def test_a_short_blackhole_is_survived_and_withheld_frames_arrive_in_order(world: World) -> None:
    wire, phone, operator = world.wire, world.phone, world.operator
    alert = await world.create_alert()
    path = f"/ws/chat/{alert}/"
    world.at(0.0, lambda: wire.open(phone, "chat", path, None))
    world.at(0.0, lambda: wire.open(operator, "chat", path, None))
    await world.run(1.0)
    assert phone.times("connected", "chat") and operator.times("connected", "chat")
    # a blackhole well under the server's ping interval + timeout (1 s + 1 s)
    world.network(phone, False, 1.0)
    for i, t in enumerate((1.05, 1.1, 1.15)):
        world.at(t, lambda i=i: wire.send(operator, "chat", {"type": "chat_message", "message": f"m{i}"}))
    world.network(phone, True, 1.35)
    world.at(2.2, lambda: wire.send(phone, "chat", {"type": "chat_message", "message": "back"}))
    await world.run(3.5)
    got = phone.frames("chat", "chat_message")
    from_operator = [(t, m["message"]) for t, m in got if m["message"].startswith("m")]
    assert [text for _, text in from_operator] == ["m0", "m1", "m2"]
    assert all(t >= 1.35 + DOWN - EARLY_S for t, _ in from_operator)  # withheld until restored
    assert phone.closes("chat") == []
    echoes = [m["message"] for _, m in operator.frames("chat", "chat_message")]
    assert "back" in echoes  # the socket survived both ways
    assert not wire.problems


async def test_a_long_blackhole_leaves_a_half_open_socket_the_server_drops(world: World) -> None:
    wire, phone, operator = world.wire, world.phone, world.operator
    world.at(0.0, lambda: wire.open(phone, "user", f"/ws/user/{phone.user_id}/", None))
    world.at(0.0, lambda: wire.open(operator, "console", "/ws/alerts/", None))
    await world.run(1.0)
    assert phone.times("connected", "user")
    world.network(phone, False, 1.0)
    sock = wire.open_sockets[(phone.name, "user")]
    half_open: list[tuple[float, bool]] = []
    for t in (1.5, 4.4):  # the real TCP connection: still up at first, then dropped by the server
        world.at(t, lambda t=t: half_open.append((t, sock.peer_gone)))
    world.network(phone, True, 4.5)  # longer than the server's ping interval + timeout
    world.at(4.7, lambda: wire.send(phone, "user", {"type": "ping", "timestamp": 2}))
    await world.run(6.0)
    assert [t for t, _ in phone.frames("user") if 1.0 < t < 4.5] == []  # nothing crossed
    assert phone.frames("user", "pong") == []
    assert half_open == [(1.5, False), (4.4, True)]
    [(closed_at, code)] = phone.closes("user")
    assert code == 1006  # the send met a reset: no close frame ever reached the phone
    assert 4.7 + RTT - EARLY_S <= closed_at <= 4.7 + RTT + LATE_S
    assert operator.closes("console") == []
    assert not wire.problems  # the keep-alive close is our blackhole, not a backend fault


async def test_http_create_is_delayed_both_ways_and_reaches_the_operator(world: World) -> None:
    wire, phone, operator = world.wire, world.phone, world.operator
    world.at(0.0, lambda: wire.open(operator, "console", "/ws/alerts/", None))
    body = {"latitude": 52.5201, "longitude": 13.4049, "accuracy": 8.0}
    world.at(1.0, lambda: wire.http(phone, 7, "POST", "/api/auth/panic/create/", body))
    await world.run(2.5)
    [(answered, _, request_id, (status, reply))] = [e for e in phone.log if e[1] == "http"]
    assert request_id == 7 and status == 201 and reply["success"] is True
    # a SYN round trip, the request up, the answer down
    assert 1.0 + RTT + UP + DOWN - EARLY_S <= answered <= 1.0 + RTT + UP + DOWN + LATE_S
    new = operator.frames("console", "new_alert")
    assert [m["alert"]["id"] for _, m in new] == [reply["alert_id"]]
    assert new[0][0] >= 1.0 + RTT + UP + DOWN - EARLY_S
    assert not wire.problems


async def test_operator_writes_to_a_phone_not_listening_push_it(world: World) -> None:
    """As the modelled backend: a write to the owner's user stream with nobody listening there
    wakes the phone with a push ``push_latency_s`` (2 s) later, if it has network then."""
    wire, phone, operator = world.wire, world.phone, world.operator
    user_path = f"/ws/user/{world.deployment.phone}/"
    body = {"latitude": 52.5201, "longitude": 13.4049, "accuracy": 8.0}

    def alert_id() -> str:
        [(_, _, _, (status, reply))] = [e for e in phone.log if e[1] == "http"]
        assert status == 201
        return str(reply["alert_id"])

    def operator_sends(channel: Callable[[], str],
                       message: Callable[[], dict[str, Any]]) -> Callable[[], None]:
        return lambda: wire.send(operator, channel(), message())

    def chat() -> str:
        return f"chat:{alert_id()}"

    world.at(0.0, lambda: wire.open(operator, "console", "/ws/alerts/", None))
    world.at(0.0, lambda: wire.open(phone, "user", user_path, None))
    world.at(0.5, lambda: wire.http(phone, 1, "POST", "/api/auth/panic/create/", body))
    world.at(2.0, lambda: wire.open(operator, chat(), f"/ws/chat/{alert_id()}/", 0))
    # listening: no push
    world.at(3.0, operator_sends(chat, lambda: {"type": "chat_message", "message": "heard"}))
    world.at(3.5, lambda: wire.close(phone, "user"))
    # not listening: the chat line and the acknowledgement each push, 2 s later
    world.at(4.0, operator_sends(chat, lambda: {"type": "chat_message", "message": "on our way"}))
    world.at(5.0, operator_sends(lambda: "console",
                                 lambda: {"type": "acknowledge_alert", "alert_id": alert_id()}))
    # not listening, but the phone has no network when the push comes: lost
    world.at(6.5, operator_sends(chat, lambda: {"type": "chat_message", "message": "still there?"}))
    world.network(phone, False, 8.0)
    world.network(phone, True, 9.0)
    # listening again: no push
    world.at(9.5, lambda: wire.open(phone, "user", user_path, None))
    world.at(11.0, operator_sends(chat, lambda: {"type": "chat_message", "message": "see you"}))
    await world.run(14.0)
    assert phone.times("push") == [6.0, 7.0]
    assert wire.push.sent == 3
    assert [m["message"]["message"] for _, m in phone.frames("user", "operator_message")] == [
        "heard", "see you"]
    assert not wire.problems


async def test_http_while_blackholed_answers_status_0(world: World) -> None:
    wire, phone = world.wire, world.phone
    world.network(phone, False, 0.0)
    world.at(0.1, lambda: wire.http(phone, 1, "GET", "/api/auth/alerts/", None))
    world.network(phone, True, 0.5)
    world.at(0.6, lambda: wire.http(phone, 2, "GET", "/api/auth/alerts/", None))
    await world.run(1.5)
    answers = {rid: (t, status) for t, kind, rid, (status, _) in phone.log if kind == "http"}
    assert answers[1][1] == 0 and answers[1][0] < 0.5
    assert answers[2][1] == 200
    assert not wire.problems


async def test_a_delay_line_keeps_order_whatever_the_delays() -> None:
    clock = WallClock()
    delays = iter([0.3, 0.05, 0.2, 0.01])

    class Shrinking:
        name = "phone-9"

        def link_delay(self, size: int, up: bool, now: float) -> float | None:
            return next(delays)

    link = Link(clock, Shrinking())
    loop = asyncio.get_running_loop()
    got: list[tuple[bytes | None, float]] = []
    line = DelayLine(link, True, lambda payload: got.append((payload, loop.time())))
    start = loop.time()
    for payload in (b"a", b"b", b"c", None):
        line.push(payload)
    await asyncio.wait_for(clock.run(until=0.6), timeout=10)
    assert [payload for payload, _ in got] == [b"a", b"b", b"c", None]
    assert got[0][1] - start >= 0.3 - EARLY_S  # the later chunks waited behind the first
    assert all(later >= earlier for (_, earlier), (_, later) in itertools.pairwise(got))
    line.close()


async def test_a_chunk_due_before_the_outage_gets_through_even_when_the_loop_runs_late() -> None:
    """The loop stalls past both a chunk's arrival (model 0.10) and the outage (0.12): the chunk
    was due first, so it arrives; one due after the outage began (0.15) is held by it."""
    clock = WallClock()

    class Steady:
        name = "phone-9"
        down = False

        def link_delay(self, size: int, up: bool, now: float) -> float | None:
            return None if self.down else (0.1 if size == 1 else 0.15)

    device = Steady()
    link = Link(clock, device)
    got: list[bytes | None] = []
    line = DelayLine(link, True, got.append)

    def outage() -> None:
        device.down = True
        link.hold()

    def stall() -> None:
        time.sleep(0.3)  # the loop is blocked: every timer above comes due at once

    clock.timeout(0.0).callbacks.append(lambda _event: (line.push(b"a"), line.push(b"bb")))
    clock.timeout(0.05).callbacks.append(lambda _event: stall())
    clock.timeout(0.12).callbacks.append(lambda _event: outage())
    await asyncio.wait_for(clock.run(until=0.6), timeout=10)
    assert got == [b"a"]
    assert len(line) == 1 and line.queue[0].release is None
    line.close()


# -- misbehaving backends ----------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def http_server(status: int | None) -> AsyncIterator[str]:
    """A tiny server answering every request with ``status`` (None: never answers)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if status is None:
                await reader.read()  # wait for the client to give up
            else:
                body = b'{"detail": "no"}'
                writer.write(f"HTTP/1.1 {status} No\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()


async def handshake_outcome(base_url: str, config: LiveConfig | None = None,
                            until: float = 1.5) -> tuple[list[tuple[float, int]], LiveWire]:
    clock = WallClock()
    wire = LiveWire(clock, base_url, {1: "token"}, origin="https://beacon.example", config=config)
    phone = Endpoint("phone-1", 1)
    clock.timeout(0.0).callbacks.append(lambda _e: wire.open(phone, "user", "/ws/user/1/", None))
    try:
        await asyncio.wait_for(clock.run(until=until), timeout=until + 10)
    finally:
        await wire.aclose()
    assert phone.times("connected") == []
    return phone.closes("user"), wire


@pytest.mark.parametrize("status", [403, 500])
async def test_a_refused_handshake_is_counted_never_raised(status: int) -> None:
    async with http_server(status) as url:
        closes, wire = await handshake_outcome(url)
    assert [code for _, code in closes] == [status]
    assert wire.problems == {f"handshake {status}": 1}


async def test_a_silent_server_times_out_and_a_closed_port_is_refused() -> None:
    async with http_server(None) as url:
        closes, wire = await handshake_outcome(url, LiveConfig(connect_timeout_s=0.6))
    assert [code for _, code in closes] == [1006] and wire.problems == {"timeout": 1}
    async with http_server(403) as url:
        pass  # the port is free again: nothing listens there
    closes, wire = await handshake_outcome(url)
    assert [code for _, code in closes] == [1006] and wire.problems == {"connection refused": 1}


async def test_http_500_and_transport_errors_are_counted() -> None:
    async with http_server(500) as url:
        clock = WallClock()
        wire = LiveWire(clock, url, {1: "token"})
        phone = Endpoint("phone-1", 1)
        clock.timeout(0.0).callbacks.append(
            lambda _e: wire.http(phone, 1, "POST", "/api/auth/panic/create/", {"latitude": 1}))
        try:
            await asyncio.wait_for(clock.run(until=1.5), timeout=10)
        finally:
            await wire.aclose()
    [(_, _, _, (status, body))] = [e for e in phone.log if e[1] == "http"]
    assert status == 500 and body == {"detail": "no"}
    assert wire.problems == {"http 500": 1}


async def test_close_1011_and_garbage_frames_are_counted() -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.send("not json")
        await connection.send(b"\x00binary")
        await connection.send('["a list"]')
        await connection.send('{"type": "fine"}')
        await connection.close(1011, "boom")

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        clock = WallClock()
        wire = LiveWire(clock, f"http://127.0.0.1:{port}/", {})
        phone = Endpoint("phone-1", 1)
        clock.timeout(0.0).callbacks.append(lambda _e: wire.open(phone, "user", "/ws/user/1/", None))
        try:
            await asyncio.wait_for(clock.run(until=2.0), timeout=10)
        finally:
            await wire.aclose()
    assert [m["type"] for _, m in phone.frames("user")] == ["fine"]
    assert [code for _, code in phone.closes("user")] == [1011]
    assert wire.problems == {"non-json frame": 1, "binary frame": 1, "non-object frame": 1,
                             "close 1011": 1}


async def test_a_handover_kills_the_phones_sockets_and_leaves_the_backend_half_open(world: World) -> None:
    wire, phone, operator = world.wire, world.phone, world.operator
    alert = await world.create_alert()
    path = f"/ws/chat/{alert}/"
    world.at(0.0, lambda: wire.open(phone, "chat", path, None))
    world.at(0.0, lambda: wire.open(operator, "chat", path, None))
    await world.run(1.0)
    world.at(1.0, lambda: wire.handover(phone))
    world.at(1.2, lambda: wire.send(operator, "chat", {"type": "chat_message", "message": "lost"}))
    await world.run(2.0)
    assert [code for _, code in phone.closes("chat")] == [1006]  # at once, on the phone's side
    assert [m["message"] for _, m in phone.frames("chat", "chat_message")] == []  # the void
    assert not wire.problems
