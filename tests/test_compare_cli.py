"""``beacon-fleet compare``: two known runs side by side, a run against itself, and the refusals.

The two runs are one world (``tests/profiles/outage.toml``: six phones mid-alert, every one cut off
for 25 s, same seed) under the two client policies. The as-shipped ``beacon-1.0`` client drops
what it sends while its channel is down; ``resilient`` keeps it in an outbox and resends it. So
``loss-reconnect`` fails for one and passes for the other, and delivery is lower for the first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simulator.report import REPORT_JSON
from simulator.report.compare import default_labels
from simulator.report.json_report import read_json
from tests.test_cli import one_line_refusal

OUTAGE = Path(__file__).parent / "profiles" / "outage.toml"
POLICIES = ("beacon-1.0", "resilient")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``beacon-fleet`` in a fresh interpreter, as a user would (no colour)."""
    return subprocess.run([sys.executable, "-m", "simulator.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**os.environ, "NO_COLOR": "1"})



@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The outage world simulated once per policy (a second or so each)."""
    base = tmp_path_factory.mktemp("compare-runs")
    folders = {}
    for policy in POLICIES:
        out = base / policy.replace(".", "_")
        done = cli("simulate", str(OUTAGE), "--policy", policy, "--seed", "1", "--out", str(out),
                   "--no-progress")
        assert done.returncode in (0, 1), done.stderr
        folders[policy] = out
    return folders


@pytest.fixture(scope="module")
def compared(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("compare") / "cmp"
    done = cli("compare", str(runs["beacon-1.0"]), str(runs["resilient"]), "--out", str(out))
    return done, out


def document(out: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    return loaded


def claim(doc: dict[str, Any], claim_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["claims"] if c["id"] == claim_id)
    return found


def row(stdout: str, claim_id: str) -> str:
    return next(line for line in stdout.splitlines() if line.split()[:1] == [claim_id])


def test_compare_shows_the_known_differences(compared: tuple[subprocess.CompletedProcess[str], Path],
                                             runs: dict[str, Path]) -> None:
    done, out = compared
    assert done.returncode == 1, done.stderr  # beacon-1.0 fails loss-reconnect
    assert done.stderr == ""
    doc = document(out)
    assert doc["schema"] == "beacon-fleet/compare@1"
    assert [r["label"] for r in doc["runs"]] == list(POLICIES)  # labelled by what differs: the policy
    assert [r["run"]["policy"] for r in doc["runs"]] == list(POLICIES)
    assert doc["exit_code"] == 1

    loss = claim(doc, "loss-reconnect")
    assert loss["verdict"] == {"beacon-1.0": "fail", "resilient": "pass"}
    assert loss["differs"] is True and loss["changed"] == ["resilient"]
    assert loss["measured"]["beacon-1.0"] > 0 and loss["measured"]["resilient"] == 0
    assert "loss-reconnect" in doc["differs"]

    delivery = claim(doc, "delivery")
    assert delivery["verdict"] == {"beacon-1.0": "fail", "resilient": "pass"}
    assert delivery["measured"]["beacon-1.0"] < delivery["measured"]["resilient"] == 1.0
    totals = doc["message_totals"]
    assert totals["beacon-1.0"]["lost_during_reconnect"] > 0
    assert totals["resilient"]["lost"] == totals["resilient"]["lost_during_reconnect"] == 0
    assert totals["beacon-1.0"]["delivery"] < totals["resilient"]["delivery"]
    chat = doc["messages"]["chat_from_phone"]
    assert chat["beacon-1.0"]["lost_during_reconnect"] > 0 == chat["resilient"]["lost_during_reconnect"]

    connect = claim(doc, "connect")  # the same world and seed: both connect alike
    assert connect["differs"] is False and connect["changed"] == []

    # Each run's verdicts are the ones its own report.json holds, not judged again.
    for entry in doc["runs"]:
        stored = json.loads((runs[entry["label"]] / REPORT_JSON).read_text())
        assert entry["verdicts"] == stored["verdicts"]
        assert entry["exit_code"] == stored["exit_code"]
        for v in stored["verdicts"]:
            assert claim(doc, v["id"])["verdict"][entry["label"]] == v["verdict"]
    assert set(doc["distributions"]) >= {"latency-phone-to-operator", "latency-operator-to-phone",
                                         "delivery-delay", "connect", "reconnect", "battery"}
    assert doc["distributions"]["reconnect"]["runs"]["beacon-1.0"]["n"] > 0


def test_compare_prints_a_side_by_side_table(compared: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, out = compared
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("CLAIM"))
    assert header.index("beacon-1.0") < header.index("resilient")
    loss = row(done.stdout, "loss-reconnect")
    assert loss.index("FAIL") < loss.index("pass") and loss.endswith("<- differs")
    assert "93.55%" in loss and "0%" in loss
    assert not row(done.stdout, "connect").endswith("differs")
    assert "\x1b[" not in done.stdout  # NO_COLOR, and not a terminal
    assert lines[-1] == f"compare: {out / 'compare.html'}"
    assert (out / "compare.html").stat().st_size > 0


def test_compare_with_itself_shows_no_difference(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "self"
    done = cli("compare", str(runs["resilient"]), str(runs["resilient"]), "--out", str(out))
    doc = document(out)
    assert done.returncode == doc["exit_code"] == json.loads(
        (runs["resilient"] / REPORT_JSON).read_text())["exit_code"]
    labels = [r["label"] for r in doc["runs"]]
    assert len(set(labels)) == 2  # told apart even though nothing differs
    assert doc["differs"] == []
    assert not any(c["differs"] or c["changed"] for c in doc["claims"])
    assert not any(line.endswith("<- differs") for line in done.stdout.splitlines())
    assert f"0 of {len(doc['claims'])} claims differ" in done.stdout.splitlines()


def test_given_labels_name_the_runs(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "labelled"
    done = cli("compare", str(runs["beacon-1.0"]), str(runs["resilient"]), "--out", str(out),
               "--label", "before <fix>", "--label", "after")
    assert done.returncode == 1, done.stderr
    doc = document(out)
    assert [r["label"] for r in doc["runs"]] == ["before <fix>", "after"]
    page = (out / "compare.html").read_text(encoding="utf-8")
    assert "before &lt;fix&gt;" in page and "before <fix>" not in page


def test_default_labels_add_what_differs_until_every_run_is_told_apart(runs: dict[str, Path]) -> None:
    shipped, resilient = (read_json(runs[p] / REPORT_JSON) for p in POLICIES)
    other = dataclasses.replace(resilient, run=dataclasses.replace(resilient.run, profile="ci-smoke"))
    folders = [runs["beacon-1.0"], runs["resilient"], Path("elsewhere")]
    assert default_labels([shipped, resilient, other], folders) == [
        "beacon-1.0 / outage", "resilient / outage", "resilient / ci-smoke"]
    assert default_labels([resilient, other], folders[1:]) == ["outage", "ci-smoke"]
    assert default_labels([resilient, resilient], [folders[1], folders[1]]) == [
        f"{folders[1].name} #1", f"{folders[1].name} #2"]


def test_the_default_folder_is_under_reports(runs: dict[str, Path], tmp_path: Path) -> None:
    done = cli("compare", str(runs["beacon-1.0"]), str(runs["resilient"]), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    made = list((tmp_path / "reports").glob("compare-*/compare.json"))
    assert len(made) == 1, made
    page = Path("reports") / made[0].parent.name / "compare.html"
    assert done.stdout.splitlines()[-1] == f"compare: {page}"


def test_refusals_are_one_line(runs: dict[str, Path], tmp_path: Path) -> None:
    good = str(runs["resilient"])
    missing = tmp_path / "no-such-run"
    one_line_refusal(cli("compare", good, str(missing), "--out", str(tmp_path / "a")), str(missing),
                     "no such folder")
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    one_line_refusal(cli("compare", str(not_a_run), good, "--out", str(tmp_path / "b")),
                     str(not_a_run / REPORT_JSON), "missing")
    one_line_refusal(cli("compare", good, "--out", str(tmp_path / "c")), "at least two")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / REPORT_JSON).write_text("{not json", encoding="utf-8")
    one_line_refusal(cli("compare", good, str(broken), "--out", str(tmp_path / "d")),
                     str(broken / REPORT_JSON), "cannot be read")
    a_file = runs["resilient"] / REPORT_JSON
    one_line_refusal(cli("compare", good, str(a_file), "--out", str(tmp_path / "e")), str(a_file),
                     "not a folder")
    one_line_refusal(cli("compare", good, str(runs["beacon-1.0"]), "--label", "x", "--label", "x",
                         "--out", str(tmp_path / "f")), "'x'", "twice")
    one_line_refusal(cli("compare", good, str(runs["beacon-1.0"]), "--label", "x",
                         "--out", str(tmp_path / "g")), "--label")
    one_line_refusal(cli("compare", "--out", str(tmp_path / "h")), "RUN_DIR")
    for name in "abcdefgh":  # a refused comparison leaves no folder behind
        assert not (tmp_path / name).exists(), name
