"""Fixtures for backend tests: users and tokens, communicators, live servers, a real Redis."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from beacon_backend import tokens
from beacon_backend.asgi import application
from beacon_backend.models import (
    Alert,
    ChatMessage,
    ClientMessage,
    LocationUpdate,
    StreamEvent,
    StreamHead,
)

STARTUP_TIMEOUT = 30.0


# -- in-process ----------------------------------------------------------------------------------

def _empty_database() -> None:
    for model in (ClientMessage, StreamEvent, StreamHead, ChatMessage, LocationUpdate, Alert, User):
        model.objects.all().delete()


@pytest.fixture
def db() -> Iterator[None]:
    """A clean database (and a fresh in-memory channel layer) for one test."""
    _empty_database()
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()
    _empty_database()


def make_user(username: str, *, staff: bool = False, password: str = "correct-horse-9") -> User:
    return User.objects.create_user(username=username, password=password, is_staff=staff)


def access_token(user: User) -> str:
    return tokens.issue(user.pk, "access")


def communicator(path: str, token: str | None = None, *, since: int | None = None,
                 headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    """A WebsocketCommunicator on the full ASGI application (auth middleware and routing)."""
    query = []
    if token is not None:
        query.append(f"token={token}")
    if since is not None:
        query.append(f"since={since}")
    url = path + ("?" + "&".join(query) if query else "")
    return WebsocketCommunicator(application, url, headers=headers or [])


@contextmanager
def isolated_logging() -> Iterator[io.StringIO]:
    """Apply logging configurations freely inside; stderr is captured; everything is put back after."""
    manager = logging.Logger.manager
    names = ["", *manager.loggerDict]
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.level, logger.propagate, logger.disabled,
                       logger.filters[:])
    stderr = sys.stderr
    sys.stderr = captured = io.StringIO()
    try:
        yield captured
    finally:
        sys.stderr = stderr
        for name in ["", *manager.loggerDict]:
            logger = logging.getLogger(name)
            handlers, level, propagate, disabled, filters = saved.get(name, ([], logging.NOTSET, True,
                                                                            False, []))
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled
            logger.filters[:] = filters


# -- processes -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``beacon-fleet`` as a user would, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "simulator.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@dataclass
class LiveBackend:
    """A ``beacon-fleet backend serve`` process on a free loopback port."""

    process: subprocess.Popen[str]
    url: str
    data_dir: Path
    env: dict[str, str]
    output: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):]

    def provision(self, phones: int, operators: int, prefix: str = "fleet") -> dict[str, Any]:
        out = self.data_dir / f"creds-{prefix}.json"
        done = cli("backend", "provision", "--data-dir", str(self.data_dir), "--phones", str(phones),
                   "--operators", str(operators), "--out", str(out), "--prefix", prefix, env=self.env)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(out.read_text()))

    def login(self, entry: dict[str, Any]) -> str:
        response = httpx.post(self.url + "api/auth/login/",
                              json={"username": entry["username"], "password": entry["password"]})
        assert response.status_code == 200, response.text
        return str(response.json()["tokens"]["access"])

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("backend did not stop within the timeout") from None
        assert self.process.stdout is not None
        if not self.process.stdout.closed:
            self.output.append(self.process.stdout.read())
            self.process.stdout.close()
        return code


def start_backend(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> LiveBackend:
    """Start ``backend serve --port 0``, read the URL it prints, wait for /api/health/ = 200."""
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "backend", "serve", "--port", "0",
         "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if "http://" not in first:
        process.kill()
        process.wait()
        rest = process.stdout.read()
        process.stdout.close()
        raise AssertionError(f"backend did not start: {first}{rest}")
    url = first[first.index("http://"):].split()[0]
    backend = LiveBackend(process, url, data_dir, env or {}, [first])
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "api/health/", timeout=1).status_code == 200:
                return backend
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.1)
    backend.stop(signal.SIGKILL)
    raise AssertionError(f"backend never became healthy: {''.join(backend.output)}")


@pytest.fixture
def live_backend(tmp_path: Path) -> Iterator[LiveBackend]:
    backend = start_backend(tmp_path / "data")
    yield backend
    backend.stop()


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port (CI installs it; elsewhere the test skips)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            raise AssertionError("redis-server is not installed; .ci/run should install it")
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise AssertionError("redis-server did not start")
    yield RedisServer(process, port)
    process.terminate()
    process.wait(timeout=10)
