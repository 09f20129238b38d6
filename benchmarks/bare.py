"""The bare ``websockets`` client of ``benchmarks/run.py``: the fleet's traffic without the fleet."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

# Benchmark the checkout this file is in, not whichever copy happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import websockets
from measure import GcWatch, LagProbe, Side, close_window, open_window, own_rss_mb
from websockets.asyncio.client import ClientConnection, connect

from simulator.fleet import FleetConfig, phone_spec
from simulator.run import RunError

CREATE_CONCURRENCY = 20
HEARTBEAT_S = 30.0  # the resilient policy's heartbeat and location interval


# -- (b) the bare client ---------------------------------------------------------------------------

class Bare:
    """Plain ``websockets`` sockets doing the fleet's traffic: one reader task per socket and one
    sender task per socket that sends (user: pings; location: location updates)."""

    def __init__(self, url: str) -> None:
        self.ws_base = "ws://" + url.split("://", 1)[1]
        self.open = 0
        self.closes = 0
        self.failed: dict[str, int] = {}
        self.counting = False
        self.pings = self.locations = self.frames_in = 0
        self.connections: list[ClientConnection] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def socket(self, path: str, token: str, start_at: float, sender: str | None,
                     alert_id: str | None = None) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start_at - loop.time()))
        url = f"{self.ws_base}{path.lstrip('/')}?token={token}"
        try:
            ws = await connect(url, compression=None, ping_interval=None, open_timeout=10,
                               close_timeout=1, max_size=2**20, proxy=None)
        except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as error:
            cause = type(error).__name__
            self.failed[cause] = self.failed.get(cause, 0) + 1
            return
        self.connections.append(ws)
        self.open += 1
        if sender is not None:
            self.spawn(self.send_loop(ws, sender, alert_id))
        try:
            async for _frame in ws:
                if self.counting:
                    self.frames_in += 1
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            self.open -= 1
            if self.counting:
                self.closes += 1

    async def send_loop(self, ws: ClientConnection, kind: str, alert_id: str | None) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + HEARTBEAT_S
        sent = 0
        while sent < 100_000:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due += HEARTBEAT_S
            sent += 1
            now = loop.time()
            if kind == "ping":
                message: dict[str, Any] = {"type": "ping", "timestamp": now}
            else:
                message = {"type": "location_update", "timestamp": now,
                           "client_msg_id": f"bare-{alert_id}:{sent}",
                           "location": {"latitude": 51.5074, "longitude": -0.1278, "accuracy": 9.5,
                                        "provider": "gps", "speed": 1.2, "heading": 90.0,
                                        "battery_level": 97.0}}
            try:
                await ws.send(json.dumps(message, separators=(",", ":")))
            except websockets.exceptions.ConnectionClosed:
                return
            if self.counting:
                if kind == "ping":
                    self.pings += 1
                else:
                    self.locations += 1

    async def aclose(self) -> None:
        for ws in self.connections:
            ws.transport.abort()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def create_alerts(url: str, tokens: dict[int, str], users: list[int]) -> dict[int, str]:
    """An open alert for each of ``users``, over HTTP as the app does: user id -> alert id."""
    alerts: dict[int, str] = {}
    limit = asyncio.Semaphore(CREATE_CONCURRENCY)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        async def one(user: int) -> None:
            async with limit:
                response = await client.post(
                    url + "api/auth/panic/create/", headers={"Authorization": f"Bearer {tokens[user]}"},
                    json={"latitude": 51.5074, "longitude": -0.1278, "accuracy": 9.5, "provider": "gps",
                          "alert_type": "panic_button", "priority": 4})
            if response.status_code // 100 != 2:
                raise RunError(f"bare client: creating an alert failed: HTTP {response.status_code} "
                               f"{response.text[:200]}")
            alerts[user] = str(response.json()["alert_id"])

        await asyncio.gather(*(one(user) for user in users))
    return alerts


async def run_bare(config: FleetConfig, url: str, tokens: dict[int, str], user_ids: list[int],
                   alerting: list[int], settle_s: float, window_s: float, backend_pid: int | None
                   ) -> Side:
    side = Side("bare", config.devices, alerts=len(alerting))
    side.sockets_wanted = side.phones + 3 * side.alerts
    gc.collect()
    rss0 = own_rss_mb()
    alerts = await create_alerts(url, tokens, alerting)
    bare = Bare(url)
    probe = LagProbe()
    watch = GcWatch()
    loop = asyncio.get_running_loop()
    try:
        watch.__enter__()
        probe.start()
        started = loop.time()
        for index, user in enumerate(user_ids):
            start_at = started + phone_spec(config, index, user)[1]  # the fleet's connect schedule
            token = tokens[user]
            bare.spawn(bare.socket(f"/ws/user/{user}/", token, start_at, "ping"))
            alert = alerts.get(user)
            if alert is not None:
                bare.spawn(bare.socket(f"/ws/alerts/{alert}/", token, start_at, None))
                bare.spawn(bare.socket(f"/ws/location/{alert}/", token, start_at, "location", alert))
                bare.spawn(bare.socket(f"/ws/chat/{alert}/", token, start_at, None))
        await asyncio.sleep(max(0.0, started + config.start_spread_s + settle_s - loop.time()))
        side.ramp_s = loop.time() - started
        side.open_at_start = bare.open
        probe.reset()
        watch.reset()
        bare.counting = True
        window = open_window(backend_pid)
        await asyncio.sleep(window_s)
        bare.counting = False
        close_window(side, window, backend_pid)
        side.gc_ms = (watch.total_ms, watch.max_ms, watch.collections)
        side.open_at_end = bare.open
        side.rss_growth_mb = own_rss_mb() - rss0
        side.lag_ms = side.probe_ms = probe.lag_ms
        side.pings, side.locations, side.frames_in = bare.pings, bare.locations, bare.frames_in
        side.closes = bare.closes
        side.problems = dict(bare.failed)
    finally:
        watch.__exit__()
        probe.stop()
        await bare.aclose()
    return side


