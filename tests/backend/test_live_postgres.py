"""``BEACON_DATABASE_URL`` selects PostgreSQL: the same backend, a real server, concurrent writers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import websockets

from tests.backend.fixtures import start_backend
from tests.backend.postgres import PostgresServer

pytestmark = pytest.mark.live


async def _recv(ws: websockets.ClientConnection, kind: str) -> dict[str, object]:
    for _ in range(20):
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if message["type"] == kind:
            return dict(message)
    raise AssertionError(f"no {kind} message")


async def test_backend_on_postgresql_stores_once_and_replays(
        postgres_server: PostgresServer, tmp_path: Path) -> None:
    env = {"BEACON_DATABASE_URL": postgres_server.url}
    backend = start_backend(tmp_path / "data", env=env)
    try:
        creds = backend.provision(phones=1, operators=1)
        phone, operator = creds["phones"][0], creds["operators"][0]
        phone_token, operator_token = backend.login(phone), backend.login(operator)
        headers = {"Authorization": f"Bearer {phone_token}"}
        body = {"latitude": 52.5200066, "longitude": 13.404954, "client_msg_id": "pg:1"}
        async with httpx.AsyncClient(base_url=backend.url, headers=headers) as client:
            # The same panic press sent four times at once: PostgreSQL sees concurrent inserts of
            # one idempotency key, and exactly one alert must come out of it.
            answers = await asyncio.gather(
                *[client.post("api/auth/panic/create/", json=body) for _ in range(4)])
            assert {a.status_code for a in answers} == {201}
            alert_ids = {a.json()["alert_id"] for a in answers}
            assert len(alert_ids) == 1
            assert sorted(a.json()["repeated"] for a in answers) == [False, True, True, True]
            listing = (await client.get("api/auth/alerts/")).json()
            assert listing["count"] == 1
        alert_id = alert_ids.pop()

        base = backend.ws_url
        async with websockets.connect(f"{base}ws/chat/{alert_id}/?token={phone_token}") as chat:
            await chat.send(json.dumps({"type": "chat_message", "message": "help", "client_msg_id": "pg:2"}))
            ack = await _recv(chat, "ack")
            assert ack["client_msg_id"] == "pg:2"
        async with websockets.connect(f"{base}ws/chat/{alert_id}/?token={operator_token}&since=0") as chat:
            replayed = await _recv(chat, "chat_message")
            assert (replayed["message"], replayed["seq"]) == ("help", 1)
    finally:
        assert backend.stop() == 0
