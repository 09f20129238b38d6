"""``beacon-fleet run`` as a user runs it: a short fleet against the reference backend on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import simulator.run
from simulator.ledger import Ledger
from simulator.profile import load
from simulator.report import LEDGER, REPORT_JSON
from tests.backend.fixtures import LiveBackend, RedisServer, start_backend

pytestmark = pytest.mark.live

USAGE = 2


def run_cli(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    """Run ``beacon-fleet run`` in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "simulator.cli", "run", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "NO_COLOR": "1"})


def report(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / REPORT_JSON).read_text())
    return document


def check_run(done: subprocess.CompletedProcess[str], out: Path, devices: int,
              embedded: bool, speed: float = 1) -> dict[str, Any]:
    assert done.returncode in (0, 1), (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    document = report(out)
    assert done.returncode == document["exit_code"]
    run = document["run"]
    assert run["mode"] == "run"
    assert run["devices"] == devices
    assert run["speed"] == speed
    assert run["backend"]["embedded"] is embedded
    verdicts = {v["id"]: v for v in document["verdicts"]}
    assert verdicts["connect"]["n"] == devices, verdicts["connect"]
    assert verdicts["connect"]["verdict"] == "pass", verdicts["connect"]
    assert verdicts["unexpected"]["verdict"] == "pass", verdicts["unexpected"]
    lag = document["generator"]["loop_lag_ms"]
    assert lag is not None and lag["n"] > 0
    assert done.stdout.startswith("beacon-fleet run: profile ")
    assert done.stdout.rstrip().endswith(f"report: {out}{os.sep}")
    return document


CLAIMS = {"connect", "reconnect", "latency", "heartbeat", "delivery", "loss-reconnect", "uptime",
          "reconnect-success", "duplicates", "battery", "memory", "unexpected"}


@pytest.mark.timeout(180)
def test_ci_smoke_connects_every_phone_judges_every_claim_and_loses_nothing(tmp_path: Path) -> None:
    """The whole ten minutes of ci-smoke (20 phones, outages, a shared outage, alerts, chat) at
    speed 12, so it takes under a minute: every claim is measured; resilient delivers everything.

    At speed 12 the timing verdicts are not authoritative (the report says so); what this checks is
    that nothing is lost, over real sockets to the embedded backend (whose keep-alive is scaled
    with the speed, so half-open sockets die after the same model time as at speed 1).
    """
    out = tmp_path / "report"
    done = run_cli("ci-smoke", "--speed", "12", "--out", str(out), "--no-progress")
    document = check_run(done, out, 20, embedded=True, speed=12)
    verdicts = {v["id"]: v for v in document["verdicts"]}
    assert set(verdicts) == CLAIMS
    assert [v for v in verdicts.values() if v["verdict"] == "not_measured"] == []
    for claim in ("loss-reconnect", "reconnect-success", "duplicates"):
        assert verdicts[claim]["verdict"] == "pass", verdicts[claim]
    assert verdicts["loss-reconnect"]["n"] > 0 and verdicts["reconnect"]["n"] > 0
    messages = document["messages"]
    lost = sum(m["originated"] - m["delivered"] for m in messages.values())
    # The only loss speed 12 may cause: a phone's chat line still unacked when the operator resolves
    # the alert is dropped by the client ("alert closed before delivery"). The backend's own time
    # counts 12 times over in model time, so that race is 12 times wider than at speed 1. Anything
    # else lost fails the test.
    dropped = Ledger.read(out / LEDGER).of_kind("dropped")
    closed = {r[2] for r in dropped if r[3] == "alert closed before delivery"}
    lost_ids = {m[2] for phone in document["views"]["worst"] for m in phone["lost_messages"]}
    assert sum(m["stored_only"] for m in messages.values()) == 0, messages
    assert len(lost_ids) == lost and lost_ids <= closed, (lost_ids, closed, verdicts["delivery"])
    if not lost:
        assert verdicts["delivery"]["verdict"] == "pass", verdicts["delivery"]
    assert any("speed 12" in warning for warning in document["warnings"])
    # the embedded backend's log is kept beside the report (its data directory is not)
    assert "Beacon backend on http://127.0.0.1:" in (out / "backend.log").read_text()


def test_url_and_creds_drive_an_existing_backend(tmp_path: Path, live_backend: LiveBackend) -> None:
    creds = live_backend.provision(4, 1, prefix="ext")
    path = tmp_path / "creds.json"
    path.write_text(json.dumps(creds))
    out = tmp_path / "report"
    done = run_cli("ci-smoke", "--devices", "4", "--operators", "1", "--duration", "20s",
                   "--url", live_backend.url, "--creds", str(path), "--out", str(out),
                   "--no-progress")
    document = check_run(done, out, 4, embedded=False)
    assert document["run"]["backend"]["url"] == live_backend.url
    assert live_backend.process.poll() is None  # a deployment the fleet did not start is left running


def test_url_without_creds_is_refused_in_one_line(tmp_path: Path) -> None:
    done = run_cli("--url", "http://127.0.0.1:9/", "--out", str(tmp_path / "r"), "--no-progress",
                   timeout=30)
    assert done.returncode == USAGE
    assert "Traceback" not in done.stderr
    assert "--creds" in done.stderr


@pytest.mark.redis
@pytest.mark.timeout(300)
def test_url_drives_a_two_worker_deployment_on_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    """A deployment the fleet did not start: ``serve --workers 2`` sharing events through Redis.

    The operators' consoles and the phones' sockets land on either worker, so every delivered
    alert, status change and chat line below crossed processes whenever sender and receiver were
    on different workers; a broken channel layer shows up as lost messages.
    """
    backend = start_backend(tmp_path / "data", "--workers", "2", "--redis-url", redis_server.url)
    try:
        creds = backend.provision(30, 2, prefix="w2")
        path = tmp_path / "creds.json"
        path.write_text(json.dumps(creds))
        out = tmp_path / "report"
        done = run_cli("first-look", "--url", backend.url, "--creds", str(path), "--out", str(out),
                       "--no-progress", timeout=240)
        document = check_run(done, out, 30, embedded=False)
        assert backend.process.poll() is None
    finally:
        backend.stop()
    verdicts = {v["id"]: v for v in document["verdicts"]}
    messages = document["messages"]
    # first-look, seed 1: alerts open, operators acknowledge and chat within the minute
    for kind in ("create", "status_update", "chat_from_operator"):
        assert messages[kind]["delivered"] > 0, (kind, messages[kind])
    assert verdicts["delivery"]["verdict"] == "pass", (verdicts["delivery"], messages)
    assert all(m["lost"] == 0 for m in messages.values()), messages
    assert not document["warnings"] or all("misbehaved" not in w for w in document["warnings"])


def test_url_where_nothing_answers_is_refused_in_one_line(tmp_path: Path) -> None:
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"phones": [{"id": 1, "username": "p", "password": "x"}], "operators": []}))
    done = run_cli("first-look", "--devices", "1", "--operators", "0", "--url", "http://127.0.0.1:9/",
                   "--creds", str(creds), "--out", str(tmp_path / "r"), "--no-progress", timeout=60)
    assert done.returncode == USAGE
    assert "Traceback" not in done.stderr
    assert "--url http://127.0.0.1:9/: no HTTP answer" in done.stderr
    assert not (tmp_path / "r").exists()


def test_a_fault_in_the_fleet_itself_still_judges_the_partial_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the model must not lose the run: the fleet stops, reads what was stored, judges the
    partial run with a warning naming the error, and stops the embedded backend."""
    config = load("ci-smoke", devices=2, operators=1, duration_s=20.0)  # phones start within 10 s
    built = simulator.run.build

    def build_with_a_fault(*args: Any, **kwargs: Any) -> simulator.run.LiveRun:
        live = built(*args, **kwargs)

        def fault(_event: object) -> None:
            raise RuntimeError("a model bug")

        callbacks = live.clock.timeout(14.0).callbacks
        assert callbacks is not None
        callbacks.append(fault)
        return live

    monkeypatch.setattr(simulator.run, "build", build_with_a_fault)
    outcome = simulator.run.run(config)
    assert outcome.failure == "RuntimeError: a model bug"
    assert 14.0 <= outcome.reached_s < config.duration_s
    assert any("the fleet itself failed" in warning for warning in outcome.result.warnings)
    verdicts = {v.id: v for v in outcome.result.verdicts}
    assert verdicts["connect"].n == 2  # judged as far as it went
    assert outcome.backend_log is not None and "Beacon backend on" in outcome.backend_log


@pytest.mark.parametrize(("detail", "alert", "statuses"), [
    # the reference backend: every status entered, in order, even one left again
    ({"status_history": [{"status": "acknowledged"}, {"status": "responding"}, {"status": "resolved"}]},
     {"status": "resolved", "acknowledged_at": "t"}, ["acknowledged", "responding", "resolved"]),
    ({"status_history": []}, {"status": "active", "acknowledged_at": None}, []),
    # a backend without the extension: inferred from the alert's current state
    ({}, {"status": "resolved", "acknowledged_at": "t"}, ["acknowledged", "resolved"]),
    ({}, {"status": "canceled", "acknowledged_at": None}, ["canceled"]),
    ({}, {"status": "active", "acknowledged_at": None}, []),
])
def test_the_drain_reads_status_history_or_infers_it(detail: dict[str, Any], alert: dict[str, Any],
                                                     statuses: list[str]) -> None:
    assert simulator.run._statuses(detail, alert) == statuses
