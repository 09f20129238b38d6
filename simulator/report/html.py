"""``report.html``: one self-contained page for people, opened offline.

No scripts, fonts, images or style sheets are fetched: the style is inline, the plots are inline SVG
rendered by :mod:`simulator.report.plots` (without a namespace URL; their only references are to
their own ids and ``data:`` images), and every piece of text from the run is escaped.

The page reads top to bottom as "what passed, what failed, where and why":

1. the outcome line and a table of contents;
2. ``#verdicts``: one row per claim (``id="verdict-<claim id>"``, class ``pass``, ``fail`` or
   ``not_measured``) with the target, the measured figure, the sample and population, and the note,
   which for a failure is the one-line explanation, shown in bold;
3. the messages table, then the plots: ``#plot-latency`` (HDR percentile plots per direction and per
   network type, the target drawn in), ``#plot-connect`` (connect and reconnect distributions),
   ``#plot-timeline`` (phones per state over time, outages shaded), ``#plot-delivery``,
   ``#plot-battery``, ``#plot-map`` (GPS tracks by connection state, alerts);
4. ``#worst-phones``: the phones that fared worst, each with its network, lifecycle and connection
   timeline and its lost messages marked;
5. the load generator's own figures and what was run.

The fleet timeline, delivery by network, battery sample, map and worst phones come from the run's
views (``RunResult.views``): aggregates and bounded samples, never one element per message or per
phone, so the page of a 10,000-phone run stays small. A view a run did not record reads "not
recorded for this run"; a plot with nothing to draw reads "not measured" and why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from simulator.hdr import Histogram
from simulator.report import plots
from simulator.report.text import VERDICT_WORDS, measured, number, percent, summary_cell
from simulator.result import DIRECTIONS, FAIL, NOT_MEASURED, PASS, MessageCounts, RunResult

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em;color:#1d1d1f;max-width:92em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1em;margin:1.2em 0 .3em 0}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.pass td.verdict{background:#e3f5e1}tr.fail td.verdict{background:#fbe0e0;font-weight:bold}
tr.not_measured td.verdict{background:#fff4d6}
tr.fail td.note{color:#b3261e;font-weight:bold}span.population{font-size:.85em;color:#555}
.outcome-pass{color:#1a7f37}.outcome-fail{color:#c62828}
nav.contents{font-size:.9em;margin:.5em 0 1em 0;line-height:1.8}
nav.contents a{margin-right:1.2em;color:#0b5cad;white-space:nowrap}
svg text{font-size:11px;font-family:inherit}
svg.plot{display:block;max-width:100%;height:auto}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(34em,1fr));gap:1em 2em;align-items:start}
p.empty{color:#666;font-style:italic}p.caption{color:#444;font-size:.9em;max-width:60em}
article.phone{margin-bottom:1.5em}p.lost{font-size:.85em;color:#444}
"""

SUMMARY_COLUMNS = ("n", "p50", "p90", "p95", "p99", "max")
SECTIONS = (("verdicts", "Verdicts"), ("messages", "Messages"), ("plot-latency", "Latency"),
            ("plot-connect", "Connect and reconnect"), ("plot-timeline", "Fleet over time"),
            ("plot-delivery", "Delivery"), ("plot-battery", "Battery"), ("plot-map", "Map"),
            ("worst-phones", "Worst phones"), ("generator", "Load generator"), ("run", "Run"))
NOT_RECORDED = "not recorded for this run"
LOST_LISTED = 12  # lost messages listed by name per phone; the rest are counted
DIRECTION_WORDS = {"phone_to_operator": "phone \u2192 operator", "operator_to_phone": "operator \u2192 phone"}


def render_html(result: RunResult, strict: bool | None = None) -> str:
    """The report.html text for a result.

    Args:
        result: The judged run.
        strict: Whether a claim not measured fails the run; defaults to ``result.strict``.

    Returns:
        A complete HTML document.
    """
    strict = result.strict if strict is None else strict
    views = result.views
    run = result.run
    document = result.to_json()
    failed = sum(v.verdict == FAIL for v in result.verdicts)
    unmeasured = sum(v.verdict == NOT_MEASURED for v in result.verdicts)
    code = 1 if failed or (strict and unmeasured) else 0
    title = f"Beacon Fleet: {run.profile} ({run.policy})"
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="outcome-{"fail" if code else "pass"}"><strong>{"FAIL" if code else "PASS"}</strong>: '
        f"{_e(len(result.verdicts) - failed - unmeasured)} passed, {_e(failed)} failed, "
        f"{_e(unmeasured)} not measured{' (strict: not measured fails)' if strict else ''}. "
        f"{_e(run.mode)} mode, {_e(f'{run.devices:,}')} devices, {_e(f'{run.operators:,}')} operators, "
        f"{_e(f'{run.duration_s:g}')} s of model time, seed {_e(run.seed)}.</p>",
        '<nav class="contents">' + "".join(f'<a href="#{i}">{_e(name)}</a>' for i, name in SECTIONS)
        + "</nav>",
        _section("verdicts", "Verdicts", _verdicts(result)),
    ]
    if result.warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{_e(w)}</li>" for w in result.warnings)
                     + "</ul>")
    parts += [
        _section("messages", "Messages", _messages(result.messages, result.outcomes)),
        _section("plot-latency", "Latency", _latency(result, document)),
        _section("plot-connect", "Connect and reconnect", _connections(result, document)),
        _section("plot-timeline", "Fleet over time", _timeline(views)),
        _section("plot-delivery", "Delivery", _delivery(result, views)),
        _section("plot-battery", "Battery", _battery(result, document, views)),
        _section("plot-map", "Map", _map(views)),
        _section("worst-phones", "Worst phones", _worst(result, views)),
        _section("generator", "Load generator", _generator(result, document)),
        _section("run", "Run", _run(result)),
        "</body>", "</html>",
    ]
    return "\n".join(parts) + "\n"


def write_html(result: RunResult, path: Path, strict: bool | None = None) -> None:
    """Write report.html to ``path`` (see :func:`render_html`)."""
    path.write_text(render_html(result, strict), encoding="utf-8")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _section(section_id: str, heading: str, body: str) -> str:
    return f'<section id="{section_id}">\n<h2>{_e(heading)}</h2>\n{body}\n</section>'


def _grid(*items: str) -> str:
    return '<div class="plots">' + "".join(f"<div>{item}</div>" for item in items) + "</div>"


def _not_recorded(what: str) -> str:
    return plots.empty(f"{what}: {NOT_RECORDED}")


def _unmeasured(result: RunResult, claim_id: str, title: str) -> str:
    """The line shown for a plot with no samples, with the claim's own reason when it has one."""
    try:
        verdict = result.verdict(claim_id)
    except KeyError:
        return plots.empty(f"{title}: not measured (no samples)")
    why = verdict.note if verdict.verdict == NOT_MEASURED and verdict.note else "no samples"
    return plots.empty(f"{title}: not measured \u2014 {why}")


# -- sections ----------------------------------------------------------------------------------------

def _verdicts(result: RunResult) -> str:
    """The verdict table; the population most verdicts share is stated once, a row shows what differs."""
    populations = [_population(v.population) for v in result.verdicts]
    common = Counter(populations).most_common(1)[0][0] if populations else ()
    rows = []
    if common:
        rows.append(f'<p class="caption">Population (unless a row says otherwise): '
                    f"{_e(', '.join(f'{k} {val}' for k, val in common))}; n is each claim's sample.</p>")
    rows += ['<table class="verdicts">', "<thead><tr><th>id</th><th>claim</th><th>verdict</th>"
             '<th class="num">measured</th><th>target</th><th class="num">n</th><th>note</th></tr></thead>',
             "<tbody>"]
    for v, population in zip(result.verdicts, populations, strict=True):
        css = v.verdict if v.verdict in (PASS, FAIL, NOT_MEASURED) else ""
        differs = ", ".join(f"{k} {val}" for k, val in population if (k, val) not in common)
        rows.append(f'<tr class="{_e(css)}" id="verdict-{_e(v.id)}"><td>{_e(v.id)}</td><td>{_e(v.claim)}</td>'
                    f'<td class="verdict">{_e(VERDICT_WORDS.get(v.verdict, v.verdict))}</td>'
                    f'<td class="num">{_e(measured(v))}</td><td>{_e(v.target)}</td>'
                    f'<td class="num">{_e(f"{v.n:,}")} {_e(v.population.get("of", ""))}'
                    + (f'<br><span class="population">{_e(differs)}</span>' if differs else "") + "</td>"
                    f'<td class="note">{_e(v.note)}</td></tr>')
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _population(population: Mapping[str, str | int]) -> tuple[tuple[str, str], ...]:
    """What a verdict covers, without its sample size or the profile (the page's title names it)."""
    return tuple(sorted((k, str(v)) for k, v in population.items() if k not in ("n", "of", "profile")))


def _messages(messages: Mapping[str, MessageCounts], outcomes: Mapping[str, int]) -> str:
    columns = ("originated", "delivered", "stored_only", "lost", "lost_during_reconnect", "duplicated",
               "reordered", "late", "dropped")
    head = "".join(f'<th class="num">{_e(c.replace("_", " "))}</th>' for c in columns)
    rows = ['<table class="messages">', f'<thead><tr><th>kind</th>{head}<th class="num">delivery</th>'
            "</tr></thead>", "<tbody>"]
    for kind, counts in sorted(messages.items()):
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


def _latency(result: RunResult, document: Mapping[str, Any]) -> str:
    target = result.targets.latency_p99_ms
    directions = [(DIRECTION_WORDS.get(d, d), result.latency[d]) for d in DIRECTIONS if d in result.latency]
    delay = result.latency.get("delivery_delay")
    title = "Network latency by direction"
    items = [plots.percentile_plot(directions, title, "ms", 1000.0, target)
             if any(h.count for _, h in directions) else _unmeasured(result, "latency", title),
             plots.percentile_plot([("delivery delay", delay)] if delay is not None else [],
                                   "Delivery delay (time queued offline included)", "ms", 1000.0)]
    by_network = result.latency_by_network
    if by_network:
        for direction in DIRECTIONS:
            series = [(net, hists[direction]) for net, hists in sorted(by_network.items())
                      if direction in hists]
            items.append(plots.percentile_plot(series, f"{DIRECTION_WORDS[direction]} by network type", "ms",
                                               1000.0, target))
    else:
        items.append(_not_recorded("latency by network type"))
    latency = document["latency_ms"]
    order = [*(d for d in DIRECTIONS if d in latency), *sorted(n for n in latency if n not in DIRECTIONS)]
    summaries = {DIRECTION_WORDS.get(name, name): latency[name] for name in order}
    summaries.update({f"{net}: {DIRECTION_WORDS.get(d, d)}": s
                      for net, dirs in sorted(document["latency_ms_by_network"].items())
                      for d, s in sorted(dirs.items())})
    return "\n".join([
        '<p class="caption">Network latency: messages sent on an open channel, from the intended send time '
        "to the first receipt (no coordinated omission). Delivery delay: every delivered message, including "
        "time queued offline. The x axis runs to the rarest percentile the sample can show; the dashed line "
        "is the p99 target.</p>",
        _grid(*items), _summaries(summaries, "ms")])


def _connections(result: RunResult, document: Mapping[str, Any]) -> str:
    targets = result.targets
    windows = (("connect", "initial connection", "Initial connection time", result.connect,
                targets.connect_p99_s),
               ("reconnect", "reconnection", "Reconnection time after network restoration", result.reconnect,
                targets.reconnect_p99_s))
    plotted = []
    for claim_id, label, title, hist, target in windows:
        plotted.append(plots.distribution_plot([(label, hist)], title, "s", 1.0, target) if hist.count
                       else _unmeasured(result, claim_id, title))
    failed_connect = result.connect_counts.get("failed", 0)
    failed_reconnect = result.reconnect_counts.get("failed", 0)
    return "\n".join([
        '<p class="caption">Share of windows that ended with the user channel open within a given time. '
        f"Windows that never ended open are not in the curves but count against the claims: "
        f"{failed_connect:,} initial connection(s) and {failed_reconnect:,} reconnection(s) failed.</p>",
        _grid(*plotted),
        _summaries({"connect (s)": document["connect_s"], "reconnect (s)": document["reconnect_s"],
                    "heartbeat spacing (s)": document["heartbeat_s"]}, "s"),
        _pairs([("uptime", "-" if result.uptime is None else percent(result.uptime))]
               + [(f"connect {k}", f"{v:,}") for k, v in sorted(result.connect_counts.items())]
               + [(f"reconnect {k}", f"{v:,}") for k, v in sorted(result.reconnect_counts.items())])])


def _timeline(views: Mapping[str, Any]) -> str:
    timeline = views.get("timeline")
    if not isinstance(timeline, Mapping):
        return _not_recorded("fleet timeline")
    outages = len(timeline.get("outages") or [])
    return "\n".join([
        '<p class="caption">Phones in each state over time, stacked: offline (no network or powered off), '
        "suspended (the OS does not let the app run), connected (user channel open), reconnecting "
        f"(could be connected, is not). Shaded: network outages ({outages:,}).</p>",
        plots.timeline_plot(timeline)])


def _delivery(result: RunResult, views: Mapping[str, Any]) -> str:
    by_kind = {kind: {"originated": c.originated, "delivered": c.delivered}
               for kind, c in sorted(result.messages.items())}
    by_network = views.get("delivery_by_network")
    parts = [plots.delivery_plot(by_kind, by_network if isinstance(by_network, Mapping) else None,
                                 result.targets.delivery_min)]
    if not isinstance(by_network, Mapping):
        parts.append(_not_recorded("delivery by network type"))
    return "\n".join(['<p class="caption">Messages received by their intended recipient after the drain, '
                      "out of those originated. Bars below the dashed target fail the delivery claim.</p>",
                      *parts])


def _battery(result: RunResult, document: Mapping[str, Any], views: Mapping[str, Any]) -> str:
    battery = views.get("battery")
    sample = battery.get("sample") if isinstance(battery, Mapping) else None
    drains: list[tuple[str, Histogram]] = [("all phones", result.battery),
                                           *sorted(result.battery_by_network.items())]
    parts = [plots.battery_plot(sample or [], drains, result.targets.battery_pct_per_hour)]
    if sample is None:
        parts.append(_not_recorded("battery level over time"))
    battery_summaries = document["battery"]
    summaries = {"all devices": battery_summaries["pct_per_hour"],
                 **{f"mostly on {net}": s for net, s in sorted(battery_summaries["by_network"].items())}}
    return "\n".join(['<p class="caption">Battery drawn by the app\'s radio, GPS and wake-ups. Drain per '
                      "phone is grouped by the network it was mostly on.</p>",
                      *parts, _summaries(summaries, "%/h")])


def _map(views: Mapping[str, Any]) -> str:
    view = views.get("map")
    if not isinstance(view, Mapping):
        return _not_recorded("map")
    return "\n".join(['<p class="caption">GPS tracks of a sample of phones, coloured by their connection '
                      "state; alerts where they were raised. Plain axes: no map tiles are fetched.</p>",
                      plots.map_plot(view)])


def _worst(result: RunResult, views: Mapping[str, Any]) -> str:
    worst = views.get("worst")
    if not isinstance(worst, Sequence):
        return _not_recorded("worst phones")
    if not worst:
        return plots.empty("worst phones: not measured (no phone lost a message or stood out)")
    out = ['<p class="caption">The phones that fared worst, each on its own timeline: its network, the '
           "app's lifecycle, its connections per channel, and its lost messages (crosses).</p>"]
    for phone in worst:
        lost = list(phone.get("lost_messages") or [])
        listed = ", ".join(f"{_clock(float(t))} {kind} ({origin})"
                           for t, kind, origin, *_ in lost[:LOST_LISTED])
        more = f" and {len(lost) - LOST_LISTED:,} more" if len(lost) > LOST_LISTED else ""
        out += [
            '<article class="phone">',
            f"<h3>{_e(phone.get('actor', '?'))}: {_e(phone.get('why', ''))}</h3>",
            f"<p>Mostly on {_e(phone.get('network', '?'))}; {int(phone.get('lost', len(lost))):,} "
            "message(s) lost.</p>",
            plots.phone_plot(phone, result.run.duration_s),
            f'<p class="lost">Lost: {_e(listed)}{_e(more)}.</p>' if lost else "",
            "</article>",
        ]
    return "\n".join(out)


def _generator(result: RunResult, document: Mapping[str, Any]) -> str:
    generator = document["generator"]
    return "\n".join([
        _summaries({"loop lag (ms)": generator["loop_lag_ms"]}, "ms") if generator["loop_lag_ms"]
        else "<p>Loop lag not measured.</p>",
        _pairs([("CPU", f"{number(result.generator.cpu_s)} s"),
                ("peak RSS", "-" if result.generator.peak_rss_mb is None
                 else f"{number(result.generator.peak_rss_mb)} MB")])])


def _run(result: RunResult) -> str:
    run = result.run
    return _pairs([
        ("mode", run.mode), ("profile", run.profile), ("policy", run.policy), ("seed", str(run.seed)),
        ("devices", f"{run.devices:,}"), ("operators", f"{run.operators:,}"),
        ("duration", f"{run.duration_s:g} s"),
        ("speed", "as fast as the CPU allows (virtual time)" if run.mode == "simulate"
         else f"{run.speed:g} model s per wall s"),
        ("backend", f"{run.backend_url or '-'}{' (embedded)' if run.backend_embedded else ''}"),
        ("started at", run.started_at or "-"), ("wall time", f"{run.wall_s:g} s"),
        ("shards", str(run.shards)),
        *((f"devices on {k}", ", ".join(f"{name} {n:,}" for name, n in sorted(v.items())))
          for k, v in sorted(result.population.items())),
        ("targets", ", ".join(f"{k} {v}" for k, v in result.targets.to_dict().items())),
    ])


# -- tables ------------------------------------------------------------------------------------------

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


def _clock(seconds: float) -> str:
    """Model time as people read it: ``m:ss``, or ``h:mm:ss`` past the hour."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
