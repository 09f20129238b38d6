"""Every WebSocket route and every message type, through the real auth middleware and URL router.

Each route's connect message, each phone->server and operator->server message, and each broadcast
the backend makes (to operators, to the phone's user channel, to an alert's own channel).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import AsyncClient

from beacon_backend import services, streams
from beacon_backend.models import Alert, ChatMessage, LocationUpdate, StreamEvent
from tests.backend.fixtures import access_token, make_user
from tests.backend.sockets import Sockets

Message = dict[str, Any]
LAT, LON = 52.52, 13.405
LOCATION = {"latitude": 52.5200001, "longitude": 13.4049999, "accuracy": 8.5, "altitude": 34.0,
            "speed": 1.5, "heading": 90.0, "provider": "gps", "battery_level": 77.0}


pytestmark = pytest.mark.usefixtures("fast_passwords")


def new_alert(user: User, **extra: Any) -> Alert:
    outcome = services.create_alert(user, {"latitude": LAT, "longitude": LON, "accuracy": 5, **extra})
    return Alert.objects.get(pk=outcome.reply["alert_id"])


def set_status(alert: Alert, status: str) -> None:
    Alert.objects.filter(pk=alert.pk).update(status=status)


def cast() -> tuple[User, User, Alert]:
    phone = make_user("phone")
    operator = make_user("operator", staff=True)
    return phone, operator, new_alert(phone)


def reload(alert: Alert) -> Alert:
    return Alert.objects.get(pk=alert.pk)


async def receive(comm: WebsocketCommunicator, count: int) -> list[Message]:
    return [await comm.receive_json_from(timeout=3) for _ in range(count)]


def by_type(messages: list[Message]) -> dict[str, Message]:
    found = {m["type"]: m for m in messages}
    assert len(found) == len(messages), f"duplicate types in {messages}"
    return found


def in_order(messages: list[Message], *kinds: str) -> dict[str, Message]:
    """The frames are exactly ``kinds``, in that order (the sender's own event before its reply)."""
    assert [m["type"] for m in messages] == list(kinds), messages
    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(seqs), f"seq went backwards on one socket: {messages}"
    return by_type(messages)


# -- /ws/user/{id}/ ------------------------------------------------------------------------------

async def test_user_channel_sends_nothing_on_connect_and_pongs(sockets: Sockets) -> None:
    phone = await database_sync_to_async(make_user)("phone")
    comm, before = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    assert before == []
    await comm.send_json_to({"type": "ping", "timestamp": 1700000000})
    assert await comm.receive_json_from() == {"type": "pong", "timestamp": 1700000000, "seq": 0}
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from() == {"type": "pong", "seq": 0}
    assert await comm.receive_nothing()


async def test_staff_may_open_any_user_channel(sockets: Sockets) -> None:
    phone, operator, _ = await database_sync_to_async(cast)()
    comm, before = await sockets.open(f"/ws/user/{phone.pk}/", operator)
    assert before == []
    await comm.send_json_to({"type": "ping", "timestamp": 3})
    assert await comm.receive_json_from() == {"type": "pong", "timestamp": 3, "seq": 0}


# -- /ws/alerts/ (operator console) ---------------------------------------------------------------

async def test_console_connect_lists_open_alerts_only(sockets: Sockets) -> None:
    def arrange() -> tuple[User, set[str]]:
        phone, operator, first = cast()
        second = new_alert(phone, priority=5)
        acked = new_alert(phone)
        set_status(acked, "acknowledged")
        for status in ("resolved", "canceled", "false_alarm"):
            set_status(new_alert(phone), status)
        return operator, {str(first.id), str(second.id), str(acked.id)}

    operator, open_ids = await database_sync_to_async(arrange)()
    _, before = await sockets.open("/ws/alerts/", operator)
    assert [m["type"] for m in before] == ["active_alerts"]
    snapshot = before[0]
    assert snapshot["count"] == 3
    assert {a["id"] for a in snapshot["alerts"]} == open_ids
    assert all(a["is_active"] for a in snapshot["alerts"])
    assert isinstance(snapshot["seq"], int)


async def test_console_with_no_alerts_gets_empty_list(sockets: Sockets) -> None:
    operator = await database_sync_to_async(make_user)("operator", staff=True)
    _, before = await sockets.open("/ws/alerts/", operator)
    assert before == [{"type": "active_alerts", "alerts": [], "count": 0, "seq": 0}]


async def test_get_active_alerts_replies_with_current_list(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    comm, _ = await sockets.open("/ws/alerts/", operator)
    await database_sync_to_async(set_status)(alert, "resolved")
    await comm.send_json_to({"type": "get_active_alerts"})
    reply = await comm.receive_json_from()
    assert reply["type"] == "active_alerts"
    assert (reply["alerts"], reply["count"]) == ([], 0)
    later = await database_sync_to_async(new_alert)(phone)
    await comm.send_json_to({"type": "get_active_alerts"})
    reply = await comm.receive_json_from()
    assert reply["count"] == 1
    assert [a["id"] for a in reply["alerts"]] == [str(later.id)]


async def test_new_alert_from_services_reaches_every_operator_only(sockets: Sockets) -> None:
    phone, operator, _ = await database_sync_to_async(cast)()
    second = await database_sync_to_async(make_user)("operator2", staff=True)
    console_a, _ = await sockets.open("/ws/alerts/", operator)
    console_b, _ = await sockets.open("/ws/alerts/", second)
    user_channel, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    outcome = await database_sync_to_async(services.create_alert)(
        phone, {"latitude": 1.5, "longitude": -2.25, "description": "help"})
    await streams.publish(outcome.events)
    for console in (console_a, console_b):
        event = await console.receive_json_from()
        assert event["type"] == "new_alert"
        assert event["alert"]["id"] == outcome.reply["alert_id"]
        assert event["alert"]["status"] == "active"
        assert (event["alert"]["latitude"], event["alert"]["longitude"]) == (1.5, -2.25)
        assert event["alert"]["description"] == "help"
        assert event["seq"] == 2  # the first alert was event 1 on the console stream
        assert await console.receive_nothing()
    assert await user_channel.receive_nothing()


async def test_new_alert_from_the_http_view_reaches_operators(sockets: Sockets) -> None:
    phone, operator, _ = await database_sync_to_async(cast)()
    console, _ = await sockets.open("/ws/alerts/", operator)
    response = await AsyncClient().post(
        "/api/auth/panic/create/", {"latitude": 10.0, "longitude": 20.0, "priority": 5},
        content_type="application/json", headers={"Authorization": f"Bearer {access_token(phone)}"})
    assert response.status_code == 201
    created = response.json()
    event = await console.receive_json_from(timeout=3)
    assert event["type"] == "new_alert"
    assert event["alert"]["id"] == created["alert_id"]
    assert event["alert"]["priority"] == 5
    assert event["alert"]["user"] == phone.pk
    assert await console.receive_nothing()


# -- operator status actions on /ws/alerts/ -------------------------------------------------------

async def test_acknowledge_alert_reaches_operators_phone_and_alert_channel(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    other = await database_sync_to_async(make_user)("operator2", staff=True)
    console, _ = await sockets.open("/ws/alerts/", operator)
    other_console, _ = await sockets.open("/ws/alerts/", other)
    user_channel, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    alert_channel, _ = await sockets.open(f"/ws/alerts/{alert.id}/", phone)

    await console.send_json_to({"type": "acknowledge_alert", "alert_id": str(alert.id)})
    mine = in_order(await receive(console, 2), "alert_acknowledged", "success")
    assert mine["success"]["message"] == "Alert acknowledged"
    assert mine["success"]["seq"] == 2  # the reply covers the event this socket was just sent
    assert mine["success"]["result"]["seqs"] == {"console": 2, f"user.{phone.pk}": 1,
                                                 f"alert.{alert.id}": 1}
    assert mine["success"]["result"]["alert"]["status"] == "acknowledged"
    for event in (mine["alert_acknowledged"], (await other_console.receive_json_from())):
        assert event["type"] == "alert_acknowledged"
        assert event["alert"]["id"] == str(alert.id)
        assert event["alert"]["status"] == "acknowledged"
        assert event["alert"]["assigned_operator"] == operator.pk
        assert event["operator"]["id"] == operator.pk
        assert event["operator"]["username"] == "operator"
        assert event["seq"] == 2
    update = await user_channel.receive_json_from()
    assert update["type"] == "alert_status_update"
    assert update["alert"]["status"] == "acknowledged"
    assert update["message"] == "An operator has acknowledged your alert."
    assert update["seq"] == 1
    updated = await alert_channel.receive_json_from()
    assert (updated["type"], updated["alert"]["status"]) == ("alert_updated", "acknowledged")
    assert updated["seq"] == 1
    for comm in (console, other_console, user_channel, alert_channel):
        assert await comm.receive_nothing()
    stored = await database_sync_to_async(reload)(alert)
    assert stored.status == "acknowledged"
    assert stored.assigned_operator_id == operator.pk
    assert stored.acknowledged_at is not None


@pytest.mark.parametrize(("action", "start", "status", "console_event", "phone_message"), [
    ("respond_alert", "acknowledged", "responding", "alert_updated", "Help is on the way."),
    ("respond_alert", "active", "responding", "alert_updated", "Help is on the way."),
    ("resolve_alert", "responding", "resolved", "alert_resolved", "Your alert has been resolved."),
    ("resolve_alert", "acknowledged", "resolved", "alert_resolved", "Your alert has been resolved."),
    ("false_alarm", "active", "false_alarm", "alert_updated", "Your alert was closed as a false alarm."),
    ("false_alarm", "acknowledged", "false_alarm", "alert_updated",
     "Your alert was closed as a false alarm."),
    ("false_alarm", "responding", "false_alarm", "alert_updated",
     "Your alert was closed as a false alarm."),
])
async def test_operator_status_actions(sockets: Sockets, action: str, start: str, status: str,
                                       console_event: str, phone_message: str) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(set_status)(alert, start)
    console, _ = await sockets.open("/ws/alerts/", operator)
    user_channel, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    alert_channel, _ = await sockets.open(f"/ws/alerts/{alert.id}/", operator)
    await console.send_json_to({"type": action, "alert_id": str(alert.id), "notes": "done by op"})
    mine = in_order(await receive(console, 2), console_event, "success")
    assert mine["success"]["result"]["alert"]["status"] == status
    event = mine[console_event]
    assert event["alert"]["status"] == status
    assert event["operator"]["id"] == operator.pk
    update = await user_channel.receive_json_from()
    assert (update["type"], update["alert"]["status"]) == ("alert_status_update", status)
    assert update["message"] == phone_message
    updated = await alert_channel.receive_json_from()
    assert (updated["type"], updated["alert"]["status"]) == ("alert_updated", status)
    stored = await database_sync_to_async(reload)(alert)
    assert stored.status == status
    assert stored.notes == "done by op"
    assert (stored.resolved_at is not None) == (status in ("resolved", "false_alarm"))
    if status == "responding":
        assert stored.assigned_operator_id == operator.pk


@pytest.mark.parametrize("start", ["acknowledged", "responding", "resolved", "canceled", "false_alarm"])
async def test_acknowledge_only_from_active(sockets: Sockets, start: str) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(set_status)(alert, start)
    events_before = await database_sync_to_async(StreamEvent.objects.count)()
    console, _ = await sockets.open("/ws/alerts/", operator)
    user_channel, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    await console.send_json_to({"type": "acknowledge_alert", "alert_id": str(alert.id)})
    error = await console.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "invalid_transition")
    assert await console.receive_nothing()
    assert await user_channel.receive_nothing()
    stored = await database_sync_to_async(reload)(alert)
    assert (stored.status, stored.acknowledged_at, stored.assigned_operator_id) == (start, None, None)
    assert await database_sync_to_async(StreamEvent.objects.count)() == events_before


async def test_resolve_needs_an_acknowledged_or_responding_alert(sockets: Sockets) -> None:
    """PROTOCOL: active -> resolved is not a move; the operator acknowledges (or responds) first."""
    phone, operator, alert = await database_sync_to_async(cast)()
    events_before = await database_sync_to_async(StreamEvent.objects.count)()
    console, _ = await sockets.open("/ws/alerts/", operator)
    user_channel, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    await console.send_json_to({"type": "resolve_alert", "alert_id": str(alert.id), "notes": "x",
                                "client_msg_id": "op:r"})
    error = await console.receive_json_from()
    assert (error["type"], error["code"], error["client_msg_id"]) == ("error", "invalid_transition", "op:r")
    assert await console.receive_nothing()
    assert await user_channel.receive_nothing()
    stored = await database_sync_to_async(reload)(alert)
    assert (stored.status, stored.notes, stored.resolved_at) == ("active", "", None)
    assert await database_sync_to_async(StreamEvent.objects.count)() == events_before


@pytest.mark.parametrize("closed", ["resolved", "canceled", "false_alarm"])
@pytest.mark.parametrize("action", ["acknowledge_alert", "respond_alert", "resolve_alert", "false_alarm"])
async def test_closed_alerts_never_reopen_for_operators(sockets: Sockets, closed: str, action: str) -> None:
    _, operator, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(set_status)(alert, closed)
    console, _ = await sockets.open("/ws/alerts/", operator)
    await console.send_json_to({"type": action, "alert_id": str(alert.id), "notes": "x"})
    error = await console.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "invalid_transition")
    assert await console.receive_nothing()
    stored = await database_sync_to_async(reload)(alert)
    assert (stored.status, stored.notes, stored.resolved_at) == (closed, "", None)


@pytest.mark.parametrize("closed", ["resolved", "canceled", "false_alarm"])
async def test_closed_alerts_cannot_be_canceled_again(sockets: Sockets, closed: str) -> None:
    phone, _, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(set_status)(alert, closed)
    comm, _ = await sockets.open(f"/ws/alerts/{alert.id}/", phone)
    await comm.send_json_to({"type": "cancel_alert"})
    error = await comm.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "invalid_transition")
    assert await comm.receive_nothing()
    assert (await database_sync_to_async(reload)(alert)).status == closed


# -- /ws/alerts/{id}/ ---------------------------------------------------------------------------

@pytest.mark.parametrize("who", ["owner", "operator"])
async def test_alert_channel_sends_alert_status_on_connect(sockets: Sockets, who: str) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    _, before = await sockets.open(f"/ws/alerts/{alert.id}/", phone if who == "owner" else operator)
    assert [m["type"] for m in before] == ["alert_status"]
    assert before[0]["alert"]["id"] == str(alert.id)
    assert before[0]["alert"]["status"] == "active"
    assert before[0]["alert"]["user"] == phone.pk
    assert before[0]["seq"] == 0


async def test_get_status_replies_with_the_current_status(sockets: Sockets) -> None:
    phone, _, alert = await database_sync_to_async(cast)()
    comm, _ = await sockets.open(f"/ws/alerts/{alert.id}/", phone)
    await database_sync_to_async(set_status)(alert, "responding")
    await comm.send_json_to({"type": "get_status"})
    reply = await comm.receive_json_from()
    assert reply["type"] == "alert_status"
    assert (reply["alert"]["id"], reply["alert"]["status"]) == (str(alert.id), "responding")
    assert await comm.receive_nothing()


async def test_owner_cancel_alert_reaches_everyone(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    console, _ = await sockets.open("/ws/alerts/", operator)
    user_channel, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    alert_channel, _ = await sockets.open(f"/ws/alerts/{alert.id}/", phone)
    watcher, _ = await sockets.open(f"/ws/alerts/{alert.id}/", operator)

    await alert_channel.send_json_to({"type": "cancel_alert"})
    mine = in_order(await receive(alert_channel, 2), "alert_updated", "success")
    assert mine["success"]["message"] == "Alert canceled"
    assert mine["success"]["seq"] == 1
    assert (mine["alert_updated"]["alert"]["status"], mine["alert_updated"]["seq"]) == ("canceled", 1)
    seen = await watcher.receive_json_from()
    assert (seen["type"], seen["alert"]["status"]) == ("alert_updated", "canceled")
    canceled = await console.receive_json_from()
    assert canceled["type"] == "alert_canceled"
    assert canceled["alert"]["id"] == str(alert.id)
    assert canceled["alert"]["status"] == "canceled"
    assert "operator" not in canceled
    update = await user_channel.receive_json_from()
    assert update["type"] == "alert_status_update"
    assert update["alert"]["status"] == "canceled"
    assert update["message"] == "Your alert has been canceled."
    for comm in (console, user_channel, alert_channel, watcher):
        assert await comm.receive_nothing()
    assert (await database_sync_to_async(reload)(alert)).status == "canceled"


# -- /ws/location/{id}/ ------------------------------------------------------------------------

@pytest.mark.parametrize("who", ["owner", "operator"])
async def test_location_channel_without_locations_sends_nothing(sockets: Sockets, who: str) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    _, before = await sockets.open(f"/ws/location/{alert.id}/", phone if who == "owner" else operator)
    assert before == []


@pytest.mark.parametrize("who", ["owner", "operator"])
async def test_location_channel_sends_the_last_location(sockets: Sockets, who: str) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    for latitude in (1.0, 2.0, 3.0):
        await database_sync_to_async(services.add_location)(
            phone, alert.id, {"latitude": latitude, "longitude": 4.0, "accuracy": 3}, "ws")
    _, before = await sockets.open(f"/ws/location/{alert.id}/", phone if who == "owner" else operator)
    assert [m["type"] for m in before] == ["last_location"]
    assert before[0]["alert_id"] == str(alert.id)
    assert (before[0]["location"]["latitude"], before[0]["location"]["longitude"]) == (3.0, 4.0)


async def test_location_update_is_stored_broadcast_and_confirmed(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    console, _ = await sockets.open("/ws/alerts/", operator)
    listener, _ = await sockets.open(f"/ws/location/{alert.id}/", operator)
    sender, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    await sender.send_json_to({"type": "location_update", "location": LOCATION,
                               "timestamp": "2025-05-01T12:00:00Z"})
    reply = await sender.receive_json_from()
    assert (reply["type"], reply["message"]) == ("success", "Location updated")
    assert reply["seq"] == 0  # the phone does not follow its own location stream: nothing delivered
    assert reply["result"]["seqs"] == {f"location.{alert.id}": 1, "console": 2}
    assert await sender.receive_nothing()

    rows = await database_sync_to_async(lambda: list(LocationUpdate.objects.filter(alert=alert)))()
    assert len(rows) == 1
    row = rows[0]
    assert reply["result"]["location_id"] == row.pk
    assert (row.latitude, row.longitude) == (Decimal("52.5200001"), Decimal("13.4049999"))
    assert (row.accuracy, row.altitude, row.speed, row.heading) == (8.5, 34.0, 1.5, 90.0)
    assert (row.provider, row.battery_level, row.via) == ("gps", 77.0, "ws")
    assert row.client_timestamp == "2025-05-01T12:00:00Z"

    for comm, seq in ((listener, 1), (console, 2)):
        event = await comm.receive_json_from()
        assert event["type"] == "location_update"
        assert event["alert_id"] == str(alert.id)
        assert event["seq"] == seq
        location = event["location"]
        assert location["id"] == row.pk
        assert {k: location[k] for k in LOCATION} == LOCATION
        assert location["timestamp"] == "2025-05-01T12:00:00Z"
        assert await comm.receive_nothing()


# -- /ws/chat/{id}/ ----------------------------------------------------------------------------

async def test_phone_chat_is_echoed_to_the_whole_group(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    phone_chat, before = await sockets.open(f"/ws/chat/{alert.id}/", phone)
    assert before == []
    operator_chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", operator)
    user_channel, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    await phone_chat.send_json_to({"type": "chat_message", "message": "I am at the station"})
    mine = in_order(await receive(phone_chat, 2), "chat_message", "success")
    assert mine["success"]["message"] == "Message sent"
    assert mine["success"]["seq"] == 1
    assert mine["success"]["result"]["seqs"] == {f"chat.{alert.id}": 1}
    theirs = await operator_chat.receive_json_from()
    for event in (mine["chat_message"], theirs):
        assert event["type"] == "chat_message"
        assert event["message"] == "I am at the station"
        assert (event["sender"], event["sender_id"], event["is_staff"]) == ("phone", phone.pk, False)
        assert isinstance(event["timestamp"], str)
        assert event["seq"] == 1
    assert await user_channel.receive_nothing()  # only operators' messages reach the user channel
    rows = await database_sync_to_async(lambda: list(ChatMessage.objects.values_list(
        "alert_id", "sender_id", "message", "is_staff")))()
    assert rows == [(alert.id, phone.pk, "I am at the station", False)]


async def test_operator_chat_also_reaches_the_phone_user_channel(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    phone_chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", phone)
    operator_chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", operator)
    user_channel, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    await operator_chat.send_json_to({"type": "chat_message", "message": "Help is coming"})
    mine = in_order(await receive(operator_chat, 2), "chat_message", "success")
    assert mine["success"]["result"]["seqs"] == {f"chat.{alert.id}": 1, f"user.{phone.pk}": 1}
    echo = await phone_chat.receive_json_from()
    for event in (mine["chat_message"], echo):
        assert (event["type"], event["message"]) == ("chat_message", "Help is coming")
        assert (event["sender"], event["sender_id"], event["is_staff"]) == ("operator", operator.pk, True)
    pushed = await user_channel.receive_json_from()
    assert pushed["type"] == "operator_message"
    assert pushed["alert_id"] == str(alert.id)
    assert pushed["message"]["message"] == "Help is coming"
    assert pushed["operator"]["id"] == operator.pk
    assert pushed["operator"]["is_staff"] is True
    assert pushed["seq"] == 1
    assert await user_channel.receive_nothing()
    count = await database_sync_to_async(ChatMessage.objects.filter(alert=alert, is_staff=True).count)()
    assert count == 1
