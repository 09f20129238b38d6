"""The modelled backend alone: routes, the status machine, idempotency, streams, replay and drops.

No SimPy: every request is a method call and every answer a list of (connection, message) frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from simulator.transport.backend_model import BackendModel, Result

PHONE, OTHER, OPERATOR, STRANGER = 7, 8, 99, 42
P_USER, P_ALERT, P_CHAT, P_LOC = 1, 2, 3, 4
O_CONSOLE, O_CHAT, O_LOC = 10, 11, 12
EVENTS = {"new_alert", "location_update", "chat_message", "operator_message", "alert_status_update",
          "alert_updated", "alert_acknowledged", "alert_resolved", "alert_canceled"}
CREATE = "/api/auth/panic/create/"


def model(random: Callable[[], float] = lambda: 0.99, **options: Any) -> BackendModel:
    backend = BackendModel(random, **options)
    backend.add_user(PHONE, False)
    backend.add_user(OTHER, False)
    backend.add_user(OPERATOR, True)
    return backend


def scripted(*draws: float) -> Callable[[], float]:
    values = iter(draws)
    return lambda: next(values)


def create(backend: BackendModel, user: int = PHONE, cmid: str | None = None) -> str:
    body: dict[str, Any] = {"latitude": 52.52, "longitude": 13.405}
    if cmid is not None:
        body["client_msg_id"] = cmid
    result = backend.http(user, "POST", CREATE, body)
    assert result.status == 201, result.body
    return str(result.body["alert_id"])


def to(result: Result, conn: int) -> list[dict[str, Any]]:
    return [message for c, message in result.frames if c == conn]


def types(result: Result, conn: int) -> list[str]:
    return [message["type"] for message in to(result, conn)]


def connect(backend: BackendModel, conn: int, user: int, path: str, since: int | None = None) -> Result:
    result = backend.connect(conn, user, path, since)
    assert result.close is None
    return result


def console(backend: BackendModel, action: str, alert_id: str, **extra: Any) -> dict[str, Any]:
    """An operator's console request; returns the reply to the operator (success, ack or error)."""
    if O_CONSOLE not in backend.consumers:
        connect(backend, O_CONSOLE, OPERATOR, "/ws/alerts/")
    result = backend.receive(O_CONSOLE, {"type": action, "alert_id": alert_id, **extra})
    assert result.close is None
    return to(result, O_CONSOLE)[-1]


@pytest.mark.parametrize(("user", "path", "close"), [
    (STRANGER, "/ws/user/42/", 4001),
    (PHONE, "/ws/user/7/", None),
    (PHONE, "/ws/user/8/", 4003),
    (PHONE, "/ws/user/me/", 4003),
    (OPERATOR, "/ws/user/7/", None),
    (PHONE, "/ws/alerts/", 4003),
    (OPERATOR, "/ws/alerts/", None),
    (PHONE, "/ws/alerts/{a}/", None),
    (OTHER, "/ws/alerts/{a}/", 4003),
    (OPERATOR, "/ws/alerts/{a}/", None),
    (PHONE, "/ws/location/{a}/", None),
    (OTHER, "/ws/location/{a}/", 4003),
    (OPERATOR, "/ws/location/{a}/", None),
    (PHONE, "/ws/chat/{a}/", None),
    (OTHER, "/ws/chat/{a}/", 4003),
    (PHONE, "/ws/chat/00000000-0000-0000-0000-00000000dead/", 4003),
    (PHONE, "/ws/nowhere/", 4004),
    (PHONE, "/ws/user/", 4004),
    (STRANGER, "/ws/nowhere/", 4001),
])
def test_routes_and_refusals(user: int, path: str, close: int | None) -> None:
    backend = model()
    alert_id = create(backend)
    result = backend.connect(1, user, path.replace("{a}", alert_id), None)
    assert result.close == close
    assert (1 in backend.consumers) == (close is None)
    if close is not None:
        assert result.frames == []


def test_connect_snapshots() -> None:
    backend = model()
    alert_id = create(backend)
    [active] = to(connect(backend, O_CONSOLE, OPERATOR, "/ws/alerts/"), O_CONSOLE)
    assert (active["type"], active["count"], active["alerts"][0]["id"]) == ("active_alerts", 1, alert_id)
    [status] = to(connect(backend, P_ALERT, PHONE, f"/ws/alerts/{alert_id}/"), P_ALERT)
    assert (status["type"], status["alert"]["status"]) == ("alert_status", "active")
    assert connect(backend, P_LOC, PHONE, f"/ws/location/{alert_id}/").frames == []
    assert connect(backend, P_USER, PHONE, "/ws/user/7/").frames == []
    backend.http(PHONE, "POST", f"/api/auth/alerts/{alert_id}/location/", {"latitude": 1.5, "longitude": 2.5})
    [last] = to(connect(backend, 5, PHONE, f"/ws/location/{alert_id}/"), 5)
    assert (last["type"], last["location"]["latitude"]) == ("last_location", 1.5)


OPEN, CLOSED = ("active", "acknowledged", "responding"), ("resolved", "canceled", "false_alarm")


@pytest.mark.parametrize("status", OPEN + CLOSED)
@pytest.mark.parametrize(("action", "allowed_from"), [
    ("acknowledge_alert", {"active"}),
    ("resolve_alert", {"acknowledged", "responding"}),
    ("false_alarm", set(OPEN)),
    ("respond_alert", None),  # specified only: from acknowledged, never from a closed status
])
def test_status_machine(status: str, action: str, allowed_from: set[str] | None) -> None:
    backend = model()
    alert_id = create(backend)
    backend.alerts[alert_id].status = status
    reply = console(backend, action, alert_id)
    if allowed_from is None:
        if status in ("acknowledged", *CLOSED):
            assert reply["type"] == ("success" if status == "acknowledged" else "error"), reply
        return
    assert reply["type"] == ("success" if status in allowed_from else "error"), reply
    if reply["type"] == "error":
        assert reply["code"] == "invalid_transition"
        assert backend.alerts[alert_id].status == status


@pytest.mark.parametrize("status", OPEN + CLOSED)
def test_owner_cancel_works_only_while_open(status: str) -> None:
    backend = model()
    alert_id = create(backend)
    backend.alerts[alert_id].status = status
    connect(backend, P_ALERT, PHONE, f"/ws/alerts/{alert_id}/")
    result = backend.receive(P_ALERT, {"type": "cancel_alert"})
    assert result.close is None
    assert to(result, P_ALERT)[-1]["type"] == ("success" if status in OPEN else "error")
    assert backend.alerts[alert_id].status == ("canceled" if status in OPEN else status)


def test_closed_alerts_never_reopen_and_staff_cannot_cancel() -> None:
    backend = model()
    alert_id = create(backend)
    assert console(backend, "acknowledge_alert", alert_id)["type"] == "success"
    assert backend.alerts[alert_id].operator == OPERATOR
    assert console(backend, "respond_alert", alert_id)["type"] == "success"
    assert console(backend, "resolve_alert", alert_id)["type"] == "success"
    for action in ("acknowledge_alert", "respond_alert", "resolve_alert", "false_alarm"):
        assert console(backend, action, alert_id)["code"] == "invalid_transition"
    assert backend.http(PHONE, "POST", f"/api/auth/alerts/{alert_id}/cancel/", {}).status == 409
    assert backend.alerts[alert_id].status == "resolved"
    other = create(backend)
    connect(backend, 13, OPERATOR, f"/ws/alerts/{other}/")
    result = backend.receive(13, {"type": "cancel_alert"})
    assert (to(result, 13)[-1]["code"], result.close) == ("forbidden", 4003)
    assert backend.alerts[other].status == "active"


def test_bad_input_answers_an_error_and_keeps_the_socket() -> None:
    backend = model()
    alert_id = create(backend)
    connect(backend, P_LOC, PHONE, f"/ws/location/{alert_id}/")
    codes = []
    for message in ({"type": "location_update", "location": "here", "client_msg_id": "p:1"},
                    {"type": "chat_message", "message": "wrong route"}, {"type": 5}):
        result = backend.receive(P_LOC, message)
        [error] = to(result, P_LOC)
        assert error["type"] == "error" and result.close is None
        codes.append((error["code"], error.get("client_msg_id")))
    assert codes == [("invalid_field", "p:1"), ("unknown_type", None), ("unknown_type", None)]
    assert P_LOC in backend.consumers and backend.alerts[alert_id].locations == []


def test_a_repeated_message_is_stored_once_and_answered_the_same() -> None:
    backend = model()
    alert_id = create(backend)
    connect(backend, P_CHAT, PHONE, f"/ws/chat/{alert_id}/")
    connect(backend, O_CHAT, OPERATOR, f"/ws/chat/{alert_id}/")
    message = {"type": "chat_message", "message": "help", "client_msg_id": "phone-7:5"}
    first = backend.receive(P_CHAT, message)
    assert types(first, P_CHAT) == ["chat_message", "ack"] and types(first, O_CHAT) == ["chat_message"]
    again = backend.receive(P_CHAT, dict(message))
    assert types(again, P_CHAT) == ["ack"] and to(again, O_CHAT) == []  # both already at that seq
    ack1, ack2 = to(first, P_CHAT)[-1], to(again, P_CHAT)[-1]
    assert (ack1["repeated"], ack2["repeated"]) == (False, True)
    assert ack1["result"] == ack2["result"] and ack2["client_msg_id"] == "phone-7:5"
    assert len(backend.alerts[alert_id].chats) == 1 and len(backend.streams[f"chat.{alert_id}"]) == 1
    reused = backend.http(PHONE, "POST", f"/api/auth/alerts/{alert_id}/cancel/",
                          {"client_msg_id": "phone-7:5"})
    assert (reused.status, backend.alerts[alert_id].status) == (409, "active")


def test_a_repeat_republishes_to_a_listener_that_lost_the_event() -> None:
    # phone's own copy delivered (0.9), operator's lost (0.1); on the repeat the operator draws 0.9
    backend = model(scripted(0.9, 0.1, 0.9), drop_rate=0.5, gap_fill=False)
    alert_id = create(backend)
    connect(backend, P_CHAT, PHONE, f"/ws/chat/{alert_id}/")
    connect(backend, O_CHAT, OPERATOR, f"/ws/chat/{alert_id}/")
    message = {"type": "chat_message", "message": "help", "client_msg_id": "phone-7:5"}
    assert to(backend.receive(P_CHAT, message), O_CHAT) == []
    again = backend.receive(P_CHAT, message)
    assert [(m["type"], m["seq"]) for m in to(again, O_CHAT)] == [("chat_message", 1)]
    assert len(backend.alerts[alert_id].chats) == 1


def test_create_and_location_idempotent_over_http_and_across_socket_and_http() -> None:
    backend = model()
    first = backend.http(PHONE, "POST", CREATE, {"latitude": 1.0, "longitude": 2.0, "client_msg_id": "p:1"})
    again = backend.http(PHONE, "POST", CREATE, {"latitude": 1.0, "longitude": 2.0, "client_msg_id": "p:1"})
    assert (first.status, again.status) == (201, 201)
    assert again.body["alert_id"] == first.body["alert_id"] and again.body["repeated"] is True
    assert len(backend.alerts) == 1 and len(backend.streams["console"]) == 1
    alert_id = str(first.body["alert_id"])
    connect(backend, P_LOC, PHONE, f"/ws/location/{alert_id}/")
    location = {"latitude": 1.1, "longitude": 2.1, "accuracy": 5.0}
    ws = backend.receive(P_LOC, {"type": "location_update", "location": location, "client_msg_id": "p:2"})
    [ack] = to(ws, P_LOC)
    assert (ack["type"], ack["repeated"]) == ("ack", False)
    http = backend.http(PHONE, "POST", f"/api/auth/alerts/{alert_id}/location/",
                        {**location, "client_msg_id": "p:2"})
    assert (http.status, http.body["repeated"]) == (200, True)
    assert http.body["location_id"] == ack["result"]["location_id"]
    assert len(backend.alerts[alert_id].locations) == 1


def test_seq_grows_by_one_per_stream_and_each_listener_sees_every_event_once() -> None:
    backend = model()
    seen: dict[int, list[int]] = {}
    first = create(backend)
    conns = {P_USER: ("/ws/user/7/", PHONE), O_CONSOLE: ("/ws/alerts/", OPERATOR),
             P_ALERT: (f"/ws/alerts/{first}/", PHONE), P_CHAT: (f"/ws/chat/{first}/", PHONE),
             O_CHAT: (f"/ws/chat/{first}/", OPERATOR), O_LOC: (f"/ws/location/{first}/", OPERATOR),
             P_LOC: (f"/ws/location/{first}/", PHONE)}
    results = [connect(backend, conn, user, path) for conn, (path, user) in conns.items()]
    head_at_connect = {conn: backend.consumers[conn].last_seq for conn in conns}
    results.append(backend.http(PHONE, "POST", CREATE, {"latitude": 1.0, "longitude": 2.0}))
    second = str(results[-1].body["alert_id"])
    for step in range(6):
        results.append(backend.receive(P_LOC, {"type": "location_update", "location": {"latitude": step}}))
        results.append(backend.receive(P_CHAT, {"type": "chat_message", "message": f"p{step}"}))
        results.append(backend.receive(O_CHAT, {"type": "chat_message", "message": f"o{step}"}))
        results.append(backend.http(PHONE, "POST", f"/api/auth/alerts/{second}/location/",
                                    {"latitude": step, "longitude": 0}))
    results.append(backend.receive(O_CONSOLE, {"type": "acknowledge_alert", "alert_id": first}))
    results.append(backend.receive(O_CONSOLE, {"type": "resolve_alert", "alert_id": first}))
    for name, events in backend.streams.items():
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), name
    for result in results:
        for conn, message in result.frames:
            if message["type"] in EVENTS:
                seen.setdefault(conn, []).append(message["seq"])
    for conn, seqs in seen.items():
        stream = backend.consumers[conn].stream or ""
        assert seqs == list(range(head_at_connect[conn] + 1, len(backend.streams[stream]) + 1)), conn
    assert P_LOC not in seen  # the owner's location socket only sends
    assert len(seen[O_CONSOLE]) == 1 + 12 + 2  # second alert, 12 locations, acknowledged, resolved
    assert (len(seen[P_USER]), len(seen[P_ALERT]), len(seen[O_CHAT]), len(seen[O_LOC])) == (8, 2, 12, 6)


def test_since_replays_exactly_what_was_missed_then_the_snapshot() -> None:
    backend = model()
    alert_id = create(backend)
    connect(backend, P_CHAT, PHONE, f"/ws/chat/{alert_id}/")
    for n in range(5):
        backend.receive(P_CHAT, {"type": "chat_message", "message": f"m{n}"})
    history = backend.streams[f"chat.{alert_id}"]
    for since in range(6):
        assert to(connect(backend, 20 + since, PHONE, f"/ws/chat/{alert_id}/", since), 20 + since) == \
            history[since:]
    assert to(connect(backend, 30, PHONE, f"/ws/chat/{alert_id}/", None), 30) == []
    console(backend, "acknowledge_alert", alert_id)
    console(backend, "respond_alert", alert_id)
    replay = to(connect(backend, 31, PHONE, f"/ws/alerts/{alert_id}/", 1), 31)
    assert [(m["type"], m["seq"]) for m in replay] == [("alert_updated", 2), ("alert_status", 2)]
    assert replay[-1]["alert"]["status"] == "responding"


@pytest.mark.parametrize(("since", "limit", "resync"), [(6, 1000, True), (5, 1000, False), (1, 3, True),
                                                        (2, 3, False), (0, 4, True)])
def test_resync_required_beyond_the_head_or_the_replay_limit(since: int, limit: int, resync: bool) -> None:
    backend = model(replay_limit=limit)
    alert_id = create(backend)
    connect(backend, P_CHAT, PHONE, f"/ws/chat/{alert_id}/")
    for n in range(5):
        backend.receive(P_CHAT, {"type": "chat_message", "message": f"m{n}"})
    frames = to(connect(backend, 20, PHONE, f"/ws/chat/{alert_id}/", since), 20)
    if resync:
        assert frames == [{"type": "resync_required", "since": since, "head": 5, "seq": 5}]
    else:
        assert [m["seq"] for m in frames] == list(range(since + 1, 6))
    assert backend.consumers[20].last_seq == 5


@pytest.mark.parametrize("drop_rate", [0.0, 1.0])
def test_the_socket_gets_its_own_copy_before_its_ack(drop_rate: float) -> None:
    backend = model(drop_rate=drop_rate, gap_fill=True)
    alert_id = create(backend)
    connect(backend, P_CHAT, PHONE, f"/ws/chat/{alert_id}/")
    connect(backend, O_CHAT, OPERATOR, f"/ws/chat/{alert_id}/")
    for conn, cmid in ((P_CHAT, "p:1"), (O_CHAT, "o:1"), (P_CHAT, "p:2")):
        message = {"type": "chat_message", "message": cmid, "client_msg_id": cmid}
        mine = to(backend.receive(conn, message), conn)
        assert [m["type"] for m in mine][-2:] == ["chat_message", "ack"]
        assert mine[-2]["client_msg_id"] == cmid and mine[-1]["client_msg_id"] == cmid
        assert [m["seq"] for m in mine if m["type"] == "chat_message"] == list(
            range(mine[0]["seq"], mine[-2]["seq"] + 1))


def test_with_gap_fill_every_event_arrives_in_order_on_the_next_ping() -> None:
    backend = model(drop_rate=1.0, gap_fill=True)
    connect(backend, O_CONSOLE, OPERATOR, "/ws/alerts/")
    results = [backend.http(PHONE, "POST", CREATE, {"latitude": n, "longitude": 0}) for n in range(4)]
    assert all(to(result, O_CONSOLE) == [] for result in results)
    assert backend.dropped_events == 4
    pong = backend.receive(O_CONSOLE, {"type": "ping"})
    assert [(m["type"], m["seq"]) for m in to(pong, O_CONSOLE)] == [
        ("new_alert", 1), ("new_alert", 2), ("new_alert", 3), ("new_alert", 4), ("pong", 4)]


def test_with_gap_fill_the_next_delivered_event_brings_the_missed_ones_first() -> None:
    backend = model(scripted(0.1, 0.1, 0.9), drop_rate=0.5, gap_fill=True)
    connect(backend, O_CONSOLE, OPERATOR, "/ws/alerts/")
    results = [backend.http(PHONE, "POST", CREATE, {"latitude": n, "longitude": 0}) for n in range(3)]
    assert [[m["seq"] for m in to(result, O_CONSOLE)] for result in results] == [[], [], [1, 2, 3]]


def test_without_gap_fill_dropped_events_are_lost_and_counted() -> None:
    backend = model(scripted(0.1, 0.9, 0.1, 0.1, 0.9), drop_rate=0.5, gap_fill=False)
    connect(backend, O_CONSOLE, OPERATOR, "/ws/alerts/")
    results = [backend.http(PHONE, "POST", CREATE, {"latitude": n, "longitude": 0}) for n in range(5)]
    delivered = [m["seq"] for result in results for m in to(result, O_CONSOLE)]
    pong = to(backend.receive(O_CONSOLE, {"type": "ping"}), O_CONSOLE)
    assert (delivered, pong) == ([2, 5], [{"type": "pong", "seq": 5}])
    assert backend.dropped_events == 3 == len(backend.streams["console"]) - len(delivered)


def test_operator_chat_reaches_the_phone_as_chat_and_as_operator_message() -> None:
    backend = model()
    alert_id = create(backend)
    connect(backend, P_USER, PHONE, "/ws/user/7/")
    connect(backend, P_CHAT, PHONE, f"/ws/chat/{alert_id}/")
    connect(backend, O_CHAT, OPERATOR, f"/ws/chat/{alert_id}/")
    result = backend.receive(O_CHAT, {"type": "chat_message", "message": "on our way"})
    [chat] = to(result, P_CHAT)
    [note] = to(result, P_USER)
    assert (chat["type"], chat["message"], chat["sender_id"], chat["is_staff"]) == (
        "chat_message", "on our way", OPERATOR, True)
    assert (note["type"], note["alert_id"], note["message"]["message"], note["operator"], note["seq"]) == (
        "operator_message", alert_id, "on our way", {"id": OPERATOR}, 1)
    phone_chat = backend.receive(P_CHAT, {"type": "chat_message", "message": "thanks"})
    assert to(phone_chat, P_USER) == []  # the phone's own chat is not an operator message


def test_status_changes_reach_the_phone_on_its_user_and_alert_channels() -> None:
    backend = model()
    alert_id = create(backend)
    connect(backend, P_USER, PHONE, "/ws/user/7/")
    connect(backend, P_ALERT, PHONE, f"/ws/alerts/{alert_id}/")
    console(backend, "acknowledge_alert", alert_id)
    [update] = backend.streams[f"user.{PHONE}"]
    assert (update["type"], update["message"], update["alert"]["status"]) == (
        "alert_status_update", "acknowledged", "acknowledged")
    assert backend.streams[f"alert.{alert_id}"][0]["type"] == "alert_updated"
    assert [e["type"] for e in backend.streams["console"]] == ["new_alert", "alert_acknowledged"]


def test_http_endpoints() -> None:
    backend = model()
    assert backend.http(STRANGER, "GET", "/api/auth/alerts/x/", None).status == 401
    bad = backend.http(PHONE, "POST", CREATE, {"longitude": 1.0})
    assert (bad.status, bad.body["code"]) == (400, "invalid_field")
    created = backend.http(PHONE, "POST", CREATE, {"latitude": 1.0, "longitude": 2.0})
    assert (created.status, created.body["success"], created.body["alert"]["status"]) == (201, True, "active")
    alert_id = str(created.body["alert_id"])
    path = f"/api/auth/alerts/{alert_id}/"
    posted = backend.http(PHONE, "POST", path + "location/", {"latitude": 1.5, "longitude": 2.5})
    assert posted.status == 200 and backend.alerts[alert_id].locations[0]["via"] == "http"
    assert backend.http(OTHER, "POST", path + "location/", {"latitude": 1, "longitude": 1}).status == 403
    assert backend.http(OPERATOR, "POST", path + "location/", {"latitude": 1, "longitude": 1}).status == 403
    got = backend.http(PHONE, "GET", path, None)
    assert (got.status, got.body["id"], len(got.body["location_history"])) == (200, alert_id, 1)
    assert backend.http(OPERATOR, "GET", path, None).status == 200
    assert backend.http(OTHER, "GET", path, None).status == 403
    assert backend.http(PHONE, "GET", "/api/auth/alerts/nope/", None).status == 404
    assert backend.http(PHONE, "POST", "/api/auth/nothing/here/", {}).status == 404
    assert backend.http(OTHER, "POST", path + "cancel/", {}).status == 403
    canceled = backend.http(PHONE, "POST", path + "cancel/", {})
    assert (canceled.status, canceled.body["alert"]["status"]) == (200, "canceled")
    assert backend.http(PHONE, "POST", path + "cancel/", {}).status == 409
    late = backend.http(PHONE, "POST", path + "location/", {"latitude": 1, "longitude": 1})
    assert (late.status, late.body["code"]) == (409, "alert_closed")
    records = backend.stored_records()
    assert [r["alert_id"] for kind, r in records if kind == "create"] == [alert_id]
    assert [r["latitude"] for kind, r in records if kind == "location"] == [1.5]
