"""The checker on histories built by hand, where the right answer is known.

A clean half-hour history (two phones, one operator, every message kind, one network outage the
client recovers from in 2 s) passes every claim. Each negative control adds one violation to it and
the claim built to catch it must fail, with the right counts and a note naming the problem and the
client policy. A checker that cannot fail is a defect.
"""

from __future__ import annotations

import time

import pytest

from simulator.checks import exit_code, judge
from simulator.ledger import Ledger
from simulator.result import FAIL, NOT_MEASURED, PASS, GeneratorStats, RunInfo, RunResult, Targets

DURATION = 1800.0
POLICY = "beacon-1.0"
RUN = RunInfo(mode="simulate", profile="unit", seed=7, devices=2, operators=1, duration_s=DURATION,
              policy=POLICY, started_at="2026-01-01T00:00:00Z")
GENERATOR = GeneratorStats(cpu_s=1.5, peak_rss_mb=120.0)


def phone(ledger: Ledger, name: str, *, network: str = "wifi", os: str = "android", opened: float = 0.4,
          outages: tuple[tuple[float, float, float], ...] = (), battery: tuple[float, float] = (100.0, 99.0),
          heartbeats: bool = True) -> None:
    """A phone that connects at 0 and stays connected except during ``(down, up, reopened)`` outages."""
    ledger.state(0.0, name, "os", os)
    ledger.state(0.0, name, "device_model", "pixel-8")
    ledger.state(0.0, name, "power", "on")
    ledger.state(0.0, name, "lifecycle", "foreground")
    ledger.state(0.0, name, "network", network)
    ledger.state(0.0, name, "battery", battery[0])
    ledger.connection(0.0, name, "user", "connecting")
    ledger.connection(opened, name, "user", "open")
    for down, up, reopened in outages:
        ledger.state(down, name, "network", "down")
        ledger.connection(down + 5.0, name, "user", "closed", "pong timeout")
        ledger.state(up, name, "network", network)
        ledger.connection(up + 0.5, name, "user", "connecting")
        ledger.connection(reopened, name, "user", "open")
    if heartbeats:
        t = 1.0
        while t < DURATION:
            if not any(down <= t <= reopened for down, _, reopened in outages):
                ledger.heartbeat(t, name)
            t += 30.0
    ledger.state(DURATION, name, "battery", battery[1])


def send(ledger: Ledger, oid: str, kind: str, sender: str, recipient: str, t: float, *,
         receipts: tuple[tuple[float, str], ...] = (), state: str | None = "open",
         attempt_t: float | None = None, stored: int = 0, stream: str | None = None, seq: int | None = None,
         transport: str = "ws") -> None:
    """Originate a message; attempt it (``state`` None: no attempt); record receipts and storage."""
    ledger.originated(t, oid, kind, sender, recipient)
    if state is not None:
        ledger.attempt(t if attempt_t is None else attempt_t, oid, transport, "user", state)
    if state == "open":
        ledger.acked((t if attempt_t is None else attempt_t) + 0.03, oid)
    for i, (at, receiver) in enumerate(receipts):
        ledger.received(at, oid, receiver, stream, None if seq is None else seq + i)
    if stored:
        ledger.stored(oid, stored)


def clean_ledger(outage: bool = True) -> Ledger:
    """Two phones and an operator; every kind delivered within 100 ms; one 30 s outage (if asked)."""
    ledger = Ledger()
    ledger.connection(0.0, "operator-1", "user", "connecting")
    ledger.connection(0.2, "operator-1", "user", "open")
    phone(ledger, "phone-1", outages=((200.0, 230.0, 232.0),) if outage else ())
    phone(ledger, "phone-2", network="lte", os="ios", opened=0.6, battery=(100.0, 98.0))
    send(ledger, "phone-1:1", "create", "phone-1", "operators", 10.0, receipts=((10.08, "operator-1"),),
         stored=1, transport="http", state="http")
    n = 2
    for t in range(20, 1800, 30):
        if outage and 200 <= t <= 232:
            continue
        send(ledger, f"phone-1:{n}", "location", "phone-1", "operators", float(t),
             receipts=((t + 0.05, "operator-1"),), stored=1)
        n += 1
    if outage:  # queued while offline, sent from the outbox once open again: no loss, no latency sample
        send(ledger, "phone-1:900", "location", "phone-1", "operators", 210.0, state="closed")
        ledger.attempt(232.1, "phone-1:900", "ws", "user", "open")
        ledger.received(232.2, "phone-1:900", "operator-1", None, None)
        ledger.stored("phone-1:900", 1)
    send(ledger, "phone-1:901", "chat_from_phone", "phone-1", "operators", 50.0,
         receipts=((50.1, "operator-1"), (50.1, "phone-1")))  # the sender's echo does not count
    send(ledger, "operator-1:1", "chat_from_operator", "operator-1", "phone-1", 60.0,
         receipts=((60.1, "phone-1"),), stream="user:phone-1", seq=1)
    send(ledger, "operator-1:2", "status_update", "operator-1", "phone-1", 70.0,
         receipts=((70.05, "phone-1"),), stored=1, stream="user:phone-1", seq=2)
    send(ledger, "phone-2:1", "cancel", "phone-2", "operators", 500.0, receipts=((500.05, "operator-1"),),
         stored=1)
    return ledger


def check(ledger: Ledger, targets: Targets | None = None, generator: GeneratorStats = GENERATOR,
          strict: bool = False) -> RunResult:
    return judge(ledger, RUN, targets or Targets(), generator, strict=strict)


def verdicts(result: RunResult) -> dict[str, str]:
    return {v.id: v.verdict for v in result.verdicts}


ALL_CLAIMS = {"connect", "reconnect", "latency", "heartbeat", "delivery", "loss-reconnect", "uptime",
              "reconnect-success", "duplicates", "battery", "memory", "unexpected"}


# -- the clean history passes everything ---------------------------------------------------------

def test_clean_history_passes_every_claim() -> None:
    result = check(clean_ledger())
    assert set(verdicts(result)) == ALL_CLAIMS
    assert verdicts(result) == dict.fromkeys(ALL_CLAIMS, PASS), [(v.id, v.note) for v in result.verdicts]
    assert exit_code(result, strict=False) == 0
    assert exit_code(result, strict=True) == 0
    totals = result.outcomes
    assert totals["lost"] == totals["stored_only"] == totals["duplicated"] == totals["reordered"] == 0
    assert totals["unexpected"] == 0
    assert totals["originated"] == totals["delivered"]
    assert totals["originated_while_disconnected"] == 1  # the queued location, delivered


def test_clean_history_figures() -> None:
    result = check(clean_ledger())
    assert result.verdict("connect").measured == pytest.approx(0.6, rel=0.01)
    assert result.verdict("reconnect").measured == pytest.approx(2.0, rel=0.01)
    assert result.reconnect_counts == {"restorations": 1, "succeeded": 1, "failed": 0, "skipped": 0}
    # phone-1: could be connected 1770 s, open 199.6 + 1568; phone-2: 1800 s, open 1799.4
    assert result.uptime == pytest.approx((199.6 + 1568.0 + 1799.4) / (1770.0 + 1800.0))
    assert result.verdict("heartbeat").measured == pytest.approx(30.0, rel=0.01)
    # 60 heartbeats each, less phone-1's one at 211; the gap across the outage (181 -> 241) is not
    # a heartbeat spacing
    assert result.heartbeat.count == 59 + (58 - 1)
    assert result.messages["location"].originated == 59
    assert result.latency["phone_to_operator"].count == 59 - 1 + 1 + 1 + 1  # not the queued location
    assert result.latency["operator_to_phone"].count == 2
    assert result.latency["delivery_delay"].count == result.outcomes["delivered"]
    assert result.latency["delivery_delay"].max == pytest.approx(22.2)  # the queued one
    assert set(result.latency_by_network) == {"wifi", "lte"}
    assert result.battery.count == 2
    assert result.battery_by_network["lte"].max == pytest.approx(4.0, rel=0.01)  # 2 % in half an hour
    assert result.population["os"] == {"android": 1, "ios": 1}
    for v in result.verdicts:
        assert v.population["profile"] == "unit" and v.population["policy"] == POLICY
        assert "n" in v.population


# -- one of each outcome, named with the right counts --------------------------------------------

def test_each_outcome_is_named() -> None:
    ledger = clean_ledger()
    # lost: sent on an open channel, never received, never stored
    send(ledger, "phone-2:10", "location", "phone-2", "operators", 700.0)
    # stored-only: not received, but the backend has it
    send(ledger, "phone-2:11", "location", "phone-2", "operators", 730.0, stored=1)
    # late: received 900 ms after the intended time, on an open channel
    send(ledger, "phone-2:12", "location", "phone-2", "operators", 760.0, receipts=((760.9, "operator-1"),),
         stored=1)
    # lost during reconnect: phone-1's outage (200-232); the client dropped it on the closed channel
    send(ledger, "phone-1:950", "location", "phone-1", "operators", 215.0, state="closed")
    ledger.dropped(215.0, "phone-1:950", "channel closed")
    # duplicated: one recipient got it twice
    send(ledger, "operator-1:3", "chat_from_operator", "operator-1", "phone-2", 800.0,
         receipts=((800.1, "phone-2"), (800.2, "phone-2")))
    # reordered (no seqs): chat 21 received after chat 22 from the same sender
    send(ledger, "phone-2:21", "chat_from_phone", "phone-2", "operators", 900.0,
         receipts=((900.3, "operator-1"),))
    send(ledger, "phone-2:22", "chat_from_phone", "phone-2", "operators", 900.1,
         receipts=((900.2, "operator-1"),))
    # unexpected: received, never originated
    ledger.received(950.0, "phone-9:1", "operator-1", None, None)

    result = check(ledger)
    location = result.messages["location"]
    assert location.lost == 2 and location.lost_during_reconnect == 1 and location.dropped == 1
    assert location.stored_only == 1
    assert location.late == 1
    assert location.originated == location.delivered + location.stored_only + location.lost
    assert result.messages["chat_from_operator"].duplicated == 1
    assert result.messages["chat_from_phone"].reordered == 1
    assert result.outcomes["unexpected"] == 1 and result.outcomes["unexpected_receipts"] == 1
    assert result.outcomes["duplicated_received"] == 1 and result.outcomes["duplicated_stored"] == 0

    got = verdicts(result)
    for claim in ("latency", "delivery", "loss-reconnect", "duplicates", "unexpected"):
        assert got[claim] == FAIL, claim
    for claim in ("connect", "reconnect", "heartbeat", "uptime", "reconnect-success"):
        assert got[claim] == PASS, claim
    loss = result.verdict("loss-reconnect")
    assert loss.note.startswith("1 location messages were lost while the sender's channel")
    assert loss.note.endswith(f"policy {POLICY}")
    assert "phone-9:1" in result.verdict("unexpected").note
    assert exit_code(result, strict=False) == 1


def test_reordered_by_stream_seq() -> None:
    ledger = clean_ledger()
    # seq 6 arrives before seq 5 on the phone's stream
    send(ledger, "operator-1:5", "status_update", "operator-1", "phone-1", 1000.0,
         receipts=((1001.2, "phone-1"),), stored=1, stream="user:phone-1", seq=5)
    send(ledger, "operator-1:6", "status_update", "operator-1", "phone-1", 1001.0,
         receipts=((1001.1, "phone-1"),), stored=1, stream="user:phone-1", seq=6)
    result = check(ledger)
    assert result.messages["status_update"].reordered == 1
    assert result.outcomes["reordered"] == 1


def test_stored_twice_is_a_duplicate() -> None:
    ledger = clean_ledger()
    send(ledger, "phone-2:30", "create", "phone-2", "operators", 300.0, receipts=((300.1, "operator-1"),),
         stored=2, transport="http")
    result = check(ledger)
    duplicates = result.verdict("duplicates")
    assert duplicates.verdict == FAIL and duplicates.measured == 1.0
    assert "1 create duplicated (1 stored more than once by the backend" in duplicates.note
    assert result.messages["create"].delivered == 2


def test_receipts_by_any_operator_and_several_recipients() -> None:
    ledger = clean_ledger()
    ledger.connection(0.0, "operator-2", "user", "open")
    send(ledger, "phone-2:40", "location", "phone-2", "operators", 400.0, receipts=((400.1, "operator-2"),),
         stored=1)
    # one status update meant for two phones: two (message, recipient) pairs; phone-2 never got it,
    # but the backend holds it (stored-only: a resync would recover it)
    send(ledger, "operator-1:7", "status_update", "operator-1", "phone-1", 410.0,
         receipts=((410.1, "phone-1"),), stored=1)
    ledger.originated(410.0, "operator-1:7", "status_update", "operator-1", "phone-2")
    # both operators receiving a broadcast is no duplicate
    send(ledger, "phone-2:41", "location", "phone-2", "operators", 420.0,
         receipts=((420.1, "operator-1"), (420.1, "operator-2")), stored=1)
    result = check(ledger)
    status = result.messages["status_update"]
    assert status.originated == 3 and status.delivered == 2 and status.stored_only == 1
    assert result.messages["location"].duplicated == 0
    assert result.messages["location"].lost == 0


# -- negative controls: each claim fails on a history built to violate it ------------------------

def test_connect_fails_when_slow() -> None:
    ledger = clean_ledger()
    phone(ledger, "phone-3", opened=4.0)
    result = check(ledger)
    connect = result.verdict("connect")
    assert connect.verdict == FAIL and connect.measured == pytest.approx(4.0, rel=0.01)
    assert connect.n == 3 and connect.note.endswith(f"policy {POLICY}")
    assert verdicts(result)["uptime"] == PASS


def test_connect_never_opened_is_unbounded() -> None:
    ledger = clean_ledger()
    ledger.connection(0.0, "phone-3", "user", "connecting")
    result = check(ledger)
    connect = result.verdict("connect")
    assert connect.verdict == FAIL and connect.measured is None
    assert "unbounded" in connect.note and "1 of 3 devices never connected" in connect.note
    assert result.connect_counts == {"attempted": 3, "succeeded": 2, "failed": 1, "skipped": 0}
    assert result.verdict("uptime").verdict == FAIL  # its half hour without a channel counts


def test_connect_clock_runs_only_while_the_app_can_connect() -> None:
    ledger = clean_ledger()
    # phone-3 starts connecting, dozes 1 s later, and opens 1 s into a maintenance window
    ledger.state(0.0, "phone-3", "lifecycle", "foreground")
    ledger.connection(0.0, "phone-3", "user", "connecting")
    ledger.state(1.0, "phone-3", "lifecycle", "doze")
    ledger.state(900.0, "phone-3", "lifecycle", "doze_maintenance")
    ledger.connection(901.0, "phone-3", "user", "open")
    # phone-4 is suspended the moment it starts and never runs again: skipped, not failed
    ledger.state(0.0, "phone-4", "lifecycle", "suspended")
    ledger.connection(0.0, "phone-4", "user", "connecting")
    result = check(ledger)
    assert result.connect.max == pytest.approx(2.0, rel=0.01)
    assert result.connect_counts == {"attempted": 3, "succeeded": 3, "failed": 0, "skipped": 1}
    assert result.verdict("connect").verdict == PASS


def test_reconnect_fails_when_slow() -> None:
    ledger = clean_ledger()
    phone(ledger, "phone-3", outages=((900.0, 910.0, 918.0),))
    result = check(ledger)
    reconnect = result.verdict("reconnect")
    assert reconnect.verdict == FAIL and reconnect.measured == pytest.approx(8.0, rel=0.01)
    assert verdicts(result)["reconnect-success"] == PASS
    assert verdicts(result)["uptime"] == PASS


def test_reconnect_that_never_happens_fails_both_reconnect_claims() -> None:
    ledger = clean_ledger()
    ledger.state(900.0, "phone-2", "network", "down")
    ledger.connection(905.0, "phone-2", "user", "closed", "policy gave up")
    ledger.state(910.0, "phone-2", "network", "lte")
    result = check(ledger)
    assert result.reconnect_counts["failed"] == 1
    success = result.verdict("reconnect-success")
    assert success.verdict == FAIL and success.measured == pytest.approx(0.5)
    assert "1 never reconnected" in success.note
    assert result.verdict("reconnect").verdict == FAIL and result.verdict("reconnect").measured is None
    assert result.verdict("uptime").verdict == FAIL


def test_reconnect_clock_pauses_while_the_app_cannot_run() -> None:
    ledger = clean_ledger()
    # phone-2 is suspended (sockets closed); the network drops and returns meanwhile; it resumes
    ledger.state(1000.0, "phone-2", "lifecycle", "background")
    ledger.state(1005.0, "phone-2", "lifecycle", "suspended")
    ledger.connection(1005.0, "phone-2", "user", "closed", "suspension")
    ledger.state(1020.0, "phone-2", "network", "down")
    ledger.state(1050.0, "phone-2", "network", "lte")
    ledger.state(1100.0, "phone-2", "lifecycle", "foreground")
    ledger.connection(1100.2, "phone-2", "user", "connecting")
    ledger.connection(1101.0, "phone-2", "user", "open")
    result = check(ledger)
    assert result.reconnect_counts["restorations"] == 2
    assert result.reconnect.min == pytest.approx(1.0, rel=0.01)  # not 51 s
    assert result.verdict("uptime").verdict == PASS  # suspended time is not counted against it


def test_latency_fails_when_late_each_direction() -> None:
    ledger = clean_ledger()
    send(ledger, "phone-2:12", "location", "phone-2", "operators", 760.0, receipts=((760.9, "operator-1"),),
         stored=1)
    result = check(ledger)
    latency = result.verdict("latency")
    assert latency.verdict == FAIL and latency.measured == pytest.approx(900.0, rel=0.01)
    assert result.messages["location"].late == 1
    assert "lte" in latency.note

    ledger = clean_ledger()
    send(ledger, "operator-1:9", "chat_from_operator", "operator-1", "phone-2", 800.0,
         receipts=((800.7, "phone-2"),))
    result = check(ledger)
    assert result.verdict("latency").verdict == FAIL
    assert result.latency["operator_to_phone"].max == pytest.approx(0.7)
    assert result.latency_by_network["lte"]["operator_to_phone"].count == 1


def test_operator_latency_needs_the_phone_connected() -> None:
    ledger = clean_ledger()
    # phone-1 is offline (200-232): the operator's message waits for it; a delay, not network latency
    send(ledger, "operator-1:20", "chat_from_operator", "operator-1", "phone-1", 210.0,
         receipts=((232.5, "phone-1"),))
    result = check(ledger)
    assert result.verdict("latency").verdict == PASS
    assert result.outcomes["sent_while_recipient_away"] == 1
    assert result.latency["delivery_delay"].max == pytest.approx(22.5, rel=0.01)


def test_latency_counts_only_messages_sent_on_an_open_channel() -> None:
    ledger = clean_ledger()
    # queued while the channel was closed, sent 40 s later: a delivery delay, not a latency sample
    send(ledger, "phone-2:50", "chat_from_phone", "phone-2", "operators", 600.0, state="closed",
         receipts=((640.1, "operator-1"),))
    ledger.attempt(640.0, "phone-2:50", "ws", "user", "open")
    result = check(ledger)
    assert result.verdict("latency").verdict == PASS
    assert result.latency["delivery_delay"].max == pytest.approx(40.1, rel=0.01)


def test_an_http_attempt_needs_no_open_channel() -> None:
    ledger = clean_ledger()
    # as shipped: the location channel is closed, the same fix also goes out over HTTP and arrives
    send(ledger, "phone-2:80", "location", "phone-2", "operators", 640.0, state="closed",
         receipts=((640.3, "operator-1"),), stored=1)
    ledger.attempt(640.0, "phone-2:80", "http", "/api/auth/alerts/x/location/", "http")
    # the same, but nothing arrives: a plain loss, not a loss during reconnection
    send(ledger, "phone-2:81", "location", "phone-2", "operators", 670.0, state="closed")
    ledger.attempt(670.0, "phone-2:81", "http", "/api/auth/alerts/x/location/", "http")
    result = check(ledger)
    assert result.latency["phone_to_operator"].max == pytest.approx(0.3, rel=0.01)
    assert result.messages["location"].lost == 1
    assert result.messages["location"].lost_during_reconnect == 0


def test_heartbeat_fails_when_too_slow() -> None:
    ledger = clean_ledger()
    ledger.state(0.0, "phone-3", "network", "wifi")
    ledger.connection(0.0, "phone-3", "user", "connecting")
    ledger.connection(0.5, "phone-3", "user", "open")
    for i in range(40):
        ledger.heartbeat(1.0 + 45.0 * i, "phone-3")
    result = check(ledger)
    heartbeat = result.verdict("heartbeat")
    assert heartbeat.verdict == FAIL
    assert "spacings within 27-33 s" in heartbeat.note and heartbeat.note.endswith(f"policy {POLICY}")


def test_heartbeat_spacing_ignores_gaps_across_a_disconnection_or_background() -> None:
    ledger = clean_ledger()
    ledger.state(0.0, "phone-3", "network", "wifi")
    ledger.connection(0.5, "phone-3", "user", "open")
    ledger.heartbeat(10.0, "phone-3")
    ledger.heartbeat(40.0, "phone-3")
    ledger.state(50.0, "phone-3", "lifecycle", "background")
    for t in (100.0, 160.0, 220.0):  # a slower beat in the background: not the foreground claim
        ledger.heartbeat(t, "phone-3")
    ledger.state(300.0, "phone-3", "lifecycle", "foreground")
    ledger.heartbeat(310.0, "phone-3")  # 270 s after the last: not a spacing
    ledger.heartbeat(340.0, "phone-3")
    result = check(ledger)
    assert result.verdict("heartbeat").verdict == PASS
    assert result.heartbeat.max == pytest.approx(30.0, rel=0.01)


def test_delivery_fails_on_one_lost_location() -> None:
    ledger = clean_ledger()
    send(ledger, "phone-2:60", "location", "phone-2", "operators", 650.0)
    result = check(ledger)
    delivery = result.verdict("delivery")
    assert delivery.verdict == FAIL and delivery.measured == pytest.approx(59 / 60)
    assert delivery.note.startswith("location 98.33% (1 lost, 0 stored only, of 60)")
    assert verdicts(result)["loss-reconnect"] == PASS  # sent on an open channel: not a reconnect loss


def test_a_delivery_failure_says_what_the_client_dropped_and_why() -> None:
    ledger = clean_ledger()
    for i, (t, reason) in enumerate(((650.0, "location channel closed"), (660.0, "location channel closed"),
                                     (670.0, "outbox full"))):
        send(ledger, f"phone-2:{70 + i}", "location", "phone-2", "operators", t, state="closed")
        ledger.dropped(t, f"phone-2:{70 + i}", reason)
    delivery = check(ledger).verdict("delivery")
    assert delivery.note.startswith("location 95.16% (3 lost, 0 stored only, of 62; 3 dropped by the client "
                                    "(2 location channel closed, 1 outbox full))")
    ledger = clean_ledger()
    send(ledger, "phone-2:70", "location", "phone-2", "operators", 650.0, state="closed")
    ledger.dropped(650.0, "phone-2:70", "location channel never opened")
    note = check(ledger).verdict("delivery").note
    assert "(1 lost, 0 stored only, of 60; 1 dropped by the client: location channel never opened)" in note


def test_loss_during_reconnect_fails() -> None:
    ledger = clean_ledger()
    send(ledger, "phone-1:960", "location", "phone-1", "operators", 210.0, state="closed")
    result = check(ledger)
    loss = result.verdict("loss-reconnect")
    assert loss.verdict == FAIL and loss.n == 2 and loss.measured == pytest.approx(0.5)
    assert loss.note == ("1 location messages were lost while the sender's channel was not open or "
                         f"reconnecting (1 of 2, 50%); policy {POLICY}")


def test_loss_in_the_reconnect_window_and_on_a_half_open_link() -> None:
    ledger = clean_ledger()
    # restored at 230, open again at 232: queued at 231 with no attempt, then lost
    send(ledger, "phone-1:970", "location", "phone-1", "operators", 231.0, state=None)
    # phone-2's link dies without the client noticing: the attempt says "open", the network is down
    ledger.state(1200.0, "phone-2", "network", "down")
    send(ledger, "phone-2:70", "location", "phone-2", "operators", 1205.0)
    ledger.state(1210.0, "phone-2", "network", "lte")
    ledger.connection(1211.0, "phone-2", "user", "closed", "pong timeout")
    ledger.connection(1212.0, "phone-2", "user", "open")
    result = check(ledger)
    assert result.messages["location"].lost_during_reconnect == 2
    assert result.verdict("loss-reconnect").verdict == FAIL


def test_uptime_fails_when_the_client_gives_up() -> None:
    ledger = clean_ledger()
    ledger.connection(600.0, "phone-2", "user", "closed", "policy gave up")
    result = check(ledger)
    uptime = result.verdict("uptime")
    assert uptime.verdict == FAIL and uptime.measured is not None and uptime.measured < 0.8
    assert verdicts(result)["connect"] == PASS


def test_battery_against_a_target() -> None:
    failing = check(clean_ledger(), Targets(battery_pct_per_hour=1.0))
    battery = failing.verdict("battery")
    assert battery.verdict == FAIL and battery.measured == pytest.approx(2.0, rel=0.01)
    assert "lte" in battery.note and "wifi" in battery.note
    assert check(clean_ledger(), Targets(battery_pct_per_hour=10.0)).verdict("battery").verdict == PASS
    reported = check(clean_ledger()).verdict("battery")
    assert reported.verdict == PASS and reported.note.startswith("reported only")


def test_battery_ignores_charging() -> None:
    ledger = Ledger()
    ledger.state(0.0, "phone-1", "battery", 50.0)
    ledger.state(900.0, "phone-1", "battery", 49.0)
    ledger.state(1000.0, "phone-1", "battery", 80.0)  # plugged in
    ledger.state(1800.0, "phone-1", "battery", 79.0)
    result = check(ledger)
    assert result.battery.max == pytest.approx(4.0, rel=0.01)


def test_memory_is_reported_or_not_measured() -> None:
    assert check(clean_ledger()).verdict("memory").verdict == PASS
    missing = check(clean_ledger(), generator=GeneratorStats()).verdict("memory")
    assert missing.verdict == NOT_MEASURED and "not measured" in missing.note


# -- not measured, strict mode --------------------------------------------------------------------

def test_no_reconnection_is_not_measured_with_its_reason() -> None:
    result = check(clean_ledger(outage=False))
    for claim in ("reconnect", "reconnect-success"):
        verdict = result.verdict(claim)
        assert verdict.verdict == NOT_MEASURED and verdict.measured is None and verdict.n == 0
        assert verdict.note.startswith("no reconnection happened")
    assert result.verdict("loss-reconnect").verdict == NOT_MEASURED
    others = {k: v for k, v in verdicts(result).items()
              if k not in ("reconnect", "reconnect-success", "loss-reconnect")}
    assert set(others.values()) == {PASS}
    assert exit_code(result, strict=False) == 0
    assert exit_code(result, strict=True) == 1
    assert result.exit_code == 0
    assert check(clean_ledger(outage=False), strict=True).exit_code == 1


def test_empty_ledger_is_not_measured_everywhere() -> None:
    result = check(Ledger(), generator=GeneratorStats())
    got = verdicts(result)
    assert got.pop("unexpected") == PASS
    assert set(got.values()) == {NOT_MEASURED}
    assert all(v.note for v in result.verdicts)
    assert exit_code(result, strict=False) == 0 and exit_code(result, strict=True) == 1


def test_compressed_run_is_flagged() -> None:
    run = RunInfo(mode="run", profile="unit", seed=1, devices=2, operators=1, duration_s=DURATION,
                  policy=POLICY, speed=10.0)
    result = judge(clean_ledger(), run, Targets(), GENERATOR)
    assert any("speed 10" in w for w in result.warnings)


def test_judge_is_fast() -> None:
    ledger = Ledger()
    for k in range(1500):
        name = f"phone-{k}"
        phone(ledger, name, outages=((600.0, 620.0, 623.0),))
        for i in range(40):
            t = 5.0 + 45.0 * i
            send(ledger, f"{name}:{i}", "location", name, "operators", t,
                 receipts=((t + 0.05, "operator-1"),), stored=1)
    started = time.perf_counter()
    result = check(ledger)
    elapsed = time.perf_counter() - started
    assert len(ledger) > 400_000
    assert result.outcomes["originated"] == 60_000
    assert elapsed < 5.0, elapsed  # about 1 s per million records on a laptop


def test_a_phone_exists_from_its_first_record() -> None:
    # Phones boot staggered: the minutes before a phone's first record are not downtime.
    ledger = Ledger()
    name = "phone-late"
    boot = 600.0
    for dimension, value in (("os", "ios"), ("device_model", "iPhone 15"), ("power", "on"),
                             ("lifecycle", "foreground"), ("network", "wifi"), ("battery", 90.0)):
        ledger.state(boot, name, dimension, value)
    ledger.connection(boot, name, "user", "connecting")
    ledger.connection(boot + 0.5, name, "user", "open")
    ledger.state(DURATION, name, "battery", 89.0)
    result = check(ledger)
    assert result.uptime == pytest.approx((DURATION - boot - 0.5) / (DURATION - boot))
    assert result.verdict("uptime").verdict == PASS
