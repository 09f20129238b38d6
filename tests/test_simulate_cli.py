"""``beacon-fleet simulate`` as a user runs it: the report folder, exit statuses, refusals, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from simulator.ledger import Ledger
from simulator.report import JUNIT_XML, LEDGER, REPORT_HTML, REPORT_JSON
from tests.test_cli import one_line_refusal

INTERRUPTED = 130

# A profile whose targets cannot fail but where most claims cannot be measured (no alert, no
# outage): it tells "strict" apart from "not strict".
QUIET = """\
devices = 3
operators = 1
duration = "5m"
seed = 1
start_spread = 0

[area]
latitude = 51.5
longitude = -0.12
radius_m = 500

[device_models]
"Galaxy S24" = 1

[network]
presets = { wifi = 1 }
handover_mean = false
outage_rate_per_h = 0

[lifecycle]
start_foreground = true

[user]
panic_rate_per_h = 0

[[groups]]
name = "idle"
share = 1

[targets]
connect_p99 = "1h"
uptime_min = 0
"""


def simulate(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``beacon-fleet simulate`` in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "simulator.cli", "simulate", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env={**os.environ, "NO_COLOR": "1"})


def report(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / REPORT_JSON).read_text())
    return document


def expected_status(document: dict[str, Any], strict: bool) -> int:
    """REPORT.md: 1 if a verdict failed (or, strict, was not measured), else 0."""
    failing = {"fail", "not_measured"} if strict else {"fail"}
    return 1 if any(v["verdict"] in failing for v in document["verdicts"]) else 0



def ledger_counts(out: Path) -> tuple[int, int]:
    """(create messages originated, network outages) in a report folder's ledger."""
    ledger = Ledger.read(out / LEDGER)
    creates = sum(1 for r in ledger.records if r[0] == "originated" and r[3] == "create")
    outages = sum(1 for r in ledger.records if r[0] == "state" and r[3] == "network" and r[4] == "down")
    return creates, outages


# -- a whole run ----------------------------------------------------------------------------------

def test_ci_smoke_writes_the_report_folder_and_exits_as_its_verdicts(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    done = simulate("ci-smoke", "--out", str(out), "--no-progress")
    assert done.returncode in (0, 1), done.stderr
    assert done.stderr == ""
    for name in (REPORT_JSON, JUNIT_XML, REPORT_HTML, LEDGER):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    document = report(out)
    assert done.returncode == expected_status(document, strict=False) == document["exit_code"]
    run = document["run"]
    assert (run["mode"], run["profile"], run["devices"], run["operators"], run["duration_s"], run["policy"]) \
        == ("simulate", "ci-smoke", 20, 2, 600, "resilient")
    assert document["strict"] is False
    # The console: the verdict table, one row per claim, and where the report is.
    assert done.stdout.startswith("beacon-fleet simulate: profile ci-smoke, policy resilient, 20 devices")
    for verdict in document["verdicts"]:
        assert f"\n{verdict['id']} " in done.stdout
    assert "\x1b[" not in done.stdout
    assert done.stdout.rstrip().endswith(f"open in a browser: {out / 'report.html'}\nreport: {out}{os.sep}")
    suite = ET.parse(out / JUNIT_XML).getroot()
    assert int(suite.get("tests", "0")) == len(document["verdicts"])
    # ci-smoke is small but not idle: at least one alert and one outage.
    creates, outages = ledger_counts(out)
    assert creates >= 1 and outages >= 1


def test_the_same_seed_gives_the_same_report(tmp_path: Path) -> None:
    def stable(out: Path) -> dict[str, Any]:
        document = report(out)
        for key in ("started_at", "wall_s"):
            document["run"].pop(key)
        document.pop("generator")
        document["verdicts"] = [v for v in document["verdicts"] if v["id"] != "memory"]
        return document

    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert simulate("ci-smoke", "--out", str(out), "--no-progress", "--devices", "8").returncode in (0, 1)
    assert stable(first) == stable(second)


def test_overrides_reach_the_report(tmp_path: Path) -> None:
    out = tmp_path / "over"
    done = simulate("ci-smoke", "--out", str(out), "--no-progress", "--devices", "4", "--operators", "1",
                    "--duration", "2m", "--seed", "9", "--policy", "beacon-1.0")
    assert done.returncode in (0, 1), done.stderr
    run = report(out)["run"]
    assert (run["devices"], run["operators"], run["duration_s"], run["seed"], run["policy"]) == \
        (4, 1, 120, 9, "beacon-1.0")


def test_default_folder_and_progress_lines_in_a_log(tmp_path: Path) -> None:
    done = simulate("ci-smoke", "--devices", "5", cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    folders = list((tmp_path / "reports").glob("ci-smoke-*Z"))
    assert len(folders) == 1 and (folders[0] / REPORT_JSON).is_file()
    assert done.stdout.rstrip().endswith(f"report: {Path('reports') / folders[0].name}{os.sep}")
    # stderr is not a terminal here: no bar, a plain line every tenth of the run.
    lines = done.stderr.splitlines()
    assert "\r" not in done.stderr and 9 <= len(lines) <= 11, done.stderr
    assert lines[-1].startswith("100%") and "connected" in lines[-1] and "msg/s" in lines[-1]
    assert "drain" in lines[-1] and "run" in lines[0] and "0:00:00 left" in lines[-1]


# -- strict ---------------------------------------------------------------------------------------

def test_strict_fails_a_claim_that_was_not_measured(tmp_path: Path) -> None:
    profile = tmp_path / "quiet.toml"
    profile.write_text(QUIET)
    lenient, strict = tmp_path / "lenient", tmp_path / "strict"
    done = simulate(str(profile), "--out", str(lenient), "--no-progress")
    document = report(lenient)
    verdicts = {v["verdict"] for v in document["verdicts"]}
    assert "not_measured" in verdicts and "fail" not in verdicts, document["verdicts"]
    assert done.returncode == 0 == expected_status(document, strict=False)
    assert "PASS:" in done.stdout

    done = simulate(str(profile), "--out", str(strict), "--no-progress", "--strict")
    document = report(strict)
    assert document["strict"] is True and document["exit_code"] == 1
    assert done.returncode == 1 == expected_status(document, strict=True)
    assert "(strict: they fail)" in done.stdout
    unmeasured = sum(v["verdict"] == "not_measured" for v in document["verdicts"])
    suite = ET.parse(strict / JUNIT_XML).getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("failures", "0")) == unmeasured and int(suite.get("skipped", "0")) == 0
    suite = ET.parse(lenient / JUNIT_XML).getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("skipped", "0")) == unmeasured and int(suite.get("failures", "0")) == 0


# -- refusals: status 2, one line, no traceback -----------------------------------------------------

def test_an_unknown_profile_is_refused(tmp_path: Path) -> None:
    line = one_line_refusal(simulate("no-such-profile", "--out", str(tmp_path / "x")),
                            "no-such-profile", "ci-smoke")
    assert line.startswith("beacon-fleet: ")
    assert not (tmp_path / "x").exists()


def test_a_profile_with_a_typo_is_refused_with_file_line_and_key(tmp_path: Path) -> None:
    profile = tmp_path / "typo.toml"
    profile.write_text(QUIET.replace("panic_rate_per_h", "panic_rate_per_hr"))
    one_line_refusal(simulate(str(profile), "--out", str(tmp_path / "x")),
                     "typo.toml:24: user.panic_rate_per_hr: unknown key; did you mean 'panic_rate_per_h'?")


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    profile = tmp_path / "broken.toml"
    profile.write_text("devices = [\n")
    one_line_refusal(simulate(str(profile)), "broken.toml:", "invalid TOML")


@pytest.mark.parametrize(("args", "needles"), [
    (("--duration", "soon"), ("--duration", "expected a duration")),
    (("--duration", "0s"), ("--duration", "must be more than 0")),
    (("--policy", "yolo"), ("--policy", "invalid choice", "resilient")),
    (("--devices", "0"), ("--devices", "at least 1")),
    (("--seed", "x"), ("--seed", "whole number")),
])
def test_bad_options_are_refused(args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    one_line_refusal(simulate("ci-smoke", *args), *needles)


def test_an_out_path_that_is_a_file_is_refused_before_the_run(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    one_line_refusal(simulate("ci-smoke", "--out", str(plain)), "--out", "not a directory")


# -- Ctrl-C -------------------------------------------------------------------------------------------

def test_ctrl_c_stops_the_run_and_still_writes_a_judged_partial_report(tmp_path: Path) -> None:
    out = tmp_path / "partial"
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "simulate", "city-commute", "--duration", "6h",
         "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    first = process.stderr.readline()  # the first progress line: the run is under way
    assert "%" in first, first
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == INTERRUPTED, stderr
    assert "Traceback" not in stderr and "stopping" in stderr
    document = report(out)
    assert document["run"]["duration_s"] < 6 * 3600
    assert any("interrupted" in w for w in document["warnings"])
    assert len(document["verdicts"]) >= 10
    assert (out / JUNIT_XML).is_file() and (out / LEDGER).is_file() and (out / REPORT_HTML).is_file()
    assert "warning: interrupted" in stdout and f"report: {out}" in stdout


# -- the city-commute tuning ------------------------------------------------------------------------

def test_city_commute_300_phones_for_an_hour_sees_20_alerts_and_100_outages(tmp_path: Path) -> None:
    out = tmp_path / "city"
    done = simulate("city-commute", "--devices", "300", "--duration", "1h", "--seed", "1", "--out", str(out),
                    "--no-progress")
    assert done.returncode in (0, 1), done.stderr
    creates, outages = ledger_counts(out)
    assert creates >= 20, creates
    assert outages >= 100, outages
    assert report(out)["messages"]["create"]["originated"] == creates
