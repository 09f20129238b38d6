"""``beacon-fleet report RUN_DIR``: a stored run judged again from its ledger and re-rendered."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.report import JUNIT_XML, LEDGER, REPORT_HTML, REPORT_JSON

USAGE = 2


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def ci_smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "ci-smoke"
    done = cli("simulate", "ci-smoke", "--out", str(out), "--no-progress")
    assert done.returncode in (0, 1), done.stderr
    return out


def copy(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


def test_report_regenerates_byte_identical_outputs_from_the_ledger(ci_smoke: Path, tmp_path: Path) -> None:
    run = copy(ci_smoke, tmp_path)
    for name in (JUNIT_XML, REPORT_HTML):
        (run / name).unlink()  # made again (report.json too: see the next test)
    done = cli("report", str(run))
    original = json.loads((ci_smoke / REPORT_JSON).read_text())
    assert done.returncode == original["exit_code"], done.stderr
    for name in (REPORT_JSON, JUNIT_XML, REPORT_HTML):
        assert (run / name).read_bytes() == (ci_smoke / name).read_bytes(), name
    assert "CLAIM" in done.stdout and done.stdout.rstrip().endswith(f"report: {run}{os.sep}")


def test_report_judges_the_ledger_again_rather_than_copying(ci_smoke: Path, tmp_path: Path) -> None:
    """Negative control: take one message's receipts out of the stored ledger, and delivery must
    change: report.json is judged again, not copied."""
    run = copy(ci_smoke, tmp_path)
    with gzip.open(run / LEDGER, "rt", encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines]
    origin = next(r[2] for r in records if r[0] == "received")
    records = [r for r in records if not (r[0] == "received" and r[2] == origin)]
    with gzip.open(run / LEDGER, "wt", encoding="utf-8") as lines:
        lines.writelines(json.dumps(r) + "\n" for r in records)
    done = cli("report", str(run))
    assert done.returncode == 1
    before = json.loads((ci_smoke / REPORT_JSON).read_text())
    after = json.loads((run / REPORT_JSON).read_text())
    delivered = sum(row["delivered"] for row in after["messages"].values())
    assert delivered == sum(row["delivered"] for row in before["messages"].values()) - 1
    verdicts = {v["id"]: v["verdict"] for v in after["verdicts"]}
    assert verdicts["delivery"] == "fail"


def test_report_strict_turns_not_measured_into_a_failure(tmp_path: Path) -> None:
    out = tmp_path / "short"
    done = cli("simulate", "ci-smoke", "--duration", "20s", "--out", str(out), "--no-progress")
    document = json.loads((out / REPORT_JSON).read_text())
    assert any(v["verdict"] == "not_measured" for v in document["verdicts"]), done.stdout
    assert cli("report", str(out)).returncode == document["exit_code"]
    assert cli("report", str(out), "--strict").returncode == 1
    assert json.loads((out / REPORT_JSON).read_text())["strict"] is True


@pytest.mark.parametrize(("setup", "reason"), [
    ("missing", "not a folder"),
    ("empty", "report.json: missing"),
    ("no-ledger", "ledger.jsonl.gz: missing"),
    ("garbage", "report.json: cannot be read"),
])
def test_a_folder_that_is_not_a_run_is_refused_in_one_line(ci_smoke: Path, tmp_path: Path, setup: str,
                                                            reason: str) -> None:
    run = tmp_path / "run"
    if setup == "empty":
        run.mkdir()
    elif setup == "no-ledger":
        run = copy(ci_smoke, tmp_path)
        (run / LEDGER).unlink()
    elif setup == "garbage":
        run = copy(ci_smoke, tmp_path)
        (run / REPORT_JSON).write_text("{not json")
    done = cli("report", str(run))
    assert done.returncode == USAGE
    assert "Traceback" not in done.stderr
    assert reason in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
