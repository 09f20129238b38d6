"""Reports: pure functions of a finished :class:`~simulator.result.RunResult`.

Never of a live runner. :func:`write_report` writes a run's folder: ``report.json`` (the versioned
contract), ``junit.xml`` (CI), ``report.html`` (people, offline) and ``ledger.jsonl.gz`` (the
history, so the run can be re-checked or re-rendered without running it again).
"""

from __future__ import annotations

from pathlib import Path

from simulator.ledger import Ledger
from simulator.report.console import render_console
from simulator.report.html import render_html, write_html
from simulator.report.json_report import read_json, render_json, write_json
from simulator.report.junit import render_junit, write_junit
from simulator.result import RunResult

REPORT_JSON = "report.json"
JUNIT_XML = "junit.xml"
REPORT_HTML = "report.html"
LEDGER = "ledger.jsonl.gz"

__all__ = [
    "JUNIT_XML", "LEDGER", "REPORT_HTML", "REPORT_JSON", "read_json", "render_console", "render_html",
    "render_json", "render_junit", "write_html", "write_json", "write_junit", "write_report",
]


def write_report(result: RunResult, ledger: Ledger, out_dir: Path) -> None:
    """Write a run's report folder (created if missing; existing report files are replaced).

    Args:
        result: The judged run.
        ledger: The run's history, stored alongside as gzipped JSON lines.
        out_dir: The folder, e.g. ``reports/<profile>-<UTC timestamp>/``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(result, out_dir / REPORT_JSON)
    write_junit(result, out_dir / JUNIT_XML)
    write_html(result, out_dir / REPORT_HTML)
    ledger.write(out_dir / LEDGER)
