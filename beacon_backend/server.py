"""Serve the backend on a real ASGI server (Uvicorn or Daphne), one or several worker processes.

The listening socket is bound here, before any worker starts, so ``--port 0`` picks a free port
that is known (and printed) before the first request, and every worker accepts on the same socket.
Several workers share one deployment only through the Redis channel layer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from urllib.parse import urlsplit

APP = "beacon_backend.asgi:application"
MAX_FRAME_BYTES = 64 * 1024


class ServeError(Exception):
    """The server cannot start for a reason the user can fix; the message says which."""


@dataclass(frozen=True)
class Listener:
    sock: socket.socket
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def bind(host: str, port: int) -> Listener:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return Listener(sock, host, sock.getsockname()[1])


def check_redis(url: str, timeout: float = 3.0) -> None:
    """Fail fast, with the address, when the Redis channel layer cannot be reached."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ServeError(f"BEACON_REDIS_URL: expected redis://host:port/db, got scheme {parts.scheme!r}")
    try:
        host, port = parts.hostname or "localhost", parts.port or 6379
    except ValueError:
        raise ServeError("--redis-url: the port is not a number from 0 to 65535") from None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as error:
        raise ServeError(f"Redis at {host}:{port} is not reachable: {error}") from None


@dataclass(frozen=True)
class Keepalive:
    """The server's WebSocket pings: every ``interval`` s, dropping a socket whose pong is
    ``timeout`` s late (Uvicorn's defaults). Short values make half-open sockets die fast."""

    interval: float = 20.0
    timeout: float = 20.0


def run(listener: Listener, server: str, workers: int, keepalive: Keepalive | None = None) -> int:
    """Serve until SIGINT or SIGTERM; return the exit status."""
    keepalive = keepalive or Keepalive()
    if server == "uvicorn":
        return _run_uvicorn(listener, workers, keepalive)
    if server == "daphne":
        if workers == 1:
            return _run_daphne(listener, keepalive)
        return _run_daphne_workers(listener, workers, keepalive)
    raise ServeError(f"unknown server {server!r} (choose uvicorn or daphne)")


def _run_uvicorn(listener: Listener, workers: int, keepalive: Keepalive) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    class GracefulServer(uvicorn.Server):
        """Uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; a clean stop is exit 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            handled = (signal.SIGINT, signal.SIGTERM)
            originals = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in originals.items():
                    signal.signal(sig, handler)

    from beacon_backend.logs import logging_config

    config = uvicorn.Config(
        APP, workers=workers, log_level="warning", access_log=False, lifespan="off",
        log_config=logging_config(),
        ws_max_size=MAX_FRAME_BYTES, timeout_graceful_shutdown=5,
        ws_ping_interval=keepalive.interval, ws_ping_timeout=keepalive.timeout,
    )
    if workers == 1:
        GracefulServer(config).run(sockets=[listener.sock])
    else:
        Multiprocess(config, sockets=[listener.sock]).run()
    return 0


def _run_daphne(listener: Listener, keepalive: Keepalive) -> int:
    from daphne.server import Server  # installs Twisted's asyncio reactor

    from beacon_backend.asgi import application

    Server(
        application=application,
        endpoints=[f"fd:fileno={listener.sock.fileno()}"],
        # No action_logger: daphne then writes no access log (which would carry ?token=).
        websocket_max_message_size=MAX_FRAME_BYTES,
        websocket_max_frame_size=MAX_FRAME_BYTES,
        ping_interval=keepalive.interval,
        ping_timeout=keepalive.timeout,
    ).run()
    return 0


def _run_daphne_workers(listener: Listener, workers: int, keepalive: Keepalive) -> int:
    """One Daphne process per worker, all accepting on the inherited socket."""
    fd = listener.sock.fileno()
    command = [sys.executable, "-m", "beacon_backend.server", "--daphne-fd", str(fd),
               "--ping-interval", repr(keepalive.interval), "--ping-timeout", repr(keepalive.timeout)]
    children = [subprocess.Popen(command, pass_fds=(fd,)) for _ in range(workers)]
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes = [child.wait() for child in children]
    # A worker still booting when we forwarded SIGTERM dies of it: that is a clean stop too.
    clean = {0, -signal.SIGTERM} if stopping else {0}
    return 0 if all(code in clean for code in codes) else 1


if __name__ == "__main__":  # a Daphne worker started by _run_daphne_workers
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beacon_backend.settings")
    def _arg(name: str) -> str:
        return sys.argv[sys.argv.index(name) + 1]

    inherited = socket.socket(fileno=int(_arg("--daphne-fd")))
    sys.exit(_run_daphne(Listener(inherited, "", 0),
                         Keepalive(float(_arg("--ping-interval")), float(_arg("--ping-timeout")))))
