"""``BEACON_DATABASE_URL`` selects PostgreSQL: the same backend, a real server, concurrent writers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import psycopg
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


async def test_concurrent_repeats_of_a_status_change_are_applied_once(
        postgres_server: PostgresServer, tmp_path: Path) -> None:
    """The operator's acknowledge sent four times at once with one client_msg_id: the first to take
    the alert's lock acknowledges it; the others, which then find it acknowledged, get the first
    reply back (``repeated: true``), not ``invalid_transition``. Several alerts, to make the race
    (all four past the idempotency check before the first commits) happen."""
    backend = start_backend(tmp_path / "data", env={"BEACON_DATABASE_URL": postgres_server.url})
    rounds = 6
    try:
        creds = backend.provision(phones=1, operators=1)
        phone = {"Authorization": f"Bearer {backend.login(creds['phones'][0])}"}
        operator = {"Authorization": f"Bearer {backend.login(creds['operators'][0])}"}
        async with httpx.AsyncClient(base_url=backend.url, timeout=30, trust_env=False) as client:
            alert_ids = []
            for _ in range(rounds):
                created = await client.post("api/auth/panic/create/", headers=phone,
                                            json={"latitude": 52.52, "longitude": 13.405})
                assert created.status_code == 201, created.text
                alert_ids.append(created.json()["alert_id"])
            for number, alert_id in enumerate(alert_ids):
                body = {"client_msg_id": f"op:ack:{number}", "notes": "on it"}
                answers = await asyncio.gather(*[
                    client.post(f"api/auth/alerts/{alert_id}/acknowledge/", headers=operator, json=body)
                    for _ in range(4)])
                assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
                assert sorted(a.json()["repeated"] for a in answers) == [False, True, True, True]
                assert len({json.dumps(a.json()["alert"], sort_keys=True) for a in answers}) == 1
                assert answers[0].json()["alert"]["status"] == "acknowledged"
    finally:
        assert backend.stop() == 0

    with psycopg.connect(postgres_server.url) as db:
        changes = dict(db.execute(
            "SELECT payload->'alert'->>'id', count(*) FROM beacon_streamevent "
            "WHERE stream = 'console' AND payload->>'type' = 'alert_acknowledged' GROUP BY 1").fetchall())
        assert changes == dict.fromkeys(alert_ids, 1), "each alert changed status exactly once"
        updates = db.execute("SELECT count(*) FROM beacon_streamevent "
                             "WHERE payload->>'type' = 'alert_status_update'").fetchone()
        assert updates == (rounds,)
        remembered = db.execute("SELECT count(*) FROM beacon_clientmessage "
                                "WHERE client_msg_id LIKE 'op:ack:%%'").fetchone()
        assert remembered == (rounds,)
        statuses = db.execute("SELECT DISTINCT status FROM beacon_alert").fetchall()
        assert statuses == [("acknowledged",)]


async def test_no_location_is_accepted_after_a_concurrent_cancel(
        postgres_server: PostgresServer, tmp_path: Path) -> None:
    """Locations racing a cancel: each is either stored before the cancel (its console event comes
    first) or refused with ``alert_closed``; none slips in after the alert is closed."""
    backend = start_backend(tmp_path / "data", env={"BEACON_DATABASE_URL": postgres_server.url})
    try:
        creds = backend.provision(phones=1, operators=0)
        phone = {"Authorization": f"Bearer {backend.login(creds['phones'][0])}"}
        async with httpx.AsyncClient(base_url=backend.url, timeout=30, trust_env=False) as client:
            alert_ids = []
            for _ in range(4):
                created = await client.post("api/auth/panic/create/", headers=phone,
                                            json={"latitude": 52.52, "longitude": 13.405})
                alert_ids.append(created.json()["alert_id"])
            for alert_id in alert_ids:
                fix = {"latitude": 52.5, "longitude": 13.4, "accuracy": 5}
                locations = [client.post(f"api/auth/alerts/{alert_id}/location/", headers=phone, json=fix)
                             for _ in range(12)]
                cancel = client.post(f"api/auth/alerts/{alert_id}/cancel/", headers=phone, json={})
                answers = await asyncio.gather(*locations[:6], cancel, *locations[6:])
                assert answers[6].status_code == 200, answers[6].text
                for answer in answers[:6] + answers[7:]:
                    assert answer.status_code in (200, 409), answer.text
                    if answer.status_code == 409:
                        assert answer.json()["code"] == "alert_closed"
    finally:
        assert backend.stop() == 0

    with psycopg.connect(postgres_server.url) as db:
        for alert_id in alert_ids:
            rows = db.execute(
                "SELECT payload->>'type' FROM beacon_streamevent WHERE stream = 'console' "
                "AND (payload->>'alert_id' = %s OR payload->'alert'->>'id' = %s) ORDER BY seq",
                (alert_id, alert_id)).fetchall()
            kinds = [kind for (kind,) in rows]
            assert kinds[0] == "new_alert" and kinds.count("alert_canceled") == 1
            assert kinds[-1] == "alert_canceled", f"a location was stored after the cancel: {kinds}"
            stored = db.execute("SELECT count(*) FROM beacon_locationupdate WHERE alert_id = %s",
                                (alert_id,)).fetchone()
            assert stored == (kinds.count("location_update"),)
