"""The modelled wire in SimPy: frame timing, outages as TCP sees them, connects, HTTP and service time.

The endpoint is a fake with fixed one-way delays (up 0.125 s, down 0.25 s: exact in binary, so most
times compare exactly) and a settable ``down`` flag; it records every callback with ``env.now``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import simpy

from simulator.transport.backend_model import BackendModel
from simulator.transport.modelled import RTO_MAX_S, Wire, WireConfig, rto_tick

PHONE, OTHER, OPERATOR = 7, 8, 99
UP, DOWN = 0.125, 0.25
RTT = UP + DOWN
CONNECTED_AT = RTT + DOWN  # the backend accepts after one round trip; the client hears it DOWN later


class Endpoint:
    """A fake actor: fixed delays while up, ``None`` while down, and a log of what reached it."""

    def __init__(self, env: simpy.Environment, name: str, user_id: int, up: float = UP,
                 down: float = DOWN) -> None:
        self.env, self.name, self.user_id = env, name, user_id
        self.up_s, self.down_s = up, down
        self.down = False
        self.log: list[tuple[float, str, str, Any]] = []

    def link_delay(self, size: int, up: bool, now: float) -> float | None:
        assert now == self.env.now and size > 0
        return None if self.down else (self.up_s if up else self.down_s)

    def _record(self, now: float, kind: str, what: Any, detail: Any) -> None:
        assert now == self.env.now
        self.log.append((now, kind, what, detail))

    def on_connected(self, channel: str, now: float) -> None:
        self._record(now, "connected", channel, None)

    def on_closed(self, channel: str, code: int, now: float) -> None:
        self._record(now, "closed", channel, code)

    def on_frame(self, channel: str, message: dict[str, Any], now: float) -> None:
        self._record(now, "frame", channel, message["type"])

    def on_http(self, request_id: int, status: int, body: dict[str, Any], now: float) -> None:
        self._record(now, "http", request_id, status)

    def on_push(self, now: float) -> None:
        self._record(now, "push", None, None)

    def since(self, start: float) -> list[tuple[float, str, str, Any]]:
        return [entry for entry in self.log if entry[0] >= start]


class World:
    def __init__(self, service_mean_s: float = 0.0, seed: int = 0, **config: Any) -> None:
        self.env = simpy.Environment()
        self.backend = BackendModel(lambda: 0.99)
        for user, staff in ((PHONE, False), (OTHER, False), (OPERATOR, True)):
            self.backend.add_user(user, staff)
        self.wire = Wire(self.env, self.backend, np.random.default_rng(seed),
                         WireConfig(service_mean_s=service_mean_s, **config))
        self.phone = Endpoint(self.env, "phone-7", PHONE)
        self.operator = Endpoint(self.env, "operator-99", OPERATOR, up=0.125, down=0.125)
        created = self.backend.http(PHONE, "POST", "/api/auth/panic/create/", {"latitude": 1, "longitude": 2})
        self.alert_id = str(created.body["alert_id"])

    def at(self, when: float, action: Callable[[], None]) -> None:
        event = self.env.timeout(when - self.env.now)
        event.callbacks.append(lambda _event: action())

    def network(self, endpoint: Endpoint, up: bool, when: float) -> None:
        def change() -> None:
            endpoint.down = not up
            self.wire.network_changed(endpoint, up)
        self.at(when, change)

    def online(self) -> None:
        """Phone on its user channel, operator on the alert's chat; both open by t = 1."""
        self.wire.open(self.phone, "user", f"/ws/user/{PHONE}/", None)
        self.wire.open(self.operator, "chat", f"/ws/chat/{self.alert_id}/", None)
        self.env.run(until=1.0)
        assert [e[1] for e in self.phone.log] == ["connected"]

    def operator_says(self, when: float, text: str) -> None:
        message = {"type": "chat_message", "message": text}
        self.at(when, lambda: self.wire.send(self.operator, "chat", message))

    def phone_pings(self, when: float) -> None:
        self.at(when, lambda: self.wire.send(self.phone, "user", {"type": "ping", "timestamp": when}))

    def consumers_at(self, when: float) -> int:
        if when > self.env.now:
            self.env.run(until=when)
        return sum(1 for c in self.backend.consumers.values() if c.user == PHONE)


def test_connect_completes_after_one_round_trip_with_the_snapshot_frames() -> None:
    world = World()
    world.wire.open(world.phone, "alert", f"/ws/alerts/{world.alert_id}/", None)
    assert world.consumers_at(RTT - 0.001) == 0
    assert world.consumers_at(RTT + 0.001) == 1
    world.env.run(until=5.0)
    assert world.phone.log == [(CONNECTED_AT, "connected", "alert", None),
                               (CONNECTED_AT, "frame", "alert", "alert_status")]


def test_a_refused_connect_closes_with_the_code_after_one_round_trip() -> None:
    world = World()
    world.wire.open(world.phone, "user", f"/ws/user/{OTHER}/", None)
    world.env.run(until=5.0)
    assert world.phone.log == [(CONNECTED_AT, "closed", "user", 4003)]
    assert world.backend.consumers == {}


def test_frames_arrive_after_the_link_delay() -> None:
    world = World()
    world.online()
    world.phone_pings(2.0)
    world.operator_says(3.0, "on our way")  # reaches the backend at 3.125, the phone 0.25 later
    world.env.run(until=10.0)
    assert world.phone.since(1.0) == [(2.0 + RTT, "frame", "user", "pong"),
                                      (3.0 + 0.125 + DOWN, "frame", "user", "operator_message")]


@pytest.mark.parametrize(("down_at", "dropped_at"), [(30.0, 60.0), (45.0, 80.0), (59.0, 80.0)])
def test_the_backend_keeps_a_half_open_socket_until_its_keepalive_times_out(
        down_at: float, dropped_at: float) -> None:
    # Keep-alive pings every 20 s from the socket's open (t = 0); the first one after the outage
    # starts goes unanswered and the backend gives up 20 s after sending it.
    world = World()
    world.online()
    world.network(world.phone, False, down_at)
    world.operator_says(down_at + 5.0, "anyone?")
    assert world.consumers_at(dropped_at - 0.01) == 1
    assert world.consumers_at(dropped_at + 0.01) == 0
    world.env.run(until=300.0)
    assert world.phone.since(down_at) == []


def test_frames_sent_during_a_short_outage_arrive_at_the_retransmission_tick() -> None:
    world = World()
    world.online()
    world.network(world.phone, False, 30.0)
    world.phone_pings(30.5)
    world.operator_says(30.875, "hold on")  # the backend writes it to the phone at 31.0
    world.network(world.phone, True, 32.0)
    world.env.run(until=32.0)
    assert world.phone.since(30.0) == []
    world.env.run(until=100.0)
    assert [(round(t, 9), kind, what) for t, kind, _, what in world.phone.since(30.0)] == [
        (round(rto_tick(31.0, 32.0), 9), "frame", "operator_message"),  # 32.4
        (round(rto_tick(30.5, 32.0) + DOWN, 9), "frame", "pong")]  # 33.5 + 0.25
    assert rto_tick(31.0, 32.0) == pytest.approx(32.4) and rto_tick(30.5, 32.0) == pytest.approx(33.5)
    assert world.consumers_at(100.0) == 1  # restored before the keep-alive gave up


def test_after_a_long_outage_the_next_send_is_reset_and_half_open_writes_are_lost() -> None:
    world = World()
    world.online()
    world.network(world.phone, False, 30.0)
    world.operator_says(40.0, "are you there?")  # written while half-open, before the drop at 60
    world.network(world.phone, True, 100.0)
    world.phone_pings(101.0)
    world.env.run(until=200.0)
    assert world.phone.since(30.0) == [(101.0 + RTT, "closed", "user", 1006)]
    assert [e["type"] for e in world.backend.streams[f"user.{PHONE}"]] == ["operator_message"]  # stored


def test_frames_queued_during_a_long_outage_get_the_reset_at_their_retransmission() -> None:
    world = World()
    world.online()
    world.network(world.phone, False, 30.0)
    world.phone_pings(50.0)
    world.network(world.phone, True, 100.0)
    world.env.run(until=200.0)
    assert [(round(t, 6), kind, code) for t, kind, _, code in world.phone.since(30.0)] == [
        (round(rto_tick(50.0, 100.0) + DOWN, 6), "closed", 1006)]


@pytest.mark.parametrize(("restored", "expected"), [
    (0.5, (1.0 + CONNECTED_AT, "connected", "user", None)),  # SYN retransmissions at 1, 3, 7, 15 s
    (2.0, (3.0 + CONNECTED_AT, "connected", "user", None)),
    (3.0, (3.0 + CONNECTED_AT, "connected", "user", None)),
    (5.0, (7.0 + CONNECTED_AT, "connected", "user", None)),
    (8.0, (10.0, "closed", "user", 1006)),  # the next SYN (15 s) is past connect_timeout_s
    (None, (10.0, "closed", "user", 1006)),
])
def test_a_connect_made_while_down(restored: float | None, expected: tuple[float, str, str, Any]) -> None:
    world = World()
    world.phone.down = True
    world.wire.open(world.phone, "user", f"/ws/user/{PHONE}/", None)
    if restored is not None:
        world.network(world.phone, True, restored)
    world.env.run(until=100.0)
    assert world.phone.log == [expected]


@pytest.mark.parametrize("restored", [20.0, None])
def test_a_connect_cut_by_an_outage_before_the_handshake_still_times_out(restored: float | None) -> None:
    world = World()
    world.wire.open(world.phone, "user", f"/ws/user/{PHONE}/", None)
    world.network(world.phone, False, 0.1)  # before the handshake at RTT
    if restored is not None:
        world.network(world.phone, True, restored)
    world.env.run(until=100.0)
    assert world.phone.log[:1] == [(10.0, "closed", "user", 1006)], "stuck connecting: no open timeout"


def test_a_client_close_while_down_leaves_the_server_socket_half_open() -> None:
    world = World()
    world.online()
    world.network(world.phone, False, 30.0)
    world.at(31.0, lambda: world.wire.close(world.phone, "user"))
    world.network(world.phone, True, 40.0)
    assert world.consumers_at(59.99) == 1
    assert world.consumers_at(60.01) == 0
    assert world.phone.since(30.0) == []


def test_a_client_close_while_up_reaches_the_backend_after_the_uplink_delay() -> None:
    world = World()
    world.online()
    world.at(31.0, lambda: world.wire.close(world.phone, "user"))
    world.operator_says(30.9, "late")  # reaches the backend at 31.025; on the wire when the phone closes
    assert world.consumers_at(31.0 + UP - 0.001) == 1
    assert world.consumers_at(31.0 + UP + 0.001) == 0
    world.env.run(until=50.0)
    assert world.phone.since(30.0) == []  # nothing is delivered to a socket the client closed


def test_http_while_down_fails_fast_and_while_up_takes_two_round_trips() -> None:
    world = World()
    create = {"latitude": 1, "longitude": 2}
    world.wire.http(world.phone, 1, "POST", "/api/auth/panic/create/", create)
    world.network(world.phone, False, 1.0)
    world.at(5.0, lambda: world.wire.http(world.phone, 2, "POST", "/api/auth/panic/create/", create))
    world.env.run(until=100.0)
    assert [(round(t, 9), rid, status) for t, _, rid, status in world.phone.log] == [
        (RTT + UP + DOWN, 1, 201), (5.05, 2, 0)]
    assert len(world.backend.alerts) == 2  # the one in setup and request 1


def test_an_http_response_lost_to_an_outage_times_out_after_the_request_was_served() -> None:
    world = World()
    world.wire.http(world.phone, 1, "POST", "/api/auth/panic/create/", {"latitude": 1, "longitude": 2})
    world.network(world.phone, False, RTT + 0.01)  # after the request is sent, before it is served
    world.env.run(until=100.0)
    assert world.phone.log == [(RTT + UP + 10.0, "http", 1, 0)]  # http_timeout_s after serving
    assert len(world.backend.alerts) == 2  # stored anyway: a retry without an id duplicates it


def test_service_time_queues_simultaneous_requests_in_order() -> None:
    world = World(service_mean_s=0.5, seed=3)
    first, second = np.random.default_rng(3).exponential(0.5, size=2)
    for request_id in (1, 2):
        world.wire.http(world.phone, request_id, "POST", "/api/auth/panic/create/",
                        {"latitude": request_id, "longitude": 0})
    world.env.run(until=100.0)
    arrival = RTT + UP
    assert [(rid, status) for _, _, rid, status in world.phone.log] == [(1, 201), (2, 201)]
    assert [t for t, *_ in world.phone.log] == pytest.approx(
        [arrival + first + DOWN, arrival + first + second + DOWN])


def test_frames_queue_behind_requests_on_the_same_backend() -> None:
    world = World(service_mean_s=0.5, seed=4)
    draws = np.random.default_rng(4).exponential(0.5, size=2)
    world.online()
    world.phone_pings(2.0)
    world.phone_pings(2.0)
    world.env.run(until=100.0)
    pongs = [t for t, kind, _, what in world.phone.since(1.0) if what == "pong"]
    assert pongs == pytest.approx([2.0 + UP + draws[0] + DOWN, 2.0 + UP + draws[0] + draws[1] + DOWN])


def test_a_request_still_on_its_way_does_not_hold_up_one_that_arrived_first() -> None:
    # A far endpoint's request reaches the backend at 4.0; the phone's ping reaches it at 1.625 and
    # must be served then, not queued behind a request that has not arrived yet.
    world = World(service_mean_s=0.01, seed=5)
    far = Endpoint(world.env, "far-8", OTHER, up=1.0, down=1.0)
    world.online()
    draws = np.random.default_rng(5).exponential(0.01, size=2)
    world.at(1.0, lambda: world.wire.http(far, 1, "POST", "/api/auth/panic/create/",
                                          {"latitude": 1, "longitude": 2}))
    world.phone_pings(1.5)
    world.env.run(until=100.0)
    [pong] = [t for t, kind, _, what in world.phone.since(1.0) if what == "pong"]
    assert any(pong == pytest.approx(1.5 + UP + d + DOWN) for d in draws), f"pong at {pong:.3f}"


def test_rto_tick() -> None:
    assert rto_tick(0.0, 0.0) == pytest.approx(0.2)
    assert rto_tick(0.0, 0.2) == pytest.approx(0.2)
    assert rto_tick(0.0, 0.21) == pytest.approx(0.6)
    assert rto_tick(10.0, 11.0) == pytest.approx(11.4)  # 10.2, 10.6, 11.4
    ticks = [0.2, 0.6, 1.4, 3.0, 6.2, 12.6, 25.4, 51.0, 102.2, 204.6, 324.6, 444.6]
    assert [rto_tick(0.0, t) for t in ticks] == pytest.approx(ticks)  # doubling, then capped
    assert rto_tick(0.0, 205.0) - rto_tick(0.0, 204.0) == pytest.approx(RTO_MAX_S)
    for now in np.linspace(0.0, 1000.0, 401):
        tick = rto_tick(3.0, float(now))
        assert tick >= now and tick >= 3.2


def test_an_operator_message_to_a_phone_with_no_user_channel_sends_a_push() -> None:
    world = World(push_latency_s=2.0)
    world.wire.open(world.phone, "chat", f"/ws/chat/{world.alert_id}/", None)  # known to the wire
    world.wire.open(world.operator, "chat", f"/ws/chat/{world.alert_id}/", None)
    world.env.run(until=1.0)
    world.operator_says(1.0, "are you safe?")
    world.env.run(until=10.0)
    pushes = [entry for entry in world.phone.log if entry[1] == "push"]
    # the chat reaches the operator's server at 1.125; the push lands 2 s later
    assert pushes == [(1.125 + 2.0, "push", None, None)]


def test_no_push_while_the_user_channel_is_connected_or_the_phone_is_offline() -> None:
    world = World(push_latency_s=2.0)
    world.online()  # the phone listens on its user channel
    world.operator_says(1.0, "are you safe?")
    world.env.run(until=10.0)
    assert [entry for entry in world.phone.log if entry[1] == "push"] == []
    offline = World(push_latency_s=2.0)
    offline.wire.open(offline.operator, "chat", f"/ws/chat/{offline.alert_id}/", None)
    offline.wire.open(offline.phone, "chat", f"/ws/chat/{offline.alert_id}/", None)
    offline.env.run(until=1.0)
    offline.network(offline.phone, False, 1.5)
    offline.operator_says(2.0, "are you safe?")
    offline.env.run(until=20.0)
    assert [entry for entry in offline.phone.log if entry[1] == "push"] == []


def test_the_backend_close_reaches_a_silent_client_at_a_retransmission_after_restoration() -> None:
    world = World()
    world.online()
    world.network(world.phone, False, 30.0)  # the backend gives up on the socket at 60
    world.network(world.phone, True, 100.0)  # the phone sends nothing after that
    world.env.run(until=300.0)
    closes = [(round(t, 6), kind, code) for t, kind, _, code in world.phone.since(30.0)]
    assert closes == [(round(rto_tick(60.0, 100.0), 6), "closed", 1006)]


def test_a_handover_kills_the_sockets_at_once_and_leaves_the_backend_half_open() -> None:
    world = World()
    world.online()
    world.at(30.0, lambda: world.wire.handover(world.phone))
    world.operator_says(35.0, "are you there?")  # written to the orphaned socket: lost
    assert world.consumers_at(50.0) == 1  # the backend still holds the dead socket
    assert world.consumers_at(61.0) == 0  # until its keep-alive gives up (ping at 40, +20 s)
    world.env.run(until=100.0)
    assert world.phone.since(30.0) == [(30.05, "closed", "user", 1006)]
    assert [e["type"] for e in world.backend.streams[f"user.{PHONE}"]] == ["operator_message"]  # stored
