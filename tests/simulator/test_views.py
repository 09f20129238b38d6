"""The report's views (simulator.views) on histories built by hand, where the right answer is known.

Each view is checked for exact values, including the cases built to break it: a status priority, an
outage too small to count, a message attributed to the wrong network, a phone with nothing wrong
that must not be listed among the worst. A large synthetic fleet checks that every part stays within
its bounds, and report.json carries the views unchanged through a round trip.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from simulator import views
from simulator.checks import judge
from simulator.device.lifecycle import LifecycleConfig
from simulator.device.mobility import Area
from simulator.device.network import NetworkConfig
from simulator.device.user import UserConfig
from simulator.fleet import FleetConfig, Group
from simulator.ledger import FIX, ORIGINATED, Ledger
from simulator.report.json_report import render_json
from simulator.result import GeneratorStats, RunInfo, RunResult, Targets, stable_float
from simulator.simulate import simulate

END = 600.0  # every history here ends at 600 s: 5 s buckets, 120 of them
RUN = RunInfo(mode="simulate", profile="unit", seed=7, devices=2, operators=1, duration_s=END,
              policy="resilient", started_at="2026-01-01T00:00:00Z")
GENERATOR = GeneratorStats(cpu_s=1.0, peak_rss_mb=100.0)


def check(ledger: Ledger) -> RunResult:
    return judge(ledger, RUN, Targets(), GENERATOR)


def boot(ledger: Ledger, name: str, *, t: float = 0.0, network: str = "wifi", lifecycle: str = "foreground",
         battery: float = 90.0) -> None:
    """A phone's first records, as Phone.start writes them."""
    ledger.state(t, name, "os", "android")
    ledger.state(t, name, "power", "on")
    ledger.state(t, name, "battery", battery)
    ledger.state(t, name, "network", network)
    ledger.state(t, name, "lifecycle", lifecycle)


def phone(ledger: Ledger, name: str, *, network: str = "wifi",
          outages: tuple[tuple[float, float, float | None], ...] = ()) -> None:
    """A phone that connects at 0.4 s and reconnects after each ``(down, up, reopened)`` outage
    (``reopened`` None: it never does)."""
    boot(ledger, name, network=network)
    ledger.connection(0.0, name, "user", "connecting")
    ledger.connection(0.4, name, "user", "open")
    for down, up, reopened in outages:
        ledger.state(down, name, "network", "down")
        ledger.connection(down + 5.0, name, "user", "closed", "pong timeout")
        ledger.state(up, name, "network", network)
        ledger.connection(up + 0.5, name, "user", "connecting")
        if reopened is not None:
            ledger.connection(reopened, name, "user", "open")
    ledger.state(END, name, "battery", 89.0)


def operator(ledger: Ledger) -> None:
    ledger.connection(0.0, "operator-1", "user", "connecting")
    ledger.connection(0.2, "operator-1", "user", "open")


def send(ledger: Ledger, oid: str, kind: str, sender: str, recipient: str, t: float, *,
         received_by: str | None = None, stored: bool = False) -> None:
    """A message sent on an open channel; received 50 ms later by ``received_by`` (None: never)."""
    ledger.originated(t, oid, kind, sender, recipient)
    ledger.attempt(t, oid, "ws", "user", "open")
    if received_by is not None:
        ledger.received(t + 0.05, oid, received_by, None, None)
    if stored or received_by is not None:
        ledger.stored(oid, 1)


def bucket(t: float) -> int:
    return int(t // 5.0)


# -- the fleet timeline ----------------------------------------------------------------------------

def test_timeline_counts_each_phone_once_by_its_status_at_the_bucket_midpoint() -> None:
    ledger = Ledger()
    operator(ledger)  # operators are not counted
    # phone-a: opens exactly at a midpoint; loses the network, is suspended while offline (offline
    # wins), gets the network back while suspended (suspended wins over not open), then reconnects.
    boot(ledger, "phone-a")
    ledger.connection(0.0, "phone-a", "user", "connecting")
    ledger.connection(12.5, "phone-a", "user", "open")
    ledger.state(100.0, "phone-a", "network", "down")
    ledger.connection(105.0, "phone-a", "user", "closed", "pong timeout")
    ledger.state(150.0, "phone-a", "lifecycle", "suspended")
    ledger.state(200.0, "phone-a", "network", "wifi")
    ledger.state(300.0, "phone-a", "lifecycle", "foreground")
    ledger.connection(300.5, "phone-a", "user", "connecting")
    ledger.connection(310.0, "phone-a", "user", "open")
    # phone-b: boots at 50 s (not counted before), never connects, powers off at 400 s.
    boot(ledger, "phone-b", t=50.0, network="lte", lifecycle="background")
    ledger.state(400.0, "phone-b", "battery", 0.0)
    ledger.state(400.0, "phone-b", "power", "off")
    # phone-c: in Doze from the start, connected in a maintenance window from 500 s.
    boot(ledger, "phone-c", lifecycle="doze")
    ledger.state(500.0, "phone-c", "lifecycle", "doze_maintenance")
    ledger.connection(500.0, "phone-c", "user", "open")
    ledger.state(END, "phone-a", "battery", 80.0)

    timeline = check(ledger).views["timeline"]
    assert timeline["bucket_s"] == 5.0
    assert len(timeline["t"]) == 120
    assert timeline["t"][:3] == [0.0, 5.0, 10.0] and timeline["t"][-1] == 595.0

    def at(t: float) -> dict[str, int]:
        i = bucket(t)
        return {name: timeline[name][i] for name in ("connected", "reconnecting", "offline", "suspended")}

    assert at(7.5) == {"connected": 0, "reconnecting": 1, "offline": 0, "suspended": 1}  # b not yet
    assert at(12.5) == {"connected": 1, "reconnecting": 0, "offline": 0, "suspended": 1}
    assert at(52.5) == {"connected": 1, "reconnecting": 1, "offline": 0, "suspended": 1}
    assert at(102.5) == {"connected": 0, "reconnecting": 1, "offline": 1, "suspended": 1}
    assert at(152.5) == {"connected": 0, "reconnecting": 1, "offline": 1, "suspended": 1}  # a: offline
    assert at(202.5) == {"connected": 0, "reconnecting": 1, "offline": 0, "suspended": 2}
    assert at(302.5) == {"connected": 0, "reconnecting": 2, "offline": 0, "suspended": 1}
    assert at(312.5) == {"connected": 1, "reconnecting": 1, "offline": 0, "suspended": 1}
    assert at(402.5) == {"connected": 1, "reconnecting": 0, "offline": 1, "suspended": 1}
    assert at(502.5) == {"connected": 2, "reconnecting": 0, "offline": 1, "suspended": 0}
    totals = [sum(timeline[name][i] for name in ("connected", "reconnecting", "offline", "suspended"))
              for i in range(120)]
    assert totals == [2] * 10 + [3] * 110  # each phone once per bucket, from its first record


def test_outages_need_a_tenth_of_the_phones_and_merge_across_short_gaps() -> None:
    ledger = Ledger()
    for k in range(20):  # 20 phones: an outage needs 2 of them without network
        boot(ledger, f"phone-{k}")

    def down(name: str, start: float, stop: float | None) -> None:
        ledger.state(start, name, "network", "down")
        if stop is not None:
            ledger.state(stop, name, "network", "wifi")

    down("phone-0", 100.0, 200.0)
    down("phone-1", 150.0, 250.0)  # 2 down over [150, 200]
    down("phone-2", 202.0, 300.0)
    down("phone-3", 203.0, 300.0)  # 2 down over [203, 300]: 3 s after the last, merged with it
    down("phone-4", 400.0, 450.0)
    down("phone-5", 400.0, 450.0)  # [400, 450]
    for name in ("phone-6", "phone-7"):  # handovers: down and up at one instant, no outage
        down(name, 500.0, 500.0)
    down("phone-10", 50.0, 60.0)  # one phone alone: no outage
    ledger.state(520.0, "phone-11", "power", "off")  # powered off is not a network outage
    ledger.state(520.0, "phone-12", "power", "off")
    down("phone-8", 550.0, None)
    down("phone-9", 560.0, None)  # [560, the end]
    ledger.state(END, "phone-0", "battery", 80.0)

    assert check(ledger).views["timeline"]["outages"] == [[150.0, 300.0], [400.0, 450.0], [560.0, 600.0]]


def test_bucket_width_is_readable_and_covers_the_run() -> None:
    assert views.bucket_width(600.0) == 5.0
    assert views.bucket_width(3720.0) == 30.0  # an hour and its drain: 124 buckets
    assert views.bucket_width(3600.0) == 15.0  # exactly 240
    assert views.bucket_width(86400.0) == 600.0
    for end in (0.0, 1.0, 59.0, 3600.0, 3601.0, 100_000.0):
        assert end / views.bucket_width(end) <= views.MAX_BUCKETS


# -- delivery by network ---------------------------------------------------------------------------

def test_delivery_is_counted_under_the_network_of_the_phone_at_the_originated_time() -> None:
    ledger = Ledger()
    operator(ledger)
    phone(ledger, "phone-a", outages=((100.0, 200.0, 202.0),))
    ledger.state(300.0, "phone-a", "network", "lte")
    phone(ledger, "phone-b", network="lte")
    send(ledger, "phone-a:1", "location", "phone-a", "operators", 50.0, received_by="operator-1")
    send(ledger, "phone-a:2", "location", "phone-a", "operators", 150.0)  # lost while down
    send(ledger, "phone-a:3", "location", "phone-a", "operators", 350.0, stored=True)  # stored only
    # To phone-a while it had no network, received once it was back: the recipient's network at
    # the originated time ("down"), not at receipt, and not the operator's.
    send(ledger, "operator-1:1", "chat_from_operator", "operator-1", "phone-a", 160.0)
    ledger.received(210.0, "operator-1:1", "phone-a", None, None)
    send(ledger, "phone-b:1", "create", "phone-b", "operators", 10.0, received_by="operator-1")

    result = check(ledger)
    assert result.views["delivery_by_network"] == {
        "down": {"chat_from_operator": {"originated": 1, "delivered": 1},
                 "location": {"originated": 1, "delivered": 0}},
        "lte": {"create": {"originated": 1, "delivered": 1},
                "location": {"originated": 1, "delivered": 0}},
        "wifi": {"location": {"originated": 1, "delivered": 1}},
    }
    assert result.messages["location"].stored_only == 1 and result.messages["location"].lost == 1


# -- battery -----------------------------------------------------------------------------------------

def test_battery_sample_takes_phones_in_turn_from_each_network_within_bounds() -> None:
    ledger = Ledger()
    nets = ["wifi"] * 30 + ["lte"] * 15 + ["3g"] * 5
    for k, net in enumerate(nets):
        name = f"phone-{k:02d}"
        boot(ledger, name, network=net, battery=100.0)
        for i in range(1, 300):
            ledger.state(i * 2.0, name, "battery", 100.0 - i * 0.01)
    boot(ledger, "phone-99", battery=50.0)  # one reading: no drain figure, never sampled

    result = check(ledger)
    sample = result.views["battery"]["sample"]
    assert len(sample) == views.BATTERY_PHONES
    by_net: dict[str, int] = {}
    for phone_sample in sample:
        by_net[phone_sample["network"]] = by_net.get(phone_sample["network"], 0) + 1
    assert by_net == {"3g": 5, "lte": 8, "wifi": 7}  # round robin until 3g runs out, then lte, wifi
    assert "phone-99" not in {s["actor"] for s in sample}
    for phone_sample in sample:
        points = phone_sample["points"]
        assert len(points) == views.BATTERY_POINTS
        assert points[0] == [0.0, 100.0] and points[-1] == [598.0, 97.01]  # first and last kept
        assert points == sorted(points, key=lambda p: p[0])
    assert [s["actor"] for s in sample if s["network"] == "3g"] == [f"phone-{k}" for k in range(45, 50)]
    assert check(ledger).views == result.views  # deterministic


# -- map ---------------------------------------------------------------------------------------------

def map_ledger() -> Ledger:
    ledger = Ledger()
    operator(ledger)
    phone(ledger, "phone-a", outages=((20.0, 30.0, 32.0),))
    ledger.fix(10.0, "phone-a", 51.5, -0.12)
    send(ledger, "phone-a:1", "create", "phone-a", "operators", 10.0, received_by="operator-1")
    ledger.fix(25.0, "phone-a", 51.501, -0.121)  # offline
    ledger.fix(31.0, "phone-a", 51.502, -0.122)  # network back, channel not open yet
    ledger.fix(40.0, "phone-a", 51.503, -0.123)  # connected again
    phone(ledger, "phone-b")
    ledger.fix(100.0, "phone-b", 51.45, -0.2)
    send(ledger, "phone-b:1", "create", "phone-b", "operators", 100.0)  # lost
    ledger.fix(200.0, "phone-b", 51.46, -0.05)
    send(ledger, "phone-b:2", "create", "phone-b", "operators", 200.0, stored=True)  # stored, never received
    return ledger


def test_map_tracks_carry_the_status_at_each_fix_and_alerts_whether_they_reached_an_operator() -> None:
    result = check(map_ledger())
    view = result.views["map"]
    assert view["tracks"] == [
        {"actor": "phone-a", "points": [[10.0, 51.5, -0.12, "connected"], [25.0, 51.501, -0.121, "offline"],
                                        [31.0, 51.502, -0.122, "reconnecting"],
                                        [40.0, 51.503, -0.123, "connected"]]},
        {"actor": "phone-b", "points": [[100.0, 51.45, -0.2, "connected"],
                                        [200.0, 51.46, -0.05, "connected"]]},
    ]
    assert view["alerts"] == [
        {"actor": "phone-a", "t": 10.0, "lat": 51.5, "lon": -0.12, "delivered": True},
        {"actor": "phone-b", "t": 100.0, "lat": 51.45, "lon": -0.2, "delivered": False},
        {"actor": "phone-b", "t": 200.0, "lat": 51.46, "lon": -0.05, "delivered": False},
    ]
    assert view["bounds"] == [51.45, -0.2, 51.503, -0.05]


def test_fix_records_change_no_verdict() -> None:
    with_fixes = check(map_ledger())
    without = Ledger()
    without.extend(r for r in map_ledger().records if r[0] != FIX)
    plain = check(without)
    assert with_fixes.verdicts == plain.verdicts
    assert with_fixes.messages == plain.messages
    assert plain.views["map"] == {"bounds": None, "tracks": [], "alerts": []}


def test_ledger_fix_record() -> None:
    ledger = Ledger()
    ledger.fix(12.5, "phone-3", 51.5, -0.12)
    assert ledger.records == [("fix", 12.5, "phone-3", 51.5, -0.12)]


def test_phones_record_the_fix_of_every_alert_they_raise() -> None:
    user = UserConfig(panic_rate_per_h=30.0, cancel_probability=0.0)
    config = FleetConfig(
        name="fixes", devices=12, operators=1, duration_s=300.0, seed=5, policy="resilient",
        area=Area(51.5074, -0.1278, 2000.0), drain_s=30.0,
        groups=(Group("walkers", 1.0, user=user, network=NetworkConfig(outage_rate_per_h=0.0),
                      lifecycle=LifecycleConfig(start_foreground=True)),),
        device_models={"Galaxy S24": 1.0},
    )
    result, ledger = simulate(config)
    fixes = {(r[1], r[2]) for r in ledger.records if r[0] == FIX}
    creates = [(r[1], r[4]) for r in ledger.records if r[0] == ORIGINATED and r[3] == "create"]
    locations = [(r[1], r[4]) for r in ledger.records if r[0] == ORIGINATED and r[3] == "location"]
    assert creates and locations, "the fleet must raise alerts, or there is nothing to check"
    assert all(create in fixes for create in creates)
    assert all(location in fixes for location in locations)
    alerts = result.views["map"]["alerts"]
    assert [(a["t"], a["actor"]) for a in alerts] == [(stable_float(t), name) for t, name in sorted(creates)]
    for alert in alerts:
        assert 51.4 < alert["lat"] < 51.6 and -0.3 < alert["lon"] < 0.0


# -- the worst phones ------------------------------------------------------------------------------

def worst_ledger() -> Ledger:
    ledger = Ledger()
    operator(ledger)
    phone(ledger, "phone-a")
    send(ledger, "phone-a:1", "location", "phone-a", "operators", 50.0)
    send(ledger, "phone-a:2", "chat_from_phone", "phone-a", "operators", 60.0)
    send(ledger, "phone-a:3", "location", "phone-a", "operators", 70.0)
    send(ledger, "phone-a:4", "location", "phone-a", "operators", 80.0, received_by="operator-1")
    phone(ledger, "phone-b")
    send(ledger, "operator-1:1", "chat_from_operator", "operator-1", "phone-b", 90.0)  # lost, to it
    phone(ledger, "phone-c", outages=((100.0, 130.0, None),))  # never reconnects
    phone(ledger, "phone-d", outages=((100.0, 130.0, 138.0),))  # reconnects in 8 s
    phone(ledger, "phone-e", outages=((100.0, 130.0, 132.0),))  # nothing wrong: 2 s
    send(ledger, "phone-e:1", "location", "phone-e", "operators", 50.0, received_by="operator-1")
    phone(ledger, "phone-g", outages=((100.0, 130.0, 136.0),))  # 6 s
    phone(ledger, "phone-h", outages=((100.0, 130.0, 135.5),))  # 5.5 s: sixth, not listed
    return ledger


def test_worst_phones_are_ranked_by_losses_then_bad_reconnects_then_downtime() -> None:
    worst = check(worst_ledger()).views["worst"]
    assert [w["actor"] for w in worst] == ["phone-a", "phone-b", "phone-c", "phone-d", "phone-g"]
    a, b, c, d, g = worst
    assert a["lost"] == 3 and b["lost"] == 1 and c["lost"] == d["lost"] == 0
    assert a["lost_messages"] == [[50.0, "location", "phone-a:1"], [60.0, "chat_from_phone", "phone-a:2"],
                                  [70.0, "location", "phone-a:3"]]
    assert b["lost_messages"] == [[90.0, "chat_from_operator", "operator-1:1"]]
    assert a["why"] == "3 messages lost (2 location, 1 chat_from_phone)"
    assert b["why"] == "1 message lost (1 chat_from_operator)"
    assert c["why"].startswith("1 reconnect never completed; not connected 470 s of the 570 s")
    assert c["why"].endswith("; offline 30 s")
    assert d["why"].startswith("1 reconnect of 5 s or more;")
    assert g["why"].startswith("1 reconnect of 5 s or more;")
    assert a["network"] == "wifi"
    assert c["timeline"] == {
        "network": [[0.0, "wifi"], [100.0, "down"], [130.0, "wifi"]],
        "lifecycle": [[0.0, "foreground"]],
        "connection": [[0.0, "user", "connecting", ""], [0.4, "user", "open", ""],
                       [105.0, "user", "closed", "pong timeout"], [130.5, "user", "connecting", ""]],
    }


def test_a_phone_with_nothing_wrong_is_never_listed() -> None:
    worst = check(worst_ledger()).views["worst"]
    assert "phone-e" not in {w["actor"] for w in worst}
    ledger = Ledger()
    operator(ledger)
    phone(ledger, "phone-e", outages=((100.0, 130.0, 132.0),))
    send(ledger, "phone-e:1", "location", "phone-e", "operators", 50.0, received_by="operator-1")
    assert check(ledger).views["worst"] == []
    # ... and the same phone losing one message is listed
    send(ledger, "phone-e:2", "location", "phone-e", "operators", 60.0)
    assert [w["actor"] for w in check(ledger).views["worst"]] == ["phone-e"]


# -- bounds, round trip, older reports ----------------------------------------------------------------

def test_every_view_stays_within_its_bounds_for_a_large_fleet() -> None:
    ledger = Ledger()
    operator(ledger)
    for k in range(1000):
        name = f"phone-{k}"
        boot(ledger, name, network=("wifi", "lte", "3g")[k % 3], battery=100.0)
        ledger.connection(0.0, name, "user", "connecting")
        ledger.connection(0.4, name, "user", "open")
        for i in range(1, 130):
            ledger.state(i * 4.0, name, "battery", 100.0 - i * 0.01)
        if k < 450:  # 450 phones with 160 fixes and 5 alerts each
            for i in range(160):
                ledger.fix(10.0 + i * 3.0, name, 51.5 + k * 1e-4, -0.12 - i * 1e-4)
            for i in range(5):
                send(ledger, f"{name}:c{i}", "create", name, "operators", 10.0 + i * 90.0,
                     received_by="operator-1")
    for i in range(250):  # phone-0 loses 250 messages and flaps its connection 500 times
        send(ledger, f"phone-0:l{i}", "location", "phone-0", "operators", 1.0 + i * 2.0)
    for i in range(250):
        ledger.connection(2.0 + i * 2.0, "phone-0", "user", "closed", "flap")
        ledger.connection(2.5 + i * 2.0, "phone-0", "user", "open")
    for k in range(1, 10):  # more phones with losses than places among the worst
        send(ledger, f"phone-{k}:lost", "location", f"phone-{k}", "operators", 300.0)

    result = check(ledger)
    document = json.loads(render_json(result))
    view: dict[str, Any] = document["views"]
    timeline = view["timeline"]
    assert 0 < len(timeline["t"]) <= views.MAX_BUCKETS
    assert all(len(timeline[name]) == len(timeline["t"]) for name in ("connected", "offline"))
    assert len(view["battery"]["sample"]) == views.BATTERY_PHONES
    assert all(len(s["points"]) <= views.BATTERY_POINTS for s in view["battery"]["sample"])
    tracks = view["map"]["tracks"]
    assert 0 < len(tracks) <= views.MAX_TRACKS
    assert all(2 <= len(t["points"]) <= views.TRACK_POINTS for t in tracks)
    assert sum(len(t["points"]) for t in tracks) <= views.TRACK_POINTS_TOTAL
    assert len(view["map"]["alerts"]) == views.MAX_ALERTS  # of 2250
    worst = view["worst"]
    assert len(worst) == views.WORST_PHONES and worst[0]["actor"] == "phone-0"
    assert worst[0]["lost"] == 250 and len(worst[0]["lost_messages"]) == views.WORST_LOST
    assert len(worst[0]["timeline"]["connection"]) == views.WORST_TIMELINE
    assert "first 200 of 250 lost messages listed" in worst[0]["why"]
    assert "connection history cut to its first 400 of 502 changes" in worst[0]["why"]
    # Every part at its bound: about 0.3 MB of compact JSON, 0.8 MB as report.json indents it.
    compact = len(json.dumps(view, separators=(",", ":")))
    assert compact < 350_000, compact
    indented = len(render_json(result)) - len(render_json(dataclasses.replace(result, views={})))
    assert indented < 900_000, indented


def test_report_json_round_trip_keeps_the_views_byte_for_byte() -> None:
    result = check(map_ledger())
    first = render_json(result)
    again = RunResult.from_json(json.loads(first))
    assert again.views == result.views
    assert render_json(again) == first
    assert json.loads(first)["views"]["map"]["alerts"][0]["delivered"] is True


def test_a_report_json_without_views_still_loads() -> None:
    document = json.loads(render_json(check(map_ledger())))
    del document["views"]
    older = RunResult.from_json(document)
    assert older.views == {}
    assert json.loads(render_json(older))["views"] == {}
