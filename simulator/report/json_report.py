"""``report.json``: the machine-readable result (schema ``beacon-fleet/report@1``).

The text is a pure function of the :class:`~simulator.result.RunResult`: keys sorted, two-space
indent, ASCII only, floats rounded once by the result and printed by Python's shortest round-trip
repr, so rendering the same result twice, or a result read back from its own report.json, gives the
same bytes. The bulky blocks meant for programs rather than eyes (``histograms``, ``views``) are
written on one line each: indented, their arrays would put every number on a line of its own and
double the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from simulator.result import RunResult

COMPACT = ("histograms", "views")


def render_json(result: RunResult) -> str:
    """The report.json text for a result (ends with a newline)."""
    document = result.to_json()
    blocks = {key: document.pop(key) for key in COMPACT if key in document}
    text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False)
    if blocks:
        inline = ",\n".join(f"  {json.dumps(key)}: "
                            + json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                                         allow_nan=False)
                            for key, value in sorted(blocks.items()))
        text = f"{text[:-2]},\n{inline}\n}}" if document else f"{{\n{inline}\n}}"
    return text + "\n"


def write_json(result: RunResult, path: Path) -> None:
    """Write report.json to ``path``."""
    path.write_text(render_json(result), encoding="utf-8")


def read_json(path: Path) -> RunResult:
    """Read a report.json back into a result (to re-render or re-check it).

    Raises:
        ValueError: If the file is not a ``beacon-fleet/report@1`` document with histograms.
    """
    return RunResult.from_json(json.loads(path.read_text(encoding="utf-8")))
