"""The whole alert flow against a real ``backend serve`` process, over real sockets.

A phone raises an alert over HTTP, streams locations and chats over WebSockets; an operator
follows it on the console, acknowledges, replies and resolves; the phone hears every step. Then a
phone that was away resumes with ``?since=`` and gets exactly what it missed. Also: Daphne serves
the same flow, tokens never reach the server's output, and SIGINT/SIGTERM stop the server cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from django.conf import settings
from django.utils.log import configure_logging

from beacon_backend import server, tokens
from tests.backend.fixtures import LiveBackend, isolated_logging, start_backend
from tests.backend.live_helpers import (
    Account,
    assert_quiet,
    bearer,
    close_code,
    create_alert,
    exchange,
    http_client,
    location,
    login,
    open_ws,
    opened,
    ping_is_next,
    port_bindable,
    port_of,
    port_refuses,
    recv_json,
    recv_n,
    recv_until,
    refused_with,
    request,
    send_json,
)

pytestmark = pytest.mark.live

PATH = [(52.5200066 + i * 0.0001234, 13.4049540 - i * 0.0000987) for i in range(4)]


@contextmanager
def serving(data_dir: Path, *extra: str) -> Iterator[LiveBackend]:
    backend = start_backend(data_dir, *extra)
    try:
        yield backend
    finally:
        backend.stop()


async def accounts(backend: LiveBackend, phones: int, operators: int,
                   prefix: str) -> tuple[list[Account], list[Account]]:
    credentials = backend.provision(phones, operators, prefix=prefix)
    async with http_client(backend.url) as client:
        phone_accounts = [await login(client, entry) for entry in credentials["phones"]]
        operator_accounts = [await login(client, entry) for entry in credentials["operators"]]
    return phone_accounts, operator_accounts


def pairs(messages: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(m["seq"], m["type"]) for m in messages]


# -- the whole flow ------------------------------------------------------------------------------

async def test_alert_flow_from_panic_to_resolution(live_backend: LiveBackend) -> None:
    base = live_backend.url
    (phone,), (operator,) = await accounts(live_backend, 1, 1, "flow")
    async with AsyncExitStack() as stack, http_client(base) as client:
        console = await opened(stack, base, "ws/alerts/", operator.access)
        snapshot = await recv_json(console)
        assert snapshot == {"type": "active_alerts", "alerts": [], "count": 0, "seq": 0}

        created = await create_alert(client, phone, description="help")
        alert_id = created["alert_id"]
        new_alert = await recv_json(console)
        assert (new_alert["type"], new_alert["seq"]) == ("new_alert", 1)
        assert new_alert["alert"]["id"] == alert_id and new_alert["alert"]["user"] == phone.id

        user = await opened(stack, base, f"ws/user/{phone.id}/", phone.access)
        positions = await opened(stack, base, f"ws/location/{alert_id}/", phone.access)
        chat = await opened(stack, base, f"ws/chat/{alert_id}/", phone.access)
        listener = await opened(stack, base, f"ws/location/{alert_id}/", operator.access)
        operator_chat = await opened(stack, base, f"ws/chat/{alert_id}/", operator.access)
        for ws in (user, positions, chat, listener, operator_chat):  # no snapshot, no backlog
            assert (await ping_is_next(ws))["seq"] == 0

        # Locations: each one reaches the console and the listening operator, in order.
        for number, (lat, lon) in enumerate(PATH, start=1):
            await send_json(positions, {"type": "location_update", "timestamp": f"t{number}",
                                        "location": location(lat, lon, battery_level=80 - number)})
            reply = await recv_json(positions)
            assert reply["type"] == "success" and reply["seq"] == 0, reply  # the phone follows no stream
            for ws, seq in ((console, 1 + number), (listener, number)):
                update = await recv_json(ws)
                assert (update["type"], update["seq"], update["alert_id"]) == \
                    ("location_update", seq, alert_id)
                assert update["location"]["latitude"] == round(lat, 7)
                assert update["location"]["longitude"] == round(lon, 7)
                assert update["location"]["battery_level"] == 80 - number
                assert update["location"]["timestamp"] == f"t{number}"

        # The phone chats; it gets its echo and the operator gets the message.
        echo = (await exchange(chat, {"type": "chat_message", "message": "I am near the station"},
                               "success", "chat_message"))["chat_message"]
        heard = await recv_json(operator_chat)
        for message in (echo, heard):
            assert message["seq"] == 1 and message["message"] == "I am near the station"
            assert (message["sender"], message["sender_id"], message["is_staff"]) == \
                (phone.username, phone.id, False)

        # The operator acknowledges: the console and the phone's user channel hear it.
        frames = await exchange(console, {"type": "acknowledge_alert", "alert_id": alert_id},
                                "success", "alert_acknowledged")
        assert frames["success"]["result"]["alert"]["status"] == "acknowledged"
        acknowledged = frames["alert_acknowledged"]
        assert acknowledged["seq"] == 2 + len(PATH)
        assert acknowledged["alert"]["status"] == "acknowledged"
        assert acknowledged["operator"]["username"] == operator.username
        update = await recv_json(user)
        assert (update["type"], update["seq"]) == ("alert_status_update", 1)
        assert update["alert"]["id"] == alert_id and update["alert"]["status"] == "acknowledged"
        assert update["alert"]["assigned_operator"] == operator.id
        assert isinstance(update["message"], str) and update["message"]

        # The operator replies: the phone's chat and its user channel (operator_message) hear it.
        frames = await exchange(operator_chat, {"type": "chat_message", "message": "Help is on the way"},
                                "success", "chat_message")
        assert frames["chat_message"]["seq"] == 2
        answer = await recv_json(chat)
        assert (answer["type"], answer["seq"], answer["message"]) == ("chat_message", 2, "Help is on the way")
        assert (answer["sender"], answer["is_staff"]) == (operator.username, True)
        note = await recv_json(user)
        assert (note["type"], note["seq"], note["alert_id"]) == ("operator_message", 2, alert_id)
        assert note["message"]["message"] == "Help is on the way"
        assert note["operator"]["username"] == operator.username

        # The operator resolves: the phone hears the final status.
        frames = await exchange(console, {"type": "resolve_alert", "alert_id": alert_id,
                                          "notes": "picked up"}, "success", "alert_resolved")
        assert frames["success"]["result"]["alert"]["status"] == "resolved"
        resolved = frames["alert_resolved"]
        assert resolved["seq"] == 3 + len(PATH)
        assert resolved["alert"]["status"] == "resolved" and resolved["alert"]["notes"] == "picked up"
        update = await recv_json(user)
        assert (update["type"], update["seq"]) == ("alert_status_update", 3)
        assert update["alert"]["status"] == "resolved" and update["alert"]["resolved_at"]

        # Nothing else arrived on the phone's channels; a closed alert takes no more locations.
        for ws in (user, chat):
            await assert_quiet(ws, 0.2)
        await send_json(positions, {"type": "location_update", "location": location(1.0, 2.0)})
        error = await recv_json(positions)
        assert (error["type"], error["code"]) == ("error", "alert_closed")
        await ping_is_next(positions)

        detail = (await client.get(f"api/auth/alerts/{alert_id}/", headers=bearer(phone))).json()
        assert detail["status"] == "resolved" and len(detail["location_history"]) == len(PATH)
        history = (await client.get(f"api/auth/alerts/{alert_id}/messages/", headers=bearer(phone))).json()
        assert [m["message"] for m in history["results"]] == ["I am near the station", "Help is on the way"]


# -- resuming with ?since= -----------------------------------------------------------------------

async def test_reconnect_with_since_gets_exactly_the_missed_events(live_backend: LiveBackend) -> None:
    base = live_backend.url
    missed_chats = 4
    (phone,), (operator,) = await accounts(live_backend, 1, 1, "resume")
    async with AsyncExitStack() as stack, http_client(base) as client:
        alert_id = (await create_alert(client, phone))["alert_id"]
        console = await opened(stack, base, "ws/alerts/", operator.access)
        operator_chat = await opened(stack, base, f"ws/chat/{alert_id}/", operator.access)
        await recv_until(console, "active_alerts")

        user = await open_ws(base, f"ws/user/{phone.id}/", phone.access)
        chat = await open_ws(base, f"ws/chat/{alert_id}/", phone.access)
        seen_user: list[dict[str, Any]] = []
        seen_chat: list[dict[str, Any]] = []

        await request(console, {"type": "acknowledge_alert", "alert_id": alert_id})
        seen_user.append(await recv_json(user))
        await request(operator_chat, {"type": "chat_message", "message": "are you safe?"})
        seen_chat.append(await recv_json(chat))
        seen_user.append(await recv_json(user))
        assert pairs(seen_user) == [(1, "alert_status_update"), (2, "operator_message")]
        assert pairs(seen_chat) == [(1, "chat_message")]
        user_seq = max(m["seq"] for m in seen_user)
        chat_seq = max(m["seq"] for m in seen_chat)
        await user.close()
        await chat.close()

        # While the phone is away: N operator messages and a status change.
        texts = [f"away message {n}" for n in range(1, missed_chats + 1)]
        for text in texts:
            await request(operator_chat, {"type": "chat_message", "message": text})
        await request(console, {"type": "respond_alert", "alert_id": alert_id})

        user = await opened(stack, base, f"ws/user/{phone.id}/", phone.access, since=user_seq)
        replayed = await recv_n(user, missed_chats + 1)
        assert [m["seq"] for m in replayed] == list(range(user_seq + 1, user_seq + missed_chats + 2))
        assert [m["type"] for m in replayed] == ["operator_message"] * missed_chats + ["alert_status_update"]
        assert [m["message"]["message"] for m in replayed[:-1]] == texts
        assert replayed[-1]["alert"]["status"] == "responding"
        assert (await ping_is_next(user))["seq"] == replayed[-1]["seq"]  # nothing repeated after it

        chat = await opened(stack, base, f"ws/chat/{alert_id}/", phone.access, since=chat_seq)
        replayed = await recv_n(chat, missed_chats)
        assert pairs(replayed) == [(chat_seq + n, "chat_message") for n in range(1, missed_chats + 1)]
        assert [m["message"] for m in replayed] == texts
        assert all(m["sender"] == operator.username and m["is_staff"] for m in replayed)
        assert (await ping_is_next(chat))["seq"] == chat_seq + missed_chats

        # Live traffic continues right after the replay, once each.
        await request(operator_chat, {"type": "chat_message", "message": "still there?"})
        live = await recv_json(chat)
        assert (live["seq"], live["message"]) == (chat_seq + missed_chats + 1, "still there?")
        live = await recv_json(user)
        assert (live["type"], live["seq"]) == ("operator_message", user_seq + missed_chats + 2)
        await ping_is_next(chat, 2)
        await ping_is_next(user, 2)
        await assert_quiet(chat, 0.2)
        await assert_quiet(user, 0.2)

        # Resuming at the head replays nothing; beyond the head the server asks for a resync.
        head = live["seq"]
        again = await opened(stack, base, f"ws/user/{phone.id}/", phone.access, since=head)
        assert (await ping_is_next(again, 3))["seq"] == head
        ahead = await opened(stack, base, f"ws/user/{phone.id}/", phone.access, since=head + 50)
        resync = await recv_json(ahead)
        assert (resync["type"], resync["since"], resync["head"]) == ("resync_required", head + 50, head)


# -- Daphne --------------------------------------------------------------------------------------

async def test_short_flow_on_daphne(tmp_path: Path) -> None:
    with serving(tmp_path / "data", "--server", "daphne") as backend:
        base = backend.url
        (phone,), (operator,) = await accounts(backend, 1, 1, "daphne")
        async with AsyncExitStack() as stack, http_client(base) as client:
            console = await opened(stack, base, "ws/alerts/", operator.access)
            assert (await recv_json(console))["type"] == "active_alerts"
            alert_id = (await create_alert(client, phone))["alert_id"]
            assert (await recv_until(console, "new_alert"))[0]["alert"]["id"] == alert_id

            user = await opened(stack, base, f"ws/user/{phone.id}/", phone.access)
            positions = await opened(stack, base, f"ws/location/{alert_id}/", phone.access)
            chat = await opened(stack, base, f"ws/chat/{alert_id}/", phone.access)
            operator_chat = await opened(stack, base, f"ws/chat/{alert_id}/", operator.access)
            await ping_is_next(user)

            await request(positions, {"type": "location_update", "location": location(*PATH[1])})
            update, _ = await recv_until(console, "location_update")
            assert update["location"]["latitude"] == round(PATH[1][0], 7)

            await request(console, {"type": "acknowledge_alert", "alert_id": alert_id})
            status = await recv_json(user)
            assert (status["type"], status["seq"], status["alert"]["status"]) == \
                ("alert_status_update", 1, "acknowledged")

            await request(chat, {"type": "chat_message", "message": "from the phone"})
            assert (await recv_until(operator_chat, "chat_message"))[0]["message"] == "from the phone"
            await request(operator_chat, {"type": "chat_message", "message": "from the operator"})
            heard, _ = await recv_until(chat, "chat_message")
            if heard["message"] == "from the phone":  # the phone's own echo came after its reply
                heard, _ = await recv_until(chat, "chat_message")
            assert (heard["seq"], heard["message"]) == (2, "from the operator")
            note = await recv_json(user)
            assert (note["type"], note["message"]["message"]) == ("operator_message", "from the operator")

            assert await refused_with(base, f"ws/user/{operator.id}/", phone.access) == 4003
            assert await refused_with(base, "ws/alerts/", None) == 4001
        assert backend.stop(signal.SIGTERM) == 0


# -- tokens stay out of the output ---------------------------------------------------------------

@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
async def test_tokens_never_reach_the_server_output(tmp_path: Path, server: str) -> None:
    with serving(tmp_path / "data", "--server", server) as backend:
        base = backend.url
        (phone, other), _ = await accounts(backend, 2, 0, "secret")
        forged = phone.access[:-4] + ("AAAA" if not phone.access.endswith("AAAA") else "BBBB")

        accepted = await open_ws(base, f"ws/user/{phone.id}/", phone.access)
        await ping_is_next(accepted)
        await accepted.close()
        assert await refused_with(base, f"ws/user/{other.id}/", phone.access) == 4003
        assert await refused_with(base, f"ws/user/{phone.id}/", forged) == 4001
        assert await refused_with(base, f"ws/user/{phone.id}/", phone.refresh) == 4001
        assert await refused_with(base, "ws/nowhere/", phone.access) == 4004

        async with http_client(base) as client:
            query = {"token": phone.access}
            assert (await client.get("api/health/", params=query)).status_code == 200
            assert (await client.get("api/auth/alerts/", params=query)).status_code == 401
            assert (await client.get("api/auth/alerts/", params={"token": forged},
                                     headers={"Authorization": f"Bearer {forged}"})).status_code == 401
            assert (await client.get("api/no-such-page/", params=query,
                                     headers=bearer(phone))).status_code == 404
            assert (await client.get("api/auth/login/", params=query,
                                     headers=bearer(phone))).status_code == 405
            refreshed = await client.post("api/token/refresh/", json={"refresh": phone.refresh})
            assert refreshed.status_code == 200
            new_access = refreshed.json()["access"]
            # Django logs every 4xx with its path: a token in the path reaches the log record.
            assert (await client.get(f"api/no-such-page/{phone.access}/")).status_code == 404
            assert (await client.post(f"api/no-such-page/{phone.refresh}/")).status_code == 404
        assert backend.stop() == 0

    output = "".join(backend.output)
    assert "Beacon backend on " + base in output  # the output was captured
    assert output.count("Not Found: /api/no-such-page/[redacted]/") == 2  # logged, and redacted
    for secret in (phone.access, phone.refresh, forged, new_access):
        assert secret not in output
        assert secret.rsplit(".", 1)[1] not in output, "a token signature reached the output"


def test_what_the_server_logs_is_redacted_even_in_tracebacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """In process, the live test's missing half: the logging a served backend runs with (Django's
    settings, then the configuration ``server`` hands to Uvicorn) must blank a real token that a
    crash puts into a log record, traceback included, on the Uvicorn and Django loggers."""
    started: list[uvicorn.Config] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: started.append(self.config))
    live = tokens.issue(7, "access")
    refresh = tokens.issue(7, "refresh")
    with isolated_logging() as captured:
        configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)  # what django.setup() applies
        listener = server.bind("127.0.0.1", 0)
        try:
            assert server.run(listener, "uvicorn", 1) == 0  # builds uvicorn's Config: its logging
        finally:
            listener.sock.close()
        assert len(started) == 1
        for name in ("uvicorn.error", "uvicorn", "django", "django.request", "daphne", "beacon_backend"):
            try:
                raise RuntimeError(f"consumer crashed on /ws/user/7/?token={live} with {refresh!r}")
            except RuntimeError:
                logging.getLogger(name).exception("Exception in ASGI application %s", f"Bearer {live}")
        for handler in logging.getLogger("uvicorn").handlers + logging.getLogger().handlers:
            handler.flush()
    output = captured.getvalue()
    assert output.count("Traceback (most recent call last)") == 6, output
    assert output.count("RuntimeError: consumer crashed on /ws/user/7/?token=[redacted]") == 6, output
    for secret in (live, refresh):
        assert secret not in output
        assert secret.rsplit(".", 1)[1] not in output, "a token signature reached the output"


# -- stopping ------------------------------------------------------------------------------------

@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_server_stops_cleanly_on_signal(tmp_path: Path, server: str, sig: signal.Signals) -> None:
    with serving(tmp_path / "data", "--server", server) as backend:
        (phone,), _ = await accounts(backend, 1, 0, "stop")
        port = port_of(backend.url)
        ws = await open_ws(backend.url, f"ws/user/{phone.id}/", phone.access)
        await ping_is_next(ws)

        backend.process.send_signal(sig)
        code = await close_code(ws)  # the open socket ends promptly (Daphne drops it without a code)
        if server == "uvicorn":
            assert code in (1001, 1012), code
        await ws.close()
        await asyncio.to_thread(backend.process.wait, 15)  # stop() would signal again otherwise
        exit_code = backend.stop(sig)
        assert exit_code == 0, f"{server} exited {exit_code} on {sig.name}"

    output = "".join(backend.output)
    assert "Traceback" not in output and "Error" not in output, output
    assert port_refuses(port), "the port still accepts connections"
    assert port_bindable(port), "the port was not released"
