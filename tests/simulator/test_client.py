"""The sans-I/O Beacon client, driven by hand: inputs with ``now``, actions drained, timers by deadline.

No SimPy and no sockets: every test feeds method calls and checks the actions and deadlines exactly,
with a fixed draw (0.5) standing in for the device's random generator.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from simulator.protocol.actions import (
    ALERT,
    CHAT,
    LOCATION,
    USER,
    Acked,
    Action,
    Close,
    Dropped,
    GaveUp,
    HttpRequest,
    Open,
    Received,
    Send,
    WantFix,
)
from simulator.protocol.client import BeaconClient, Fix
from simulator.protocol.policies import BEACON_1_0, RESILIENT, Policy, backoff_delay

ROOT = Path(__file__).resolve().parents[2]
USER_ID = 7
ALERT_ID = "00000000-0000-0000-0000-000000000001"
FIX = Fix(52.52, 13.405, 8.0)
BOTH = pytest.mark.parametrize("policy", [BEACON_1_0, RESILIENT], ids=lambda p: p.name)
# Opened when the alert is created (beacon-1.0 opens each lazily, on first use).
ALERT_CHANNELS = {BEACON_1_0.name: [], RESILIENT.name: [ALERT, LOCATION, CHAT]}
# Connected by `in_alert` (for beacon-1.0: as if its first fix had opened the location channel).
IN_ALERT = {BEACON_1_0.name: [LOCATION], RESILIENT.name: [ALERT, LOCATION, CHAT]}
PATHS = {USER: f"/ws/user/{USER_ID}/", ALERT: f"/ws/alerts/{ALERT_ID}/",
         LOCATION: f"/ws/location/{ALERT_ID}/", CHAT: f"/ws/chat/{ALERT_ID}/"}


def online(policy: Policy, now: float = 0.0) -> BeaconClient:
    """A client whose user channel connected at ``now`` (first ping due at now + 30)."""
    client = BeaconClient(policy, USER_ID, lambda: 0.5)
    client.start(now)
    client.connected(USER, now)
    client.take_actions()
    return client


def in_alert(policy: Policy, now: float = 1.0) -> BeaconClient:
    """Online since 0, alert created at ``now`` and every channel it opened connected at ``now``."""
    client = online(policy)
    client.panic(now, FIX, "phone-7:1")
    [request] = client.take_actions()
    assert isinstance(request, HttpRequest)
    client.http_response(request.request_id, 201, {"success": True, "alert_id": ALERT_ID}, now)
    client.take_actions()
    for name in IN_ALERT[policy.name]:
        client.connected(name, now)
    assert client.take_actions() == []
    return client


def of(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def status_update(status: str, seq: int, alert_id: str = ALERT_ID) -> dict[str, Any]:
    return {"type": "alert_status_update", "alert": {"id": alert_id, "status": status},
            "message": status, "seq": seq}


FORBIDDEN = {"simpy", "asyncio", "socket", "time", "random", "websockets", "httpx", "numpy"}


@pytest.mark.parametrize("module", ["client", "policies", "actions"])
def test_protocol_modules_import_no_io_clock_or_global_random(module: str) -> None:
    tree = ast.parse((ROOT / "simulator" / "protocol" / f"{module}.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported & FORBIDDEN == set()
    if module != "client":
        return
    script = ("import sys; sys.path.insert(0, sys.argv[1]); before = set(sys.modules); "
              "import simulator.protocol.client; "
              "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script, str(ROOT)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert "simulator" in out
    assert set(out) & FORBIDDEN == set()


@BOTH
def test_start_opens_the_user_channel_and_connected_starts_the_heartbeat(policy: Policy) -> None:
    client = BeaconClient(policy, USER_ID, lambda: 0.5)
    client.start(1.0)
    assert client.take_actions() == [Open(USER, PATHS[USER], 0 if policy.resume_since else None)]
    assert client.next_deadline() is None  # no ping before the socket is open
    client.connected(USER, 2.0)
    # beacon-1.0 never hears a pong and pings on regardless; resilient's pongs keep the link up
    for beat in range(1, 40):
        due = 2.0 + 30.0 * beat
        assert client.next_deadline() == due
        client.handle_timeout(due - 0.001)
        assert client.take_actions() == []
        client.handle_timeout(due)
        assert client.take_actions() == [Send(USER, {"type": "ping", "timestamp": due})]
        if policy.expects_pong:
            client.frame_received(USER, {"type": "pong", "seq": 0}, due + 0.1)


def test_resilient_declares_the_link_dead_after_two_unanswered_pings() -> None:
    client = in_alert(RESILIENT)
    client.handle_timeout(30.0)
    client.handle_timeout(31.0)  # the location cadence
    client.handle_timeout(60.0)
    assert len(of(client.take_actions(), Send)) == 2
    client.handle_timeout(90.0)
    actions = client.take_actions()
    assert [(a.channel, a.code) for a in of(actions, Close)] == [
        (USER, 1001), (ALERT, 1001), (LOCATION, 1001), (CHAT, 1001)]
    assert of(actions, Send) == []
    assert client.next_deadline() == 90.25  # every channel: U(0, 0.5) with draw 0.5
    client.closed(USER, 90.1)  # the driver reports the close it was asked for: no second schedule
    client.handle_timeout(90.25)
    assert client.take_actions() == [Open(USER, PATHS[USER], 0), Open(ALERT, PATHS[ALERT], 0),
                                     Open(LOCATION, PATHS[LOCATION], None), Open(CHAT, PATHS[CHAT], 0)]


def test_beacon_reconnects_the_user_channel_after_5_s_forever() -> None:
    client = online(BEACON_1_0)
    client.frame_received(USER, status_update("acknowledged", 3), 2.0)  # never resumes: since=None
    client.take_actions()
    now = 10.0
    for attempt in range(40):
        client.closed(USER, now)
        assert client.take_actions() == []
        assert client.next_deadline() == now + 5.0
        now += 5.0
        client.handle_timeout(now)
        assert client.take_actions() == [Open(USER, PATHS[USER], None)]
        if attempt % 7 == 6:
            client.connected(USER, now)
    assert not client.channels[USER].gave_up


def test_backoff_delay_schedules() -> None:
    assert [backoff_delay(RESILIENT, n, 1.0) for n in range(1, 10)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert [backoff_delay(RESILIENT, n, 0.5) for n in (1, 3, 7, 200)] == [0.25, 1.0, 15.0, 15.0]
    assert backoff_delay(RESILIENT, 5, 0.0) == 0.0
    assert {backoff_delay(BEACON_1_0, n, d) for n in range(1, 50) for d in (0.0, 0.9)} == {5.0}
    growing = replace(BEACON_1_0, attempt_resets_on_connect_try=False)
    assert [backoff_delay(growing, n, 0.3) for n in range(1, 4)] == [5.0, 10.0, 15.0]


def test_resilient_backs_off_exponentially_with_cap_and_resets_on_connect() -> None:
    client = online(RESILIENT)
    now, delays = 10.0, []
    for _ in range(10):
        client.closed(USER, now)
        deadline = client.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
        client.handle_timeout(now)
        assert client.take_actions() == [Open(USER, PATHS[USER], 0)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0, 15.0]
    client.connected(USER, now)
    client.closed(USER, now + 1.0)
    assert client.next_deadline() == now + 1.25
    assert of(client.take_actions(), GaveUp) == []


def test_resilient_resumes_each_channel_from_the_last_event_seq_not_replies() -> None:
    client = in_alert(RESILIENT)
    for channel, message in [
            (USER, status_update("acknowledged", 3)),
            (USER, {"type": "operator_message", "message": {"message": "hi"}, "seq": 4}),
            (USER, {"type": "pong", "seq": 9}), (USER, {"type": "ack", "client_msg_id": "x", "seq": 11}),
            (ALERT, {"type": "alert_updated", "alert": {"id": ALERT_ID, "status": "acknowledged"}, "seq": 2}),
            (ALERT, {"type": "success", "seq": 5}), (ALERT, {"type": "alert_status", "alert": {}, "seq": 6})]:
        client.frame_received(channel, message, 2.0)
    for name in (USER, ALERT, CHAT):
        client.closed(name, 3.0)
    client.take_actions()
    client.handle_timeout(3.25)
    assert client.take_actions() == [Open(USER, PATHS[USER], 4), Open(ALERT, PATHS[ALERT], 2),
                                     Open(CHAT, PATHS[CHAT], 0)]


def test_resilient_user_channel_asks_for_a_replay_even_before_its_first_event() -> None:
    # since=None means "no replay": what the user stream got while the socket was away is lost
    client = online(RESILIENT)
    client.closed(USER, 40.0)
    client.handle_timeout(40.25)
    [reopen] = client.take_actions()
    assert isinstance(reopen, Open) and reopen.since is not None


@BOTH
@pytest.mark.parametrize("code", [4001, 4003])
def test_refusal_stops_retrying(policy: Policy, code: int) -> None:
    client = BeaconClient(policy, USER_ID, lambda: 0.5)
    client.start(0.0)
    client.take_actions()
    client.closed(USER, 0.5, code)
    assert of(client.take_actions(), GaveUp) == [GaveUp(USER, 0)]
    assert client.next_deadline() is None
    client.lifecycle_changed(False, 10.0)
    client.lifecycle_changed(True, 20.0)
    client.handle_timeout(1000.0)
    assert of(client.take_actions(), Open) == []


@BOTH
def test_panic_posts_create(policy: Policy) -> None:
    client = online(policy)
    client.panic(4.0, FIX, "phone-7:1", battery=81.26)
    [request] = client.take_actions()
    body = {"latitude": 52.52, "longitude": 13.405, "accuracy": 8.0, "provider": "gps",
            "alert_type": "panic_button", "priority": 4, "battery_level": 81.3}
    if policy.client_msg_ids:
        body["client_msg_id"] = "phone-7:1"
    assert request == HttpRequest(1, "POST", "/api/auth/panic/create/", body, "phone-7:1")


@BOTH
def test_created_alert_opens_channels_and_starts_the_location_cadence(policy: Policy) -> None:
    client = online(policy)
    client.panic(4.0, FIX, "phone-7:1")
    client.take_actions()
    client.http_response(1, 201, {"success": True, "alert_id": ALERT_ID}, 5.0)
    since = {ALERT: 0, LOCATION: None, CHAT: 0} if policy.resume_since else {}
    assert client.take_actions() == [Acked("phone-7:1")] + [
        Open(name, PATHS[name], since.get(name)) for name in ALERT_CHANNELS[policy.name]]
    assert client.next_deadline() == 30.0  # the ping comes first
    client.handle_timeout(30.0)
    client.take_actions()
    for tick in (35.0, 65.0, 95.0):
        if policy.expects_pong:
            client.frame_received(USER, {"type": "pong"}, tick - 1)
        client.handle_timeout(tick - 0.01)
        assert of(client.take_actions(), WantFix) == []
        client.handle_timeout(tick)
        assert of(client.take_actions(), WantFix) == [WantFix()]


def test_beacon_opens_chat_and_alert_only_on_first_use_and_sends_that_message_once_open() -> None:
    client = in_alert(BEACON_1_0)
    client.chat(2.0, "help", "phone-7:2")
    assert client.take_actions() == [Open(CHAT, PATHS[CHAT], None)]
    client.connected(CHAT, 2.5)
    assert client.take_actions() == [Send(CHAT, {"type": "chat_message", "message": "help"},
                                          "phone-7:2")]
    client.chat(3.0, "still here", "phone-7:3")
    assert client.take_actions() == [Send(CHAT, {"type": "chat_message", "message": "still here"},
                                          "phone-7:3")]
    client.cancel(4.0, "phone-7:4")
    assert client.take_actions() == [Open(ALERT, PATHS[ALERT], None)]
    client.connected(ALERT, 4.5)
    assert client.take_actions() == [Send(ALERT, {"type": "cancel_alert"}, "phone-7:4")]
    client.closed(CHAT, 10.0)  # once open and closed, a chat channel is never reopened: sends drop
    client.chat(11.0, "hello?", "phone-7:5")
    assert client.take_actions() == [Dropped("phone-7:5", "chat channel closed", CHAT)]


def location(now: float, **extra: Any) -> dict[str, Any]:
    loc = {"latitude": FIX.latitude, "longitude": FIX.longitude, "accuracy": 8.0, "provider": "gps"}
    return {"type": "location_update", "location": loc, "timestamp": now, **extra}


def test_beacon_sends_each_fix_on_the_socket_and_over_http_and_drops_it_when_closed() -> None:
    client = in_alert(BEACON_1_0)
    client.location_fix(31.0, FIX, "phone-7:2")
    path, http_body = f"/api/auth/alerts/{ALERT_ID}/location/", location(0)["location"]
    assert client.take_actions() == [Send(LOCATION, location(31.0), "phone-7:2"),
                                     HttpRequest(2, "POST", path, http_body, "phone-7:2")]
    client.closed(LOCATION, 40.0)  # never reopened: no retry, and none after a user reconnect
    client.closed(USER, 40.0)
    for t in range(41, 61):
        client.handle_timeout(float(t))
    assert of(client.take_actions(), Open) == [Open(USER, PATHS[USER], None)]
    client.connected(USER, 45.0)
    client.location_fix(61.0, FIX, "phone-7:3")
    assert client.take_actions() == [Dropped("phone-7:3", "location channel closed", LOCATION),
                                     HttpRequest(3, "POST", path, http_body, "phone-7:3")]
    assert client.outbox == {}


def test_resilient_keeps_a_fix_until_acked_and_resends_it_on_reconnect() -> None:
    client = in_alert(RESILIENT)
    client.location_fix(9.0, FIX, "phone-7:9")
    assert client.take_actions() == [Send(LOCATION, location(9.0, client_msg_id="phone-7:9"), "phone-7:9")]
    client.frame_received(LOCATION, {"type": "ack", "client_msg_id": "phone-7:9", "seq": 0}, 9.2)
    assert client.take_actions() == [Acked("phone-7:9")] and client.outbox == {}
    client.closed(LOCATION, 10.0)
    client.handle_timeout(10.25)
    assert client.take_actions() == [Open(LOCATION, PATHS[LOCATION], None)]
    client.location_fix(12.0, FIX, "phone-7:2")
    assert client.take_actions() == []
    client.connected(LOCATION, 14.0)
    resend = Send(LOCATION, location(12.0, client_msg_id="phone-7:2"), "phone-7:2")
    assert client.take_actions() == [resend]
    client.closed(LOCATION, 15.0)
    client.handle_timeout(15.25)
    client.connected(LOCATION, 16.0)
    assert of(client.take_actions(), Send) == [resend]  # still unacked: sent again, same id
    client.frame_received(LOCATION, {"type": "ack", "client_msg_id": "phone-7:2"}, 16.1)
    assert client.take_actions() == [Acked("phone-7:2")] and client.outbox == {}


def test_resilient_posts_over_http_after_the_fallback_delay_while_the_socket_is_away() -> None:
    client = in_alert(RESILIENT)
    client.closed(LOCATION, 10.0)
    client.handle_timeout(10.25)
    client.take_actions()
    client.location_fix(12.0, FIX, "phone-7:2")
    assert client.next_deadline() == 22.0  # http_fallback_after_s = 10 s
    client.handle_timeout(21.9)
    assert client.take_actions() == []
    client.handle_timeout(22.0)
    body = {**location(0)["location"], "client_msg_id": "phone-7:2"}
    [post] = client.take_actions()
    assert post == HttpRequest(post.request_id, "POST", f"/api/auth/alerts/{ALERT_ID}/location/",
                               body, "phone-7:2")
    client.handle_timeout(23.0)
    assert client.take_actions() == []  # not posted twice while the first is in flight
    client.http_response(post.request_id, 200, {"success": True}, 22.5)
    assert client.take_actions() == [Acked("phone-7:2")]
    client.connected(LOCATION, 24.0)
    assert client.take_actions() == []
    client.location_fix(25.0, FIX, "phone-7:3")  # sent on the socket, not acked yet
    client.handle_timeout(35.0)
    assert of(client.take_actions(), HttpRequest) == []  # an open socket gets the first chance
    assert client.next_deadline() == 45.0


@pytest.mark.parametrize("case", ["network down", "suspended", "fallback post failed"])
def test_an_unsent_fix_does_not_make_the_driver_spin(case: str) -> None:
    # handle_timeout(now) must consume every timer due at `now` (a deadline <= now left behind makes
    # the driver loop at `now`) and a failed fallback POST must not be re-posted at once.
    client = in_alert(RESILIENT)
    if case == "fallback post failed":
        client.closed(LOCATION, 5.0)
    else:
        (client.network_changed if case == "network down" else client.lifecycle_changed)(False, 5.0)
    client.location_fix(15.0, FIX, "phone-7:2")
    client.handle_timeout(25.0)
    for post in of(client.take_actions(), HttpRequest):
        client.http_response(post.request_id, 409, {"success": False, "code": "alert_closed"}, 25.0)
    client.take_actions()  # the refusal is final: the fix is dropped (tested elsewhere)
    client.handle_timeout(25.0)
    assert client.take_actions() == [], "handled 25.0 twice: the second time did something again"
    deadline = client.next_deadline()
    assert deadline is None or deadline > 25.0, f"next_deadline() is {deadline} after handling 25.0"


@pytest.mark.parametrize(("policy", "delays"), [(BEACON_1_0, [5.0] * 4), (RESILIENT, [0.25, 0.5, 1.0, 2.0])],
                         ids=["beacon-1.0", "resilient"])
def test_a_failed_create_is_retried_with_the_same_body(policy: Policy, delays: list[float]) -> None:
    # beacon-1.0 carries no id (a create that was stored before failing comes back as a duplicate)
    client = online(policy)
    client.panic(1.0, FIX, "phone-7:1")
    [first] = client.take_actions()
    assert ("client_msg_id" in first.body) == policy.client_msg_ids
    now, request, seen = 1.0, first, []
    for tries in range(1, 5):
        now += 1.0
        client.http_response(request.request_id, 0 if tries % 2 else 500, {}, now)
        seen.append(client.next_deadline() - now)
        now = client.next_deadline()
        client.handle_timeout(now)
        [request] = client.take_actions()
        assert (request.path, request.body, request.origin_id) == (first.path, first.body, "phone-7:1")
        assert request.request_id == first.request_id + tries
    assert seen == delays
    client.http_response(request.request_id, 500, {}, now + 1.0)
    expected = [Dropped("phone-7:1", "create failed 5x")] if policy.create_max_tries == 5 else []
    assert client.take_actions() == expected


@BOTH
def test_network_loss_resilient_closes_waits_and_reopens_at_once_beacon_ignores_it(policy: Policy) -> None:
    client = in_alert(policy)
    client.network_changed(False, 10.0)
    if not policy.watch_connectivity:
        assert client.take_actions() == []
        client.handle_timeout(30.0)
        assert client.take_actions() == [Send(USER, {"type": "ping", "timestamp": 30.0})]
        client.network_changed(True, 40.0)
        assert client.take_actions() == []
        return
    assert [(a.channel, a.code) for a in client.take_actions()] == [
        (USER, 1001), (ALERT, 1001), (LOCATION, 1001), (CHAT, 1001)]
    for name in (USER, ALERT, LOCATION, CHAT):
        client.closed(name, 10.5)  # the transport's own report of the dead socket
    for t in range(11, 200):
        client.handle_timeout(float(t))
    assert of(client.take_actions(), Open) == []
    client.network_changed(True, 200.0)
    assert client.take_actions() == [Open(USER, PATHS[USER], 0), Open(ALERT, PATHS[ALERT], 0),
                                     Open(LOCATION, PATHS[LOCATION], None), Open(CHAT, PATHS[CHAT], 0)]


@BOTH
def test_suspension_closes_sockets_and_resume_reopens(policy: Policy) -> None:
    client = in_alert(policy)
    client.lifecycle_changed(False, 10.0)
    assert [a.channel for a in of(client.take_actions(), Close)] == [USER, *IN_ALERT[policy.name]]
    client.handle_timeout(100.0)
    actions = client.take_actions()
    assert of(actions, Open) == [] and of(actions, Send) == []
    client.lifecycle_changed(True, 120.0)
    reopened = [a.channel for a in of(client.take_actions(), Open)]
    assert reopened == ([USER] if policy.name == "beacon-1.0" else [USER, ALERT, LOCATION, CHAT])


@BOTH
@pytest.mark.parametrize(("channel", "message"), [
    (USER, status_update("acknowledged", 1)),
    (USER, {"type": "operator_message", "message": {"message": "on our way"}, "operator": {"id": 9}}),
    (CHAT, {"type": "chat_message", "message": "on our way", "sender_id": 9, "is_staff": True}),
    (ALERT, {"type": "alert_updated", "alert": {"id": ALERT_ID, "status": "responding"}}),
])
def test_application_messages_are_received(policy: Policy, channel: str, message: dict[str, Any]) -> None:
    client = in_alert(policy)
    client.frame_received(channel, message, 5.0)
    assert client.take_actions() == [Received(channel, message)]
    assert client.alert_open


@BOTH
@pytest.mark.parametrize("status", ["resolved", "canceled"])
def test_a_closed_status_stops_the_cadence_and_closes_alert_channels(policy: Policy, status: str) -> None:
    client = in_alert(policy)
    client.frame_received(USER, status_update(status, 1, "another-alert"), 5.0)
    assert of(client.take_actions(), Close) == [] and client.alert_open
    client.frame_received(USER, status_update(status, 2), 6.0)
    actions = client.take_actions()
    assert of(actions, Received) == [Received(USER, status_update(status, 2))]
    assert [(a.channel, a.code) for a in of(actions, Close)] == [
        (name, 1000) for name in IN_ALERT[policy.name]]
    for name in ALERT_CHANNELS[policy.name]:
        client.closed(name, 6.5, 1000)
    assert client.next_deadline() == 30.0
    for t in range(30, 200, 30):
        client.handle_timeout(float(t))
        if policy.expects_pong:
            client.frame_received(USER, {"type": "pong"}, t + 0.1)
    actions = client.take_actions()
    assert of(actions, WantFix) == [] and of(actions, Open) == []


def test_next_deadline_is_the_earliest_timer() -> None:
    client = online(RESILIENT)  # ping at 30
    client.panic(1.0, FIX, "phone-7:1")
    [create] = client.take_actions()
    client.http_response(create.request_id, 0, {}, 2.0)
    assert client.next_deadline() == 2.25  # create retry
    client.handle_timeout(2.25)
    [create] = client.take_actions()
    client.http_response(create.request_id, 201, {"alert_id": ALERT_ID}, 3.0)  # fixes from 33
    client.connected(LOCATION, 3.0)
    assert client.next_deadline() == 30.0  # ping
    client.closed(LOCATION, 4.0)
    assert client.next_deadline() == 4.25  # reconnect
    client.handle_timeout(4.25)
    client.location_fix(5.0, FIX, "phone-7:2")
    assert client.next_deadline() == 15.0  # HTTP fallback
    client.closed(USER, 5.0)
    client.frame_received(LOCATION, {"type": "ack", "client_msg_id": "phone-7:2"}, 5.1)
    assert client.next_deadline() == 5.25  # user reconnect; the ping is off while closed
    client.handle_timeout(5.25)
    client.connected(USER, 6.0)
    assert client.next_deadline() == 33.0  # the fix (ping moved to 36)


def test_beacon_drops_what_waited_for_a_lazy_channel_that_never_opened() -> None:
    client = in_alert(BEACON_1_0)
    client.chat(2.0, "help", "phone-7:2")
    assert client.take_actions() == [Open(CHAT, PATHS[CHAT], None)]
    client.closed(CHAT, 3.0, 1006)
    assert of(client.take_actions(), Dropped) == [Dropped("phone-7:2", "chat channel never opened", CHAT)]


def test_settled_means_nothing_unacked_and_every_wanted_channel_open() -> None:
    """What ``run``'s drain waits for before it ends early."""
    client = in_alert(RESILIENT)
    assert client.settled
    client.location_fix(9.0, FIX, "phone-7:9")
    assert not client.settled  # unacked
    client.frame_received(LOCATION, {"type": "ack", "client_msg_id": "phone-7:9", "seq": 0}, 9.2)
    assert client.settled
    client.closed(CHAT, 10.0)
    assert not client.settled  # a channel it wants is closed: a replay may be owed to it
    client.handle_timeout(10.25)
    client.connected(CHAT, 11.0)
    assert client.settled
    client.lifecycle_changed(False, 12.0)  # suspended: it cannot receive anything until it resumes
    assert client.settled
    client.lifecycle_changed(True, 13.0)
    assert not client.settled  # resumed: reopening
