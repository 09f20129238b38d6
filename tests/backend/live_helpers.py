"""Small helpers for live tests: real ``websockets`` and ``httpx`` clients against a served backend.

Every receive is bounded by a timeout and every loop by a count, so a broken server fails a test
instead of hanging it. Clients never use a proxy: traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 5.0
MAX_FRAMES = 100

# Frames that answer a client (or describe state on connect); every other type is a stream event.
REPLY_TYPES = frozenset({"success", "ack", "error", "pong", "resync_required",
                         "active_alerts", "alert_status", "last_location"})


@dataclass(frozen=True)
class Account:
    """A provisioned user, logged in."""

    id: int
    username: str
    access: str
    refresh: str


def http_client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT, trust_env=False)


async def login(client: httpx.AsyncClient, entry: dict[str, Any]) -> Account:
    response = await client.post("api/auth/login/",
                                 json={"username": entry["username"], "password": entry["password"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["id"] == entry["id"]
    return Account(entry["id"], entry["username"], body["tokens"]["access"], body["tokens"]["refresh"])


def bearer(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.access}"}


async def create_alert(client: httpx.AsyncClient, phone: Account, latitude: float = 52.5200066,
                       longitude: float = 13.404954, **extra: Any) -> dict[str, Any]:
    response = await client.post("api/auth/panic/create/", headers=bearer(phone),
                                 json={"latitude": latitude, "longitude": longitude, "accuracy": 8.0,
                                       **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is True and body["alert"]["status"] == "active"
    return body


def ws_url(base: str, path: str, token: str | None = None, since: int | None = None) -> str:
    """``base`` is the server's http:// URL; ``path`` has no leading slash."""
    assert base.startswith("http://127.0.0.1:"), base
    query: dict[str, Any] = {}
    if token is not None:
        query["token"] = token
    if since is not None:
        query["since"] = since
    url = "ws://" + base[len("http://"):] + path
    return url + ("?" + urlencode(query) if query else "")


async def open_ws(base: str, path: str, token: str | None = None,
                  since: int | None = None) -> ClientConnection:
    return await connect(ws_url(base, path, token, since), proxy=None, open_timeout=TIMEOUT,
                         close_timeout=2, ping_interval=None)


async def opened(stack: AsyncExitStack, base: str, path: str, token: str | None,
                 since: int | None = None) -> ClientConnection:
    """Open a socket that ``stack`` closes."""
    return await stack.enter_async_context(await open_ws(base, path, token, since))


async def send_json(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def recv_json(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, str), f"expected a text frame, got {raw!r}"
    message = json.loads(raw)
    assert isinstance(message, dict) and isinstance(message.get("type"), str), message
    assert isinstance(message.get("seq"), int), f"frame without an integer seq: {message}"
    return message


async def recv_until(ws: ClientConnection, kind: str, timeout: float = TIMEOUT,
                     max_frames: int = MAX_FRAMES) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first frame of type ``kind``, and the frames that came before it."""
    skipped: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(max_frames):
        message = await recv_json(ws, max(0.01, deadline - loop.time()))
        if message["type"] == kind:
            return message, skipped
        skipped.append(message)
    raise AssertionError(f"no {kind!r} within {max_frames} frames: {skipped}")


async def recv_n(ws: ClientConnection, count: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    return [await recv_json(ws, timeout) for _ in range(count)]


async def request(ws: ClientConnection, message: dict[str, Any], reply: str = "success",
                  timeout: float = TIMEOUT) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send ``message`` and wait for the reply of type ``reply``; also returns what came first."""
    await send_json(ws, message)
    return await recv_until(ws, reply, timeout)


async def exchange(ws: ClientConnection, message: dict[str, Any], *kinds: str,
                   timeout: float = TIMEOUT) -> dict[str, dict[str, Any]]:
    """Send ``message``; exactly ``len(kinds)`` frames follow, one of each kind, in any order."""
    await send_json(ws, message)
    frames = await recv_n(ws, len(kinds), timeout)
    assert sorted(m["type"] for m in frames) == sorted(kinds), frames
    return {m["type"]: m for m in frames}


async def assert_quiet(ws: ClientConnection, seconds: float = 0.3) -> None:
    """Nothing arrives for ``seconds`` (used after an exact-replay check)."""
    try:
        message = await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected frame: {message!r}")


async def ping_is_next(ws: ClientConnection, timestamp: int = 1) -> dict[str, Any]:
    """Send a ping and require that the very next frame is its pong."""
    await send_json(ws, {"type": "ping", "timestamp": timestamp})
    pong = await recv_json(ws)
    assert pong["type"] == "pong" and pong["timestamp"] == timestamp, pong
    return pong


async def close_code(ws: ClientConnection, timeout: float = TIMEOUT) -> int | None:
    """Wait for the server to close the socket; the close code the client received."""
    for _ in range(MAX_FRAMES):
        try:
            await asyncio.wait_for(ws.recv(), timeout)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("the server kept sending instead of closing")


async def refused_with(base: str, path: str, token: str | None) -> int | None:
    """Connect, then return the close code the server closes with (no frames may come first)."""
    ws = await open_ws(base, path, token)
    try:
        await asyncio.wait_for(ws.recv(), TIMEOUT)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    finally:
        await ws.close()
    raise AssertionError(f"{path}: got a frame instead of a close")


def events(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] not in REPLY_TYPES]


def location(latitude: float, longitude: float, **extra: Any) -> dict[str, Any]:
    return {"latitude": round(latitude, 7), "longitude": round(longitude, 7), "accuracy": 5.0,
            "provider": "gps", **extra}


# -- processes and sockets -------------------------------------------------------------------------

def port_of(base: str) -> int:
    return int(base.rstrip("/").rsplit(":", 1)[1])


def port_refuses(port: int) -> bool:
    """Nothing accepts connections on 127.0.0.1:port any more."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def port_bindable(port: int) -> bool:
    """A new server could listen on the port again (with SO_REUSEADDR, as ``server.bind`` does)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:
            return False
        return True


def child_pids(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    except OSError:
        pass
    return inodes


def serving_pid(ws: ClientConnection, server_port: int, candidates: list[int]) -> int:
    """Which of ``candidates`` (worker pids) holds the server end of this client's TCP connection."""
    client_port = ws.local_address[1]
    wanted = None
    with open("/proc/net/tcp") as handle:
        for line in handle.readlines()[1:]:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
                wanted = inode
                break
    assert wanted is not None, f"no server-side socket for client port {client_port}"
    owners = [pid for pid in candidates if wanted in _socket_inodes(pid)]
    assert len(owners) == 1, f"connection {client_port} owned by {owners} among {candidates}"
    return owners[0]
