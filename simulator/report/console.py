"""The terminal summary: a plain-text verdict table, coloured only when asked."""

from __future__ import annotations

from simulator.report.text import VERDICT_WORDS, measured, percent
from simulator.result import FAIL, NOT_MEASURED, PASS, RunResult

COLOURS = {PASS: "\x1b[32m", FAIL: "\x1b[31;1m", NOT_MEASURED: "\x1b[33m"}
RESET = "\x1b[0m"


def render_console(result: RunResult, colour: bool = False, strict: bool | None = None) -> str:
    """The verdict table as plain text.

    Args:
        result: The judged run.
        colour: Whether to colour the verdict words with ANSI escapes.
        strict: Whether a claim not measured fails the run; defaults to ``result.strict``.

    Returns:
        Lines ending with a newline: a heading, one row per claim, warnings, and the outcome.
    """
    strict = result.strict if strict is None else strict
    run = result.run
    header = ("CLAIM", "VERDICT", "MEASURED", "TARGET", "N", "NOTE")
    rows = [(v.id, v.verdict, measured(v), v.target, f"{v.n:,}", v.note) for v in result.verdicts]
    widths = [max([len(header[i])] + [len(VERDICT_WORDS[r[1]]) if i == 1 else len(r[i]) for r in rows])
              for i in range(5)]
    lines = [f"beacon-fleet {run.mode}: profile {run.profile}, policy {run.policy}, {run.devices:,} devices, "
             f"{run.operators:,} operators, {run.duration_s:g} s (seed {run.seed})", ""]
    lines.append("  ".join(h.ljust(widths[i]) if i < 5 else h for i, h in enumerate(header)).rstrip())
    for claim_id, verdict, figure, target, n, note in rows:
        word = VERDICT_WORDS[verdict].ljust(widths[1])
        if colour:
            word = f"{COLOURS[verdict]}{word}{RESET}"
        lines.append("  ".join((claim_id.ljust(widths[0]), word, figure.rjust(widths[2]),
                                target.ljust(widths[3]), n.rjust(widths[4]), note)).rstrip())
    totals = result.outcomes
    if totals.get("originated"):
        lines.append("")
        lines.append(f"messages: {totals['originated']:,} originated, {totals['delivered']:,} delivered "
                     f"({percent(totals['delivered'] / totals['originated'])}), {totals['lost']:,} lost "
                     f"({totals['lost_during_reconnect']:,} during reconnection), "
                     f"{totals['stored_only']:,} stored only, {totals['duplicated']:,} duplicated, "
                     f"{totals['reordered']:,} reordered, {totals.get('unexpected', 0):,} unexpected")
    for warning in result.warnings:
        lines.append(f"warning: {warning}")
    failed = sum(v.verdict == FAIL for v in result.verdicts)
    unmeasured = sum(v.verdict == NOT_MEASURED for v in result.verdicts)
    code = 1 if failed or (strict and unmeasured) else 0
    outcome = "FAIL" if code else "PASS"
    if colour:
        outcome = f"{COLOURS[FAIL if code else PASS]}{outcome}{RESET}"
    lines.append("")
    lines.append(f"{outcome}: {len(result.verdicts) - failed - unmeasured} passed, {failed} failed, "
                 f"{unmeasured} not measured{' (strict: they fail)' if strict and unmeasured else ''}")
    return "\n".join(lines) + "\n"
