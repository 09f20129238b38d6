"""``report.json``: the machine-readable result (schema ``beacon-fleet/report@1``).

The text is a pure function of the :class:`~simulator.result.RunResult`: keys sorted, two-space
indent, ASCII only, floats rounded once by the result and printed by Python's shortest round-trip
repr, so rendering the same result twice, or a result read back from its own report.json, gives the
same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from simulator.result import RunResult


def render_json(result: RunResult) -> str:
    """The report.json text for a result (ends with a newline)."""
    return json.dumps(result.to_json(), sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False) + "\n"


def write_json(result: RunResult, path: Path) -> None:
    """Write report.json to ``path``."""
    path.write_text(render_json(result), encoding="utf-8")


def read_json(path: Path) -> RunResult:
    """Read a report.json back into a result (to re-render or re-check it).

    Raises:
        ValueError: If the file is not a ``beacon-fleet/report@1`` document with histograms.
    """
    return RunResult.from_json(json.loads(path.read_text(encoding="utf-8")))
