"""The live view's server, and ``beacon-fleet run --live`` serving a real run as it goes.

The server binds loopback only and answers three things (the page, the latest snapshot, 404); a busy
port is a one-line error before anything runs. A real short run (ci-smoke against the embedded
backend) is polled while it runs: its snapshots advance, its phones connect, its alerts appear, and
its last snapshot carries the very verdicts report.json has.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.live import LiveError, LiveServer, hold
from simulator.live.server import page
from simulator.report import REPORT_JSON

SNAPSHOT = b'{"v":1,"seq":3}'


@pytest.fixture
def server() -> Iterator[LiveServer]:
    live = LiveServer(0, lambda: SNAPSHOT)
    live.start(announce=None)
    try:
        yield live
    finally:
        live.stop()


def get(port: int, path: str, method: str = "GET", host: str | None = None
        ) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {} if host is None else {"Host": host}
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def non_loopback_address() -> str | None:
    """This machine's address on its default route (a UDP connect sends nothing), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only, no packet
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_serves_the_page_and_the_snapshot_and_nothing_else(server: LiveServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}/" and server.port > 0
    status, headers, body = get(server.port, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert body == page() and b"<canvas" in body and b"state.json" in body
    assert b"http://" not in body and b"https://" not in body  # it loads nothing from anywhere
    status, headers, body = get(server.port, "/state.json?t=1")
    assert (status, body) == (200, SNAPSHOT)
    assert headers["content-type"] == "application/json" and headers["cache-control"] == "no-store"
    status, headers, body = get(server.port, "/state.json", method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(len(SNAPSHOT))
    for path in ("/favicon.ico", "/state", "/../etc/passwd", "/index.html/x"):
        assert get(server.port, path)[0] == 404, path


def test_a_page_naming_another_host_is_refused(server: LiveServer) -> None:
    assert get(server.port, "/state.json", host="attacker.example:80")[0] == 403
    assert get(server.port, "/", host=f"localhost:{server.port}")[0] == 200


def test_binds_loopback_only(server: LiveServer) -> None:
    assert server._server is not None and server._server.server_address[0] == "127.0.0.1"
    address = non_loopback_address()
    if address is not None:
        with pytest.raises(OSError), socket.create_connection((address, server.port), timeout=2):
            pass


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org", ""])
def test_refuses_a_host_that_is_not_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        LiveServer(0, lambda: SNAPSHOT, host=host)


def test_a_busy_port_is_a_clean_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LiveError, match=f"--live {port}: .* in use"):
            LiveServer(port, lambda: SNAPSHOT).start(announce=None)


def test_start_announces_the_url_and_stop_frees_the_port() -> None:
    announce = io.StringIO()
    live = LiveServer(0, lambda: SNAPSHOT)
    url = live.start(announce=announce)
    assert announce.getvalue() == f"live view: {url}\n"
    port = live.port
    live.stop()
    live.stop()  # idempotent
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))


class FakeStdin(io.StringIO):
    def __init__(self, text: str, tty: bool) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_hold_waits_for_enter_on_a_terminal_only_or_for_the_seconds_given() -> None:
    slept: list[float] = []
    out = io.StringIO()
    hold(None, FakeStdin("", tty=False), out, slept.append)
    assert slept == [] and out.getvalue() == ""
    stdin = FakeStdin("\nmore\n", tty=True)
    hold(None, stdin, out, slept.append)
    assert stdin.read() == "more\n" and "press Enter" in out.getvalue()
    hold(2.5, FakeStdin("", tty=True), out, slept.append)
    hold(0.0, FakeStdin("", tty=True), out, slept.append)
    assert slept == [2.5]


def test_hold_ends_quietly_on_ctrl_c() -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    hold(30.0, FakeStdin("", tty=False), io.StringIO(), interrupted)


# -- beacon-fleet run --live ----------------------------------------------------------------------


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator.cli", "run", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "NO_COLOR": "1"})


def test_run_with_a_busy_live_port_stops_before_the_run(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("ci-smoke", "--live", str(port), "--out", str(out), "--no-progress")
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"beacon-fleet: --live {port}: ") and "in use" in done.stderr
    assert not out.exists() and done.stdout == ""


def test_live_options_are_checked() -> None:
    for args in (["--live", "70000"], ["--live", "-1"], ["--live-hold", "-2"], ["--live-hold", "soon"]):
        done = run_cli("ci-smoke", *args)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (args, done.stderr)


def test_live_before_the_profile_takes_no_port() -> None:
    from simulator.cli import _bare_live, build_parser

    def parsed(*argv: str) -> tuple[object, object]:
        args = build_parser().parse_args(_bare_live(list(argv)))
        return args.live, args.profile

    assert parsed("run", "--live", "ci-smoke") == (0, "ci-smoke")
    assert parsed("run", "--live", "8765", "ci-smoke") == (8765, "ci-smoke")
    assert parsed("run", "ci-smoke", "--live") == (0, "ci-smoke")
    assert parsed("run", "--live", "--no-progress") == (0, "first-look")
    assert parsed("run") == (None, "first-look")
    assert _bare_live(["simulate", "--live", "x"]) == ["simulate", "--live", "x"]  # only run has --live


def fetch_state(url: str) -> dict[str, Any] | None:
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    with contextlib.suppress(OSError):
        status, _, body = get(port, "/state.json")
        if status == 200:
            state: dict[str, Any] = json.loads(body)
            return state
    return None


@pytest.mark.live
@pytest.mark.timeout(150)
def test_a_real_run_is_served_live_and_ends_with_the_judged_verdicts(tmp_path: Path) -> None:
    """ci-smoke (20 phones) for three model minutes at speed 12, against the embedded backend."""
    out = tmp_path / "report"
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "run", "ci-smoke", "--speed", "12", "--duration", "3m",
         "--live", "0", "--live-hold", "4", "--no-progress", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert first.startswith("live view: http://127.0.0.1:"), first
        url = first.split(": ", 1)[1].strip()
        states: list[dict[str, Any]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            state = fetch_state(url)
            if state is not None:
                states.append(state)
                if state["verdicts_final"]:
                    break
            time.sleep(0.5)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode in (0, 1), (process.returncode, stdout, stderr)
    assert "Traceback" not in stderr
    running = [s for s in states if s["phase"] in ("run", "drain")]
    times = [s["t"] for s in running]
    assert len(set(times)) >= 4 and times == sorted(times), times  # it advanced while polled
    assert max(s["counts"]["connected"] for s in running) >= 15
    assert all(s["phones"] == 20 and s["map"]["shown"] == 20 for s in running)
    assert any(s["alerts"] for s in running), "ci-smoke's seed raises an alert in its first minutes"
    assert any(s["lines"] for s in running)
    assert all(not s["verdicts_final"] and all(v["so_far"] for v in s["verdicts"]) for s in running)
    final = states[-1]
    assert final["verdicts_final"] and final["ended"] and final["phase"] == "ended"
    report = json.loads((out / REPORT_JSON).read_text())
    assert final["verdicts"] == report["verdicts"]
    assert final["t"] >= 180.0
