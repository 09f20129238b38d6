"""``report.html``: one self-contained page for people, opened offline.

No scripts, fonts, images or style sheets are fetched: the style is inline, the plots are inline SVG
(without a namespace URL), and every piece of text from the run is escaped. The verdict table comes
first, then the messages table, latency summaries (with plots), connections, battery, the
generator's own figures, and what was run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path

from simulator.report.text import VERDICT_WORDS, measured, number, percent, summary_cell
from simulator.result import FAIL, NOT_MEASURED, PASS, MessageCounts, RunResult

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em;color:#1d1d1f;max-width:80em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.pass td.verdict{background:#e3f5e1}tr.fail td.verdict{background:#fbe0e0;font-weight:bold}
tr.not_measured td.verdict{background:#fff4d6}
.outcome-pass{color:#1a7f37}.outcome-fail{color:#c62828}
svg text{font-size:11px;font-family:inherit}
"""

SUMMARY_COLUMNS = ("n", "p50", "p90", "p95", "p99", "max")


def render_html(result: RunResult, strict: bool | None = None) -> str:
    """The report.html text for a result.

    Args:
        result: The judged run.
        strict: Whether a claim not measured fails the run; defaults to ``result.strict``.

    Returns:
        A complete HTML document.
    """
    strict = result.strict if strict is None else strict
    run = result.run
    document = result.to_json()
    failed = sum(v.verdict == FAIL for v in result.verdicts)
    unmeasured = sum(v.verdict == NOT_MEASURED for v in result.verdicts)
    code = 1 if failed or (strict and unmeasured) else 0
    title = f"Beacon Fleet: {run.profile} ({run.policy})"
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{_e(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="outcome-{"fail" if code else "pass"}"><strong>{"FAIL" if code else "PASS"}</strong>: '
        f"{_e(len(result.verdicts) - failed - unmeasured)} passed, {_e(failed)} failed, "
        f"{_e(unmeasured)} not measured{' (strict: not measured fails)' if strict else ''}. "
        f"{_e(run.mode)} mode, {_e(f'{run.devices:,}')} devices, {_e(f'{run.operators:,}')} operators, "
        f"{_e(f'{run.duration_s:g}')} s of model time, seed {_e(run.seed)}.</p>",
        "<h2>Verdicts</h2>", _verdicts(result),
    ]
    if result.warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{_e(w)}</li>" for w in result.warnings)
                     + "</ul>")
    parts += ["<h2>Messages</h2>", _messages(result.messages, result.outcomes),
              _bars("Delivery per kind (%)", [(k, 100.0 * (c.delivery or 0.0))
                                             for k, c in result.messages.items() if c.originated],
                    "%", 100.0 * result.targets.delivery_min)]
    latency = document["latency_ms"]
    parts += ["<h2>Latency (ms)</h2>",
              "<p>Network latency: messages sent on an open channel, from the intended send time to "
              "the first receipt. Delivery delay: every delivered message, including time queued "
              "offline.</p>",
              _summaries(latency, "ms")]
    for name in ("phone_to_operator", "operator_to_phone", "delivery_delay"):
        summary = latency.get(name) or {}
        if summary.get("n"):
            parts.append(_bars(f"{name.replace('_', ' ')} (ms)",
                               [(p, float(summary[p])) for p in SUMMARY_COLUMNS[1:]], "ms",
                               result.targets.latency_p99_ms if name != "delivery_delay" else None))
    by_network = document["latency_ms_by_network"]
    if by_network:
        rows = {f"{net}: {d.replace('_', ' ')}": s
                for net, dirs in by_network.items() for d, s in dirs.items()}
        parts += ["<h3>By the phone's network</h3>", _summaries(rows, "ms")]
    parts += ["<h2>Connections</h2>",
              _summaries({"connect (s)": document["connect_s"], "reconnect (s)": document["reconnect_s"],
                          "heartbeat spacing (s)": document["heartbeat_s"]}, "s"),
              _pairs([("uptime", "-" if result.uptime is None else percent(result.uptime))]
                     + [(f"connect {k}", f"{v:,}") for k, v in result.connect_counts.items()]
                     + [(f"reconnect {k}", f"{v:,}") for k, v in result.reconnect_counts.items()])]
    battery = document["battery"]
    parts += ["<h2>Battery (% per hour)</h2>",
              _summaries({"all devices": battery["pct_per_hour"],
                          **{f"mostly on {net}": s for net, s in battery["by_network"].items()}}, "%/h")]
    generator = document["generator"]
    parts += ["<h2>Load generator</h2>",
              _summaries({"loop lag (ms)": generator["loop_lag_ms"]}, "ms") if generator["loop_lag_ms"]
              else "<p>Loop lag not measured.</p>",
              _pairs([("CPU", f"{number(result.generator.cpu_s)} s"),
                      ("peak RSS", "-" if result.generator.peak_rss_mb is None
                       else f"{number(result.generator.peak_rss_mb)} MB")])]
    parts += ["<h2>Run</h2>", _pairs([
        ("mode", run.mode), ("profile", run.profile), ("policy", run.policy), ("seed", str(run.seed)),
        ("devices", f"{run.devices:,}"), ("operators", f"{run.operators:,}"),
        ("duration", f"{run.duration_s:g} s"), ("speed", f"{run.speed:g}"),
        ("backend", f"{run.backend_url or '-'}{' (embedded)' if run.backend_embedded else ''}"),
        ("started at", run.started_at or "-"), ("wall time", f"{run.wall_s:g} s"),
        ("shards", str(run.shards)),
        *((f"devices on {k}", ", ".join(f"{name} {n:,}" for name, n in v.items()))
          for k, v in result.population.items()),
        ("targets", ", ".join(f"{k} {v}" for k, v in result.targets.to_dict().items())),
    ])]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def write_html(result: RunResult, path: Path, strict: bool | None = None) -> None:
    """Write report.html to ``path`` (see :func:`render_html`)."""
    path.write_text(render_html(result, strict), encoding="utf-8")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _verdicts(result: RunResult) -> str:
    rows = ['<table class="verdicts">', "<thead><tr><th>id</th><th>claim</th><th>verdict</th>"
            '<th class="num">measured</th><th>target</th><th class="num">n</th><th>note</th></tr></thead>',
            "<tbody>"]
    for v in result.verdicts:
        css = v.verdict if v.verdict in (PASS, FAIL, NOT_MEASURED) else ""
        rows.append(f'<tr class="{_e(css)}" id="verdict-{_e(v.id)}"><td>{_e(v.id)}</td><td>{_e(v.claim)}</td>'
                    f'<td class="verdict">{_e(VERDICT_WORDS.get(v.verdict, v.verdict))}</td>'
                    f'<td class="num">{_e(measured(v))}</td><td>{_e(v.target)}</td>'
                    f'<td class="num">{_e(f"{v.n:,}")} {_e(v.population.get("of", ""))}</td>'
                    f"<td>{_e(v.note)}</td></tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _messages(messages: Mapping[str, MessageCounts], outcomes: Mapping[str, int]) -> str:
    columns = ("originated", "delivered", "stored_only", "lost", "lost_during_reconnect", "duplicated",
               "reordered", "late", "dropped")
    head = "".join(f'<th class="num">{_e(c.replace("_", " "))}</th>' for c in columns)
    rows = ['<table class="messages">', f'<thead><tr><th>kind</th>{head}<th class="num">delivery</th>'
            "</tr></thead>", "<tbody>"]
    for kind, counts in messages.items():
        cells = "".join(f'<td class="num">{getattr(counts, c):,}</td>' for c in columns)
        delivery = "-" if counts.delivery is None else percent(counts.delivery)
        rows.append(f'<tr><td>{_e(kind)}</td>{cells}<td class="num">{_e(delivery)}</td></tr>')
    rows.append("</tbody>")
    if outcomes:
        cells = "".join(f'<td class="num">{outcomes.get(c, 0):,}</td>' for c in columns)
        rows.append(f"<tfoot><tr><th>all</th>{cells}<td></td></tr></tfoot>")
    rows.append("</table>")
    unexpected = outcomes.get("unexpected", 0)
    rows.append(f"<p>Unexpected (received or stored, never originated): {unexpected:,}.</p>")
    return "\n".join(rows)


def _summaries(summaries: Mapping[str, Mapping[str, float | int | None] | None], unit: str) -> str:
    head = "".join(f'<th class="num">{_e(c)}</th>' for c in SUMMARY_COLUMNS)
    rows = [f'<table class="summary"><thead><tr><th>{_e(unit)}</th>{head}</tr></thead><tbody>']
    for name, summary in summaries.items():
        values = summary or {}
        cells = "".join(f'<td class="num">{_e(summary_cell(values.get(c)))}</td>' for c in SUMMARY_COLUMNS)
        rows.append(f"<tr><td>{_e(name.replace('_', ' '))}</td>{cells}</tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _pairs(pairs: Iterable[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)
    return f'<table class="pairs"><tbody>{rows}</tbody></table>'


def _bars(title: str, items: Sequence[tuple[str, float]], unit: str, target: float | None) -> str:
    """A horizontal bar chart as inline SVG, with the target as a dashed line."""
    if not items:
        return ""
    label_w, bar_w, row_h = 150, 420, 18
    top = max([v for _, v in items] + ([target] if target is not None else [])) or 1.0
    height = row_h * len(items) + 24
    out = [f'<svg width="{label_w + bar_w + 90}" height="{height}" role="img" aria-label="{_e(title)}">',
           f'<text x="0" y="12">{_e(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = 18 + i * row_h
        width = max(1.0, bar_w * value / top)
        out.append(f'<text x="0" y="{y + 12}">{_e(label)}</text>'
                   f'<rect x="{label_w}" y="{y + 2}" width="{width:.1f}" height="{row_h - 5}" '
                   'fill="#4a78b5"/>'
                   f'<text x="{label_w + width + 4:.1f}" y="{y + 12}">{_e(number(value))} {_e(unit)}</text>')
    if target is not None:
        x = label_w + bar_w * target / top
        out.append(f'<line x1="{x:.1f}" y1="16" x2="{x:.1f}" y2="{height}" stroke="#c62828" '
                   f'stroke-dasharray="4 3"><title>target {_e(number(target))} {_e(unit)}</title></line>')
    out.append("</svg>")
    return "".join(out)
