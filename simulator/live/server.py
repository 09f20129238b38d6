"""The live view's web server: the page and its latest snapshot, on loopback only.

A standard-library :class:`~http.server.ThreadingHTTPServer` in a daemon thread, so serving never
blocks the fleet's event loop (a request only copies out the snapshot's bytes). Three answers:

- ``GET /`` (or ``/index.html``): the page (``page.html``, shipped with the package; it loads
  nothing else);
- ``GET /state.json``: the latest snapshot, ``Cache-Control: no-store``;
- anything else: 404. A request naming another host (``Host:`` not loopback, as a DNS-rebinding
  page would send) is refused with 403.

The server binds 127.0.0.1 (or ``::1``) and refuses any other address: the view shows who is in
distress where, and is not for the network.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TextIO

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
PAGE = "page.html"


class LiveError(Exception):
    """The live view could not be served (e.g. its port is taken); printed as one line."""


def page() -> bytes:
    """The live view's page, as shipped in the package."""
    return resources.files("simulator.live").joinpath(PAGE).read_bytes()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a port in use is an error, never shared

    def __init__(self, address: tuple[str, int], snapshot: Callable[[], bytes], body: bytes,
                 family: socket.AddressFamily) -> None:
        self.address_family = family
        self.snapshot = snapshot
        self.page = body
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: one request per connection, so no handler thread outlives stop() on a kept-alive
    # socket (a poll every 0.5 s on loopback costs nothing to reconnect).
    protocol_version = "HTTP/1.0"
    server_version = "beacon-fleet-live"

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        host = (self.headers.get("Host") or "").strip()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.strip("[]") not in LOOPBACK:
            self._send(HTTPStatus.FORBIDDEN, b"the live view answers loopback names only\n",
                       "text/plain; charset=utf-8", with_body)
            return
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8", with_body)
        elif path == "/state.json":
            self._send(HTTPStatus.OK, self.server.snapshot(), "application/json", with_body)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", with_body)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, with_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy",
                         "default-src 'none'; connect-src 'self'; img-src data:; "
                         "style-src 'unsafe-inline'; script-src 'unsafe-inline'")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the run's own output is on the same terminal."""


class LiveServer:
    """Serves the live view on loopback from a daemon thread.

    Args:
        port: The port; 0 picks a free one (see :attr:`port` after :meth:`start`).
        snapshot: Returns the latest snapshot's bytes (called from the server's threads).
        host: ``127.0.0.1`` (default), ``localhost`` or ``::1``; any other host is refused.

    Raises:
        ValueError: If ``host`` is not a loopback address.
    """

    def __init__(self, port: int, snapshot: Callable[[], bytes], host: str = "127.0.0.1") -> None:
        if host not in LOOPBACK:
            raise ValueError(f"the live view serves loopback only (127.0.0.1 or ::1), not {host!r}")
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.snapshot = snapshot
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address (with the port actually bound, once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, announce: TextIO | None = sys.stderr) -> str:
        """Bind and serve; print ``live view: URL`` on ``announce``; return the URL.

        Raises:
            LiveError: If the port cannot be bound (in use, or not allowed).
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            server = _Server((self.host, self.port), self.snapshot, page(), family)
        except OSError as error:
            reason = "in use" if error.errno == errno.EADDRINUSE else (error.strerror or str(error))
            raise LiveError(f"--live {self.port}: cannot serve on {self.host}:{self.port}: {reason}") \
                from None
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="beacon-fleet-live", daemon=True)
        self._thread.start()
        if announce is not None:
            print(f"live view: {self.url}", file=announce, flush=True)
        return self.url

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None


def hold(seconds: float | None, stdin: TextIO = sys.stdin, announce: TextIO = sys.stderr,
         sleep: Callable[[float], None] = time.sleep) -> None:
    """Keep the finished run's view up a while: ``seconds``, or, when ``None``, until Enter on a
    terminal (not at all when ``stdin`` is not one). Ctrl-C ends the wait early."""
    with contextlib.suppress(KeyboardInterrupt):
        if seconds is None:
            if not stdin.isatty():
                return
            print("live view: the run is over; press Enter (or Ctrl-C) to stop serving it",
                  file=announce, flush=True)
            stdin.readline()
        elif seconds > 0:
            print(f"live view: the run is over; serving it {seconds:g} s more", file=announce, flush=True)
            sleep(seconds)
