"""Bad input never kills a socket and never half-writes: each gets an error code, then ping works."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from beacon_backend import services
from beacon_backend.models import Alert, ChatMessage, ClientMessage, LocationUpdate, StreamEvent
from tests.backend.fixtures import make_user
from tests.backend.sockets import Sockets

Message = dict[str, Any]
GOOD = {"latitude": 52.52, "longitude": 13.405, "accuracy": 5.0}
MAX_FRAME = 64 * 1024


pytestmark = pytest.mark.usefixtures("fast_passwords")


def cast() -> tuple[User, User, Alert]:
    phone = make_user("phone")
    operator = make_user("operator", staff=True)
    outcome = services.create_alert(phone, {"latitude": 52.52, "longitude": 13.405})
    return phone, operator, Alert.objects.get(pk=outcome.reply["alert_id"])


def counts() -> tuple[int, int, int, int]:
    return (LocationUpdate.objects.count(), ChatMessage.objects.count(), ClientMessage.objects.count(),
            StreamEvent.objects.count())


async def expect_error(comm: WebsocketCommunicator, code: str) -> Message:
    error = await comm.receive_json_from(timeout=3)
    assert error["type"] == "error", error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["seq"], int)
    return error


async def still_alive(comm: WebsocketCommunicator) -> None:
    await comm.send_json_to({"type": "ping", "timestamp": "alive"})
    pong = await comm.receive_json_from(timeout=3)
    assert (pong["type"], pong["timestamp"]) == ("pong", "alive")
    assert await comm.receive_nothing()


# -- frames that are not messages ---------------------------------------------------------------

@pytest.mark.parametrize(("frame", "code"), [
    ("{", "invalid_json"),
    ("not json", "invalid_json"),
    ("{'type': 'ping'}", "invalid_json"),
    ('{"type": "ping"', "invalid_json"),
    ("", "invalid_json"),
    ("[]", "invalid_message"),
    ('[{"type": "ping"}]', "invalid_message"),
    ("42", "invalid_message"),
    ("3.5", "invalid_message"),
    ('"ping"', "invalid_message"),
    ("null", "invalid_message"),
    ("true", "invalid_message"),
    ("{}", "invalid_message"),
    ('{"timestamp": 1}', "invalid_message"),
    ('{"type": 7}', "invalid_message"),
    ('{"type": null}', "invalid_message"),
    ('{"type": ["ping"]}', "invalid_message"),
    ('{"type": {"name": "ping"}}', "invalid_message"),
    ('{"type": "teleport"}', "unknown_type"),
    ('{"type": ""}', "unknown_type"),
    ('{"type": "PING"}', "unknown_type"),
])
async def test_bad_frames_get_an_error_and_the_socket_lives(sockets: Sockets, frame: str, code: str) -> None:
    phone = await database_sync_to_async(make_user)("phone")
    comm, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    await comm.send_input({"type": "websocket.receive", "text": frame})
    await expect_error(comm, code)
    await still_alive(comm)


async def test_binary_frame_gets_an_error_and_the_socket_lives(sockets: Sockets) -> None:
    phone, _, alert = await database_sync_to_async(cast)()
    for path in (f"/ws/user/{phone.pk}/", f"/ws/chat/{alert.id}/"):
        comm, _ = await sockets.open(path, phone)
        await comm.send_to(bytes_data=json.dumps({"type": "ping"}).encode())
        await expect_error(comm, "binary_frame")
        await comm.send_input({"type": "websocket.receive", "bytes": b""})
        await expect_error(comm, "binary_frame")
        await still_alive(comm)


async def test_unknown_type_echoes_client_msg_id(sockets: Sockets) -> None:
    phone = await database_sync_to_async(make_user)("phone")
    comm, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    await comm.send_json_to({"type": "teleport", "client_msg_id": "d:9"})
    error = await expect_error(comm, "unknown_type")
    assert error["client_msg_id"] == "d:9"
    await still_alive(comm)


@pytest.mark.parametrize(("name", "kind"), [
    ("user", "chat_message"), ("user", "location_update"), ("user", "acknowledge_alert"),
    ("console", "chat_message"), ("console", "cancel_alert"), ("console", "location_update"),
    ("alert", "acknowledge_alert"), ("alert", "chat_message"), ("alert", "get_active_alerts"),
    ("location", "chat_message"), ("location", "cancel_alert"),
    ("chat", "location_update"), ("chat", "get_status"), ("chat", "resolve_alert"),
])
async def test_each_route_refuses_other_routes_messages(sockets: Sockets, name: str, kind: str) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    path = {"user": f"/ws/user/{phone.pk}/", "console": "/ws/alerts/", "alert": f"/ws/alerts/{alert.id}/",
            "location": f"/ws/location/{alert.id}/", "chat": f"/ws/chat/{alert.id}/"}[name]
    comm, _ = await sockets.open(path, operator if name == "console" else phone)
    before = await database_sync_to_async(counts)()
    await comm.send_json_to({"type": kind, "alert_id": str(alert.id), "message": "hi",
                             "location": GOOD})
    await expect_error(comm, "unknown_type")
    await still_alive(comm)
    assert await database_sync_to_async(counts)() == before
    assert (await database_sync_to_async(Alert.objects.get)(pk=alert.pk)).status == "active"


DEEP = {
    "open-arrays": "[" * 20000,
    "open-objects": '{"a":' * 4000,
    "closed-arrays": "[" * 10000 + "]" * 10000,
    "in-a-message": '{"type": "chat_message", "message": ' + "[" * 10000 + "]" * 10000 + "}",
}


@pytest.mark.parametrize("frame", list(DEEP.values()), ids=list(DEEP))
@pytest.mark.parametrize("route", ["user", "chat"])
async def test_deeply_nested_json_is_invalid_json_and_the_socket_lives(sockets: Sockets, frame: str,
                                                                       route: str) -> None:
    """About 20 KB of nesting is under the frame limit but beyond the parser's recursion limit."""
    phone, _, alert = await database_sync_to_async(cast)()
    path = f"/ws/user/{phone.pk}/" if route == "user" else f"/ws/chat/{alert.id}/"
    comm, _ = await sockets.open(path, phone)
    assert 20000 <= len(frame.encode()) < MAX_FRAME
    await comm.send_to(text_data=frame)
    await expect_error(comm, "invalid_json")
    await still_alive(comm)
    assert await database_sync_to_async(counts)() == (0, 0, 0, 1)  # only the alert's new_alert


# -- frame size ------------------------------------------------------------------------------

def padded_ping(total_bytes: int, filler: str = "a") -> str:
    """A ping frame of exactly ``total_bytes`` UTF-8 bytes."""
    empty = json.dumps({"type": "ping", "pad": ""}, ensure_ascii=False)
    room = total_bytes - len(empty.encode())
    width = len(filler.encode())
    assert room % width == 0
    frame = json.dumps({"type": "ping", "pad": filler * (room // width)}, ensure_ascii=False)
    assert len(frame.encode()) == total_bytes
    return frame


@pytest.mark.parametrize(("size", "filler"), [(MAX_FRAME, "a"), (MAX_FRAME - 1, "é"), (MAX_FRAME - 1, "€")])
async def test_frames_up_to_64_kib_are_handled(sockets: Sockets, size: int, filler: str) -> None:
    phone = await database_sync_to_async(make_user)("phone")
    comm, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    await comm.send_to(text_data=padded_ping(size, filler))
    assert await comm.receive_json_from() == {"type": "pong", "seq": 0}


@pytest.mark.parametrize(("size", "filler"), [(MAX_FRAME + 1, "a"), (MAX_FRAME + 1, "é"),
                                              (66000, "€"), (200_000, "a")])
async def test_frames_over_64_kib_close_1009(sockets: Sockets, size: int, filler: str) -> None:
    phone = await database_sync_to_async(make_user)("phone")
    comm, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    await comm.send_to(text_data=padded_ping(size, filler))
    assert await comm.receive_output(timeout=3) == {"type": "websocket.close", "code": 1009}


# -- location fields ----------------------------------------------------------------------------

@pytest.mark.parametrize("location", [
    {**GOOD, "latitude": True},
    {**GOOD, "latitude": [52.5]},
    {**GOOD, "latitude": "abc"},
    {**GOOD, "latitude": None},
    {**GOOD, "latitude": {"deg": 52}},
    {**GOOD, "latitude": "nan"},
    {**GOOD, "longitude": "inf"},
    {"longitude": 13.4, "accuracy": 5},
    {"latitude": 52.5, "accuracy": 5},
    {**GOOD, "latitude": 91},
    {**GOOD, "latitude": -90.0000001},
    {**GOOD, "longitude": -181},
    {**GOOD, "longitude": 180.5},
    {**GOOD, "accuracy": -1},
    {**GOOD, "accuracy": "wide"},
    {**GOOD, "accuracy": False},
    {**GOOD, "speed": -0.5},
    {**GOOD, "heading": 361},
    {**GOOD, "battery_level": 101},
    {**GOOD, "altitude": [1]},
    {**GOOD, "provider": 5},
    {**GOOD, "provider": "g" * 33},
])
async def test_bad_location_fields_store_nothing(sockets: Sockets, location: Message) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    console, _ = await sockets.open("/ws/alerts/", operator)
    comm, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    before = await database_sync_to_async(counts)()
    await comm.send_json_to({"type": "location_update", "location": location, "client_msg_id": "p:1"})
    error = await expect_error(comm, "invalid_field")
    assert error["client_msg_id"] == "p:1"
    await still_alive(comm)
    assert await console.receive_nothing()
    assert await database_sync_to_async(counts)() == before
    assert before[0] == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_json_numbers_are_invalid_fields(sockets: Sockets, literal: str) -> None:
    phone, _, alert = await database_sync_to_async(cast)()
    comm, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    frame = '{"type": "location_update", "location": {"latitude": LAT, "longitude": 1.0}}'
    await comm.send_to(text_data=frame.replace("LAT", literal))
    await expect_error(comm, "invalid_field")
    await still_alive(comm)
    assert await database_sync_to_async(LocationUpdate.objects.count)() == 0


@pytest.mark.parametrize("field", ["latitude", "longitude", "accuracy", "heading", "battery_level"])
async def test_huge_integers_are_invalid_fields_not_internal_errors(sockets: Sockets, field: str) -> None:
    """``float(10**400)`` raises OverflowError; that is bad input (invalid_field), not a server fault."""
    phone, _, alert = await database_sync_to_async(cast)()
    comm, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    await comm.send_json_to({"type": "location_update", "location": {**GOOD, field: 10**400}})
    error = await comm.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "invalid_field"), error
    await still_alive(comm)
    assert await database_sync_to_async(LocationUpdate.objects.count)() == 0


@pytest.mark.parametrize("frame", [
    {"type": "location_update"},
    {"type": "location_update", "location": None},
    {"type": "location_update", "location": [52.5, 13.4]},
    {"type": "location_update", "location": "52.5,13.4"},
    {"type": "location_update", "location": GOOD, "timestamp": {"t": 1}},
    {"type": "location_update", "location": GOOD, "timestamp": "t" * 41},
])
async def test_bad_location_message_shapes_store_nothing(sockets: Sockets, frame: Message) -> None:
    phone, _, alert = await database_sync_to_async(cast)()
    comm, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    await comm.send_json_to(frame)
    await expect_error(comm, "invalid_field")
    await still_alive(comm)
    assert await database_sync_to_async(LocationUpdate.objects.count)() == 0


async def test_coordinates_are_rounded_to_seven_decimals(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    listener, _ = await sockets.open(f"/ws/location/{alert.id}/", operator)
    comm, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    await comm.send_json_to({"type": "location_update",
                             "location": {"latitude": 12.123456789, "longitude": -45.00000004999}})
    assert (await comm.receive_json_from())["type"] == "success"
    row = await database_sync_to_async(LocationUpdate.objects.get)(alert=alert)
    assert (row.latitude, row.longitude) == (Decimal("12.1234568"), Decimal("-45.0000000"))
    event = await listener.receive_json_from()
    assert (event["location"]["latitude"], event["location"]["longitude"]) == (12.1234568, -45.0)
    assert event["location"]["accuracy"] is None  # accuracy is optional on the socket


async def test_location_for_a_closed_alert_is_refused(sockets: Sockets) -> None:
    phone, _, alert = await database_sync_to_async(cast)()
    comm, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    await database_sync_to_async(Alert.objects.filter(pk=alert.pk).update)(status="resolved")
    await comm.send_json_to({"type": "location_update", "location": GOOD})
    await expect_error(comm, "alert_closed")
    await still_alive(comm)
    assert await database_sync_to_async(LocationUpdate.objects.count)() == 0


# -- chat fields --------------------------------------------------------------------------------

@pytest.mark.parametrize("frame", [
    {"type": "chat_message"},
    {"type": "chat_message", "message": 42},
    {"type": "chat_message", "message": None},
    {"type": "chat_message", "message": ["hi"]},
    {"type": "chat_message", "message": {"text": "hi"}},
    {"type": "chat_message", "message": True},
    {"type": "chat_message", "message": ""},
    {"type": "chat_message", "message": "   \n\t"},
    {"type": "chat_message", "message": "x" * 4001},
    {"type": "chat_message", "message": "hi", "client_msg_id": 7},
    {"type": "chat_message", "message": "hi", "client_msg_id": ""},
    {"type": "chat_message", "message": "hi", "client_msg_id": ["d:1"]},
    {"type": "chat_message", "message": "hi", "client_msg_id": "d" * 101},
])
async def test_bad_chat_messages_store_nothing(sockets: Sockets, frame: Message) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    listener, _ = await sockets.open(f"/ws/chat/{alert.id}/", operator)
    comm, _ = await sockets.open(f"/ws/chat/{alert.id}/", phone)
    before = await database_sync_to_async(counts)()
    await comm.send_json_to(frame)
    await expect_error(comm, "invalid_field")
    await still_alive(comm)
    assert await listener.receive_nothing()
    assert await database_sync_to_async(counts)() == before


@pytest.mark.parametrize("raw", [
    '{"type": "chat_message", "message": "\\u0000"}',
    '{"type": "chat_message", "message": "hi\\u0000there"}',
    '{"type": "chat_message", "message": "\\ud800"}',
    '{"type": "chat_message", "message": "a\\udfffb", "client_msg_id": "p:s"}',
    '{"type": "chat_message", "message": "\\udc00\\ud800"}',
], ids=["nul", "nul-inside", "high-surrogate", "low-surrogate-with-id", "reversed-pair"])
async def test_nul_and_lone_surrogates_in_chat_store_nothing(sockets: Sockets, raw: str) -> None:
    """JSON can carry NUL and a lone surrogate as escapes; the text field refuses both."""
    phone, operator, alert = await database_sync_to_async(cast)()
    listener, _ = await sockets.open(f"/ws/chat/{alert.id}/", operator)
    comm, _ = await sockets.open(f"/ws/chat/{alert.id}/", phone)
    before = await database_sync_to_async(counts)()
    await comm.send_to(text_data=raw)
    error = await expect_error(comm, "invalid_field")
    assert error["message"].startswith("message:")
    await still_alive(comm)
    assert await listener.receive_nothing()
    assert await database_sync_to_async(counts)() == before


@pytest.mark.parametrize(("where", "raw"), [
    ("location", '{"type": "location_update", "location": {"latitude": 1, "longitude": 2, '
                 '"provider": "g\\u0000ps"}}'),
    ("location", '{"type": "location_update", "location": {"latitude": 1, "longitude": 2, '
                 '"provider": "\\ud83d"}}'),
    ("console", '{"type": "false_alarm", "alert_id": "{alert}", "notes": "\\u0000"}'),
    ("console", '{"type": "resolve_alert", "alert_id": "{alert}", "notes": "\\udbff"}'),
], ids=["provider-nul", "provider-surrogate", "notes-nul", "notes-surrogate"])
async def test_nul_and_lone_surrogates_in_other_text_fields_store_nothing(sockets: Sockets, where: str,
                                                                          raw: str) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(Alert.objects.filter(pk=alert.pk).update)(status="acknowledged")
    if where == "location":
        comm, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    else:
        comm, _ = await sockets.open("/ws/alerts/", operator)
    before = await database_sync_to_async(counts)()
    await comm.send_to(text_data=raw.replace("{alert}", str(alert.id)))
    await expect_error(comm, "invalid_field")
    await still_alive(comm)
    assert await database_sync_to_async(counts)() == before
    stored = await database_sync_to_async(Alert.objects.get)(pk=alert.pk)
    assert (stored.status, stored.notes) == ("acknowledged", "")


@pytest.mark.parametrize("raw", [
    '{"type": "chat_message", "message": "hi", "client_msg_id": "p\\u0000:1"}',
    '{"type": "chat_message", "message": "hi", "client_msg_id": "p:\\ud800"}',
], ids=["nul", "surrogate"])
async def test_an_unstorable_client_msg_id_is_an_invalid_field(sockets: Sockets, raw: str) -> None:
    phone, _, alert = await database_sync_to_async(cast)()
    comm, _ = await sockets.open(f"/ws/chat/{alert.id}/", phone)
    await comm.send_to(text_data=raw)
    error = await expect_error(comm, "invalid_field")
    assert error["message"].startswith("client_msg_id:")
    await still_alive(comm)
    assert await database_sync_to_async(counts)() == (0, 0, 0, 1)


async def test_longest_chat_message_is_accepted(sockets: Sockets) -> None:
    phone, _, alert = await database_sync_to_async(cast)()
    comm, _ = await sockets.open(f"/ws/chat/{alert.id}/", phone)
    await comm.send_json_to({"type": "chat_message", "message": "x" * 4000, "client_msg_id": "d" * 100})
    echo = await comm.receive_json_from()  # the sender's own copy comes before the ack
    assert (echo["type"], echo["message"], echo["seq"]) == ("chat_message", "x" * 4000, 1)
    ack = await comm.receive_json_from()
    assert (ack["type"], ack["client_msg_id"], ack["seq"]) == ("ack", "d" * 100, 1)
    assert await database_sync_to_async(ChatMessage.objects.count)() == 1


async def test_a_refused_message_does_not_consume_its_client_msg_id(sockets: Sockets) -> None:
    phone, _, alert = await database_sync_to_async(cast)()
    comm, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    await comm.send_json_to({"type": "location_update", "client_msg_id": "p:5",
                             "location": {**GOOD, "latitude": 91}})
    assert (await expect_error(comm, "invalid_field"))["client_msg_id"] == "p:5"
    await comm.send_json_to({"type": "location_update", "client_msg_id": "p:5", "location": GOOD})
    ack = await comm.receive_json_from()
    assert (ack["type"], ack["client_msg_id"], ack["repeated"]) == ("ack", "p:5", False)
    assert await database_sync_to_async(LocationUpdate.objects.count)() == 1


async def test_a_client_msg_id_inside_the_location_is_ignored(sockets: Sockets) -> None:
    """Only the message's own (top-level) client_msg_id is an idempotency key."""
    phone, _, alert = await database_sync_to_async(cast)()
    comm, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    inner = {**GOOD, "client_msg_id": "inner:1"}
    for _ in range(2):
        await comm.send_json_to({"type": "location_update", "location": inner})
        reply = await comm.receive_json_from()
        assert (reply["type"], reply["message"]) == ("success", "Location updated"), reply
    rows = await database_sync_to_async(lambda: list(LocationUpdate.objects.values_list("client_msg_id",
                                                                                        flat=True)))()
    assert len(rows) == 2 and not any(rows)
    assert await database_sync_to_async(ClientMessage.objects.count)() == 0
    # With a top-level id as well, the top-level one counts (and the inner one still does not).
    for _ in range(2):
        await comm.send_json_to({"type": "location_update", "location": {**GOOD, "client_msg_id": "inner:2"},
                                 "client_msg_id": "top:1"})
        ack = await comm.receive_json_from()
        assert (ack["type"], ack["client_msg_id"]) == ("ack", "top:1"), ack
    assert await database_sync_to_async(LocationUpdate.objects.count)() == 3
    assert await database_sync_to_async(LocationUpdate.objects.filter(client_msg_id="top:1").count)() == 1
    await still_alive(comm)


# -- operator actions --------------------------------------------------------------------------

@pytest.mark.parametrize(("frame", "code"), [
    ({"type": "acknowledge_alert"}, "invalid_field"),
    ({"type": "acknowledge_alert", "alert_id": 5}, "invalid_field"),
    ({"type": "acknowledge_alert", "alert_id": ""}, "invalid_field"),
    ({"type": "acknowledge_alert", "alert_id": None}, "invalid_field"),
    ({"type": "resolve_alert", "alert_id": "{alert}", "notes": 12}, "invalid_field"),
    ({"type": "respond_alert", "alert_id": "{alert}", "client_msg_id": 3}, "invalid_field"),
    ({"type": "acknowledge_alert", "alert_id": "00000000-0000-4000-8000-000000000000"}, "not_found"),
    ({"type": "false_alarm", "alert_id": "00000000-0000-4000-8000-000000000000"}, "not_found"),
])
async def test_bad_operator_actions_change_nothing(sockets: Sockets, frame: Message, code: str) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    console, _ = await sockets.open("/ws/alerts/", operator)
    user_channel, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    before = await database_sync_to_async(counts)()
    sent = {k: (str(alert.id) if v == "{alert}" else v) for k, v in frame.items()}
    await console.send_json_to(sent)
    await expect_error(console, code)
    await still_alive(console)
    assert await user_channel.receive_nothing()
    assert await database_sync_to_async(counts)() == before
    assert (await database_sync_to_async(Alert.objects.get)(pk=alert.pk)).status == "active"


@pytest.mark.parametrize("alert_id", ["garbage", "12345", "not-a-uuid-at-all"])
async def test_malformed_alert_id_is_a_client_error_not_an_internal_one(sockets: Sockets,
                                                                       alert_id: str) -> None:
    """A non-UUID alert_id is bad input: ``not_found`` (or ``invalid_field``), never ``internal_error``."""
    _, operator, _ = await database_sync_to_async(cast)()
    console, _ = await sockets.open("/ws/alerts/", operator)
    await console.send_json_to({"type": "acknowledge_alert", "alert_id": alert_id})
    error = await console.receive_json_from()
    assert error["type"] == "error"
    assert error["code"] in ("not_found", "invalid_field"), error
    await still_alive(console)
