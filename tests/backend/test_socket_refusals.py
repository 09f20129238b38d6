"""Who may not use a socket, and how they are told: accept, then close 4001 / 4003 / 4004.

Also the operator's phone-only actions (location for someone else's alert, cancel): refused like a
cross-user connect, ``error forbidden`` then close 4003, and nothing stored.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import jwt
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User

from beacon_backend import services, tokens
from beacon_backend.models import Alert, ClientMessage, LocationUpdate, StreamEvent
from tests.backend.fixtures import access_token, make_user
from tests.backend.sockets import Sockets

Message = dict[str, Any]
ROUTES = ["user", "console", "alert", "location", "chat"]


pytestmark = pytest.mark.usefixtures("fast_passwords")


def new_alert(user: User) -> Alert:
    outcome = services.create_alert(user, {"latitude": 52.52, "longitude": 13.405})
    return Alert.objects.get(pk=outcome.reply["alert_id"])


def cast() -> tuple[User, User, User, Alert]:
    """Phone A with an alert, phone B, and an operator."""
    phone_a = make_user("phone-a")
    phone_b = make_user("phone-b")
    operator = make_user("operator", staff=True)
    return phone_a, phone_b, operator, new_alert(phone_a)


def route(name: str, user: User, alert: Alert | uuid.UUID) -> str:
    alert_id = alert.id if isinstance(alert, Alert) else alert
    return {
        "user": f"/ws/user/{user.pk}/",
        "console": "/ws/alerts/",
        "alert": f"/ws/alerts/{alert_id}/",
        "location": f"/ws/location/{alert_id}/",
        "chat": f"/ws/chat/{alert_id}/",
    }[name]


def mint(user_id: Any, *, exp_in: float = 3600, token_type: str = "access",
         key: str | None = None, drop: str | None = None) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"token_type": token_type, "exp": now + exp_in, "iat": now,
                              "jti": uuid.uuid4().hex, "user_id": user_id}
    if drop is not None:
        del claims[drop]
    return jwt.encode(claims, key or settings.SECRET_KEY, algorithm="HS256")


# -- 4001: no usable token ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ROUTES)
async def test_no_token_closes_4001_on_every_route(sockets: Sockets, name: str) -> None:
    phone, _, operator, alert = await database_sync_to_async(cast)()
    who = operator if name == "console" else phone
    assert await sockets.close_code(route(name, who, alert)) == 4001


@pytest.mark.parametrize("name", ROUTES)
async def test_garbage_and_expired_tokens_close_4001_on_every_route(sockets: Sockets, name: str) -> None:
    phone, _, operator, alert = await database_sync_to_async(cast)()
    who = operator if name == "console" else phone
    assert await sockets.close_code(route(name, who, alert), "not.a.jwt") == 4001
    assert await sockets.close_code(route(name, who, alert), mint(who.pk, exp_in=-60)) == 4001


@pytest.mark.parametrize("kind", ["garbage", "expired", "refresh", "wrong_key", "no_exp", "no_user_id",
                                  "string_user_id", "unknown_user", "inactive_user"])
async def test_unusable_tokens_close_4001(sockets: Sockets, kind: str) -> None:
    phone, _, operator, _ = await database_sync_to_async(cast)()
    token = {
        "garbage": "garbage",
        "expired": mint(phone.pk, exp_in=-5),
        "refresh": tokens.issue(phone.pk, "refresh"),
        "wrong_key": mint(phone.pk, key="another-secret-key-that-is-long-enough-for-hs256-0123"),
        "no_exp": mint(phone.pk, drop="exp"),
        "no_user_id": mint(phone.pk, drop="user_id"),
        "string_user_id": mint(str(phone.pk)),
        "unknown_user": mint(phone.pk + operator.pk + 1000),
        "inactive_user": mint(phone.pk),
    }[kind]
    if kind == "inactive_user":
        await database_sync_to_async(User.objects.filter(pk=phone.pk).update)(is_active=False)
    assert await sockets.close_code(f"/ws/user/{phone.pk}/", token) == 4001


async def test_refresh_token_closes_4001_even_for_staff_console(sockets: Sockets) -> None:
    _, _, operator, _ = await database_sync_to_async(cast)()
    assert await sockets.close_code("/ws/alerts/", tokens.issue(operator.pk, "refresh")) == 4001


async def test_refused_socket_gets_no_snapshot_before_the_close(sockets: Sockets) -> None:
    _, _, _, alert = await database_sync_to_async(cast)()
    comm = await sockets.accepted(f"/ws/alerts/{alert.id}/", "garbage")
    assert (await comm.receive_output(timeout=3)) == {"type": "websocket.close", "code": 4001}
    assert await comm.receive_nothing()


@pytest.mark.parametrize("name", ROUTES)
async def test_bearer_header_authenticates(sockets: Sockets, name: str) -> None:
    phone, _, operator, alert = await database_sync_to_async(cast)()
    who = operator if name == "console" else phone
    header = [(b"authorization", f"Bearer {access_token(who)}".encode())]
    await sockets.usable(route(name, who, alert), None, headers=header)


@pytest.mark.parametrize("value", ["Token {t}", "Bearer", "Basic {t}", "{t}"])
async def test_malformed_authorization_header_closes_4001(sockets: Sockets, value: str) -> None:
    phone, _, _, _ = await database_sync_to_async(cast)()
    header = [(b"authorization", value.format(t=access_token(phone)).encode())]
    assert await sockets.close_code(f"/ws/user/{phone.pk}/", headers=header) == 4001


async def test_socket_is_closed_4001_when_its_token_expires(sockets: Sockets) -> None:
    phone, _, _, _ = await database_sync_to_async(cast)()
    now = int(time.time())
    exp = now + 2
    token = jwt.encode({"token_type": "access", "exp": exp, "iat": now, "jti": "short-lived",
                        "user_id": phone.pk}, settings.SECRET_KEY, algorithm="HS256")
    comm = await sockets.usable(f"/ws/user/{phone.pk}/", token)
    await comm.send_json_to({"type": "ping", "timestamp": 1})
    assert (await comm.receive_json_from())["type"] == "pong"  # still open before expiry
    output = await comm.receive_output(timeout=exp - time.time() + 2)
    assert output == {"type": "websocket.close", "code": 4001}
    assert time.time() >= exp - 0.05, "closed before the token expired"


async def test_long_lived_token_is_not_closed(sockets: Sockets) -> None:
    phone, _, _, _ = await database_sync_to_async(cast)()
    comm = await sockets.usable(f"/ws/user/{phone.pk}/", access_token(phone))
    assert await comm.receive_nothing(timeout=0.3)


# -- 4003: not allowed ---------------------------------------------------------------------------

async def test_phone_on_another_users_channel_closes_4003(sockets: Sockets) -> None:
    phone_a, phone_b, _, _ = await database_sync_to_async(cast)()
    assert await sockets.close_code(f"/ws/user/{phone_a.pk}/", access_token(phone_b)) == 4003
    assert await sockets.close_code(f"/ws/user/{phone_a.pk + phone_b.pk + 99}/",
                                    access_token(phone_b)) == 4003


async def test_phone_on_the_operator_console_closes_4003(sockets: Sockets) -> None:
    phone, _, _, _ = await database_sync_to_async(cast)()
    comm = await sockets.accepted("/ws/alerts/", access_token(phone))
    assert (await comm.receive_output(timeout=3)) == {"type": "websocket.close", "code": 4003}
    assert await comm.receive_nothing()  # no active_alerts leaked


@pytest.mark.parametrize("name", ["alert", "location", "chat"])
async def test_phone_b_on_phone_a_alert_routes_closes_4003(sockets: Sockets, name: str) -> None:
    phone_a, phone_b, _, alert = await database_sync_to_async(cast)()
    comm = await sockets.accepted(route(name, phone_a, alert), access_token(phone_b))
    assert (await comm.receive_output(timeout=3)) == {"type": "websocket.close", "code": 4003}
    assert await comm.receive_nothing()


@pytest.mark.parametrize("name", ["alert", "location", "chat"])
@pytest.mark.parametrize("who", ["phone", "operator"])
async def test_unknown_alert_closes_4003(sockets: Sockets, name: str, who: str) -> None:
    phone, _, operator, _ = await database_sync_to_async(cast)()
    user = operator if who == "operator" else phone
    assert await sockets.close_code(route(name, user, uuid.uuid4()), access_token(user)) == 4003


@pytest.mark.parametrize("name", ["alert", "location", "chat"])
async def test_owner_and_operator_are_allowed_on_alert_routes(sockets: Sockets, name: str) -> None:
    phone_a, _, operator, alert = await database_sync_to_async(cast)()
    await sockets.usable(route(name, phone_a, alert), access_token(phone_a))
    await sockets.usable(route(name, phone_a, alert), access_token(operator))


@pytest.mark.parametrize("name", ["alert", "location", "chat"])
@pytest.mark.parametrize("alert_id", ["not-a-uuid", "12345", "%00", "{alert}x", "x{alert}",
                                      "{alert}{alert}"])
@pytest.mark.parametrize("who", ["phone", "operator"])
async def test_an_alert_id_that_is_no_uuid_closes_4003(sockets: Sockets, caplog: pytest.LogCaptureFixture,
                                                      name: str, alert_id: str, who: str) -> None:
    """Any id on an alert route that names no alert is refused as an unknown alert would be (4003)."""
    phone, _, operator, alert = await database_sync_to_async(cast)()
    user = operator if who == "operator" else phone
    path = route(name, user, alert).replace(str(alert.id), alert_id.format(alert=alert.id))
    with caplog.at_level(logging.WARNING):
        assert await sockets.close_code(path, access_token(user)) == 4003
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await sockets.close_code(path) == 4001  # without a token, the token is what is missing


@pytest.mark.parametrize("user_id", [2**63, 2**64 + 1, 10**30, 10**120])
async def test_a_user_id_beyond_64_bits_closes_4003_even_for_staff(
        sockets: Sockets, caplog: pytest.LogCaptureFixture, user_id: int) -> None:
    phone, _, operator, _ = await database_sync_to_async(cast)()
    with caplog.at_level(logging.WARNING):
        for who in (operator, phone):
            assert await sockets.close_code(f"/ws/user/{user_id}/", access_token(who)) == 4003
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_the_largest_64_bit_user_id_is_still_a_user_channel_for_staff(sockets: Sockets) -> None:
    _, _, operator, _ = await database_sync_to_async(cast)()
    await sockets.usable(f"/ws/user/{2**63 - 1}/", access_token(operator))


# -- 4004: no such route ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/ws/nope/", "/ws/alerts", "/ws/user/abc/", "/ws/user/-1/",
                                  "/ws/chat/", "/ws/location/", "/ws/alerts//", "/ws/chat/{alert}/more/",
                                  "/ws/location/{alert}", "/api/health/"])
async def test_unknown_path_closes_4004(sockets: Sockets, path: str) -> None:
    phone, _, _, alert = await database_sync_to_async(cast)()
    path = path.format(alert=alert.id)
    assert await sockets.close_code(path, access_token(phone)) == 4004
    assert await sockets.close_code(path) == 4004


# -- phone-only actions refused to operators ----------------------------------------------------

async def refused_then_closed(comm: WebsocketCommunicator, client_msg_id: str | None) -> None:
    """``error forbidden`` (echoing the client_msg_id), then the close with 4003, then silence."""
    error = await comm.receive_json_from(timeout=3)
    assert (error["type"], error["code"]) == ("error", "forbidden"), error
    assert error.get("client_msg_id") == client_msg_id
    assert await comm.receive_output(timeout=3) == {"type": "websocket.close", "code": 4003}
    assert await comm.receive_nothing()


@pytest.mark.parametrize("extra", [{}, {"client_msg_id": "op:1"}])
async def test_operator_location_update_for_someones_alert_is_forbidden(sockets: Sockets,
                                                                       extra: Message) -> None:
    _, _, operator, alert = await database_sync_to_async(cast)()
    events = await database_sync_to_async(StreamEvent.objects.count)()
    console = await sockets.usable("/ws/alerts/", access_token(operator))
    listener = await sockets.usable(f"/ws/location/{alert.id}/", access_token(operator))
    comm = await sockets.usable(f"/ws/location/{alert.id}/", access_token(operator))
    await comm.send_json_to({"type": "location_update", **extra,
                             "location": {"latitude": 1.0, "longitude": 2.0, "accuracy": 3}})
    await refused_then_closed(comm, extra.get("client_msg_id"))
    assert await console.receive_nothing()
    assert await listener.receive_nothing()
    assert await database_sync_to_async(LocationUpdate.objects.count)() == 0
    assert await database_sync_to_async(ClientMessage.objects.count)() == 0
    assert await database_sync_to_async(StreamEvent.objects.count)() == events
    await listener.send_json_to({"type": "ping", "timestamp": 2})  # only the offending socket closed
    assert (await listener.receive_json_from())["type"] == "pong"


async def test_operator_cancel_alert_is_forbidden_and_closes_4003(sockets: Sockets) -> None:
    phone, _, operator, alert = await database_sync_to_async(cast)()
    events = await database_sync_to_async(StreamEvent.objects.count)()
    console = await sockets.usable("/ws/alerts/", access_token(operator))
    user_channel = await sockets.usable(f"/ws/user/{phone.pk}/", access_token(phone))
    for extra in ({}, {"client_msg_id": "op:cancel"}):
        comm = await sockets.usable(f"/ws/alerts/{alert.id}/", access_token(operator))
        await comm.send_json_to({"type": "cancel_alert", **extra})
        await refused_then_closed(comm, extra.get("client_msg_id"))
    for quiet in (console, user_channel):
        assert await quiet.receive_nothing()
    stored = await database_sync_to_async(Alert.objects.get)(pk=alert.pk)
    assert stored.status == "active"
    assert await database_sync_to_async(ClientMessage.objects.count)() == 0
    assert await database_sync_to_async(StreamEvent.objects.count)() == events
