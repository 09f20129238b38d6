"""The running tally: phones' states, alerts through their statuses, receipts, latency, the ticker."""

from __future__ import annotations

import io

import pytest

from simulator.ledger import Ledger
from simulator.progress import ProgressWriter, fleet_figures, format_progress, time_left
from simulator.simulate import Progress, Watched
from simulator.tally import LINES_KEPT, Tally


def fleet_ledger() -> Ledger:
    ledger = Ledger()
    for name in ("phone-0", "phone-1", "phone-2", "phone-3"):
        ledger.state(0.0, name, "network", "wifi")
        ledger.connection(0.5, name, "user", "connecting")
    ledger.connection(1.2, "phone-0", "user", "open")
    ledger.connection(3.5, "phone-1", "user", "open")
    ledger.connection(1.0, "operator-0", "console", "open")  # operators are not phones
    ledger.state(4.0, "phone-2", "lifecycle", "suspended")
    ledger.state(5.0, "phone-3", "network", "down")
    return ledger


def test_phones_are_counted_by_state_with_offline_first() -> None:
    ledger = fleet_ledger()
    ledger.state(6.0, "phone-2", "network", "down")  # suspended and offline: offline wins
    tally = Tally()
    tally.update(ledger)
    assert set(tally.phones) == {"phone-0", "phone-1", "phone-2", "phone-3"}
    assert tally.counts() == {"connected": 2, "reconnecting": 0, "offline": 2, "suspended": 0}
    ledger.state(7.0, "phone-2", "network", "lte")
    tally.update(ledger)
    assert tally.counts() == {"connected": 2, "reconnecting": 0, "offline": 1, "suspended": 1}
    ledger.connection(8.0, "phone-0", "user", "closed", "going away")
    ledger.state(8.0, "phone-1", "power", "off")
    tally.update(ledger)
    assert tally.counts() == {"connected": 0, "reconnecting": 1, "offline": 2, "suspended": 1}
    assert tally.now == 8.0


def test_connect_time_is_first_connecting_to_first_open() -> None:
    tally = Tally()
    tally.update(fleet_ledger())
    assert tally.connect.count == 2
    assert tally.connect.max == pytest.approx(3.0)


def test_an_alert_goes_sent_open_acknowledged_resolved_and_carries_its_fix() -> None:
    ledger = fleet_ledger()
    ledger.records.append(("fix", 10.0, "phone-0", 52.5, 13.4))
    ledger.originated(10.0, "c1", "create", "phone-0", "operators")
    tally = Tally()
    tally.update(ledger)
    alert = tally.alerts["phone-0"]
    assert (alert.status, alert.lat, alert.lon, tally.alerts_open) == ("sent", 52.5, 13.4, 1)
    ledger.received(10.2, "c1", "operator-0", "console", 1)
    tally.update(ledger)
    assert alert.status == "open"
    ledger.originated(12.0, "s1", "status_update", "operator-0", "phone-0")
    tally.update(ledger)
    assert alert.status == "acknowledged" and tally.alerts_open == 1
    ledger.originated(30.0, "s2", "status_update", "operator-0", "phone-0")
    tally.update(ledger)
    assert alert.status == "resolved" and tally.alerts_open == 0
    ledger.originated(40.0, "c2", "create", "phone-1", "operators")
    ledger.originated(41.0, "x2", "cancel", "phone-1", "operators")
    tally.update(ledger)
    assert tally.alerts["phone-1"].status == "canceled" and tally.alerts_open == 0


def test_latency_is_first_receipt_per_receiver_and_the_worst_is_kept() -> None:
    ledger = Ledger()
    ledger.originated(1.0, "m1", "chat_from_phone", "phone-0", "operators")
    ledger.originated(1.0, "m1", "chat_from_phone", "phone-0", "operator-1")  # same message, 2nd recipient
    ledger.originated(2.0, "m2", "chat_from_operator", "operator-0", "phone-0")
    ledger.originated(2.5, "m3", "location", "phone-0", "operators")  # queued offline: delay, not latency
    ledger.attempt(1.0, "m1", "ws", "chat", "open")
    ledger.attempt(2.0, "m2", "http", "chat", "open")
    ledger.attempt(2.5, "m3", "ws", "location", "closed")
    ledger.received(9.0, "m3", "operator-0", "location", 1)
    ledger.received(1.25, "m1", "operator-0", "chat", 1)
    ledger.received(1.5, "m1", "operator-0", "chat", 1)  # a duplicate: not a new receipt
    ledger.received(1.75, "m1", "operator-1", "chat", 1)
    ledger.received(2.1, "m2", "phone-0", "chat", 2)
    ledger.received(3.0, "nobody-sent-this", "phone-0", "chat", 3)
    tally = Tally()
    tally.update(ledger)
    assert (tally.originated, tally.received) == (3, 4)
    assert tally.latency["phone_to_operator"].count == 2
    assert tally.latency["operator_to_phone"].count == 1
    assert tally.worst_latency_s == pytest.approx(0.75)
    assert tally.rate(window_s=10.0) == pytest.approx(4 / 9.0)  # 4 receipts over the 9 s so far
    assert [line.latency_s is None for line in tally.lines] == [True, True, True, False, False, False, False]


def test_update_reads_only_new_records_and_the_ticker_is_capped() -> None:
    ledger = Ledger()
    tally = Tally()
    for i in range(LINES_KEPT * 3):
        ledger.originated(float(i), f"m{i}", "location", "phone-0", "operators")
        if i % 50 == 0:
            tally.update(ledger)
    tally.update(ledger)
    tally.update(ledger)  # nothing new: nothing counted twice
    assert tally.originated == LINES_KEPT * 3
    assert len(tally.lines) == LINES_KEPT and tally.lines[-1].t == LINES_KEPT * 3 - 1


def test_the_progress_line_shows_the_fleet() -> None:
    ledger = fleet_ledger()
    ledger.originated(2.0, "c1", "create", "phone-0", "operators")
    ledger.attempt(2.0, "c1", "ws", "user", "open")
    ledger.received(2.3, "c1", "operator-0", "console", 1)
    tally = Tally()
    tally.update(ledger)
    assert fleet_figures(tally) == "2/4 connected  1 alert open  0.2 msg/s  worst 300 ms"
    progress = Progress(30.0, 120.0, 500, 10.0, "run", Watched(ledger, [], []))
    assert time_left(progress) == "0:00:30 left"
    line = format_progress(progress, bar=False, tally=tally)
    assert line == " 25%  0:00:30 / 0:02:00  run    2/4 connected  1 alert open  0.2 msg/s  worst 300 ms  " \
                   "0:00:30 left"
    out = io.StringIO()
    writer = ProgressWriter(out, tty=False, every=0.25)
    writer(progress)
    assert "2/4 connected" in out.getvalue() and "events" not in out.getvalue()
    # phones boot staggered: the fleet's size counts those the ledger has not mentioned yet
    out = io.StringIO()
    writer = ProgressWriter(out, tty=False, every=0.25)
    writer(Progress(30.0, 120.0, 500, 10.0, "run", Watched(ledger, [object()] * 6, [])))  # type: ignore[list-item]
    assert "2/6 connected" in out.getvalue()


def test_a_tally_shared_by_two_displays_folds_each_record_once() -> None:
    ledger = fleet_ledger()
    ledger.heartbeat(6.0, "phone-0")
    shared = Tally()
    shared.update(ledger)  # the live view folds first
    out = io.StringIO()
    writer = ProgressWriter(out, tty=False, every=0.25, tally=shared)
    writer(Progress(30.0, 120.0, 500, 10.0, "run", Watched(ledger, [object()] * 4, [])))  # type: ignore[list-item]
    ledger.heartbeat(36.0, "phone-0")
    writer(Progress(60.0, 120.0, 900, 20.0, "run", Watched(ledger, [object()] * 4, [])))  # type: ignore[list-item]
    shared.update(ledger)
    assert shared.heartbeats == 2 and shared.expected == 4
    assert "2/4 connected" in out.getvalue()
