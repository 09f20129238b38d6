"""Part B over the sockets: client_msg_id idempotency, per-stream seq, ``?since=`` replay, gap fill."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from beacon_backend import heads, services, streams
from beacon_backend.asgi import application
from beacon_backend.heads import HEADS
from beacon_backend.models import Alert, ChatMessage, ClientMessage, LocationUpdate, StreamEvent
from tests.backend.fixtures import access_token, communicator, make_user
from tests.backend.sockets import Sockets

Message = dict[str, Any]
GOOD = {"latitude": 52.52, "longitude": 13.405, "accuracy": 5.0}


pytestmark = pytest.mark.usefixtures("fast_passwords")


def cast() -> tuple[User, User, Alert]:
    phone = make_user("phone")
    operator = make_user("operator", staff=True)
    outcome = services.create_alert(phone, {"latitude": 52.52, "longitude": 13.405})
    return phone, operator, Alert.objects.get(pk=outcome.reply["alert_id"])


def count(model: Any, **filters: Any) -> Callable[[], int]:
    return lambda: int(model.objects.filter(**filters).count())


async def until_ack(comm: WebsocketCommunicator, stored: Callable[[], int], expected: int
                    ) -> tuple[Message, list[Message]]:
    """Read until the ack; at that moment the record must already be in the database."""
    others: list[Message] = []
    for _ in range(10):
        message = await comm.receive_json_from(timeout=3)
        if message["type"] == "ack":
            assert await database_sync_to_async(stored)() == expected, "ack before the record"
            return message, others
        others.append(message)
    raise AssertionError(f"no ack, got {others}")


def offline_events(operator: User, alert: Alert) -> None:
    """Five user-stream events (and chat / alert / console ones) while nobody listens."""
    services.change_status(operator, alert.id, "acknowledged", {})
    services.send_chat(operator, alert.id, {"message": "one"})
    services.change_status(operator, alert.id, "responding", {})
    services.send_chat(operator, alert.id, {"message": "two"})
    services.send_chat(operator, alert.id, {"message": "three"})


def history(stream: str) -> list[Message]:
    return [e.message() for e in StreamEvent.objects.filter(stream=stream).order_by("seq")]


def assert_never_backwards(frames: list[Message]) -> None:
    seqs = [m["seq"] for m in frames]
    wire = [(m["type"], m["seq"]) for m in frames]
    assert seqs == sorted(seqs), f"seq went backwards on one socket: {wire}"


# -- idempotency --------------------------------------------------------------------------------

async def test_chat_message_is_stored_once_and_acked_again(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", phone)
    listener, _ = await sockets.open(f"/ws/chat/{alert.id}/", operator)
    frame = {"type": "chat_message", "message": "hello", "client_msg_id": "phone:1"}
    await chat.send_json_to(frame)
    first, before = await until_ack(chat, count(ChatMessage, client_msg_id="phone:1"), 1)
    # The sender's echo comes first, so the ack's seq covers it (and seq never goes backwards).
    assert [(m["type"], m["seq"], m["client_msg_id"]) for m in before] == [("chat_message", 1, "phone:1")]
    assert (first["client_msg_id"], first["repeated"], first["seq"]) == ("phone:1", False, 1)
    assert first["result"]["seqs"] == {f"chat.{alert.id}": 1}
    assert await chat.receive_nothing()  # the live copy of the echo is dropped
    await chat.send_json_to(frame)
    again = await chat.receive_json_from()
    assert (again["type"], again["repeated"], again["seq"]) == ("ack", True, 1)
    assert again["result"]["message_id"] == first["result"]["message_id"]
    assert await chat.receive_nothing()
    assert (await listener.receive_json_from())["seq"] == 1
    assert await listener.receive_nothing()
    assert await database_sync_to_async(count(ChatMessage))() == 1
    assert await database_sync_to_async(count(ClientMessage))() == 1


async def test_location_update_is_stored_once_and_acked_again(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    console, _ = await sockets.open("/ws/alerts/", operator)
    listener, _ = await sockets.open(f"/ws/location/{alert.id}/", operator)
    sender, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    frame = {"type": "location_update", "location": GOOD, "client_msg_id": "phone:7"}
    await sender.send_json_to(frame)
    first, before = await until_ack(sender, count(LocationUpdate, client_msg_id="phone:7"), 1)
    assert before == []
    # The phone does not follow its location stream: ack.seq is what this socket delivered (none);
    # the seq the record got on each stream is in result.seqs.
    assert (first["repeated"], first["seq"]) == (False, 0)
    assert first["result"]["seqs"] == {f"location.{alert.id}": 1, "console": 2}
    await sender.send_json_to(frame)
    again, before = await until_ack(sender, count(LocationUpdate), 1)
    assert before == []
    assert (again["repeated"], again["seq"]) == (True, 0)
    assert again["result"]["seqs"] == first["result"]["seqs"]
    assert again["result"]["location_id"] == first["result"]["location_id"]
    assert await sender.receive_nothing()
    assert (await listener.receive_json_from())["type"] == "location_update"
    assert (await console.receive_json_from())["type"] == "location_update"
    assert await listener.receive_nothing()
    assert await console.receive_nothing()


async def test_cancel_alert_is_applied_once_and_acked_again(sockets: Sockets) -> None:
    phone, _, alert = await database_sync_to_async(cast)()
    comm, _ = await sockets.open(f"/ws/alerts/{alert.id}/", phone)
    await comm.send_json_to({"type": "cancel_alert", "client_msg_id": "phone:c"})
    first, before = await until_ack(comm, count(Alert, pk=alert.pk, status="canceled"), 1)
    assert [(m["type"], m["seq"]) for m in before] == [("alert_updated", 1)]
    assert (first["repeated"], first["seq"]) == (False, 1)
    assert await comm.receive_nothing()
    await comm.send_json_to({"type": "cancel_alert", "client_msg_id": "phone:c"})
    again = await comm.receive_json_from()
    assert (again["type"], again["repeated"], again["seq"]) == ("ack", True, 1)  # not invalid_transition
    assert await comm.receive_nothing()
    assert await database_sync_to_async(count(StreamEvent, stream=f"alert.{alert.id}"))() == 1


@pytest.mark.parametrize(("action", "start", "status", "event"), [
    ("acknowledge_alert", "active", "acknowledged", "alert_acknowledged"),
    ("resolve_alert", "acknowledged", "resolved", "alert_resolved"),
])
async def test_operator_action_is_applied_once_and_acked_again(sockets: Sockets, action: str, start: str,
                                                               status: str, event: str) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(Alert.objects.filter(pk=alert.pk).update)(status=start)
    other = await database_sync_to_async(make_user)("operator2", staff=True)
    console, _ = await sockets.open("/ws/alerts/", operator)
    watcher, _ = await sockets.open("/ws/alerts/", other)
    user_channel, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    frame = {"type": action, "alert_id": str(alert.id), "client_msg_id": "op:1"}
    await console.send_json_to(frame)
    first, before = await until_ack(console, count(Alert, pk=alert.pk, status=status), 1)
    assert [(m["type"], m["seq"]) for m in before] == [(event, 2)]  # new_alert was console event 1
    assert (first["repeated"], first["seq"]) == (False, 2)
    await console.send_json_to(frame)
    again = await console.receive_json_from()
    assert (again["type"], again["repeated"], again["seq"]) == ("ack", True, 2)
    assert again["result"]["alert"]["status"] == status
    assert await console.receive_nothing()
    seen = await watcher.receive_json_from()
    assert (seen["type"], seen["seq"]) == (event, 2)
    assert await watcher.receive_nothing()
    assert (await user_channel.receive_json_from())["seq"] == 1
    assert await user_channel.receive_nothing()
    assert await database_sync_to_async(count(ClientMessage, sender=operator))() == 1


async def test_client_msg_id_reused_for_another_kind_is_refused(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", phone)
    location, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    alert_channel, _ = await sockets.open(f"/ws/alerts/{alert.id}/", phone)
    await chat.send_json_to({"type": "chat_message", "message": "hi", "client_msg_id": "dev:1"})
    await until_ack(chat, count(ChatMessage), 1)
    await location.send_json_to({"type": "location_update", "location": GOOD, "client_msg_id": "dev:1"})
    error = await location.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "client_msg_id_reused")
    assert error["client_msg_id"] == "dev:1"
    await alert_channel.send_json_to({"type": "cancel_alert", "client_msg_id": "dev:1"})
    error = await alert_channel.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "client_msg_id_reused")
    assert await database_sync_to_async(count(LocationUpdate))() == 0
    assert await database_sync_to_async(count(Alert, status="active"))() == 1

    console, _ = await sockets.open("/ws/alerts/", operator)
    frame = {"alert_id": str(alert.id), "client_msg_id": "o:1"}
    await console.send_json_to({"type": "acknowledge_alert", **frame})
    _, before = await until_ack(console, count(Alert, status="acknowledged"), 1)
    assert [m["type"] for m in before] == ["alert_acknowledged"]
    await console.send_json_to({"type": "resolve_alert", **frame})
    error = await console.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "client_msg_id_reused")
    assert await console.receive_nothing()
    assert await database_sync_to_async(count(Alert, status="acknowledged"))() == 1


async def test_the_same_client_msg_id_from_two_senders_is_two_messages(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    phone_chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", phone)
    operator_chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", operator)
    await phone_chat.send_json_to({"type": "chat_message", "message": "a", "client_msg_id": "x:1"})
    first, _ = await until_ack(phone_chat, count(ChatMessage), 1)
    await operator_chat.send_json_to({"type": "chat_message", "message": "b", "client_msg_id": "x:1"})
    second, _ = await until_ack(operator_chat, count(ChatMessage), 2)
    assert (first["repeated"], second["repeated"]) == (False, False)
    assert (first["seq"], second["seq"]) == (1, 2)


# -- seq on every message, per stream -------------------------------------------------------------

async def test_every_server_message_carries_seq_and_streams_count_by_one(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    console, seen_console = await sockets.open("/ws/alerts/", operator)
    user_channel, seen_user = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    alert_channel, seen_alert = await sockets.open(f"/ws/alerts/{alert.id}/", phone)
    chat, seen_chat = await sockets.open(f"/ws/chat/{alert.id}/", operator)
    for action in ("acknowledge_alert", "respond_alert", "resolve_alert"):
        await console.send_json_to({"type": action, "alert_id": str(alert.id)})
        await chat.send_json_to({"type": "chat_message", "message": action})
    await console.send_json_to({"type": "teleport"})
    await chat.send_input({"type": "websocket.receive", "text": "{"})
    for comm, seen, total in ((console, seen_console, 7), (user_channel, seen_user, 6),
                              (alert_channel, seen_alert, 3), (chat, seen_chat, 7)):
        seen.extend([await comm.receive_json_from(timeout=3) for _ in range(total)])
        assert await comm.receive_nothing()
        await comm.send_json_to({"type": "ping"})
        seen.append(await comm.receive_json_from())
    everything = seen_console + seen_user + seen_alert + seen_chat
    assert all(isinstance(m.get("seq"), int) and not isinstance(m["seq"], bool) for m in everything)
    for seen in (seen_console, seen_user, seen_alert, seen_chat):
        assert_never_backwards(seen)
    event_types = {"alert_acknowledged", "alert_updated", "alert_resolved", "alert_status_update",
                   "operator_message", "chat_message"}

    def event_seqs(seen: list[Message]) -> list[int]:
        return [m["seq"] for m in seen if m["type"] in event_types]

    assert event_seqs(seen_console) == [2, 3, 4]
    assert event_seqs(seen_user) == [1, 2, 3, 4, 5, 6]
    assert event_seqs(seen_alert) == [1, 2, 3]
    assert event_seqs(seen_chat) == [1, 2, 3]
    last_replies = (seen_console[-1], seen_user[-1], seen_alert[-1], seen_chat[-1])
    assert [m["type"] for m in last_replies] == ["pong"] * 4
    assert [m["seq"] for m in last_replies] == [4, 6, 3, 3]  # replies carry the last delivered event seq
    errors = [m for m in seen_console + seen_chat if m["type"] == "error"]
    assert sorted(m["code"] for m in errors) == ["invalid_json", "unknown_type"]


# -- ?since= replay ---------------------------------------------------------------------------------

async def test_user_channel_replays_missed_events_in_order_then_live(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(offline_events)(operator, alert)
    stored = await database_sync_to_async(history)(f"user.{phone.pk}")
    assert [m["seq"] for m in stored] == [1, 2, 3, 4, 5]
    comm, replayed = await sockets.open(f"/ws/user/{phone.pk}/", phone, since=2)
    assert replayed == stored[2:]
    assert [m["type"] for m in replayed] == ["alert_status_update", "operator_message", "operator_message"]
    outcome = await database_sync_to_async(services.send_chat)(operator, alert.id, {"message": "live"})
    await streams.publish(outcome.events)
    live = await comm.receive_json_from()
    assert (live["type"], live["seq"], live["message"]["message"]) == ("operator_message", 6, "live")
    assert await comm.receive_nothing()


async def test_chat_replays_missed_messages_in_order(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    for text in ("a", "b", "c", "d"):
        await database_sync_to_async(services.send_chat)(operator, alert.id, {"message": text})
    comm, replayed = await sockets.open(f"/ws/chat/{alert.id}/", phone, since=1)
    assert [(m["type"], m["seq"], m["message"]) for m in replayed] == [
        ("chat_message", 2, "b"), ("chat_message", 3, "c"), ("chat_message", 4, "d")]
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from() == {"type": "pong", "seq": 4}


@pytest.mark.parametrize(("since", "expected"), [(0, [1, 2, 3, 4, 5]), (4, [5]), (5, [])])
async def test_since_edges(sockets: Sockets, since: int, expected: list[int]) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(offline_events)(operator, alert)
    _, replayed = await sockets.open(f"/ws/user/{phone.pk}/", phone, since=since)
    assert [m["seq"] for m in replayed] == expected


async def test_replay_is_delivered_once_even_if_the_live_copy_arrives(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()

    def events() -> list[streams.Event]:
        return services.send_chat(operator, alert.id, {"message": "late"}).events

    late = await database_sync_to_async(events)()
    comm, replayed = await sockets.open(f"/ws/user/{phone.pk}/", phone, since=0)
    assert [m["seq"] for m in replayed] == [1]
    await streams.publish(late)  # the live copy of an event already replayed
    await streams.publish(late)
    assert await comm.receive_nothing()


async def test_since_beyond_the_head_asks_for_resync(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(offline_events)(operator, alert)
    comm, before = await sockets.open(f"/ws/user/{phone.pk}/", phone, since=9)
    assert before == [{"type": "resync_required", "since": 9, "head": 5, "seq": 5}]
    outcome = await database_sync_to_async(services.send_chat)(operator, alert.id, {"message": "x"})
    await streams.publish(outcome.events)
    assert (await comm.receive_json_from())["seq"] == 6


async def test_too_many_missed_events_ask_for_resync(sockets: Sockets,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "BEACON_REPLAY_LIMIT", 3)
    phone, operator, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(offline_events)(operator, alert)
    _, before = await sockets.open(f"/ws/user/{phone.pk}/", phone, since=1)
    assert before == [{"type": "resync_required", "since": 1, "head": 5, "seq": 5}]
    _, replayed = await sockets.open(f"/ws/user/{phone.pk}/", phone, since=2)  # exactly the limit
    assert [m["seq"] for m in replayed] == [3, 4, 5]


async def test_since_on_the_alert_channel_replays_before_the_snapshot(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(offline_events)(operator, alert)
    _, before = await sockets.open(f"/ws/alerts/{alert.id}/", phone, since=1)
    assert [(m["type"], m["seq"]) for m in before] == [("alert_updated", 2), ("alert_status", 2)]
    assert before[0]["alert"]["status"] == "responding"


async def test_malformed_since_starts_at_the_head(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(offline_events)(operator, alert)
    for raw in ("abc", "-1", "1.5"):
        path = f"/ws/user/{phone.pk}/?token={access_token(phone)}&since={raw}"
        comm = WebsocketCommunicator(application, path)
        _, before = await sockets.open("", phone, comm=comm)
        assert before == []
        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from() == {"type": "pong", "seq": 5}


async def test_a_unicode_digit_since_is_treated_as_malformed(db: None) -> None:
    """``?since=²``: ``"²".isdigit()`` is true but ``int("²")`` fails; the socket must still work."""
    phone, operator, alert = await database_sync_to_async(cast)()
    await database_sync_to_async(offline_events)(operator, alert)
    path = f"/ws/user/{phone.pk}/?token={access_token(phone)}&since=%C2%B2"
    comm = WebsocketCommunicator(application, path)
    try:
        connected, _ = await comm.connect(timeout=3)
        assert connected
        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from(timeout=3) == {"type": "pong", "seq": 5}
    except BaseException:
        comm.stop(exceptions=False)
        raise
    await comm.disconnect(timeout=3)


# -- gap fill ----------------------------------------------------------------------------------

def two_unpublished(phone: User) -> tuple[streams.Event, streams.Event]:
    with transaction.atomic():
        first = streams.append(f"user.{phone.pk}", {"type": "operator_message", "message": {"message": "1"}})
        second = streams.append(f"user.{phone.pk}", {"type": "operator_message", "message": {"message": "2"}})
    return first, second


async def test_a_lost_live_event_is_fetched_before_the_next_one(sockets: Sockets) -> None:
    phone = await database_sync_to_async(make_user)("phone")
    comm, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    first, second = await database_sync_to_async(two_unpublished)(phone)
    await streams.publish([second])
    assert await comm.receive_json_from() == first.message
    assert await comm.receive_json_from() == second.message
    assert first.message["seq"] == 1 and second.message["seq"] == 2
    await streams.publish([first, second])  # late copies are dropped
    assert await comm.receive_nothing()
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from() == {"type": "pong", "seq": 2}


async def test_a_gap_beyond_the_replay_limit_asks_for_resync(sockets: Sockets,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "BEACON_REPLAY_LIMIT", 1)
    phone = await database_sync_to_async(make_user)("phone")
    comm, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    await database_sync_to_async(two_unpublished)(phone)
    _, third = await database_sync_to_async(two_unpublished)(phone)
    await streams.publish([third])
    # Events 1..3 cannot be fetched (over the limit): resync up to 3, then the live event 4.
    assert await comm.receive_json_from() == {"type": "resync_required", "since": 0, "head": 3, "seq": 0}
    assert await comm.receive_json_from() == third.message
    assert await comm.receive_nothing()


# -- the sender's own event comes before its reply --------------------------------------------------

def unpublished_chat(sender: User, alert: Alert, text: str) -> list[streams.Event]:
    """A chat message committed, but whose broadcast has not happened (yet, or ever)."""
    return services.send_chat(sender, alert.id, {"message": text}).events


async def test_an_ack_never_overtakes_an_earlier_event_of_its_stream(sockets: Sockets) -> None:
    """Another sender's message committed first but is not broadcast yet: this socket still gets it,
    and its own echo, before the ack, so the ack's seq is a safe resume point."""
    phone, operator, alert = await database_sync_to_async(cast)()
    chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", operator)
    late = await database_sync_to_async(unpublished_chat)(phone, alert, "in flight")
    await chat.send_json_to({"type": "chat_message", "message": "reply", "client_msg_id": "op:1"})
    frames = [await chat.receive_json_from(timeout=3) for _ in range(3)]
    assert [(m["type"], m["seq"]) for m in frames] == [("chat_message", 1), ("chat_message", 2), ("ack", 2)]
    assert [m.get("message") for m in frames[:2]] == ["in flight", "reply"]
    assert frames[2]["result"]["seqs"] == {f"chat.{alert.id}": 2, f"user.{phone.pk}": 1}
    await streams.publish(late)  # the late live copies are dropped
    assert await chat.receive_nothing()
    await chat.send_json_to({"type": "ping"})
    assert await chat.receive_json_from() == {"type": "pong", "seq": 2}


async def test_a_success_reply_also_follows_the_senders_own_event(sockets: Sockets) -> None:
    phone, _, alert = await database_sync_to_async(cast)()
    chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", phone)
    await chat.send_json_to({"type": "chat_message", "message": "no id"})
    frames = [await chat.receive_json_from(timeout=3) for _ in range(2)]
    assert [(m["type"], m["seq"]) for m in frames] == [("chat_message", 1), ("success", 1)]
    assert await chat.receive_nothing()


EVENT_TYPES = frozenset({"chat_message", "operator_message"})
REPLY_TYPES = frozenset({"ack", "success", "error", "pong"})


async def collect_until_pong(comm: WebsocketCommunicator, marker: str) -> list[Message]:
    frames: list[Message] = []
    for _ in range(500):
        message = await comm.receive_json_from(timeout=5)
        if message == {"type": "pong", "timestamp": marker, "seq": message["seq"]}:
            frames.append(message)
            return frames
        frames.append(message)
    raise AssertionError(f"no pong {marker!r} in {frames}")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_seq_never_goes_backwards_on_a_socket_under_mixed_traffic(sockets: Sockets, seed: int) -> None:
    """Property: whatever the mix (acks, plain replies, errors, pings, repeats, other senders, late or
    lost broadcasts), the seqs on one socket never decrease, every event arrives once and in order,
    and every reply covers the event its action produced on that socket's stream."""
    rng = random.Random(seed)
    phone, operator, alert = await database_sync_to_async(cast)()
    op_chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", operator)
    phone_chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", phone)
    user_channel, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    requests = {id(op_chat): 0, id(phone_chat): 0}
    used_ids: list[str] = []
    late: list[streams.Event] = []
    for step in range(60):
        comm = rng.choice([op_chat, phone_chat])
        choice = rng.random()
        if choice < 0.35:
            frame: Message = {"type": "chat_message", "message": f"m{step}"}
            if rng.random() < 0.6:
                if used_ids and rng.random() < 0.25:
                    frame["client_msg_id"] = rng.choice(used_ids)  # a repeat (or another sender's id)
                else:
                    frame["client_msg_id"] = f"c:{step}"
                    used_ids.append(frame["client_msg_id"])
            await comm.send_json_to(frame)
            requests[id(comm)] += 1
        elif choice < 0.45:
            await comm.send_json_to({"type": "ping", "timestamp": step})
            requests[id(comm)] += 1
        elif choice < 0.5:
            await comm.send_input({"type": "websocket.receive", "text": "{"})
            requests[id(comm)] += 1
        elif choice < 0.75:
            sender = rng.choice([phone, operator])
            late.extend(await database_sync_to_async(unpublished_chat)(sender, alert, f"late {step}"))
        elif late:
            rng.shuffle(late)
            keep = rng.randrange(len(late) + 1)
            await streams.publish(late[keep:])  # some broadcasts now, in any order; the rest later
            late = late[:keep]
    rng.shuffle(late)
    await streams.publish(late[: len(late) // 2])  # the other half is never broadcast: lost

    everyone = (op_chat, phone_chat, user_channel)
    seen: dict[int, list[Message]] = {id(comm): [] for comm in everyone}
    for comm in everyone:  # every request has been handled once its socket answers this ping
        await comm.send_json_to({"type": "ping", "timestamp": "drained"})
        seen[id(comm)].extend(await collect_until_pong(comm, "drained"))
    heads = await database_sync_to_async(lambda: {
        "chat": streams.head(f"chat.{alert.id}"), "user": streams.head(f"user.{phone.pk}")})()
    for comm, head in ((op_chat, heads["chat"]), (phone_chat, heads["chat"]), (user_channel, heads["user"])):
        await comm.send_json_to({"type": "ping", "timestamp": "end"})  # also fetches lost last events
        frames = seen[id(comm)] + await collect_until_pong(comm, "end")
        frames = [m for m in frames if m.get("timestamp") not in ("drained", "end")]
        assert_never_backwards(frames)
        events = [m["seq"] for m in frames if m["type"] in EVENT_TYPES]
        assert events == list(range(1, head + 1)), "each event once, in order, none missing"
        replies = [m for m in frames if m["type"] in REPLY_TYPES]
        assert len(replies) == requests.get(id(comm), 0)
        stream = f"user.{phone.pk}" if comm is user_channel else f"chat.{alert.id}"
        for reply in replies:
            own = reply.get("result", {}).get("seqs", {}).get(stream)
            if own is not None:
                assert reply["seq"] >= own, f"{reply} does not cover its own event"
        assert await comm.receive_nothing(timeout=0.05)


# -- a listener that lost an event gets it again -------------------------------------------------

async def test_a_repeat_republishes_the_events_a_listener_lost(sockets: Sockets) -> None:
    phone, operator, alert = await database_sync_to_async(cast)()
    op_chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", operator)
    phone_chat, _ = await sockets.open(f"/ws/chat/{alert.id}/", phone)
    user_channel, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)

    def committed_but_never_broadcast() -> None:
        services.send_chat(operator, alert.id, {"message": "on our way", "client_msg_id": "op:9"})

    await database_sync_to_async(committed_but_never_broadcast)()
    frame = {"type": "chat_message", "message": "on our way", "client_msg_id": "op:9"}
    await op_chat.send_json_to(frame)  # the operator resends: stored once, broadcast again
    mine = [await op_chat.receive_json_from() for _ in range(2)]
    assert [(m["type"], m["seq"]) for m in mine] == [("chat_message", 1), ("ack", 1)]
    assert mine[1]["repeated"] is True
    heard = await phone_chat.receive_json_from()
    assert (heard["type"], heard["seq"], heard["message"]) == ("chat_message", 1, "on our way")
    note = await user_channel.receive_json_from()
    assert (note["type"], note["seq"], note["message"]["message"]) == ("operator_message", 1, "on our way")
    for comm in (op_chat, phone_chat, user_channel):
        assert await comm.receive_nothing()

    await op_chat.send_json_to(frame)  # everyone has it now: the republished copies are dropped
    again = await op_chat.receive_json_from()
    assert (again["type"], again["repeated"], again["seq"]) == ("ack", True, 1)
    for comm in (op_chat, phone_chat, user_channel):
        assert await comm.receive_nothing()
    assert await database_sync_to_async(count(ChatMessage))() == 1


def append_unpublished(stream: str, text: str) -> streams.Event:
    with transaction.atomic():
        return streams.append(stream, {"type": "operator_message", "message": {"message": text}})


async def test_ping_first_delivers_a_lost_last_event(sockets: Sockets) -> None:
    """The last event's broadcast was lost, so no later event reveals the gap: the heartbeat does."""
    phone = await database_sync_to_async(make_user)("phone")
    comm, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)
    lost = await database_sync_to_async(append_unpublished)(f"user.{phone.pk}", "lost")
    await HEADS.refresh()  # the process's periodic read of its streams' heads (every second)
    await comm.send_json_to({"type": "ping", "timestamp": 5})
    assert await comm.receive_json_from() == lost.message
    assert await comm.receive_json_from() == {"type": "pong", "timestamp": 5, "seq": 1}
    await streams.publish([lost])  # a late live copy is dropped
    assert await comm.receive_nothing()
    await comm.send_json_to({"type": "ping", "timestamp": 6})
    assert await comm.receive_json_from() == {"type": "pong", "timestamp": 6, "seq": 1}


async def test_the_head_refresh_finds_a_lost_last_event_by_itself(
        sockets: Sockets, monkeypatch: pytest.MonkeyPatch) -> None:
    """No query per ping: the process's refresh task learns the head; the ping then delivers."""
    monkeypatch.setattr(heads, "REFRESH_S", 0.05)
    phone = await database_sync_to_async(make_user)("phone")
    comm, _ = await sockets.open(f"/ws/user/{phone.pk}/", phone)

    def no_query(stream: str) -> int:
        raise AssertionError("a ping read the head from the database")

    monkeypatch.setattr(streams, "head", no_query)
    await comm.send_json_to({"type": "ping", "timestamp": 4})
    assert await comm.receive_json_from() == {"type": "pong", "timestamp": 4, "seq": 0}
    lost = await database_sync_to_async(append_unpublished)(f"user.{phone.pk}", "lost")
    for _ in range(100):  # bounded: the refresh runs every 0.05 s
        if HEADS.get(f"user.{phone.pk}") == lost.seq:
            break
        await asyncio.sleep(0.02)
    await comm.send_json_to({"type": "ping", "timestamp": 5})
    assert await comm.receive_json_from() == lost.message
    assert await comm.receive_json_from() == {"type": "pong", "timestamp": 5, "seq": 1}


async def test_ping_on_a_socket_that_follows_no_stream_delivers_nothing(sockets: Sockets) -> None:
    phone, _, alert = await database_sync_to_async(cast)()
    comm, _ = await sockets.open(f"/ws/location/{alert.id}/", phone)
    await database_sync_to_async(services.add_location)(phone, alert.id, GOOD, "ws")
    await comm.send_json_to({"type": "ping", "timestamp": 1})
    assert await comm.receive_json_from() == {"type": "pong", "timestamp": 1, "seq": 0}
    assert await comm.receive_nothing()


# -- subscribe before reading the head -------------------------------------------------------------

async def test_an_event_committed_right_after_the_head_is_read_arrives_once(
        db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The socket joins its group before it reads the stream head, so an event committed and
    broadcast in between is neither lost (joined too late) nor delivered twice."""
    phone = await database_sync_to_async(make_user)("phone")
    stream = f"user.{phone.pk}"
    read_head = streams.head
    committed: list[streams.Event] = []

    def head_then_commit(name: str) -> int:
        value = read_head(name)
        if name == stream and not committed:
            committed.append(append_unpublished(stream, "in between"))
            streams.publish_sync(committed)
        return value

    monkeypatch.setattr(streams, "head", head_then_commit)
    comm = communicator(f"/ws/user/{phone.pk}/", access_token(phone))
    try:
        connected, _ = await comm.connect(timeout=3)
        assert connected
        assert await comm.receive_json_from(timeout=3) == committed[0].message
        assert await comm.receive_nothing()
        await comm.send_json_to({"type": "ping", "timestamp": 1})
        assert await comm.receive_json_from() == {"type": "pong", "timestamp": 1, "seq": 1}
        assert await comm.receive_nothing()
    except BaseException:
        comm.stop(exceptions=False)
        raise
    await comm.disconnect(timeout=3)
