"""``beacon-fleet report RUN_DIR``: judge a stored run again from its ledger, and re-render it.

A run folder holds the whole history (``ledger.jsonl.gz``) beside the verdicts (``report.json``).
What the ledger cannot tell — what was run, the targets, the generator's own figures (loop lag,
CPU, memory), strictness — is read from ``report.json``; everything else is judged again by the
checker of this version, so an older run can be re-checked and its outputs regenerated. Warnings
the checker does not derive from the ledger (an interruption, a misbehaving backend) are kept.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from simulator import checks
from simulator.ledger import Ledger
from simulator.report import JUNIT_XML, LEDGER, REPORT_HTML, REPORT_JSON
from simulator.report.html import write_html
from simulator.report.json_report import read_json, write_json
from simulator.report.junit import write_junit
from simulator.result import RunResult


class RerenderError(Exception):
    """The folder is not a run this version can re-judge: one line, naming the file and why."""


def rejudge(run_dir: Path, strict: bool | None = None) -> tuple[RunResult, Ledger]:
    """The run in ``run_dir`` judged again from its ledger (``strict`` None: as it was run)."""
    if not run_dir.is_dir():
        raise RerenderError(f"{run_dir}: not a folder")
    try:
        stored = read_json(run_dir / REPORT_JSON)
    except FileNotFoundError:
        raise RerenderError(f"{run_dir / REPORT_JSON}: missing (not a run folder?)") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RerenderError(f"{run_dir / REPORT_JSON}: cannot be read ({error})") from None
    try:
        ledger = Ledger.read(run_dir / LEDGER)
    except FileNotFoundError:
        raise RerenderError(f"{run_dir / LEDGER}: missing (the history the verdicts come from)") from None
    except (OSError, ValueError, TypeError, IndexError, EOFError) as error:
        raise RerenderError(f"{run_dir / LEDGER}: cannot be read ({error})") from None
    result = checks.judge(ledger, stored.run, stored.targets, stored.generator,
                          strict=stored.strict if strict is None else strict)
    kept = tuple(w for w in stored.warnings if w not in result.warnings)
    return dataclasses.replace(result, warnings=(*result.warnings, *kept)), ledger


def rerender(run_dir: Path, strict: bool | None = None) -> RunResult:
    """Judge ``run_dir`` again and rewrite its report.json, junit.xml and report.html."""
    result, _ = rejudge(run_dir, strict)
    write_json(result, run_dir / REPORT_JSON)
    write_junit(result, run_dir / JUNIT_XML)
    write_html(result, run_dir / REPORT_HTML)
    return result
