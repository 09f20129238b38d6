"""Refusals as a real client sees them: close codes 4001/4003 on every route, 403 over HTTP.

Each refusal is paired with the allowed case next to it, so a test cannot pass because a route
refuses everybody; after the refused attempts the alert is checked to be untouched.
"""

from __future__ import annotations

import time
import uuid
from contextlib import AsyncExitStack
from typing import Any

import httpx
import jwt
import pytest

from tests.backend.fixtures import LiveBackend
from tests.backend.live_helpers import (
    Account,
    assert_quiet,
    bearer,
    close_code,
    create_alert,
    http_client,
    location,
    login,
    open_ws,
    opened,
    ping_is_next,
    recv_json,
    refused_with,
    send_json,
)

pytestmark = pytest.mark.live


async def setup(backend: LiveBackend, prefix: str) -> tuple[Account, Account, Account, str]:
    """Phones A and B, an operator, and an alert raised by A."""
    credentials = backend.provision(2, 1, prefix=prefix)
    async with http_client(backend.url) as client:
        phone_a, phone_b = [await login(client, entry) for entry in credentials["phones"]]
        operator = await login(client, credentials["operators"][0])
        alert_id = str((await create_alert(client, phone_a))["alert_id"])
    return phone_a, phone_b, operator, alert_id


def alert_routes(alert_id: str) -> list[str]:
    return [f"ws/alerts/{alert_id}/", f"ws/location/{alert_id}/", f"ws/chat/{alert_id}/"]


async def untouched(client: httpx.AsyncClient, owner: Account, alert_id: str) -> None:
    """The alert is still active, with no location and no chat message from the refused attempts."""
    detail = await client.get(f"api/auth/alerts/{alert_id}/", headers=bearer(owner))
    assert detail.status_code == 200
    assert detail.json()["status"] == "active"
    assert detail.json()["location_history"] == []
    messages = await client.get(f"api/auth/alerts/{alert_id}/messages/", headers=bearer(owner))
    assert messages.json()["count"] == 0


# -- WebSocket: 4003 -------------------------------------------------------------------------------

async def test_cross_user_sockets_are_closed_with_4003(live_backend: LiveBackend) -> None:
    base = live_backend.url
    phone_a, phone_b, operator, alert_id = await setup(live_backend, "cross")

    assert await refused_with(base, f"ws/user/{phone_a.id}/", phone_b.access) == 4003
    assert await refused_with(base, "ws/alerts/", phone_a.access) == 4003
    assert await refused_with(base, "ws/alerts/", phone_b.access) == 4003
    for path in alert_routes(alert_id):
        assert await refused_with(base, path, phone_b.access) == 4003, path
    for path in alert_routes(str(uuid.uuid4())):  # an unknown alert is refused the same way
        assert await refused_with(base, path, phone_a.access) == 4003, path
    for path in alert_routes("not-a-uuid"):  # and so is an id that is no UUID at all
        assert await refused_with(base, path, operator.access) == 4003, path
    assert await refused_with(base, f"ws/user/{2**63}/", operator.access) == 4003
    assert await refused_with(base, f"ws/user/{10**120}/", operator.access) == 4003

    # The same routes serve the right people.
    async with AsyncExitStack() as stack:
        allowed = [
            (phone_a, f"ws/user/{phone_a.id}/", None),
            (operator, f"ws/user/{phone_a.id}/", None),
            (phone_b, f"ws/user/{phone_b.id}/", None),
            (operator, "ws/alerts/", "active_alerts"),
            (phone_a, f"ws/alerts/{alert_id}/", "alert_status"),
            (operator, f"ws/alerts/{alert_id}/", "alert_status"),
            (phone_a, f"ws/location/{alert_id}/", None),
            (operator, f"ws/location/{alert_id}/", None),
            (phone_a, f"ws/chat/{alert_id}/", None),
            (operator, f"ws/chat/{alert_id}/", None),
        ]
        for account, path, snapshot in allowed:
            ws = await opened(stack, base, path, account.access)
            if snapshot is not None:
                assert (await recv_json(ws))["type"] == snapshot, path
            await ping_is_next(ws)

    async with http_client(base) as client:
        await untouched(client, phone_a, alert_id)


# -- WebSocket: 4001 -------------------------------------------------------------------------------

async def test_missing_or_bad_tokens_are_closed_with_4001(live_backend: LiveBackend) -> None:
    base = live_backend.url
    phone_a, _, operator, alert_id = await setup(live_backend, "token")
    secret = (live_backend.data_dir / "secret_key").read_text().strip()
    now = int(time.time())

    def signed(claims: dict[str, Any], key: str = secret) -> str:
        return jwt.encode({"token_type": "access", "iat": now, "jti": uuid.uuid4().hex,
                           "user_id": phone_a.id, "exp": now + 600, **claims}, key, algorithm="HS256")

    bad = {
        "garbage": "not-a-jwt",
        "forged": signed({}, key="another-secret-that-is-long-enough-for-hs256"),
        "expired": signed({"iat": now - 7200, "exp": now - 3600}),
        "refresh": phone_a.refresh,
        "unknown user": signed({"user_id": 987654321}),
    }
    for path in [f"ws/user/{phone_a.id}/", "ws/alerts/", *alert_routes(alert_id)]:
        assert await refused_with(base, path, None) == 4001, f"{path} without a token"
        assert await refused_with(base, path, "") == 4001, f"{path} with an empty token"
        for name, token in bad.items():
            assert await refused_with(base, path, token) == 4001, f"{path} with a {name} token"

    good = await open_ws(base, f"ws/user/{phone_a.id}/", signed({}))  # the same claims, well signed
    await ping_is_next(good)
    await good.close()
    console = await open_ws(base, "ws/alerts/", operator.access)
    assert (await recv_json(console))["type"] == "active_alerts"
    await console.close()


# -- HTTP: 403 -------------------------------------------------------------------------------------

async def test_http_actions_on_someone_elses_alert_are_forbidden(live_backend: LiveBackend) -> None:
    phone_a, phone_b, operator, alert_id = await setup(live_backend, "http")
    fix = location(48.8566, 2.3522)
    async with http_client(live_backend.url) as client:
        async def post(account: Account, action: str, body: dict[str, Any] | None = None) -> httpx.Response:
            return await client.post(f"api/auth/alerts/{alert_id}/{action}/", headers=bearer(account),
                                     json=body or {})

        refusals = [
            (phone_b, "location", fix),      # another phone's alert
            (phone_b, "cancel", None),
            (phone_a, "acknowledge", None),  # staff-only actions from the owner
            (phone_a, "respond", None),
            (phone_a, "resolve", {"notes": "I resolved it myself"}),
            (phone_a, "false-alarm", None),
            (phone_b, "acknowledge", None),
            (operator, "location", fix),     # phone-only actions from an operator
            (operator, "cancel", None),
        ]
        for account, action, body in refusals:
            response = await post(account, action, body)
            assert response.status_code == 403, (account.username, action, response.text)
            assert response.json()["success"] is False and response.json()["code"] == "forbidden"

        viewed = await client.get(f"api/auth/alerts/{alert_id}/", headers=bearer(phone_b))
        assert viewed.status_code == 403
        listed = await client.get("api/auth/alerts/", headers=bearer(phone_b))
        assert listed.json()["count"] == 0
        anonymous = await client.post(f"api/auth/alerts/{alert_id}/cancel/")
        assert anonymous.status_code == 401
        await untouched(client, phone_a, alert_id)

        # The same actions from the right party succeed.
        assert (await post(phone_a, "location", fix)).status_code == 200
        assert (await post(operator, "acknowledge")).status_code == 200
        canceled = await post(phone_a, "cancel")
        assert canceled.status_code == 200 and canceled.json()["alert"]["status"] == "canceled"


# -- WebSocket: actions for the other role -------------------------------------------------------

async def test_websocket_actions_for_the_other_role_are_refused(live_backend: LiveBackend) -> None:
    base = live_backend.url
    phone_a, _, operator, alert_id = await setup(live_backend, "role")
    async with AsyncExitStack() as stack:
        console = await opened(stack, base, "ws/alerts/", operator.access)
        assert (await recv_json(console))["type"] == "active_alerts"
        user = await opened(stack, base, f"ws/user/{phone_a.id}/", phone_a.access)

        # An operator's phone-only actions are refused like a cross-user connect: the reason,
        # then the socket is closed with 4003.
        listener = await opened(stack, base, f"ws/location/{alert_id}/", operator.access)
        await send_json(listener, {"type": "location_update", "location": location(40.7128, -74.006),
                                   "client_msg_id": "op:loc"})
        error = await recv_json(listener)
        assert (error["type"], error["code"], error["client_msg_id"]) == ("error", "forbidden", "op:loc")
        assert await close_code(listener) == 4003

        status = await opened(stack, base, f"ws/alerts/{alert_id}/", operator.access)
        assert (await recv_json(status))["type"] == "alert_status"
        await send_json(status, {"type": "cancel_alert"})
        error = await recv_json(status)
        assert (error["type"], error["code"]) == ("error", "forbidden"), error
        assert await close_code(status) == 4003

        still = await opened(stack, base, f"ws/location/{alert_id}/", operator.access)
        await ping_is_next(still)  # refusing one socket closed only that one

        own = await opened(stack, base, f"ws/alerts/{alert_id}/", phone_a.access)
        assert (await recv_json(own))["type"] == "alert_status"
        await send_json(own, {"type": "acknowledge_alert", "alert_id": alert_id})
        error = await recv_json(own)
        assert (error["type"], error["code"]) == ("error", "unknown_type"), error
        await ping_is_next(own)

        # Nothing was broadcast: no location on the console, no status change for the phone.
        await assert_quiet(console, 0.2)
        await assert_quiet(user, 0.2)
        async with http_client(base) as client:
            await untouched(client, phone_a, alert_id)
