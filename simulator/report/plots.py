"""The report's plots: matplotlib figures rendered server-side to inline ``<svg>`` text.

Every function here is a pure function of its data and returns either one ``<svg>`` element, ready to
be placed in an HTML page, or one ``<p class="empty">`` line saying why there is nothing to draw. How
a figure becomes SVG that sits in a self-contained, offline page (text as text, no URLs, ids unique
per figure, the same bytes for the same data) is :mod:`simulator.report.figures`.

Dense layers (long tracks, many alert markers) are rasterised into the SVG as one PNG, so a
10,000-phone run costs a bounded number of elements.

Colours come from the colour-blind-safe Okabe-Ito and Paul Tol palettes; a phone's state and a network
kind have the same colour in every plot (:data:`STATE_COLOURS`, :data:`NETWORK_COLOURS`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

from simulator.hdr import Histogram
from simulator.report.figures import empty, figure, styled, to_svg

__all__ = ["battery_plot", "delivery_plot", "distribution_plot", "empty", "map_plot", "percentile_plot",
           "phone_plot", "timeline_plot"]

STATES = ("connected", "reconnecting", "suspended", "offline")
STATE_COLOURS = {"connected": "#009E73", "reconnecting": "#E69F00", "offline": "#D55E00",
                 "suspended": "#CC79A7"}
SERIES_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
TARGET_COLOUR = "#222222"
OUTAGE_COLOUR = "#000000"  # drawn translucent over the states
CONNECTION_COLOURS = {"open": STATE_COLOURS["connected"], "connecting": STATE_COLOURS["reconnecting"],
                      "half_open": "#F0E442", "closed": "#BBBBBB", "refused": STATE_COLOURS["offline"]}
LIFECYCLE_COLOURS = {"foreground": "#44AA99", "background": "#DDCC77", "doze_maintenance": "#AA4499"}
NETWORK_COLOURS = {"wifi": "#56B4E9", "lte": "#0072B2", "3g": "#882255", "edge": "#999933",
                   "down": STATE_COLOURS["offline"]}
OTHER_NETWORK_COLOURS = ("#332288", "#117733", "#88CCEE", "#44AA99")

WIDE = (7.2, 3.4)  # inches: one plot across half the page, two side by side on a wide screen
FULL = (12.0, 3.6)  # inches: one plot across the whole page
RASTER_SEGMENTS = 4000  # more line segments than this in one layer: rasterise it
RASTER_MARKERS = 400  # more markers than this in one layer: rasterise them
TIMELINE_POINTS = 720  # a fleet timeline longer than this is averaged down to it
OUTAGE_SPANS = 200  # more shaded outages than this: close ones are merged
PERCENTILE_TICKS = {1.0: "0%", 2.0: "50%", 10.0: "90%", 100.0: "99%", 1e3: "99.9%", 1e4: "99.99%",
                    1e5: "99.999%"}  # 1 / (1 - p) -> p


# -- public plots ------------------------------------------------------------------------------------

@styled
def percentile_plot(series: Sequence[tuple[str, Histogram]], title: str, unit: str, scale: float = 1.0,
                    target: float | None = None) -> str:
    """An HDR percentile plot as inline ``<svg>``.

    The x axis is the percentile on a log scale of ``1 / (1 - p)``, ticked at 50, 90, 99, 99.9 and
    99.99 %; the y axis is ``value * scale`` in ``unit``, on a log scale. One line per series.

    Args:
        series: ``(label, histogram)`` pairs; empty histograms are skipped.
        title: The plot's title.
        unit: The unit of the y axis (after ``scale``).
        scale: Multiplies every recorded value (e.g. 1000 for seconds shown in ms).
        target: Drawn as a dashed horizontal line, already in ``unit``; ``None`` draws none.

    Returns:
        One ``<svg>`` element, or a ``<p class="empty">`` line if every series is empty.
    """
    present = [(label, hist) for label, hist in series if hist.count]
    if not present:
        return empty(f"{title}: not measured (no samples)")
    fig, (ax,) = figure(WIDE, [(0.95, 1.0)], right=0.2)
    top_x = 10.0
    values: list[float] = []
    for i, (label, hist) in enumerate(present):
        xs, ys = _percentile_curve(hist, scale)
        top_x = max(top_x, float(xs[-1]))
        values += [float(ys.min()), float(ys.max())]
        p99 = hist.percentile(99.0) * scale
        ax.plot(xs, ys, color=SERIES_COLOURS[i % len(SERIES_COLOURS)],
                label=_text(f"{label} (n={hist.count:,}, p99 {_tick(p99)} {unit})"))
    if target is not None and target > 0:
        ax.axhline(target, color=TARGET_COLOUR, linestyle="--", linewidth=1.2,
                   label=_text(f"target {target:g} {unit}"))
        values.append(target)
    ax.set_xscale("log")
    ax.set_xlim(1.0, top_x)
    ticks = [x for x in PERCENTILE_TICKS if x <= top_x * 1.0001]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: PERCENTILE_TICKS.get(x, "")))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("percentile")
    _log_y(ax, values)
    ax.set_ylabel(_text(unit))
    ax.set_title(_text(title), loc="left")
    ax.legend(loc="best")  # the curves rise left to right; "best" finds the corner they leave free
    return to_svg(fig, title)


@styled
def distribution_plot(series: Sequence[tuple[str, Histogram]], title: str, unit: str, scale: float = 1.0,
                      target: float | None = None) -> str:
    """A cumulative distribution (share of samples at or below x) as inline ``<svg>``.

    Made for connect and reconnect times: the x axis is ``value * scale`` in ``unit`` on a log scale,
    the y axis the share of samples at or below it (0-100 %), with a dotted line at 99 %.

    Args:
        series: ``(label, histogram)`` pairs; empty histograms are skipped.
        title: The plot's title.
        unit: The unit of the x axis (after ``scale``).
        scale: Multiplies every recorded value.
        target: Drawn as a dashed vertical line, already in ``unit``; ``None`` draws none.

    Returns:
        One ``<svg>`` element, or a ``<p class="empty">`` line if every series is empty.
    """
    present = [(label, hist) for label, hist in series if hist.count]
    if not present:
        return empty(f"{title}: not measured (no samples)")
    fig, (ax,) = figure(WIDE, [(0.95, 1.0)], right=0.2)
    ps = np.unique(np.concatenate([np.linspace(0.0, 100.0, 101), [99.5, 99.9, 99.99]]))
    values: list[float] = []
    for i, (label, hist) in enumerate(present):
        xs = np.array([hist.percentile(p) for p in ps]) * scale
        xs[0] = hist.min * scale
        xs = np.maximum(xs, _floor(hist, scale))
        values += [float(xs.min()), float(xs.max())]
        p99 = hist.percentile(99.0) * scale
        ax.plot(xs, ps, color=SERIES_COLOURS[i % len(SERIES_COLOURS)], drawstyle="steps-post",
                label=_text(f"{label} (n={hist.count:,}, p99 {_tick(p99)} {unit})"))
    if target is not None and target > 0:
        ax.axvline(target, color=TARGET_COLOUR, linestyle="--", linewidth=1.2,
                   label=_text(f"target {target:g} {unit}"))
        values.append(target)
    ax.axhline(99.0, color="#777777", linestyle=":", linewidth=0.9)
    ax.set_xscale("log")
    low, high = _log_limits(values)
    ax.set_xlim(low, high)
    _log_ticks(ax.xaxis, low, high)
    ax.set_ylim(0.0, 101.0)
    ax.yaxis.set_major_locator(FixedLocator([0.0, 25.0, 50.0, 75.0, 99.0]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}%"))
    ax.set_xlabel(_text(unit))
    ax.set_ylabel("share at or below")
    ax.set_title(_text(title), loc="left")
    ax.legend(loc="best")
    return to_svg(fig, title)


@styled
def timeline_plot(timeline: Mapping[str, Any], title: str = "Fleet over time") -> str:
    """Phones connected, reconnecting, suspended and offline over time (stacked), outages shaded.

    Args:
        timeline: The ``timeline`` view: ``bucket_s``, ``t`` (bucket starts, s), one count list per
            state, and ``outages`` (``[start_s, end_s]`` pairs).
        title: The plot's title.

    Returns:
        One ``<svg>`` element, or a ``<p class="empty">`` line if there is nothing to draw.
    """
    t = np.asarray(timeline.get("t") or [], dtype=float)
    if t.size == 0:
        return empty(f"{title}: not measured (no time buckets recorded)")
    counts = [np.asarray(timeline.get(state) or np.zeros(t.size), dtype=float)[: t.size] for state in STATES]
    counts = [np.pad(c, (0, t.size - c.size)) for c in counts]
    if not any(c.any() for c in counts):
        return empty(f"{title}: not measured (no phone was running)")
    bucket = float(timeline.get("bucket_s") or (t[1] - t[0] if t.size > 1 else 1.0))
    t, counts = _downsample(t, counts, TIMELINE_POINTS)
    end = float(t[-1]) + bucket
    div, tunit = _time_unit(end)
    fig, (ax,) = figure(FULL, [(0.7, 1.0)], right=1.4)
    xs = np.append(t, end) / div
    ax.stackplot(xs, *[np.append(c, c[-1]) for c in counts], colors=[STATE_COLOURS[s] for s in STATES],
                 labels=list(STATES), linewidth=0.0)
    spans = _merge_spans([(float(a), float(b)) for a, b in timeline.get("outages") or []], end)
    for i, (start, stop) in enumerate(spans):
        ax.axvspan(start / div, stop / div, facecolor=OUTAGE_COLOUR, alpha=0.2, linewidth=0.0,
                   label="outage" if i == 0 else None)
    ax.set_xlim(float(xs[0]), float(xs[-1]))
    ax.set_ylim(0.0, max(1.0, float(np.sum(counts, axis=0).max())) * 1.02)
    ax.set_xlabel(f"time ({tunit})")
    ax.set_ylabel("phones")
    ax.set_title(_text(title), loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return to_svg(fig, title)


@styled
def delivery_plot(by_kind: Mapping[str, Mapping[str, int]],
                  by_network: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
                  target: float | None = None, title: str = "Delivery") -> str:
    """Delivered / originated per message kind, and per network type and kind, as horizontal bars.

    Args:
        by_kind: Message kind -> ``{"originated": int, "delivered": int}``.
        by_network: Network -> kind -> the same counts; ``None`` or empty draws the kinds only.
        target: The delivery target as a ratio (0.99), drawn as a dashed line; bars below it are
            drawn in the failure colour.
        title: The plot's title.

    Returns:
        One ``<svg>`` element, or a ``<p class="empty">`` line if nothing was originated.
    """
    kinds = {k: c for k, c in by_kind.items() if int(c.get("originated", 0))}
    networks = {net: {k: c for k, c in per.items() if int(c.get("originated", 0))}
                for net, per in (by_network or {}).items()}
    networks = {net: per for net, per in networks.items() if per}
    if not kinds and not networks:
        return empty(f"{title}: not measured (no message was originated)")
    every_kind = sorted(set(kinds) | {k for per in networks.values() for k in per})
    shares = [_share(c) for per in (kinds, *networks.values()) for c in per.values()]
    low = min([*shares, 100.0 * target if target is not None else 100.0])
    low = max(0.0, math.floor(low - max(1.0, (100.0 - low) * 0.25)))
    rows = len(kinds) + sum(len(per) + 1 for per in networks.values())
    size = (FULL[0], max(2.4, 0.9 + 0.2 * max(len(kinds), rows / 2)))
    panels = [(1.5, 1.0), (0.9, 1.2)] if networks else [(1.5, 1.0)]
    fig, axes = figure(size, panels, right=1.6 if networks else 0.3)
    pass_colour, fail_colour = STATE_COLOURS["connected"], STATE_COLOURS["offline"]
    ax = axes[0]
    ys = np.arange(len(kinds))[::-1]
    values = [_share(c) for c in kinds.values()]
    failing = [target is not None and v < 100.0 * target - 1e-9 for v in values]
    ax.barh(ys, [v - low for v in values], left=low, height=0.7,
            color=[fail_colour if f else pass_colour for f in failing])
    for y, value, counts in zip(ys, values, kinds.values(), strict=True):
        ax.text(low, y, f" {value:.2f}% of {int(counts['originated']):,}", va="center", ha="left",
                fontsize=7.5, color="#ffffff" if value - low > 0.3 * (100 - low) else "#000000")
    ax.set_yticks(ys, [_text(k.replace("_", " ")) for k in kinds])
    ax.set_title(_text(f"{title} by message kind"), loc="left")
    _delivery_axis(ax, low, target)
    if networks:
        ax = axes[1]
        colour = {kind: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, kind in enumerate(every_kind)}
        labels, positions, y = [], [], 0.0
        drawn: set[str] = set()
        for net in sorted(networks, reverse=True):
            per = networks[net]
            present = [k for k in every_kind if k in per]
            height = 0.8 / len(present)
            for j, kind in enumerate(present):
                share = _share(per[kind])
                ax.barh(y + j * height, share - low, left=low, height=height * 0.9, color=colour[kind],
                        label=_text(kind.replace("_", " ")) if kind not in drawn else None)
                drawn.add(kind)
            labels.append(_text(net))
            positions.append(y + 0.4 - height / 2)
            y += 1.0
        ax.set_yticks(positions, labels)
        ax.set_title(_text(f"{title} by network type and kind"), loc="left")
        _delivery_axis(ax, low, target)
        handles, names = ax.get_legend_handles_labels()
        order = sorted(range(len(names)), key=lambda i: names[i])
        ax.legend([handles[i] for i in order], [names[i] for i in order], loc="upper left",
                  bbox_to_anchor=(1.0, 1.0))
    return to_svg(fig, title)


@styled
def battery_plot(sample: Sequence[Mapping[str, Any]], by_network: Sequence[tuple[str, Histogram]],
                 target: float | None = None, title: str = "Battery") -> str:
    """Battery level over time for a sample of phones, and drain (%/h) by network type.

    Args:
        sample: The ``battery.sample`` view: ``{"actor", "network", "points": [[t, level_pct], ...]}``.
        by_network: ``(network, histogram of %/h per phone)`` pairs; empty ones are skipped.
        target: The median drain allowed (%/h), drawn as a dashed line; ``None`` draws none.
        title: The plot's title.

    Returns:
        One ``<svg>`` element (one or two panels), or a ``<p class="empty">`` line if both are empty.
    """
    phones = [s for s in sample if s.get("points")]
    drains = [(net, hist) for net, hist in by_network if hist.count]
    if not phones and not drains:
        return empty(f"{title}: not measured (no battery readings)")
    panels = ([(0.7, 1.4)] if phones else []) + ([(1.0, 1.0)] if drains else [])
    fig, axes = figure(FULL, panels, right=1.4 if drains else 0.2)
    if phones:
        ax = axes.pop(0)
        nets = sorted({str(s.get("network", "?")) for s in phones})
        colour = _network_colours(nets)
        end = max(float(p[0]) for s in phones for p in s["points"])
        div, tunit = _time_unit(end)
        for net in nets:
            lines = [np.asarray(s["points"], dtype=float)[:, :2] / [div, 1.0]
                     for s in phones if str(s.get("network")) == net]
            ax.add_collection(LineCollection(lines, colors=colour[net], linewidths=1.1, label=_text(net),
                                             rasterized=sum(len(line) for line in lines) > RASTER_SEGMENTS))
        ax.set_xlim(0.0, max(end / div, 1e-9))
        levels = [float(p[1]) for s in phones for p in s["points"]]
        ax.set_ylim(max(0.0, min(levels) - 2.0), min(100.0, max(levels) + 2.0))
        ax.set_xlabel(f"time ({tunit})")
        ax.set_ylabel("battery level (%)")
        ax.set_title(_text(f"{title} level, {len(phones)} sampled phones"), loc="left")
        ax.legend(loc="lower left", title="network")
    if drains:
        ax = axes.pop(0)
        ys = np.arange(len(drains))[::-1]
        for y, (_, hist) in zip(ys, drains, strict=True):
            p10, p50, p90 = (hist.percentile(p) for p in (10.0, 50.0, 90.0))
            ax.plot([p10, p90], [y, y], color="#0072B2", linewidth=5.0, solid_capstyle="butt", alpha=0.45)
            ax.plot([p50], [y], marker="D", color="#0072B2", markersize=6.0, linestyle="none")
            ax.plot([hist.max], [y], marker="|", color="#000000", markersize=9.0, linestyle="none")
            ax.text(1.01, y, _text(f"median {_tick(p50)} (n={hist.count:,})"), va="center", fontsize=7.5,
                    transform=ax.get_yaxis_transform())
        handles = [Line2D([], [], color="#0072B2", linewidth=5.0, alpha=0.45, label="p10-p90"),
                   Line2D([], [], color="#0072B2", marker="D", linestyle="none", label="median"),
                   Line2D([], [], color="#000000", marker="|", markersize=9.0, linestyle="none", label="max")]
        top = max(hist.max for _, hist in drains)
        if target is not None:
            ax.axvline(target, color=TARGET_COLOUR, linestyle="--", linewidth=1.2)
            handles.append(Line2D([], [], color=TARGET_COLOUR, linestyle="--",
                                  label=f"target {target:g} %/h"))
            top = max(top, target)
        ax.set_xlim(0.0, top * 1.1 or 1.0)
        ax.set_ylim(-1.4, len(drains) - 0.4)  # room below the rows for the legend
        ax.set_yticks(ys, [_text(net) for net, _ in drains])
        ax.set_xlabel("drain (% of battery per hour)")
        ax.set_title(_text(f"{title} drain by network type"), loc="left")
        ax.legend(handles=handles, loc="lower left", ncol=len(handles), fontsize=7.0)
    return to_svg(fig, title)


@styled
def map_plot(view: Mapping[str, Any], title: str = "Where the phones went") -> str:
    """The phones' GPS tracks coloured by connection state, their last fixes, and the alerts; no tiles.

    Args:
        view: The ``map`` view: ``bounds`` (``[min_lat, min_lon, max_lat, max_lon]`` or ``None``),
            ``tracks`` (``{"actor", "points": [[t, lat, lon, state], ...]}``) and ``alerts``
            (``{"actor", "t", "lat", "lon", "delivered"}``).
        title: The plot's title.

    Returns:
        One ``<svg>`` element, or a ``<p class="empty">`` line if there is no position at all.
    """
    tracks = [track.get("points") or [] for track in view.get("tracks") or []]
    alerts = [a for a in view.get("alerts") or [] if a.get("lat") is not None and a.get("lon") is not None]
    if not any(tracks) and not alerts:
        return empty(f"{title}: not measured (no position recorded)")
    segments: dict[str, list[np.ndarray[Any, Any]]] = {state: [] for state in STATES}
    lats: list[float] = []
    last: dict[str, list[tuple[float, float]]] = {}  # state -> each phone's last fix (lon, lat)
    for points in tracks:
        if points:
            last.setdefault(str(points[-1][3]), []).append((float(points[-1][2]), float(points[-1][1])))
            lats.append(float(points[-1][1]))
        if len(points) < 2:
            continue
        lat = np.array([float(p[1]) for p in points])
        lon = np.array([float(p[2]) for p in points])
        lats += [float(lat.min()), float(lat.max())]
        states = [str(p[3]) for p in points]
        pairs = np.stack([np.column_stack([lon[:-1], lat[:-1]]), np.column_stack([lon[1:], lat[1:]])], axis=1)
        start = 0
        for i in range(1, len(states)):  # runs of one state become one polyline
            if i == len(states) - 1 or states[i] != states[start]:
                run = np.concatenate([pairs[start:i, 0], pairs[i - 1: i, 1]])
                segments.setdefault(states[start], []).append(run)
                start = i
    fig, (ax,) = figure((7.6, 6.0), [(0.8, 1.0)], right=1.7)
    total = sum(len(run) for runs in segments.values() for run in runs)
    for state, runs in segments.items():
        if runs:
            ax.add_collection(LineCollection(runs, colors=STATE_COLOURS.get(state, "#777777"), linewidths=0.9,
                                             rasterized=total > RASTER_SEGMENTS))
    for state, fixes in last.items():
        ax.scatter([lon for lon, _ in fixes], [lat for _, lat in fixes], s=12.0, marker="o",
                   c=STATE_COLOURS.get(state, "#777777"), edgecolors="#ffffff", linewidths=0.3, zorder=2,
                   rasterized=sum(len(f) for f in last.values()) > RASTER_MARKERS)
    shown = [s for s in STATES if segments.get(s) or last.get(s)]
    shown += sorted(s for s in {*segments, *last} if s not in STATES and (segments.get(s) or last.get(s)))
    handles: list[Any] = [Line2D([], [], color=STATE_COLOURS.get(s, "#777777"), label=_text(s))
                          for s in shown]
    if last:
        handles.append(Line2D([], [], marker="o", color="#777777", linestyle="none", markersize=4.0,
                              label="last fix"))
    styles = ((True, "^", "#000000", 22.0, "alert delivered"),
              (False, "X", STATE_COLOURS["offline"], 46.0, "alert lost"))
    for delivered, marker, colour, size, label in styles:
        chosen = [a for a in alerts if bool(a.get("delivered")) == delivered]
        if chosen:
            ax.scatter([float(a["lon"]) for a in chosen], [float(a["lat"]) for a in chosen], s=size,
                       marker=marker, c=colour, edgecolors="#ffffff", linewidths=0.4, zorder=3,
                       rasterized=len(chosen) > RASTER_MARKERS)
            handles.append(Line2D([], [], marker=marker, color=colour, linestyle="none",
                                  label=f"{label} ({len(chosen):,})"))
    lats += [float(a["lat"]) for a in alerts]
    bounds = view.get("bounds")
    if bounds:
        min_lat, min_lon, max_lat, max_lon = (float(b) for b in bounds)
        pad_lat, pad_lon = (max_lat - min_lat) * 0.03 or 0.001, (max_lon - min_lon) * 0.03 or 0.001
        ax.set_xlim(min_lon - pad_lon, max_lon + pad_lon)
        ax.set_ylim(min_lat - pad_lat, max_lat + pad_lat)
        mid = (min_lat + max_lat) / 2.0
    else:
        ax.autoscale_view()
        mid = (min(lats) + max(lats)) / 2.0 if lats else 0.0
    ax.set_aspect(1.0 / max(0.05, math.cos(math.radians(mid))))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.ticklabel_format(useOffset=False)
    ax.set_title(_text(f"{title} ({len(tracks):,} tracks, {len(alerts):,} alerts)"), loc="left")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return to_svg(fig, title)


@styled
def phone_plot(phone: Mapping[str, Any], end_s: float) -> str:
    """One phone's network, app lifecycle and connections over time, with its lost messages marked.

    Args:
        phone: One entry of the ``worst`` view: ``actor``, ``why``, ``timeline`` (``network`` and
            ``lifecycle``: ``[[t, value], ...]``; ``connection``: ``[[t, channel, state, cause], ...]``)
            and ``lost_messages`` (``[[t, kind, origin_id], ...]``).
        end_s: Where the last state of every lane ends (the end of the run, drain included).

    Returns:
        One ``<svg>`` element, or a ``<p class="empty">`` line if the phone has no timeline.
    """
    actor = str(phone.get("actor", "?"))
    timeline = phone.get("timeline") or {}
    # Lanes, top to bottom: (label, legend prefix, [(t, value), ...], value -> colour, other values' colour)
    lanes: list[tuple[str, str, list[tuple[float, str]], Mapping[str, str], str]] = []
    network = [(float(t), str(v)) for t, v in timeline.get("network") or []]
    lanes.append(("network", "network", network, _network_colours(v for _, v in network), "#777777"))
    lifecycle = [(float(t), str(v)) for t, v in timeline.get("lifecycle") or []]
    lanes.append(("lifecycle", "lifecycle", lifecycle, LIFECYCLE_COLOURS, STATE_COLOURS["suspended"]))
    channels: dict[str, list[tuple[float, str]]] = {}
    for t, channel, state, *_ in timeline.get("connection") or []:
        channels.setdefault(str(channel), []).append((float(t), str(state)))
    for channel in sorted(channels, key=lambda c: (c != "user", c))[:4]:
        lanes.append((f"{channel[:14]} channel", "connection", channels[channel], CONNECTION_COLOURS,
                      "#777777"))
    lost = [(float(item[0]), str(item[1])) for item in phone.get("lost_messages") or []]
    if not any(lane[2] for lane in lanes) and not lost:
        return empty(f"{actor}: not measured (no timeline recorded)")
    end = max([end_s, *(t for lane in lanes for t, _ in lane[2]), *(t for t, _ in lost)])
    div, tunit = _time_unit(end)
    entries = len({(lane[1], value) for lane in lanes for _, value in lane[2]}) + bool(lost)
    height = max(1.0 + 0.32 * (len(lanes) + 1), 0.45 + 0.15 * entries)  # the lanes and the legend fit
    fig, (ax,) = figure((FULL[0], height), [(1.3, 1.0)], right=1.9, bottom=0.45, top=0.3)
    seen: dict[str, str] = {}
    names = []
    for row, (name, prefix, changes, colours, other) in enumerate(lanes):
        y = len(lanes) - row
        names.append((y, name))
        bars, faces = [], []
        for i, (t, value) in enumerate(changes):
            stop = changes[i + 1][0] if i + 1 < len(changes) else end
            if stop > t:
                colour = colours.get(value, other)
                bars.append((t / div, (stop - t) / div))
                faces.append(colour)
                seen.setdefault(f"{prefix}: {value}", colour)
        if bars:
            ax.broken_barh(bars, (y - 0.35, 0.7), facecolors=faces, linewidth=0.0)
    if lost:
        xs = [t / div for t, _ in lost]
        dense = len(xs) > RASTER_MARKERS
        ax.vlines(xs, 0.5, len(lanes) + 0.5, colors=STATE_COLOURS["offline"], linewidths=0.6, alpha=0.5,
                  rasterized=dense)
        ax.scatter(xs, [0.0] * len(xs), marker="x", c="#000000", s=18.0, linewidths=1.0, rasterized=dense)
        names.append((0, f"lost ({len(lost):,})"))
    ax.set_yticks([y for y, _ in names], [_text(n) for _, n in names])
    ax.set_ylim(-0.6 if lost else 0.5, len(lanes) + 0.5)
    ax.set_xlim(0.0, end / div)
    ax.grid(False, axis="y")
    ax.set_xlabel(f"time ({tunit})")
    ax.set_title(_text(f"{actor} over time"), loc="left")
    handles: list[Any] = [Patch(facecolor=c, label=_text(label)) for label, c in seen.items()]
    if lost:
        handles.append(Line2D([], [], marker="x", color="#000000", linestyle="none", label="lost message"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7.0)
    return to_svg(fig, f"{actor} timeline")




# -- drawing helpers ---------------------------------------------------------------------------------

def _network_colours(networks: Iterable[str]) -> dict[str, str]:
    """A colour per network kind, the same in every plot (``down`` in the offline colour)."""
    others = sorted({n for n in networks if n not in NETWORK_COLOURS})
    return {**NETWORK_COLOURS, **{n: OTHER_NETWORK_COLOURS[i % len(OTHER_NETWORK_COLOURS)]
                                  for i, n in enumerate(others)}}




def _percentile_curve(hist: Histogram, scale: float) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Points ``(1 / (1 - p), value * scale)`` up to the rank the sample can support, then the max."""
    top = min(max(float(hist.count), 10.0), 1e6)
    xs = np.logspace(0.0, math.log10(top), 97)
    ys = np.array([hist.percentile(100.0 * (1.0 - 1.0 / x)) for x in xs[:-1]] + [hist.max]) * scale
    return xs, np.maximum(ys, _floor(hist, scale))


def _floor(hist: Histogram, scale: float) -> float:
    """The smallest value a log axis shows for ``hist`` (a recorded zero is drawn there)."""
    return hist.lowest * scale / 2.0


def _log_limits(values: Sequence[float]) -> tuple[float, float]:
    positive = [v for v in values if v > 0] or [1.0]
    low, high = min(positive), max(positive)
    if high <= low * 1.5:
        low, high = low / 1.5, high * 1.5
    return low / 1.25, high * 1.25


def _log_y(ax: Axes, values: Sequence[float]) -> None:
    ax.set_yscale("log")
    low, high = _log_limits(values)
    ax.set_ylim(low, high)
    _log_ticks(ax.yaxis, low, high)


def _log_ticks(axis: Any, low: float, high: float) -> None:
    """Ticks at 1-2-5 (or each decade over a wide range) with plain numbers, not powers of ten."""
    subs = (1.0,) if math.log10(high / low) > 3.5 else (1.0, 2.0, 5.0)
    axis.set_major_locator(LogLocator(base=10.0, subs=subs, numticks=12))
    axis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _tick(value: float) -> str:
    """A number as an axis or legend reads it: ``0.005``, ``2.5``, ``20``, ``1,000``."""
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _text(value: str) -> str:
    """Text from the run, shown literally (matplotlib would read ``$...$`` as mathematics)."""
    return value.replace("$", r"\$")


def _share(counts: Mapping[str, int]) -> float:
    originated = int(counts.get("originated", 0))
    return 100.0 * int(counts.get("delivered", 0)) / originated if originated else 0.0


def _delivery_axis(ax: Axes, low: float, target: float | None) -> None:
    if target is not None:
        ax.axvline(100.0 * target, color=TARGET_COLOUR, linestyle="--", linewidth=1.2)
    ax.set_xlabel("delivered / originated"
                  + ("" if target is None else f" (dashed: target {100.0 * target:g}%)"))
    ax.set_xlim(low, 100.0)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    ax.grid(False, axis="y")


def _time_unit(end_s: float) -> tuple[float, str]:
    """A divisor and unit name for a time axis that ends at ``end_s`` seconds."""
    if end_s >= 3 * 3600:
        return 3600.0, "h"
    if end_s >= 180:
        return 60.0, "min"
    return 1.0, "s"


def _downsample(t: np.ndarray[Any, Any], counts: list[np.ndarray[Any, Any]],
                points: int) -> tuple[np.ndarray[Any, Any], list[np.ndarray[Any, Any]]]:
    """At most ``points`` buckets: consecutive buckets averaged (their first start kept)."""
    if t.size <= points:
        return t, counts
    group = math.ceil(t.size / points)
    pad = (-t.size) % group
    starts = t[::group]
    means = [np.pad(c, (0, pad), mode="edge").reshape(-1, group).mean(axis=1) for c in counts]
    return starts, means


def _merge_spans(spans: Sequence[tuple[float, float]], end: float) -> list[tuple[float, float]]:
    """Outage spans sorted and merged where they overlap, and, past :data:`OUTAGE_SPANS`, where close."""
    gap = 0.0
    while True:
        merged: list[tuple[float, float]] = []
        for start, stop in sorted(spans):
            if merged and start <= merged[-1][1] + gap:
                merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
            else:
                merged.append((start, stop))
        if len(merged) <= OUTAGE_SPANS:
            return merged
        gap = max(gap * 2.0, end / 1000.0)


# -- SVG text ----------------------------------------------------------------------------------------

