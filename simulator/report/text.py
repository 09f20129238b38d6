"""Shared wording for the renderers: how a measured figure, a target and a verdict read."""

from __future__ import annotations

from simulator.result import FAIL, NOT_MEASURED, PASS, Verdict

VERDICT_WORDS = {PASS: "pass", FAIL: "FAIL", NOT_MEASURED: "not measured"}


def number(value: float) -> str:
    """A figure with as many digits as people read (``1,234``, ``123``, ``12.3``, ``1.23``)."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def percent(ratio: float) -> str:
    """A ratio as a percentage with at most two decimals (``0.9899`` -> ``98.99%``)."""
    return f"{ratio * 100:.2f}".rstrip("0").rstrip(".") + "%"


def measured(verdict: Verdict) -> str:
    """A verdict's measured figure with its unit, or ``-`` when there is none."""
    value = verdict.measured
    if value is None:
        return "-"
    if verdict.unit == "ratio":
        return percent(value)
    if verdict.unit == "count":
        return f"{value:,.0f}"
    if verdict.unit:
        return f"{number(value)} {verdict.unit}"
    return number(value)


def summary_cell(value: float | int | None) -> str:
    """One cell of a Summary table (``-`` for an empty summary)."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return number(value)
