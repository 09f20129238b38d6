"""The report's plots: inline SVG that fetches nothing, the same bytes for the same data, honest empties."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from typing import Any

import matplotlib
import pytest

from simulator.hdr import Histogram
from simulator.report import plots

KINDS = ("create", "location", "chat_from_phone", "chat_from_operator", "status_update", "cancel")
STATES = ("connected", "reconnecting", "offline", "suspended")


def hist(*values: float) -> Histogram:
    histogram = Histogram()
    histogram.record_many(values)
    return histogram


def synthetic_views(phones: int, duration_s: float = 3600.0, seed: int = 1, tracks: int = 60,
                    points: int = 60, alerts: int = 40, lost_per_phone: int = 12) -> dict[str, Any]:
    """Views shaped like a run's (``RunResult.views``), bounded the way a run bounds them."""
    rng = random.Random(seed)
    bucket = 10.0
    t = [i * bucket for i in range(int(duration_s / bucket))]
    outage = (duration_s / 3, duration_s / 3 + 300)
    offline = [int(phones * (0.02 + (0.25 if outage[0] <= x < outage[1] else 0.0))) for x in t]
    suspended = [phones // 10 for _ in t]
    reconnecting = [phones // 100 for _ in t]
    connected = [phones - a - b - c for a, b, c in zip(offline, suspended, reconnecting, strict=True)]
    outages = [list(outage)]
    outages += [[s, s + rng.uniform(10, 120)] for s in (rng.uniform(0, duration_s) for _ in range(20))]
    networks = ("wifi", "lte", "3g")
    delivery = {net: {k: {"originated": 1000, "delivered": 1000 - rng.randint(0, 30)} for k in KINDS}
                for net in networks}
    sample = []
    for i in range(min(phones, 20)):
        level = rng.uniform(60, 100)
        line = []
        for j in range(60):
            line.append([j * duration_s / 60, round(level, 2)])
            level -= rng.uniform(0, 0.2)
        sample.append({"actor": f"phone-{i}", "network": networks[i % 3], "points": line})
    lat0, lon0 = 51.5074, -0.1278
    track_list = []
    for i in range(tracks):
        lat, lon, state = lat0 + rng.uniform(-0.04, 0.04), lon0 + rng.uniform(-0.06, 0.06), "connected"
        track = []
        for j in range(points):
            lat, lon = lat + rng.uniform(-8e-4, 8e-4), lon + rng.uniform(-1.2e-3, 1.2e-3)
            state = rng.choice(STATES) if rng.random() < 0.05 else state
            track.append([j * duration_s / points, lat, lon, state])
        track_list.append({"actor": f"phone-{i}", "points": track})
    alert_list = [{"actor": f"phone-{i}", "t": rng.uniform(0, duration_s),
                   "lat": lat0 + rng.uniform(-0.04, 0.04), "lon": lon0 + rng.uniform(-0.06, 0.06),
                   "delivered": rng.random() > 0.05} for i in range(alerts)]
    worst = []
    for i in range(5):
        lost = sorted([rng.uniform(600, 700), rng.choice(KINDS), f"phone-{i}:{j}"]
                      for j in range(lost_per_phone))
        worst.append({
            "actor": f"phone-{i}", "why": f"lost {lost_per_phone} messages", "lost": lost_per_phone,
            "network": "lte",
            "timeline": {
                "network": [[0.0, "wifi"], [600.0, "down"], [700.0, "lte"]],
                "lifecycle": [[0.0, "foreground"], [900.0, "background"], [2000.0, "suspended"]],
                "connection": [[0.0, "user", "connecting", ""], [0.5, "user", "open", ""],
                               [600.0, "user", "closed", "network"], [700.0, "user", "connecting", ""],
                               [702.0, "user", "open", ""]]},
            "lost_messages": lost})
    return {"timeline": {"bucket_s": bucket, "t": t, "connected": connected, "reconnecting": reconnecting,
                         "offline": offline, "suspended": suspended, "outages": outages},
            "delivery_by_network": delivery, "battery": {"sample": sample},
            "map": {"bounds": [lat0 - 0.05, lon0 - 0.07, lat0 + 0.05, lon0 + 0.07], "tracks": track_list,
                    "alerts": alert_list},
            "worst": worst}


def assert_inline_svg(svg: str) -> ET.Element:
    """One well-formed ``<svg>`` that refers to nothing outside itself but ``data:`` images."""
    assert svg.startswith("<svg ") and svg.endswith("</svg>"), svg[:200]
    assert svg.count("<svg") == 1
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<metadata" not in svg
    assert "http:" not in svg and "https:" not in svg and "xmlns" not in svg
    root = ET.fromstring(svg)  # well-formed, and no namespace prefix left unbound
    ids = [element.get("id") for element in root.iter() if element.get("id")]
    assert len(ids) == len(set(ids))
    for ref in re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', svg):
        assert (ref[0] or ref[1]) in ids
    for href in re.findall(r'href="([^"]*)"', svg):
        assert href.startswith(("#", "data:image/png;base64,")), href
    assert not re.search(r"url\((?!#)", svg)
    return root


def texts(svg: str) -> list[str]:
    """Every piece of text drawn (fonttype none keeps text as text)."""
    return ["".join(element.itertext()) for element in ET.fromstring(svg).iter() if element.tag == "text"]


def every_plot(views: dict[str, Any]) -> dict[str, str]:
    latency = hist(0.02, 0.03, 0.05, 0.2, 0.9)
    return {
        "percentile": plots.percentile_plot([("alpha", latency)], "Latency", "ms", 1000.0, 500.0),
        "distribution": plots.distribution_plot([("connect", hist(0.1, 0.5, 2.0))], "Connect", "s", 1.0, 3.0),
        "timeline": plots.timeline_plot(views["timeline"]),
        "delivery": plots.delivery_plot({"create": {"originated": 10, "delivered": 9}},
                                        views["delivery_by_network"], 0.99),
        "battery": plots.battery_plot(views["battery"]["sample"], [("lte", hist(1.0, 2.0, 3.5))], 3.0),
        "map": plots.map_plot(views["map"]),
        "phone": plots.phone_plot(views["worst"][0], 3600.0),
    }


# -- every plot ------------------------------------------------------------------------------------

def test_every_plot_is_one_self_contained_svg_and_the_same_bytes_twice() -> None:
    views = synthetic_views(300)
    first, second = every_plot(views), every_plot(synthetic_views(300))
    for name, svg in first.items():
        assert_inline_svg(svg)
        assert svg == second[name], f"{name} is not deterministic"
        assert 'class="plot"' in svg and 'role="img"' in svg, name


def test_plots_on_one_page_never_share_an_id() -> None:
    views = synthetic_views(50)
    page = "".join(every_plot(views).values()) + plots.phone_plot(views["worst"][1], 3600.0)
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert ids and len(ids) == len(set(ids))


def test_global_matplotlib_settings_are_left_alone() -> None:
    before = dict(matplotlib.rcParams)
    every_plot(synthetic_views(20))
    assert dict(matplotlib.rcParams) == before


def test_text_from_the_run_is_escaped_and_shown_literally() -> None:
    views = synthetic_views(10)
    phone = dict(views["worst"][0], actor='phone-$1$<b>&"x"')
    svg = plots.phone_plot(phone, 3600.0)
    assert_inline_svg(svg)
    assert 'phone-$1$<b>&"x" over time' in texts(svg)
    assert "<b>" not in svg


# -- percentile and distribution plots (the compare command uses them too) ---------------------------

def test_percentile_plot_shows_every_series_and_the_target() -> None:
    svg = plots.percentile_plot([("alpha", hist(0.01, 0.02, 0.3)), ("beta", hist(0.2, 0.4))], "Latency", "ms",
                                1000.0, target=500.0)
    labels = texts(svg)
    assert any(label.startswith("alpha (n=3") for label in labels), labels
    assert any(label.startswith("beta (n=2") for label in labels), labels
    assert "target 500 ms" in labels
    assert "stroke-dasharray" in svg  # the target is dashed
    assert {"0%", "50%", "90%"} <= set(labels)


def test_percentile_plot_without_a_target_draws_none() -> None:
    svg = plots.percentile_plot([("alpha", hist(0.01, 0.02, 0.3))], "Latency", "ms", 1000.0)
    assert not any(label.startswith("target") for label in texts(svg))
    assert "stroke-dasharray" not in svg


def test_percentile_plot_ticks_reach_as_far_as_the_sample() -> None:
    many = Histogram()
    many.record_many(i / 1000.0 for i in range(1, 20_001))
    labels = texts(plots.percentile_plot([("many", many)], "Latency", "ms", 1000.0))
    assert {"99%", "99.9%", "99.99%"} <= set(labels)
    few = texts(plots.percentile_plot([("few", hist(0.1, 0.2, 0.3))], "Latency", "ms", 1000.0))
    assert "99.9%" not in few


def test_distribution_plot_shows_the_target_on_the_value_axis() -> None:
    svg = plots.distribution_plot([("reconnect", hist(0.5, 1.0, 7.0))], "Reconnect", "s", 1.0, target=5.0)
    assert_inline_svg(svg)
    labels = texts(svg)
    assert "target 5 s" in labels and any(label.startswith("reconnect (n=3") for label in labels)
    assert "99%" in labels


@pytest.mark.parametrize("plot", [plots.percentile_plot, plots.distribution_plot])
def test_empty_series_are_skipped_and_all_empty_says_so(plot: Any) -> None:
    assert plot([], "Latency", "ms") == '<p class="empty">Latency: not measured (no samples)</p>'
    assert plot([("none", Histogram())], "Latency", "ms", 1000.0, 500.0).startswith('<p class="empty">')
    svg = plot([("none", Histogram()), ("some", hist(0.1, 0.2))], "Latency", "ms", 1000.0)
    assert_inline_svg(svg)
    labels = texts(svg)
    assert not any(label.startswith("none") for label in labels)
    assert any(label.startswith("some") for label in labels)


def test_a_recorded_zero_is_drawn_on_a_log_axis() -> None:
    svg = plots.percentile_plot([("zeros", hist(0.0, 0.0, 0.0))], "Latency", "ms", 1000.0)
    assert_inline_svg(svg)
    assert "nan" not in svg.lower() and "inf" not in svg.lower()


# -- the views' plots --------------------------------------------------------------------------------

def test_timeline_names_every_state_and_shades_outages() -> None:
    svg = plots.timeline_plot(synthetic_views(100)["timeline"])
    assert {"connected", "reconnecting", "offline", "suspended", "outage"} <= set(texts(svg))
    assert "time (min)" in texts(svg)


def test_a_long_timeline_is_averaged_down_and_outages_merged() -> None:
    buckets = 20_000
    timeline = {"bucket_s": 1.0, "t": list(range(buckets)), "connected": [5] * buckets,
                "reconnecting": [1] * buckets, "offline": [0] * buckets, "suspended": [0] * buckets,
                "outages": [[float(i), i + 0.5] for i in range(0, buckets, 4)]}
    svg = plots.timeline_plot(timeline)
    assert_inline_svg(svg)
    assert len(svg) < 150_000
    assert svg.count("<path") < 2 * plots.OUTAGE_SPANS + 100


def test_delivery_marks_kinds_below_the_target() -> None:
    counts = {"create": {"originated": 100, "delivered": 100},
              "location": {"originated": 100, "delivered": 90},
              "cancel": {"originated": 0, "delivered": 0}}
    svg = plots.delivery_plot(counts, None, 0.99)
    labels = texts(svg)
    assert "100.00% of 100" in [label.strip() for label in labels]
    assert "delivered / originated (dashed: target 99%)" in labels
    assert "cancel" not in labels  # nothing originated: no bar
    assert plots.STATE_COLOURS["offline"].lower() in svg.lower()  # the failing bar
    wifi = {"wifi": {"location": {"originated": 5, "delivered": 5}}}
    with_networks = plots.delivery_plot(counts, wifi, 0.99)
    assert {"wifi", "location"} <= set(texts(with_networks))
    assert plots.delivery_plot({"create": {"originated": 0, "delivered": 0}}, {}, 0.99).startswith(
        '<p class="empty">')


def test_battery_draws_the_sample_and_the_drain_by_network() -> None:
    views = synthetic_views(30)
    drains = [("lte", hist(1.0, 2.0)), ("wifi", Histogram())]
    svg = plots.battery_plot(views["battery"]["sample"], drains, 3.0)
    labels = texts(svg)
    assert "lte" in labels and "wifi" in labels  # the sample's networks...
    assert any(label.startswith("median 1") and "(n=2)" in label for label in labels)  # ...the drain
    assert "target 3 %/h" in labels
    only_drain = plots.battery_plot([], [("lte", hist(1.0))], None)
    assert_inline_svg(only_drain)
    assert plots.battery_plot([], [("lte", Histogram())]).startswith('<p class="empty">')


def test_map_colours_tracks_by_state_and_marks_lost_alerts() -> None:
    views = synthetic_views(30, tracks=5, points=20, alerts=6)
    view = dict(views["map"], alerts=[*views["map"]["alerts"],
                                      {"actor": "x", "t": 1.0, "lat": 51.5, "lon": -0.1, "delivered": False}])
    svg = plots.map_plot(view)
    labels = texts(svg)
    assert any(label.startswith("alert lost (") for label in labels)
    assert "<image" not in svg  # small: vector
    for state in {p[3] for track in view["tracks"] for p in track["points"]}:
        assert state in labels and plots.STATE_COLOURS[state].lower() in svg.lower()
    assert plots.map_plot({"bounds": None, "tracks": [], "alerts": []}).startswith('<p class="empty">')


def test_a_dense_map_is_rasterised_into_a_bounded_svg() -> None:
    view = synthetic_views(10_000, tracks=500, points=240, alerts=3_000)["map"]
    svg = plots.map_plot(view)
    assert_inline_svg(svg)
    assert svg.count("<image") >= 1 and "data:image/png;base64," in svg
    assert len(svg) < 1_000_000 and svg.count("<") < 1_000


def test_phone_timeline_marks_lost_messages_in_one_element() -> None:
    phone = synthetic_views(10, lost_per_phone=2_000)["worst"][0]
    svg = plots.phone_plot(phone, 3600.0)
    assert_inline_svg(svg)
    labels = texts(svg)
    assert {"network", "lifecycle", "user channel", "lost (2,000)", "lost message"} <= set(labels)
    assert {"network: wifi", "network: down", "connection: open", "lifecycle: suspended"} <= set(labels)
    assert len(svg) < 300_000 and svg.count("<") < 1_000
    empty = plots.phone_plot({"actor": "phone-9", "timeline": {}, "lost_messages": []}, 60.0)
    assert empty == '<p class="empty">phone-9: not measured (no timeline recorded)</p>'
