"""``run``: the same fleet as ``simulate``, in wall-clock time, against a real Beacon backend.

The run: start the reference backend on a free loopback port with a fresh data directory and
provision the users the fleet needs (or take an existing deployment's URL and credentials file);
log every user in over HTTP; build the phones and operators exactly as :func:`simulator.simulate.build`
does, but on a :class:`~simulator.clock.WallClock` and a :class:`~simulator.transport.live.LiveWire`;
run for ``duration_s`` model seconds; stop originating and drain; read what the backend stored over
HTTP (the ``stored`` records); judge the ledger; stop the embedded backend (also on error or Ctrl-C).

Status changes are read from the alert detail's ``status_history`` (an extension of the reference
backend); a backend without it has them inferred from the alert's current state, which misses a
status entered and left again. The drain lasts the profile's ``drain``, as in simulate, but ends
early once everything is quiet for :data:`QUIET_S` (:func:`quiet`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from simulator import checks, correlate
from simulator.clock import WallClock
from simulator.correlate import Correlator
from simulator.device.phone import Phone
from simulator.fleet import FleetConfig, populate, stop_originating
from simulator.ledger import Ledger
from simulator.operators import Operator
from simulator.result import GeneratorStats, RunInfo, RunResult
from simulator.simulate import Progress, Watched
from simulator.transport.live import LiveConfig, LiveWire

log = logging.getLogger(__name__)

QUIET_S = 3.0  # model seconds everything must stay quiet before the drain ends early
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
LOGIN_CONCURRENCY = 20
READ_CONCURRENCY = 8

Credentials = dict[str, list[dict[str, Any]]]


class RunError(Exception):
    """The run could not be done (the backend did not start, a login failed ...): one line."""


# -- the backend ------------------------------------------------------------------------------------

@dataclass
class EmbeddedBackend:
    """``beacon-fleet backend serve --port 0`` in a subprocess, with a fresh data directory."""

    data_dir: Path
    keepalive: tuple[float, float] = (20.0, 20.0)  # the profile's [wire] server ping and timeout
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / "backend.log"

    def _command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "simulator.cli", "backend", *args]

    def start(self) -> str:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self._command("serve", "--port", "0", "--data-dir", str(self.data_dir),
                              "--ws-ping-interval", repr(self.keepalive[0]),
                              "--ws-ping-timeout", repr(self.keepalive[1])),
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RunError(f"the backend exited with status {self.process.returncode}: "
                               f"{self.tail()}")
            if not self.url:
                text = self.log_path.read_text(errors="replace")
                if "http://" in text:
                    self.url = text[text.index("http://"):].split()[0]
            if self.url:
                try:
                    if httpx.get(self.url + "api/health/", timeout=1, trust_env=False).status_code == 200:
                        return self.url
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        raise RunError(f"the backend did not become healthy within {STARTUP_TIMEOUT_S:.0f} s: "
                       f"{self.tail()}")

    def provision(self, phones: int, operators: int) -> Credentials:
        out = self.data_dir / "credentials.json"
        done = subprocess.run(
            self._command("provision", "--data-dir", str(self.data_dir), "--phones", str(phones),
                          "--operators", str(operators), "--out", str(out)),
            capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RunError(f"provisioning failed: {done.stderr.strip() or done.stdout.strip()}")
        return load_credentials(out)

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log(self) -> str | None:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return None

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


def check_reachable(base_url: str) -> None:
    """Fail in one line when nothing answers HTTP at ``base_url`` (any HTTP answer will do: a
    deployment need not have the reference backend's ``api/health/``)."""
    try:
        httpx.get(base_url + "api/health/", timeout=10, trust_env=False)
    except httpx.HTTPError as error:
        reason = str(error) or type(error).__name__
        raise RunError(f"--url {base_url}: no HTTP answer ({reason}); is the backend running?") from None


def load_credentials(path: Path) -> Credentials:
    """A credentials file as ``backend provision`` writes it."""
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise RunError(f"--creds {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise RunError(f"--creds {path}: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise RunError(f"--creds {path}: expected {{\"phones\": [...], \"operators\": [...]}}")
    creds: Credentials = {}
    for kind in ("phones", "operators"):
        entries = data.get(kind, [])
        if not isinstance(entries, list) or not all(
                isinstance(e, dict) and {"id", "username", "password"} <= set(e) for e in entries):
            raise RunError(f"--creds {path}: {kind!r} must be a list of {{id, username, password}}")
        creds[kind] = entries
    return creds


async def login_all(base_url: str, entries: list[dict[str, Any]]) -> dict[int, str]:
    """Log every user in (at most :data:`LOGIN_CONCURRENCY` at once); user id -> access token."""
    tokens: dict[int, str] = {}
    limit = asyncio.Semaphore(LOGIN_CONCURRENCY)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        async def one(entry: dict[str, Any]) -> None:
            async with limit:
                try:
                    response = await client.post(base_url + "api/auth/login/", json={
                        "username": entry["username"], "password": entry["password"]})
                except httpx.HTTPError as error:
                    raise RunError(f"login of {entry['username']} failed: {error!r}") from None
            if response.status_code != 200:
                raise RunError(f"login of {entry['username']} failed: HTTP {response.status_code} "
                               f"{response.text[:200]}")
            body = response.json()
            user_id = int(body.get("user", {}).get("id", entry["id"]))
            if user_id != int(entry["id"]):
                raise RunError(f"{entry['username']}: the credentials say user {entry['id']}, "
                               f"the backend says {user_id}")
            tokens[user_id] = str(body["tokens"]["access"])

        await asyncio.gather(*(one(entry) for entry in entries))
    return tokens


# -- the fleet --------------------------------------------------------------------------------------

@dataclass
class LiveRun:
    """A built fleet on the wall clock, ready to run."""

    config: FleetConfig
    clock: WallClock
    ledger: Ledger
    correlator: Correlator
    wire: LiveWire
    phones: list[Phone]
    operators: list[Operator]
    tokens: dict[int, str]
    failure: str | None = None  # the fleet's own error that ended the run early


def build(config: FleetConfig, clock: WallClock, wire: LiveWire, creds: Credentials,
          tokens: dict[int, str]) -> LiveRun:
    """As :func:`simulator.simulate.build`, with the provisioned user ids."""
    ledger = Ledger()
    correlator = Correlator()
    phones, operators = populate(
        config, clock, wire, ledger, correlator,
        [int(entry["id"]) for entry in creds["phones"][:config.devices]],
        [int(entry["id"]) for entry in creds["operators"][:config.operators]])
    return LiveRun(config, clock, ledger, correlator, wire, phones, operators, tokens)


def _stop_originating(live: LiveRun) -> None:
    stop_originating(live.phones, live.operators, live.clock.now, live.config.duration_s)


async def run_clock(live: LiveRun, drain_s: float, on_progress: Callable[[Progress], None] | None,
                    stop: asyncio.Event, slice_wall_s: float = 0.25) -> float:
    """Run for the duration, stop originating, drain; return the model time reached.

    ``stop`` set (Ctrl-C) ends the run between two slices: originating stops, the drain is skipped.
    """
    config, clock = live.config, live.clock
    started = time.monotonic()
    end = config.duration_s
    step = max(slice_wall_s * clock.speed, 1e-3)
    quiet_since: float | None = None
    for phase, until in (("run", end), ("drain", end + drain_s)):
        while clock.now < until and not stop.is_set():
            await clock.run(until=min(until, clock.now + step))
            if phase == "drain":
                quiet_since = (quiet_since if quiet_since is not None else float(clock.now)) \
                    if quiet(live) else None
                if quiet_since is not None and clock.now - quiet_since >= QUIET_S:
                    break
            if on_progress is not None:
                on_progress(Progress(float(clock.now), end + drain_s, live.wire.events,
                                     time.monotonic() - started, phase,
                                     Watched(live.ledger, live.phones, live.operators)))
        if phase == "run" or stop.is_set():
            _stop_originating(live)
        if stop.is_set():
            break
    return float(clock.now)


def quiet(live: LiveRun) -> bool:
    """Nothing left to wait for: every phone's client is settled (see
    :attr:`~simulator.protocol.client.BeaconClient.settled`: a phone whose network is down is
    not), and no byte or HTTP exchange is on its way."""
    if live.wire.tasks or not all(phone.client.settled for phone in live.phones):
        return False
    return all(not sock.up and not sock.down for sock in live.wire.open_sockets.values())


# -- what the backend stored ------------------------------------------------------------------------

async def _pages(client: httpx.AsyncClient, url: str, token: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await client.get(url, params={"page": page},
                                    headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            raise RunError(f"GET {url}?page={page}: HTTP {response.status_code} {response.text[:200]}")
        body = response.json()
        results += body.get("results", [])
        if not body.get("next"):
            return results
        page += 1


async def read_stored(base_url: str, readers: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every record the backend holds, as (kind, record), read over HTTP.

    ``readers`` are access tokens: an operator's sees every alert; phones' tokens (when there is no
    operator) each see their own. Status changes: see :func:`_statuses`.
    """
    records: list[tuple[str, dict[str, Any]]] = []
    limit = asyncio.Semaphore(READ_CONCURRENCY)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        alerts: dict[str, tuple[dict[str, Any], str]] = {}
        for token in readers:
            for alert in await _pages(client, base_url + "api/auth/alerts/", token):
                alerts.setdefault(str(alert["id"]), (alert, token))

        async def details(alert_id: str, token: str) -> tuple[str, list[Any], list[Any], list[str]]:
            async with limit:
                base = f"{base_url}api/auth/alerts/{alert_id}/"
                response = await client.get(base, headers={"Authorization": f"Bearer {token}"})
                if response.status_code != 200:
                    raise RunError(f"GET {base}: HTTP {response.status_code} {response.text[:200]}")
                detail = response.json()
                locations = detail.get("location_history")  # PROTOCOL: the detail carries them all
                if not isinstance(locations, list):
                    locations = await _pages(client, base + "locations/", token)
                messages = await _pages(client, base + "messages/", token)
            return alert_id, locations, messages, _statuses(detail, alerts[alert_id][0])

        found = await asyncio.gather(*(details(a, t) for a, (_, t) in alerts.items()))
    for alert_id, locations, messages, statuses in found:
        alert = alerts[alert_id][0]
        records.append(("create", {"alert_id": alert_id, "user": alert["user"],
                                   "latitude": alert["latitude"], "longitude": alert["longitude"]}))
        records += [("location", {"alert_id": alert_id, **loc}) for loc in locations]
        records += [("chat", {"alert_id": alert_id, **chat}) for chat in messages]
        records += [("status", {"alert_id": alert_id, "status": s}) for s in statuses]
    return records


def _statuses(detail: dict[str, Any], alert: dict[str, Any]) -> list[str]:
    """The statuses the alert entered: the detail's ``status_history`` (the reference backend's
    extension) when the backend has one, else inferred from its current state (``acknowledged``
    when ``acknowledged_at`` is set, then the current status unless ``active``)."""
    history = detail.get("status_history")
    if isinstance(history, list) and all(isinstance(e, dict) and "status" in e for e in history):
        return [str(entry["status"]) for entry in history]
    inferred = []
    if alert.get("acknowledged_at") and alert["status"] != "acknowledged":
        inferred.append("acknowledged")
    if alert["status"] != "active":
        inferred.append(str(alert["status"]))
    return inferred


def record_stored(live: LiveRun, records: list[tuple[str, dict[str, Any]]]) -> None:
    """Match stored records to origins, exactly as simulate does."""
    correlate.record_stored(live.ledger, live.correlator, records)


# -- the whole run ----------------------------------------------------------------------------------

@dataclass
class Outcome:
    """A finished run: the judged result, its ledger, and how it ended."""

    result: RunResult
    ledger: Ledger
    interrupted: bool
    reached_s: float
    end_s: float
    problems: Counter[str]
    backend_log: str | None = None  # the embedded backend's log (kept in the report folder)
    failure: str | None = None  # the fleet's own error that ended the run early


def settle_heap() -> None:
    """The built fleet lives all run long: move it out of the collector's sight, and collect the
    young generation less often, so a large fleet's heap does not cost pauses that show up as
    loop lag (the collector stays on: a run of hours makes cyclic garbage, asyncio's included)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


async def _drive(config: FleetConfig, url: str, creds: Credentials, speed: float,
                 origin: str | None, on_progress: Callable[[Progress], None] | None,
                 stop: asyncio.Event) -> tuple[LiveRun, float, list[tuple[str, dict[str, Any]]]]:
    users = creds["phones"][:config.devices] + creds["operators"][:config.operators]
    tokens = await login_all(url, users)
    clock = WallClock(speed=speed)
    wire = LiveWire(clock, url, tokens, origin=origin,
                    config=LiveConfig(connect_timeout_s=config.wire.connect_timeout_s,
                                      http_timeout_s=config.wire.http_timeout_s,
                                      push_latency_s=config.wire.push_latency_s))
    try:
        live = build(config, clock, wire, creds, tokens)
        settle_heap()
        try:
            reached = await run_clock(live, config.drain_s, on_progress, stop)
        except Exception as error:  # a bug in the fleet: stop, and judge what ran (the report says so)
            log.exception("the fleet failed at model time %.3f s", float(clock.now))
            live.failure = f"{type(error).__name__}: {error}"
            _stop_originating(live)
            reached = float(clock.now)
        operators = [tokens[int(e["id"])] for e in creds["operators"][:config.operators]]
        readers = operators[:1] or [tokens[int(e["id"])] for e in creds["phones"][:config.devices]]
        stored = await read_stored(url, readers)
    finally:
        await wire.aclose()
    return live, reached, stored


def run(config: FleetConfig, *, speed: float = 1.0, url: str | None = None,
        creds_path: Path | None = None, origin: str | None = None,
        on_progress: Callable[[Progress], None] | None = None, strict: bool = False,
        profile_name: str | None = None) -> Outcome:
    """Run one fleet against a backend (embedded unless ``url``), then judge it.

    Raises:
        RunError: If the run could not be done (backend, credentials, logins, reading the store).
    """
    started_at = datetime.now(UTC).replace(microsecond=0).isoformat()
    wall = time.monotonic()
    cpu = time.process_time()
    backend: EmbeddedBackend | None = None
    backend_log: str | None = None
    scratch: str | None = None
    try:
        if url is None:
            scratch = tempfile.mkdtemp(prefix="beacon-fleet-run-")
            # The backend's keep-alive runs on wall time: scaled, it gives up on a half-open socket
            # after the same model time as in simulate, at any speed.
            backend = EmbeddedBackend(Path(scratch), (config.wire.server_ping_s / speed,
                                                      config.wire.server_ping_timeout_s / speed))
            base_url = backend.start()
            creds = backend.provision(config.devices, config.operators)
        else:
            if creds_path is None:
                raise RunError("--url needs --creds (a credentials file from `backend provision`)")
            base_url = url if url.endswith("/") else url + "/"
            creds = load_credentials(creds_path)
            check_reachable(base_url)
        if len(creds["phones"]) < config.devices or len(creds["operators"]) < config.operators:
            raise RunError(f"the credentials hold {len(creds['phones'])} phone(s) and "
                           f"{len(creds['operators'])} operator(s); the run needs {config.devices} "
                           f"and {config.operators}")
        live, reached, stored, interrupted = _loop(config, base_url, creds, speed, origin, on_progress)
    finally:
        if backend is not None:
            backend.stop()
            backend_log = backend.log()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    record_stored(live, stored)
    drain_s = config.drain_s
    run_info = RunInfo(
        mode="run", profile=profile_name or config.name, seed=config.seed,
        devices=config.devices, operators=config.operators,
        duration_s=min(reached, config.duration_s), policy=config.policy, speed=speed,
        backend_url=base_url, backend_embedded=url is None, started_at=started_at,
        wall_s=round(time.monotonic() - wall, 3), shards=1,
    )
    stats = GeneratorStats(loop_lag_ms=live.clock.loop_lag_ms,
                           cpu_s=round(time.process_time() - cpu, 3),
                           peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    result = checks.judge(live.ledger, run_info, config.targets, stats, strict=strict)
    problems = live.wire.problems
    if problems:
        listed = ", ".join(f"{cause} x{n}" for cause, n in problems.most_common())
        result = dataclasses.replace(result, warnings=(
            *result.warnings, f"the backend misbehaved: {listed}"))
    if live.failure is not None:
        result = dataclasses.replace(result, warnings=(
            *result.warnings, f"the fleet itself failed at {reached:.1f} s of model time "
                              f"({live.failure}): a partial run, judged as far as it went"))
    return Outcome(result, live.ledger, interrupted, reached, config.duration_s + drain_s,
                   Counter(problems), backend_log, live.failure)


def _loop(config: FleetConfig, url: str, creds: Credentials, speed: float, origin: str | None,
          on_progress: Callable[[Progress], None] | None
          ) -> tuple[LiveRun, float, list[tuple[str, dict[str, Any]]], bool]:
    """Drive the fleet on a fresh event loop; the first Ctrl-C stops it cleanly, the second at once."""

    async def main() -> tuple[LiveRun, float, list[tuple[str, dict[str, Any]]], bool]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_sigint() -> None:
            if stop.is_set() and task is not None:
                task.cancel()
            stop.set()
            print("stopping: the partial run will be judged and written (Ctrl-C again to stop at "
                  "once)", file=sys.stderr, flush=True)

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            live, reached, stored = await _drive(config, url, creds, speed, origin, on_progress, stop)
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGINT)
        return live, reached, stored, stop.is_set()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (it is a dependency where it exists), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
