"""Several server processes, one deployment: events cross processes through the Redis channel layer.

Two ``backend serve`` processes on different ports share one data directory and one Redis; the
phone talks to the first, the operator to the second. Then one ``serve --workers 2``: sockets are
opened until both worker processes hold some (checked through /proc), and every socket must hear
every event, whichever worker the sender is on. Also: sockets on the Redis layer survive idling
longer than the layer's blocking pop, and multi-worker servers stop cleanly even while starting.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.backend.fixtures import LiveBackend, RedisServer, start_backend
from tests.backend.live_helpers import (
    Account,
    child_pids,
    create_alert,
    exchange,
    http_client,
    location,
    login,
    opened,
    ping_is_next,
    port_bindable,
    port_of,
    port_refuses,
    recv_json,
    recv_until,
    refused_with,
    request,
    serving_pid,
)

pytestmark = [pytest.mark.live, pytest.mark.redis]

CLEAN_STOP = (0,)


@contextmanager
def serving(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[LiveBackend]:
    backend = start_backend(data_dir, *extra, env=env)
    try:
        yield backend
    finally:
        backend.stop(signal.SIGTERM)


async def log_in(backend: LiveBackend, credentials: dict[str, Any], kind: str) -> list[Account]:
    async with http_client(backend.url) as client:
        return [await login(client, entry) for entry in credentials[kind]]


# -- two servers, one Redis ----------------------------------------------------------------------

async def test_two_servers_share_events_through_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data, "--redis-url", redis_server.url) as first, \
            serving(data, env={"BEACON_REDIS_URL": redis_server.url}) as second:
        assert "redis channel layer" in first.output[0] and "redis channel layer" in second.output[0]
        assert first.url != second.url
        credentials = first.provision(1, 1, prefix="pair")
        (phone,) = await log_in(first, credentials, "phones")
        (operator,) = await log_in(second, credentials, "operators")
        one, two = first.url, second.url

        async with AsyncExitStack() as stack, http_client(one) as client:
            console = await opened(stack, two, "ws/alerts/", operator.access)
            assert (await recv_json(console))["count"] == 0

            # Created over HTTP on server 1, announced on server 2's console.
            alert_id = (await create_alert(client, phone))["alert_id"]
            new_alert = await recv_json(console)
            assert (new_alert["type"], new_alert["seq"], new_alert["alert"]["id"]) == \
                ("new_alert", 1, alert_id)

            user = await opened(stack, one, f"ws/user/{phone.id}/", phone.access)
            positions = await opened(stack, one, f"ws/location/{alert_id}/", phone.access)
            chat = await opened(stack, one, f"ws/chat/{alert_id}/", phone.access)
            listener = await opened(stack, two, f"ws/location/{alert_id}/", operator.access)
            operator_chat = await opened(stack, two, f"ws/chat/{alert_id}/", operator.access)
            for ws in (user, chat, listener, operator_chat):
                await ping_is_next(ws)

            # Locations from the phone on 1 reach the operator on 2, in order.
            fixes = [location(35.6762 + n / 1000, 139.6503 - n / 1000) for n in range(3)]
            for number, fix in enumerate(fixes, start=1):
                await request(positions, {"type": "location_update", "location": fix})
                for ws, seq in ((console, 1 + number), (listener, number)):
                    update = await recv_json(ws)
                    assert (update["type"], update["seq"], update["alert_id"]) == \
                        ("location_update", seq, alert_id)
                    assert (update["location"]["latitude"], update["location"]["longitude"]) == \
                        (fix["latitude"], fix["longitude"])

            # The phone's chat on 1 reaches the operator on 2.
            await exchange(chat, {"type": "chat_message", "message": "sent via one"},
                           "success", "chat_message")
            heard = await recv_json(operator_chat)
            assert (heard["type"], heard["seq"], heard["message"], heard["sender_id"]) == \
                ("chat_message", 1, "sent via one", phone.id)

            # The operator's chat and acknowledgement on 2 reach the phone on 1.
            await exchange(operator_chat, {"type": "chat_message", "message": "answered via two"},
                           "success", "chat_message")
            answer = await recv_json(chat)
            assert (answer["type"], answer["seq"], answer["message"], answer["is_staff"]) == \
                ("chat_message", 2, "answered via two", True)
            note = await recv_json(user)
            assert (note["type"], note["seq"], note["message"]["message"]) == \
                ("operator_message", 1, "answered via two")

            await exchange(console, {"type": "acknowledge_alert", "alert_id": alert_id},
                           "success", "alert_acknowledged")
            status = await recv_json(user)
            assert (status["type"], status["seq"], status["alert"]["status"]) == \
                ("alert_status_update", 2, "acknowledged")
            assert status["alert"]["assigned_operator"] == operator.id

            # A phone token minted by server 1 is good on server 2 (one secret, one database).
            elsewhere = await opened(stack, two, f"ws/user/{phone.id}/", phone.access, since=0)
            replayed = [await recv_json(elsewhere) for _ in range(2)]
            assert [(m["seq"], m["type"]) for m in replayed] == \
                [(1, "operator_message"), (2, "alert_status_update")]


# -- idle sockets and refusals on the Redis layer -------------------------------------------------

IDLE = 6.5  # longer than channels_redis's 5 s blocking pop (and redis-py 8's 5 s socket timeout)


async def test_redis_sockets_survive_idling_and_refusals_leave_nothing_behind(
        redis_server: RedisServer, tmp_path: Path) -> None:
    with serving(tmp_path / "data", "--redis-url", redis_server.url) as backend:
        base = backend.url
        credentials = backend.provision(1, 1, prefix="idle")
        (phone,) = await log_in(backend, credentials, "phones")
        (operator,) = await log_in(backend, credentials, "operators")
        async with AsyncExitStack() as stack, http_client(base) as client:
            alert_id = (await create_alert(client, phone))["alert_id"]
            console = await opened(stack, base, "ws/alerts/", operator.access)
            assert (await recv_json(console))["count"] == 1
            user = await opened(stack, base, f"ws/user/{phone.id}/", phone.access)
            chat = await opened(stack, base, f"ws/chat/{alert_id}/", phone.access)
            for ws in (user, chat):
                await ping_is_next(ws)
            for _ in range(5):  # sockets the server closes right after accepting them
                assert await refused_with(base, "ws/alerts/", phone.access) == 4003
                assert await refused_with(base, f"ws/user/{phone.id}/", None) == 4001

            await asyncio.sleep(IDLE)  # no traffic at all
            for name, ws in (("console", console), ("user", user), ("chat", chat)):
                try:
                    await ping_is_next(ws, 2)
                except ConnectionClosed as closed:
                    raise AssertionError(f"the {name} socket died while idle: {closed!r}") from None

            await exchange(console, {"type": "acknowledge_alert", "alert_id": alert_id},
                           "success", "alert_acknowledged")
            status = await recv_json(user)
            assert (status["type"], status["seq"], status["alert"]["status"]) == \
                ("alert_status_update", 1, "acknowledged")
            operator_chat = await opened(stack, base, f"ws/chat/{alert_id}/", operator.access)
            await exchange(operator_chat, {"type": "chat_message", "message": "after the pause"},
                           "success", "chat_message")
            heard = await recv_json(chat)
            assert (heard["seq"], heard["message"]) == (1, "after the pause")

        started = time.monotonic()
        code = backend.stop(signal.SIGTERM)
        stopping = time.monotonic() - started
    output = "".join(backend.output)
    assert code in CLEAN_STOP, code
    assert "Traceback" not in output and "Exception in ASGI application" not in output, output
    # uvicorn gives lingering consumers 5 s (timeout_graceful_shutdown) before cutting them off.
    assert stopping < 4.5, f"stopping took {stopping:.1f} s: a consumer was left waiting on Redis"


# -- one port, two worker processes --------------------------------------------------------------

async def spread(stack: AsyncExitStack, backend: LiveBackend, path: str, account: Account,
                 snapshot: str | None = None, at_least: int = 3, limit: int = 80,
                 both: bool = True) -> list[tuple[ClientConnection, int]]:
    """Open sockets on ``path`` (until both workers hold one, with ``both``); each with its pid.

    Health answers as soon as one worker serves; the other may still be booting (slowly, on a cold
    CI machine), so attempts are spaced out: at most ``limit`` sockets over about 20 s. Which worker
    the kernel hands a connection is not ours to choose (a busy worker may take none for a while),
    so only the first group insists on both; the later groups take what comes.
    """
    port = port_of(backend.url)
    sockets: list[tuple[ClientConnection, int]] = []
    for attempt in range(limit):
        if attempt >= at_least:
            await asyncio.sleep(0.25)
        ws = await opened(stack, backend.url, path, account.access)
        if snapshot is not None:
            assert (await recv_json(ws))["type"] == snapshot
        await ping_is_next(ws)  # the worker that accepted it is serving it
        sockets.append((ws, serving_pid(ws, port, child_pids(backend.process.pid))))
        if len(sockets) >= at_least and (not both or len({pid for _, pid in sockets}) >= 2):
            return sockets
    raise AssertionError(f"{limit} sockets on {path} all landed on one worker: {sockets[0][1]}")


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
async def test_workers_share_events_through_redis(redis_server: RedisServer, tmp_path: Path,
                                                  server: str) -> None:
    with serving(tmp_path / "data", "--server", server, "--workers", "2",
                 "--redis-url", redis_server.url) as backend:
        assert f"({server}, 2 worker(s), redis channel layer" in backend.output[0]
        credentials = backend.provision(1, 1, prefix="workers")
        (phone,) = await log_in(backend, credentials, "phones")
        (operator,) = await log_in(backend, credentials, "operators")

        async with AsyncExitStack() as stack, http_client(backend.url) as client:
            consoles = await spread(stack, backend, "ws/alerts/", operator, "active_alerts")
            alert_id = (await create_alert(client, phone))["alert_id"]
            for ws, _ in consoles:
                event = await recv_json(ws)
                assert (event["type"], event["seq"], event["alert"]["id"]) == ("new_alert", 1, alert_id)

            users = await spread(stack, backend, f"ws/user/{phone.id}/", phone, both=False)
            phone_chats = await spread(stack, backend, f"ws/chat/{alert_id}/", phone, both=False)
            operator_chats = await spread(stack, backend, f"ws/chat/{alert_id}/", operator, both=False)
            workers = {pid for group in (consoles, users, phone_chats, operator_chats) for _, pid in group}
            assert len(workers) == 2, workers

            # Locations from each phone socket reach every console, on both workers, in order.
            positions = await spread(stack, backend, f"ws/location/{alert_id}/", phone, at_least=2,
                                     both=False)
            for number, (ws, _) in enumerate(positions, start=1):
                fix = location(-33.8688 + number / 1000, 151.2093)
                await request(ws, {"type": "location_update", "location": fix})
                for console, pid in consoles:
                    update = await recv_json(console)
                    assert (update["type"], update["seq"], update["location"]["latitude"]) == \
                        ("location_update", 1 + number, fix["latitude"]), f"console on worker {pid}"

            # Chat from one phone socket reaches every chat socket, the sender's included.
            sender, _ = phone_chats[0]
            await send_json_and_collect(sender, "from the phone")
            for ws, pid in phone_chats[1:] + operator_chats:
                heard = await recv_json(ws)
                assert (heard["type"], heard["seq"], heard["message"]) == \
                    ("chat_message", 1, "from the phone"), f"chat on worker {pid}"

            # The operator on one worker: every phone socket on both workers hears it.
            operator_sender, _ = operator_chats[-1]
            await send_json_and_collect(operator_sender, "from the operator")
            acknowledger, _ = consoles[-1]
            await exchange(acknowledger, {"type": "acknowledge_alert", "alert_id": alert_id},
                           "success", "alert_acknowledged")
            for ws, pid in phone_chats + operator_chats[:-1]:
                heard = await recv_json(ws)
                assert (heard["seq"], heard["message"]) == (2, "from the operator"), f"worker {pid}"
            for ws, pid in users:
                note = await recv_json(ws)
                assert (note["type"], note["seq"]) == ("operator_message", 1), f"worker {pid}"
                status = await recv_json(ws)
                assert (status["type"], status["seq"], status["alert"]["status"]) == \
                    ("alert_status_update", 2, "acknowledged"), f"worker {pid}"
            for ws, pid in consoles[:-1]:
                event, _ = await recv_until(ws, "alert_acknowledged")
                assert event["seq"] == 2 + len(positions), f"console on worker {pid}"
        code = await asyncio.to_thread(backend.stop, signal.SIGTERM)
        assert code in CLEAN_STOP, f"{server} --workers 2 exited {code} on SIGTERM"


async def send_json_and_collect(ws: ClientConnection, text: str) -> None:
    """Send a chat message; its success reply and its echo come back (in either order)."""
    frames = await exchange(ws, {"type": "chat_message", "message": text}, "success", "chat_message")
    assert frames["chat_message"]["message"] == text


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_workers_stop_cleanly_while_starting(redis_server: RedisServer, tmp_path: Path, server: str) -> None:
    """SIGTERM as soon as the URL is printed (workers still booting) is still a clean stop."""
    command = [sys.executable, "-m", "simulator.cli", "backend", "serve", "--port", "0", "--data-dir",
               str(tmp_path / "data"), "--server", server, "--workers", "2", "--redis-url", redis_server.url]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "http://127.0.0.1:" in first, first
        port = port_of(first.split()[3])
        time.sleep(0.3)  # the workers are starting
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"{server} --workers 2 did not stop while starting") from None
        output = first + process.stdout.read()
    assert code in CLEAN_STOP, f"{server} --workers 2 exited {code} on SIGTERM while starting: {output}"
    assert "Traceback" not in output, output
    assert port_refuses(port) and port_bindable(port)
