"""``beacon-fleet compare``: stored runs side by side (``beacon-1.0`` vs ``resilient``, before vs after).

Reads each run folder's ``report.json`` (verdicts as judged, full histograms) and renders, for two
runs or more, without judging anything again:

- a verdict table for the terminal: one row per claim, one column per run (verdict word and
  measured figure), rows whose verdicts differ marked;
- ``compare.json``: per run its label, what was run and its verdicts; per claim the measured values
  and verdicts side by side and which runs changed verdict against the first; messages per kind and
  distribution summaries side by side;
- ``compare.html``: one self-contained page (inline style and SVG, nothing fetched, all text
  escaped): the runs, the verdict matrix, the distributions overlaid, and the messages per kind.

Runs are told apart by a label: given (``--label``), or derived from what differs between them
(the policy, else the profile, the backend, ...; the folder name as a last resort).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from simulator.hdr import Histogram
from simulator.report.console import COLOURS, RESET
from simulator.report.html import STYLE as REPORT_STYLE
from simulator.report.json_report import read_json
from simulator.report.plots import distribution_plot, percentile_plot
from simulator.report.text import VERDICT_WORDS, measured, percent, summary_cell
from simulator.result import FAIL, NOT_MEASURED, PASS, MessageCounts, RunResult, Verdict, stable_float

SCHEMA = "beacon-fleet/compare@1"
COMPARE_JSON = "compare.json"
COMPARE_HTML = "compare.html"
REPORT_JSON = "report.json"

MESSAGE_COLUMNS = ("originated", "delivered", "stored_only", "lost", "lost_during_reconnect")
SUMMARY_COLUMNS = ("n", "p50", "p90", "p95", "p99", "max")

STYLE = REPORT_STYLE + """
table.matrix td.verdict.pass{background:#e3f5e1}table.matrix td.verdict.fail{background:#fbe0e0}
table.matrix td.verdict.not_measured{background:#fff4d6}
table.matrix td.verdict strong{display:inline-block;min-width:5.5em}
table.matrix .note{font-size:.8em;color:#555;max-width:32em}
tr.differs th.claim{border-left:4px solid #c62828}
td.marker{color:#c62828;font-weight:bold;white-space:nowrap}
div.distributions{display:grid;grid-template-columns:repeat(auto-fit,minmax(34em,1fr));gap:0 2em}
figure.plot{margin:.5em 0}figure.plot svg{max-width:100%;height:auto}
figure.plot figcaption{font-size:.9em;color:#555}
th.group{text-align:center}table.runs td.outcome-pass,table.runs td.outcome-fail{white-space:nowrap}
"""


class CompareError(Exception):
    """The runs cannot be compared: one line, naming the file and why."""


@dataclass(frozen=True, slots=True)
class ComparedRun:
    """One run in a comparison.

    Attributes:
        label: How the comparison names the run (unique among the runs).
        folder: The run's report folder, as given.
        result: The run as judged, read from its report.json.
    """

    label: str
    folder: Path
    result: RunResult


@dataclass(frozen=True, slots=True)
class Distribution:
    """One overlaid plot: which histogram of each run, in which unit, against which target."""

    id: str
    title: str
    unit: str
    scale: float
    cdf: bool
    histogram: Callable[[RunResult], Histogram | None]
    target: Callable[[RunResult], float | None]


DISTRIBUTIONS = (
    Distribution("latency-phone-to-operator", "Latency, phone to operator", "ms", 1000.0, False,
                 lambda r: r.latency.get("phone_to_operator"), lambda r: r.targets.latency_p99_ms),
    Distribution("latency-operator-to-phone", "Latency, operator to phone", "ms", 1000.0, False,
                 lambda r: r.latency.get("operator_to_phone"), lambda r: r.targets.latency_p99_ms),
    Distribution("delivery-delay", "Delivery delay (every delivered message, queued time included)", "ms",
                 1000.0, False, lambda r: r.latency.get("delivery_delay"), lambda r: None),
    Distribution("connect", "Initial connection", "s", 1.0, True,
                 lambda r: r.connect, lambda r: r.targets.connect_p99_s),
    Distribution("reconnect", "Reconnection after network restoration", "s", 1.0, True,
                 lambda r: r.reconnect, lambda r: r.targets.reconnect_p99_s),
    Distribution("battery", "Battery drain per device", "%/h", 1.0, True,
                 lambda r: r.battery, lambda r: r.targets.battery_pct_per_hour),
)


# -- reading --------------------------------------------------------------------------------------

def load_runs(folders: Sequence[Path], labels: Sequence[str] | None = None) -> list[ComparedRun]:
    """Read the runs to compare, each from its folder's report.json, and label them.

    Args:
        folders: Two run folders or more (the same folder may be given twice).
        labels: One label per folder, in order, or ``None`` to derive them (:func:`default_labels`).

    Raises:
        CompareError: Fewer than two folders, a folder missing or not a run, an unreadable
            report.json, or labels that are missing, empty or not unique.
    """
    if len(folders) < 2:
        given = f": {folders[0]}" if folders else ""
        raise CompareError(f"compare needs at least two run folders, got {len(folders)}{given}")
    if labels is not None:
        if len(labels) != len(folders):
            raise CompareError(f"--label given {len(labels)} time(s) for {len(folders)} runs: "
                               f"give one per run, in the order of the folders")
        for label in labels:
            if not label.strip():
                raise CompareError("--label: a label must not be empty")
        seen: set[str] = set()
        for label in labels:
            if label in seen:
                raise CompareError(f"--label {label!r} given twice: each run needs its own label")
            seen.add(label)
    results = [read_run(folder) for folder in folders]
    names = list(labels) if labels is not None else default_labels(results, folders)
    return [ComparedRun(label, folder, result) for label, folder, result in zip(names, folders, results,
                                                                                strict=True)]


def read_run(folder: Path) -> RunResult:
    """The run stored in ``folder`` (its report.json), as judged.

    Raises:
        CompareError: The folder is missing or not a run, or its report.json cannot be read.
    """
    if not folder.exists():
        raise CompareError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise CompareError(f"{folder}: not a folder (expected a run's report folder)")
    path = folder / REPORT_JSON
    try:
        return read_json(path)
    except FileNotFoundError:
        raise CompareError(f"{path}: missing (not a run folder?)") from None
    except KeyError as error:
        raise CompareError(f"{path}: cannot be read (no {error} field)") from None
    except OSError as error:
        raise CompareError(f"{path}: cannot be read ({error.strerror or error})") from None
    except ValueError as error:
        raise CompareError(f"{path}: cannot be read ({_one_line(error)})") from None
    except (TypeError, AttributeError) as error:
        raise CompareError(f"{path}: cannot be read (not a report@1 document: {_one_line(error)})") from None


def default_labels(results: Sequence[RunResult], folders: Sequence[Path]) -> list[str]:
    """Labels that tell the runs apart by what differs between them.

    The first of these that differs for every run: the policy, the profile, the backend URL, the
    mode, the seed, the number of devices. Else those that differ between some runs, joined in that
    order until they tell every run apart (``resilient / outage``); else the folder's name; else its
    full path; else the folder's name numbered.
    """
    keys: list[Callable[[RunResult], str]] = [
        lambda r: r.run.policy, lambda r: r.run.profile, lambda r: r.run.backend_url or "-",
        lambda r: r.run.mode, lambda r: f"seed {r.run.seed}", lambda r: f"{r.run.devices:,} devices",
    ]
    candidates = [[key(result) for result in results] for key in keys]
    for values in candidates:
        if _distinct(values):
            return values
    joined = [""] * len(results)
    for values in (values for values in candidates if len(set(values)) > 1):
        joined = [f"{so_far} / {value}" if so_far else value for so_far, value in zip(joined, values,
                                                                                         strict=True)]
        if _distinct(joined):
            return joined
    for values in ([folder.name or str(folder) for folder in folders],
                   [str(folder.resolve()) for folder in folders]):
        if _distinct(values):
            return values
    return [f"{folder.name or folder} #{i}" for i, folder in enumerate(folders, start=1)]


def exit_code(runs: Sequence[ComparedRun]) -> int:
    """0 when every run passes, 1 when any has a failing verdict (as each run was judged)."""
    return max(run.result.exit_code for run in runs)


# -- what is compared -----------------------------------------------------------------------------

def claim_ids(runs: Sequence[ComparedRun]) -> list[str]:
    """Every claim judged in any run, in the order they first appear."""
    ids: dict[str, None] = {}
    for run in runs:
        for verdict in run.result.verdicts:
            ids.setdefault(verdict.id, None)
    return list(ids)


def verdicts_of(runs: Sequence[ComparedRun], claim_id: str) -> list[Verdict | None]:
    """One claim's verdict in each run (``None`` where a run did not judge it)."""
    return [_verdict(run.result, claim_id) for run in runs]


def differs(verdicts: Sequence[Verdict | None]) -> bool:
    """Whether the runs' verdicts on a claim are not all the same."""
    return len({None if v is None else v.verdict for v in verdicts}) > 1


def message_kinds(runs: Sequence[ComparedRun]) -> list[str]:
    """Every message kind any run originated, in the order they first appear."""
    kinds: dict[str, None] = {}
    for run in runs:
        for kind in run.result.messages:
            kinds.setdefault(kind, None)
    return list(kinds)


def compare_document(runs: Sequence[ComparedRun]) -> dict[str, Any]:
    """The ``beacon-fleet/compare@1`` document (a JSON-ready dict).

    ``runs``: per run its ``label``, ``folder``, ``run`` block, ``verdicts`` (as in its report.json),
    ``strict``, ``exit_code`` and ``outcome`` counts. ``claims``: per claim its ``id``, ``claim``,
    ``unit``, and per label its ``target``, ``measured`` and ``verdict`` (``null`` where a run did
    not judge it), ``differs``, and ``changed``, the labels whose verdict differs from the first
    run's. ``differs`` lists the claims whose verdicts differ. ``messages``: per kind, per label,
    ``originated``, ``delivered``, ``stored_only`` (reached the backend's store, not the recipient),
    ``lost``, ``lost_during_reconnect`` and ``delivery``;
    ``message_totals``: the same over all kinds. ``distributions``: per plot, its title, unit and per
    label the Summary (``n``, ``p50`` ... ``max``, in that unit).
    """
    claims = []
    for claim_id in claim_ids(runs):
        verdicts = verdicts_of(runs, claim_id)
        first = next(v for v in verdicts if v is not None)
        baseline = None if verdicts[0] is None else verdicts[0].verdict
        pairs = list(zip((run.label for run in runs), verdicts, strict=True))
        claims.append({
            "id": claim_id, "claim": first.claim, "unit": first.unit,
            "target": {label: None if v is None else v.target for label, v in pairs},
            "measured": {label: None if v is None or v.measured is None else stable_float(v.measured)
                         for label, v in pairs},
            "verdict": {label: None if v is None else v.verdict for label, v in pairs},
            "differs": differs(verdicts),
            "changed": [label for label, v in pairs if (None if v is None else v.verdict) != baseline],
        })
    kinds = message_kinds(runs)
    return {
        "schema": SCHEMA,
        "exit_code": exit_code(runs),
        "runs": [{"label": run.label, "folder": str(run.folder), "run": run.result.run.to_json(),
                  "strict": run.result.strict, "exit_code": run.result.exit_code,
                  "outcome": _outcome_counts(run.result),
                  "verdicts": [v.to_json() for v in run.result.verdicts]} for run in runs],
        "claims": claims,
        "differs": [claim["id"] for claim in claims if claim["differs"]],
        "messages": {kind: {run.label: _message_row(run.result.messages.get(kind, MessageCounts()))
                            for run in runs} for kind in kinds},
        "message_totals": {run.label: _message_row(_totals(run.result)) for run in runs},
        "distributions": {
            d.id: {"title": d.title, "unit": d.unit,
                   "runs": {run.label: _summary(d.histogram(run.result), d.scale) for run in runs}}
            for d in DISTRIBUTIONS},
    }


def render_compare_json(runs: Sequence[ComparedRun]) -> str:
    """The compare.json text (two-space indent, ASCII, runs in the order given; ends with a newline)."""
    return json.dumps(compare_document(runs), indent=2, ensure_ascii=True, allow_nan=False) + "\n"


def write_compare(runs: Sequence[ComparedRun], out_dir: Path) -> None:
    """Write compare.json and compare.html into ``out_dir`` (created if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / COMPARE_JSON).write_text(render_compare_json(runs), encoding="utf-8")
    (out_dir / COMPARE_HTML).write_text(render_compare_html(runs), encoding="utf-8")


# -- terminal -------------------------------------------------------------------------------------

def render_compare_console(runs: Sequence[ComparedRun], colour: bool = False) -> str:
    """The side-by-side verdict table as plain text.

    Args:
        runs: The labelled runs.
        colour: Whether to colour the verdict words with ANSI escapes.

    Returns:
        Lines ending with a newline: the runs, one row per claim (one column per run, ``<- differs``
        where verdicts differ), messages per run, and each run's outcome.
    """
    label_w = max(len(run.label) for run in runs)
    lines = [f"beacon-fleet compare: {len(runs)} runs", ""]
    for run in runs:
        lines.append(f"  {run.label.ljust(label_w)}  {_describe(run.result)} ({run.folder})")
    ids = claim_ids(runs)
    rows = []
    for claim_id in ids:
        verdicts = verdicts_of(runs, claim_id)
        targets = {v.target for v in verdicts if v is not None}
        target = next(iter(targets)) if len(targets) == 1 else "varies"
        rows.append((claim_id, target, verdicts, differs(verdicts)))
    id_w = max([len("CLAIM")] + [len(r[0]) for r in rows])
    target_w = max([len("TARGET")] + [len(r[1]) for r in rows])
    word_w = [max([len(VERDICT_WORDS.get(v.verdict, v.verdict)) for r in rows if (v := r[2][i]) is not None]
                  + [1]) for i in range(len(runs))]
    figure_w = [max([len(measured(v)) for r in rows if (v := r[2][i]) is not None] + [1])
                for i in range(len(runs))]
    cell_w = [max(len(run.label), word_w[i] + 1 + figure_w[i]) for i, run in enumerate(runs)]
    lines += ["", "  ".join(["CLAIM".ljust(id_w), "TARGET".ljust(target_w)]
                            + [run.label.ljust(cell_w[i]) for i, run in enumerate(runs)]).rstrip()]
    for claim_id, target, verdicts, differ in rows:
        cells = []
        for i, v in enumerate(verdicts):
            if v is None:
                cells.append("-".ljust(cell_w[i]))
                continue
            word = VERDICT_WORDS.get(v.verdict, v.verdict).ljust(word_w[i])
            padding = " " * (cell_w[i] - word_w[i] - 1 - figure_w[i])
            if colour and v.verdict in COLOURS:
                word = f"{COLOURS[v.verdict]}{word}{RESET}"
            cells.append(f"{word} {measured(v).rjust(figure_w[i])}{padding}")
        line = "  ".join([claim_id.ljust(id_w), target.ljust(target_w), *cells])
        marker = f"{COLOURS[FAIL]}<- differs{RESET}" if colour else "<- differs"
        lines.append(f"{line}  {marker}" if differ else line.rstrip())
    lines += ["", "messages:"]
    for run in runs:
        totals = _totals(run.result)
        delivered = "" if not totals.originated else f" ({percent(totals.delivered / totals.originated)})"
        lines.append(f"  {run.label.ljust(label_w)}  {totals.originated:,} originated, {totals.delivered:,} "
                     f"delivered{delivered}, {totals.stored_only:,} stored only, {totals.lost:,} lost "
                     f"({totals.lost_during_reconnect:,} during reconnection)")
    lines.append("")
    for run in runs:
        code = run.result.exit_code
        outcome = "FAIL" if code else "PASS"
        if colour:
            outcome = f"{COLOURS[FAIL if code else PASS]}{outcome}{RESET}"
        lines.append(f"{run.label.ljust(label_w)}  {outcome}: {_outcome_words(run.result)}")
    changed = [row[0] for row in rows if row[3]]
    listed = f": {', '.join(changed)}" if changed else ""
    lines.append(f"{len(changed)} of {len(rows)} claims differ{listed}")
    return "\n".join(lines) + "\n"


# -- compare.html ---------------------------------------------------------------------------------

def render_compare_html(runs: Sequence[ComparedRun]) -> str:
    """The compare.html text: the runs, the verdict matrix, the distributions, the messages.

    The matrix is ``<table id="compare-verdicts">``, one row per claim (``id="cmp-<claim id>"``,
    class ``differs`` when the verdicts differ), one cell per run carrying ``data-verdict``.
    """
    title = "Beacon Fleet compare: " + " vs ".join(run.label for run in runs)
    ids = claim_ids(runs)
    changed = [claim_id for claim_id in ids if differs(verdicts_of(runs, claim_id))]
    summary = (f"{len(changed)} of {len(ids)} claims differ: {', '.join(changed)}." if changed
               else f"No verdict differs among the {len(ids)} claims.")
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{_e(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>{_e(title)}</h1>",
        _runs_table(runs),
        f'<p class="{"outcome-fail" if changed else "outcome-pass"}" id="compare-summary">{_e(summary)}</p>',
        "<h2>Verdicts</h2>", _matrix(runs),
        "<h2>Distributions</h2>",
        "<p>Latency: messages sent on an open channel, from the intended send time to the first receipt "
        "(no coordinated omission). Delivery delay: every delivered message, including time queued "
        "offline. Dashed line: the claim's target, where the runs share one.</p>",
    ]
    parts.append('<div class="distributions">')
    parts += [_distribution(runs, distribution) for distribution in DISTRIBUTIONS]
    parts.append("</div>")
    parts += ["<h2>Messages</h2>", _messages(runs)]
    warnings = [(run.label, w) for run in runs for w in run.result.warnings]
    if warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li><strong>{_e(label)}</strong>: {_e(w)}</li>"
                                                      for label, w in warnings) + "</ul>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _runs_table(runs: Sequence[ComparedRun]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in ("run", "outcome", "profile", "policy", "devices",
                                                  "operators", "duration", "seed", "mode", "backend",
                                                  "started at", "folder"))
    rows = ['<table class="runs" id="compare-runs">', f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for run in runs:
        info = run.result.run
        code = run.result.exit_code
        cells = [
            f'<td class="outcome-{"fail" if code else "pass"}"><strong>{"FAIL" if code else "PASS"}</strong> '
            f"{_e(_outcome_words(run.result))}</td>",
            f"<td>{_e(info.profile)}</td>", f"<td>{_e(info.policy)}</td>",
            f'<td class="num">{_e(f"{info.devices:,}")}</td>',
            f'<td class="num">{_e(f"{info.operators:,}")}</td>',
            f'<td class="num">{_e(f"{info.duration_s:g} s")}</td>', f'<td class="num">{_e(info.seed)}</td>',
            f"<td>{_e(info.mode)}</td>",
            f"<td>{_e(info.backend_url or '-')}{' (embedded)' if info.backend_embedded else ''}</td>",
            f"<td>{_e(info.started_at or '-')}</td>", f"<td>{_e(run.folder)}</td>",
        ]
        rows.append(f'<tr data-label="{_e(run.label)}"><th>{_e(run.label)}</th>{"".join(cells)}</tr>')
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _matrix(runs: Sequence[ComparedRun]) -> str:
    head = "".join(f"<th>{_e(run.label)}</th>" for run in runs)
    rows = ['<table class="matrix" id="compare-verdicts">',
            f"<thead><tr><th>claim</th><th>target</th>{head}<th>differs</th></tr></thead>", "<tbody>"]
    for claim_id in claim_ids(runs):
        verdicts = verdicts_of(runs, claim_id)
        known = [v for v in verdicts if v is not None]
        targets = {v.target for v in known}
        shared = len(targets) == 1
        cells = []
        for run, v in zip(runs, verdicts, strict=True):
            if v is None:
                cells.append(f'<td class="verdict" data-verdict="none" data-run="{_e(run.label)}">'
                             "not judged in this run</td>")
                continue
            target = "" if shared else f'<div class="note">target {_e(v.target)}</div>'
            cells.append(f'<td class="verdict {_e(v.verdict)}" data-verdict="{_e(v.verdict)}" '
                         f'data-run="{_e(run.label)}"><strong>{_e(VERDICT_WORDS.get(v.verdict, v.verdict))}'
                         f"</strong> {_e(measured(v))}{target}"
                         f'<div class="note">n={_e(f"{v.n:,}")}; {_e(v.note)}</div></td>')
        differ = differs(verdicts)
        css = ' class="differs"' if differ else ""
        rows.append(f'<tr id="cmp-{_e(claim_id)}"{css}>'
                    f'<th class="claim" title="{_e(known[0].claim)}">{_e(claim_id)}</th>'
                    f"<td>{_e(next(iter(targets)) if shared else 'per run')}</td>{''.join(cells)}"
                    f'<td class="marker">{"differs" if differ else ""}</td></tr>')
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _distribution(runs: Sequence[ComparedRun], distribution: Distribution) -> str:
    """One distribution: the overlaid plot of the runs with samples, and a summary table of all."""
    series: list[tuple[str, Histogram]] = []
    empty: list[str] = []
    for run in runs:
        histogram = distribution.histogram(run.result)
        if histogram is not None and histogram.count:
            series.append((run.label, histogram))
        else:
            empty.append(run.label)
    targets = {distribution.target(run.result) for run in runs}
    target = next(iter(targets)) if len(targets) == 1 else None
    parts = [f'<section class="distribution" id="dist-{_e(distribution.id)}">',
             f"<h3>{_e(distribution.title)} ({_e(distribution.unit)})</h3>"]
    if series:
        plot = distribution_plot if distribution.cdf else percentile_plot
        svg = plot(series, distribution.title, distribution.unit, scale=distribution.scale, target=target)
        caption = "Cumulative distribution" if distribution.cdf else "Percentiles (HDR)"
        if empty:
            caption += f"; no samples in {', '.join(empty)}"
        parts.append(f'<figure class="plot" id="plot-{_e(distribution.id)}">{svg}'
                     f"<figcaption>{_e(caption)}.</figcaption></figure>")
    else:
        parts.append("<p>No samples in any run.</p>")
    head = "".join(f'<th class="num">{_e(c)}</th>' for c in SUMMARY_COLUMNS)
    rows = [f'<table class="summary"><thead><tr><th>{_e(distribution.unit)}</th>{head}</tr></thead><tbody>']
    for run in runs:
        values = _summary(distribution.histogram(run.result), distribution.scale)
        cells = "".join(f'<td class="num">{_e(summary_cell(values.get(c)))}</td>' for c in SUMMARY_COLUMNS)
        rows.append(f"<tr><th>{_e(run.label)}</th>{cells}</tr>")
    rows.append("</tbody></table>")
    parts += ["\n".join(rows), "</section>"]
    return "\n".join(parts)


def _messages(runs: Sequence[ComparedRun]) -> str:
    """Messages per kind, one group of columns per run."""
    columns = (*MESSAGE_COLUMNS, "delivery")
    groups = "".join(f'<th class="group" colspan="{len(columns)}">{_e(run.label)}</th>' for run in runs)
    head = "".join(f'<th class="num">{_e(c.replace("_", " "))}</th>' for _ in runs for c in columns)
    rows = ['<table class="messages" id="compare-messages">',
            f'<thead><tr><th rowspan="2">kind</th>{groups}</tr><tr>{head}</tr></thead>', "<tbody>"]

    def cells(counts: MessageCounts) -> str:
        row = _message_row(counts)
        delivery = row["delivery"]
        return ("".join(f'<td class="num">{_e(f"{row[c]:,}")}</td>' for c in MESSAGE_COLUMNS)
                + f'<td class="num">{_e("-" if delivery is None else percent(delivery))}</td>')

    for kind in message_kinds(runs):
        row = "".join(cells(run.result.messages.get(kind, MessageCounts())) for run in runs)
        rows.append(f'<tr id="msg-{_e(kind)}"><th>{_e(kind)}</th>{row}</tr>')
    rows.append("</tbody>")
    totals = "".join(cells(_totals(run.result)) for run in runs)
    rows.append(f"<tfoot><tr><th>all</th>{totals}</tr></tfoot></table>")
    return "\n".join(rows)


# -- helpers --------------------------------------------------------------------------------------

def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _distinct(values: Sequence[str]) -> bool:
    return len(set(values)) == len(values)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _verdict(result: RunResult, claim_id: str) -> Verdict | None:
    try:
        return result.verdict(claim_id)
    except KeyError:
        return None


def _outcome_counts(result: RunResult) -> dict[str, int]:
    counts = {PASS: 0, FAIL: 0, NOT_MEASURED: 0}
    for verdict in result.verdicts:
        counts[verdict.verdict] += 1
    return {"passed": counts[PASS], "failed": counts[FAIL], "not_measured": counts[NOT_MEASURED]}


def _outcome_words(result: RunResult) -> str:
    counts = _outcome_counts(result)
    strict = " (strict: they fail)" if result.strict and counts["not_measured"] else ""
    return (f"{counts['passed']} passed, {counts['failed']} failed, {counts['not_measured']} not "
            f"measured{strict}")


def _describe(result: RunResult) -> str:
    info = result.run
    backend = info.backend_url or "-"
    return (f"profile {info.profile}, policy {info.policy}, {info.devices:,} devices, {info.duration_s:g} s, "
            f"seed {info.seed}, {info.mode} mode, backend {backend}")


def _totals(result: RunResult) -> MessageCounts:
    """The message counts over all kinds."""
    kinds: Iterable[MessageCounts] = result.messages.values()
    return MessageCounts(**{c: sum(getattr(k, c) for k in kinds) for c in MESSAGE_COLUMNS})


def _message_row(counts: MessageCounts) -> dict[str, Any]:
    row: dict[str, Any] = {c: getattr(counts, c) for c in MESSAGE_COLUMNS}
    row["delivery"] = None if counts.delivery is None else stable_float(counts.delivery)
    return row


def _summary(histogram: Histogram | None, scale: float) -> Mapping[str, float | int | None]:
    if histogram is None:
        return {"n": 0, **dict.fromkeys(SUMMARY_COLUMNS[1:])}
    return {k: stable_float(v) if isinstance(v, float) else v for k, v in histogram.summary(scale).items()}
