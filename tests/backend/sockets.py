"""Socket test helpers shared by the test_socket_* modules: the ``Sockets`` opener and its fixtures.

Registered through ``pytest_plugins`` in tests/conftest.py. ``fast_passwords`` is not autouse (it
would then apply to every test in the session): a module opts in with
``pytestmark = pytest.mark.usefixtures("fast_passwords")``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import override_settings

from tests.backend.fixtures import access_token, communicator

Message = dict[str, Any]
Headers = list[tuple[bytes, bytes]]


@pytest.fixture
def fast_passwords() -> Iterator[None]:
    """Users here never log in with a password; a cheap hasher keeps make_user fast."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


class Sockets:
    """Opens communicators, waits until each consumer is fully connected, closes them all."""

    def __init__(self) -> None:
        self.opened: list[WebsocketCommunicator] = []

    async def connect(self, comm: WebsocketCommunicator) -> WebsocketCommunicator:
        connected, _ = await comm.connect(timeout=3)
        assert connected, "the handshake must be accepted (refusals close after accepting)"
        self.opened.append(comm)
        return comm

    async def accepted(self, path: str, token: str | None = None, *,
                       headers: Headers | None = None) -> WebsocketCommunicator:
        """Connect with a raw token (or none) and check only that the handshake was accepted."""
        return await self.connect(communicator(path, token, headers=headers))

    async def close_code(self, path: str, token: str | None = None, *, headers: Headers | None = None) -> int:
        """Connect and return the close code, which must be the first thing the server sends."""
        comm = await self.accepted(path, token, headers=headers)
        output = await comm.receive_output(timeout=3)
        assert output["type"] == "websocket.close", f"expected a close first, got {output}"
        return int(output["code"])

    async def sync(self, comm: WebsocketCommunicator) -> list[Message]:
        """Ping, then read until the pong: returns everything the socket sent before it."""
        await comm.send_json_to({"type": "ping", "timestamp": "sync"})
        before: list[Message] = []
        for _ in range(50):
            message = await comm.receive_json_from(timeout=3)  # asserts a text frame, not a close
            if message["type"] == "pong" and message.get("timestamp") == "sync":
                return before
            before.append(message)
        raise AssertionError(f"no pong after {before}")

    async def usable(self, path: str, token: str | None, *,
                     headers: Headers | None = None) -> WebsocketCommunicator:
        """Connect with a raw token (or headers) and check the socket is usable (ping -> pong)."""
        comm = await self.accepted(path, token, headers=headers)
        await self.sync(comm)
        return comm

    async def open(self, path: str, user: User, *, since: int | None = None,
                   comm: WebsocketCommunicator | None = None) -> tuple[WebsocketCommunicator, list[Message]]:
        """Connect as ``user`` (or connect ``comm``), then ping: the socket and what it sent first."""
        comm = await self.connect(comm or communicator(path, access_token(user), since=since))
        return comm, await self.sync(comm)

    async def close_all(self) -> None:
        for comm in self.opened:
            if comm.future.cancelled():  # a receive timed out: the test already failed
                continue
            await comm.disconnect(timeout=3)


@pytest.fixture
async def sockets(db: None) -> AsyncIterator[Sockets]:
    opened = Sockets()
    yield opened
    await opened.close_all()
