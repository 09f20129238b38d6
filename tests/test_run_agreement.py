"""Run-vs-simulate agreement: one profile and seed under both clocks, compared ledger to ledger.

ARCHITECTURE.md, "One model, two clocks": the phone model is written once and runs in virtual time
against the modelled backend (``simulate``) or in wall-clock time over real WebSockets against the
reference backend (``run``). The same profile and seed must then give

1. the same *model-driven schedule*: every event whose model time comes from the fleet's own
   generators alone. Compared exactly (to a nanosecond, for rounding: see
   :data:`SCHEDULE_TOLERANCE_S`), since the wall clock decides only when an event is stepped, never
   its model time (simulator/clock.py, "Determinism"):

   - each phone's start (its ``os`` and ``device_model`` records, at the time the fleet drew);
   - network changes: outages, recoveries, Wi-Fi <-> cellular handovers (``Concern.NETWORK``);
   - app lifecycle transitions: foreground / background sessions, iOS suspensions, kills
     (``Concern.LIFECYCLE``; an alert keeps the app running, and alerts start at a panic press);
   - panic presses that open an alert (``originated create``; the press times are drawn up front);
   - the phone user's chat lines, as offsets from the moment the phone learnt its alert exists
     (``Concern.USER``): the chat clock starts when the create is acknowledged, which is a server
     reply, so the absolute times move with the backend's latency but the spacing may not move at
     all (compared to 1e-9 s: ``(ack + d) - ack`` is ``d`` up to rounding).

   Left out, because their model times depend on when the backend answered, which differs between a
   model and a real server on real sockets: connection records, heartbeats (their timer starts at each
   connect), acks and receipts, the location cadence (30 s after the create's ack), everything an
   operator does (it acknowledges and greets after the ``new_alert`` frame arrives, replies after each
   chat line arrives, and draws all those delays from one generator in arrival order), the create
   retries after a failed POST (their backoff shares the client generator with reconnects), the
   battery (it drains with radio traffic) and push notifications (sent when an operator writes to a
   phone that is not listening, whose view of "listening" differs between the modelled backend and
   the fleet's push gateway in ``run``, see simulator/transport/push.py). None of these feeds back
   into the compared schedule in this profile: alerts never end within the run (no cancels, no
   resolves), so no server reply ends an alert, changes the lifecycle or stops a phone's chat; only
   alert owners are written to, and an alert keeps their app running, so a push wakes nothing; no
   battery gets low. Phone chat is never a response to operator messages in this model: it is the
   user's own schedule.

2. the same message counts per kind, within the tolerances of :func:`count_slack`;
3. the same delivery ratios per kind, within :data:`DELIVERY_TOLERANCE`.

The run goes at speed 1: 75 s of model time and a 20 s drain, about 100 s of wall time in all.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulator import profile
from simulator.fleet import FleetConfig
from simulator.ledger import ACKED, ORIGINATED, STATE, Ledger
from simulator.result import MessageCounts, RunResult
from simulator.run import Outcome, run
from simulator.simulate import simulate

pytestmark = [pytest.mark.live, pytest.mark.timeout(240)]  # ~100 s expected (the run is at speed 1)

PROFILE = Path(__file__).parent / "profiles" / "agreement.toml"

# The profile's seed, chosen (by fast `simulate` runs over seeds 0-39) because within 75 s it exercises
# every kind of model-driven event, with nothing server-timed near the end of the run:
# - two alerts, phone-0 (Android, Wi-Fi) at 3.2 s and phone-5 (iOS, LTE) at 8.9 s, with 8 chat lines
#   between them (the last at 71.4 s, well clear of the end for acks that differ by milliseconds);
# - 10 network drops: outages, two of them during phone-0's alert (48.5-51.6 s, 55.9-59.8 s), so its
#   outbox and reconnection are exercised, and handovers (phone-5 LTE -> Wi-Fi at 28.1 s, phone-6
#   Wi-Fi -> LTE at 66.5 s);
# - lifecycle: foreground and background sessions, iOS suspensions, a kill (phone-1 at 67.1 s).
# The test asserts these kinds happened, so a change of model that makes the seed quiet fails loudly.
SEED = 37

COMPARED_STATES = ("os", "device_model", "network", "lifecycle")
MODEL_DRIVEN_KINDS = ("create", "chat_from_phone")
SERVER_TIMED_KINDS = ("location", "status_update", "chat_from_operator")
# Model-driven times are the same floats in both modes (the same sums of the same draws), with one
# exception: when something server-timed interrupts a SimPy process (a push, in either mode, makes
# the lifecycle re-plan), its next wake-up is computed as ``now + (deadline - now)``, which may round
# one ulp (~1e-14 s at 100 s) away from the uninterrupted sum. A nanosecond is far above that and
# far below any shift the backend's timing could cause (milliseconds at the least).
SCHEDULE_TOLERANCE_S = 1e-9
CHAT_SPACING_TOLERANCE_S = 1e-9

# Delivery ratios per kind may differ by at most this much. Both modes should deliver every message:
# the resilient client keeps each in its outbox and resends it until acked, every outage (<= 15 s)
# ends before the 20 s drain does, and no alert closes, so nothing is dropped for a closed alert. The
# modelled backend loses nothing (drop_rate 0) and the real one on loopback should not either. 0.05
# leaves room for one message still in flight when the drain ends only once a kind has 20 messages;
# below that (every kind in this profile) it asks for the same ratio, i.e. the same outcomes, which a
# difference between the live wire and the modelled one (a lost frame, a broken correlation) breaks.
DELIVERY_TOLERANCE = 0.05

Event = tuple[float, str, Any]


@dataclass(frozen=True)
class Pair:
    """One profile, simulated and run."""

    config: FleetConfig
    simulated: RunResult
    simulated_ledger: Ledger
    outcome: Outcome

    @property
    def live(self) -> RunResult:
        return self.outcome.result

    @property
    def live_ledger(self) -> Ledger:
        return self.outcome.ledger

    @property
    def context(self) -> str:
        """How the run went, for failure messages: what the live wire saw go wrong, the loop lag."""
        lag = self.live.generator.loop_lag_ms
        worst = "n/a" if lag is None else f"{lag.max:.0f} ms"
        return f"[run: backend problems {dict(self.outcome.problems) or 'none'}, worst loop lag {worst}]"


@pytest.fixture(scope="module")
def pair() -> Pair:
    config = profile.load(PROFILE)
    assert config.seed == SEED, "the profile's seed is the one SEED's comment describes"
    simulated, simulated_ledger = simulate(config)
    outcome = run(config, speed=1.0)
    assert not outcome.interrupted
    # Both modes drain for the profile's drain; run ends it early once nothing is in flight (every
    # client settled, no byte on its way), so the schedules are compared up to where run stopped.
    assert outcome.end_s == pytest.approx(config.duration_s + config.drain_s)
    assert config.duration_s < outcome.reached_s <= outcome.end_s + 1e-6
    # Not asserted: no backend problems (a handshake slower than 10 s on an overloaded host is one).
    # They make no model-driven event move, so agreement must hold anyway; failures print them.
    return Pair(config, simulated, simulated_ledger, outcome)


# -- what is compared -------------------------------------------------------------------------------

def schedule(ledger: Ledger, until: float) -> dict[str, list[Event]]:
    """Each phone's model-driven events, ``(t, what, value)``, in ledger order.

    ``what`` is a state dimension (:data:`COMPARED_STATES`) or ``"panic"`` (a press that opened an
    alert; its value is None, since the origin id counts everything the phone originated before).
    """
    found: dict[str, list[Event]] = defaultdict(list)
    for record in ledger.records:
        if isinstance(record[1], float) and record[1] >= until:
            continue
        if record[0] == STATE and record[3] in COMPARED_STATES and record[2].startswith("phone-"):
            found[record[2]].append((record[1], record[3], record[4]))
        elif record[0] == ORIGINATED and record[3] == "create":
            found[record[4]].append((record[1], "panic", None))
    return dict(found)


def same(a: Event, b: Event) -> bool:
    """The same event at the same model time (to :data:`SCHEDULE_TOLERANCE_S`)."""
    return a[1:] == b[1:] and abs(a[0] - b[0]) <= SCHEDULE_TOLERANCE_S


@dataclass(frozen=True)
class Chat:
    """One phone's alert: when the phone learnt of it, and its chat lines' offsets from then."""

    acked_at: float
    offsets: list[float]


def chats(ledger: Ledger) -> dict[str, Chat]:
    """Phone -> its alert's chat schedule (phones whose create was acknowledged)."""
    creates: dict[str, str] = {}  # phone -> origin id of its create
    for record in ledger.of_kind(ORIGINATED):
        if record[3] == "create":
            # Alerts never end in this profile, so a phone opens at most one: a later press is
            # ignored while it is open (or being created), and the chat below is that alert's.
            assert record[4] not in creates, f"{record[4]} opened a second alert"
            creates[record[4]] = record[2]
    acked: dict[str, float] = {}
    for record in ledger.of_kind(ACKED):
        acked.setdefault(record[2], record[1])
    found = {phone: Chat(acked[origin], []) for phone, origin in creates.items() if origin in acked}
    for record in ledger.of_kind(ORIGINATED):
        if record[3] == "chat_from_phone":
            chat = found[record[4]]
            chat.offsets.append(record[1] - chat.acked_at)
    return found


def cut_off_lines(pair: Pair) -> tuple[int, int]:
    """Chat lines one mode originated that the other legitimately did not: (simulate's, run's).

    A line is due at ``ack + offset``; the phone originates nothing from the end of the run on. When
    the create's ack came later in one mode, a line due just before the end there can be due at or
    after it in the other. Such a line must be one of the last of its alert, and its offset, added to
    the other mode's ack, must reach the end; anything else is a disagreement.
    """
    end = pair.config.duration_s
    simulated, live = chats(pair.simulated_ledger), chats(pair.live_ledger)
    cut = [0, 0]
    for phone in simulated.keys() & live.keys():
        mine, theirs = simulated[phone], live[phone]
        for side, (longer, other) in enumerate(((mine, theirs), (theirs, mine))):
            extra = longer.offsets[len(other.offsets):]
            assert all(other.acked_at + offset >= end - CHAT_SPACING_TOLERANCE_S for offset in extra), (
                f"{phone}: {len(extra)} chat line(s) due before the end in both modes were originated "
                f"in only one (acks at {mine.acked_at:.3f} s simulated, {theirs.acked_at:.3f} s run)")
            cut[side] += len(extra)
    return cut[0], cut[1]


def count_slack(kind: str, simulated: int) -> int:
    """How far the originated count of ``kind`` may differ between the two modes.

    (``chat_from_phone`` is not judged here: its lines must be the same but for those the end of
    the run cut off in one mode only, see :func:`cut_off_lines`.)

    - ``create``: 0. Presses are drawn up front, a press opens an alert unless one is open, and
      alerts never end here, so which presses open alerts is model-driven.
    - ``location``: 1. The cadence is fixed (every 30 s from the create's ack), so only the last fix
      of an alert can cross the end of the run when the ack moves; with acks tens of milliseconds
      apart (seconds at worst, after an outage) at most one fix in the run is that close to the end.
    - operator kinds (``status_update``, ``chat_from_operator``): 1, plus 10 % of the count. Each is
      due a lognormal delay after a frame reached the operator (new_alert, a chat line), so it moves
      with the backend's latency, and the delays come from one generator in arrival order, so two
      frames arriving in the other order swap delays. Only a message due within that shift of the
      end can cross it; one such message is allowed, and a tenth of the count for larger fleets.
    """
    if kind == "create":
        return 0
    if kind == "location":
        return 1
    return 1 + simulated // 10


def counts(result: RunResult) -> Mapping[str, MessageCounts]:
    return {kind: row for kind, row in result.messages.items() if row.originated}


# -- the tests --------------------------------------------------------------------------------------

def test_model_driven_schedule_is_identical(pair: Pair) -> None:
    until = pair.outcome.reached_s  # where run's drain ended (see ``pair``)
    simulated, live = schedule(pair.simulated_ledger, until), schedule(pair.live_ledger, until)
    assert sorted(live) == sorted(simulated) == [f"phone-{k}" for k in range(pair.config.devices)]
    for phone in sorted(simulated):
        mine, theirs = simulated[phone], live[phone]
        first = next((i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if not same(a, b)),
                     min(len(mine), len(theirs)))
        assert first == len(mine) == len(theirs), (
            f"{phone}: the schedules part at event {first}: simulate {mine[first:first + 3]}, "
            f"run {theirs[first:first + 3]} {pair.context}")

    # Not vacuous: the seed exercises every kind of model-driven event (see SEED).
    events = [event for found in simulated.values() for event in found]
    presses = [e for e in events if e[1] == "panic"]
    assert len(presses) >= 2 and all(t < pair.config.duration_s for t, _, _ in presses)
    network = [e for e in events if e[1] == "network"]
    drops = sum(value == "down" for _, _, value in network)
    kinds = {phone: [v for _, what, v in found if what == "network" and v != "down"]
             for phone, found in simulated.items()}
    handovers = sum(a != b for found in kinds.values() for a, b in itertools.pairwise(found))
    assert drops >= 5 and handovers >= 1, (drops, handovers)
    lifecycle = {value for _, what, value in events if what == "lifecycle"}
    assert {"foreground", "background", "suspended", "killed"} <= lifecycle, lifecycle


def test_chat_lines_keep_their_model_driven_spacing(pair: Pair) -> None:
    simulated, live = chats(pair.simulated_ledger), chats(pair.live_ledger)
    # The same phones learnt of an alert (the same presses opened one: previous test).
    assert sorted(live) == sorted(simulated)
    for phone in sorted(simulated):
        mine, theirs = simulated[phone].offsets, live[phone].offsets
        common = min(len(mine), len(theirs))
        assert theirs[:common] == pytest.approx(mine[:common], abs=CHAT_SPACING_TOLERANCE_S), \
            f"{phone} {pair.context}"
    cut_off_lines(pair)  # lines only one mode originated were cut off by the end of the run
    lines = sum(len(chat.offsets) for chat in simulated.values())
    assert len(simulated) >= 2 and lines >= 4, "the seed must exercise chat (see SEED)"


def test_message_counts_agree(pair: Pair) -> None:
    simulated, live = counts(pair.simulated), counts(pair.live)
    assert set(simulated) | set(live) <= {*MODEL_DRIVEN_KINDS, *SERVER_TIMED_KINDS}
    assert set(MODEL_DRIVEN_KINDS) <= set(simulated), "the seed must exercise presses and chat"
    none = MessageCounts()
    cut_simulated, cut_live = cut_off_lines(pair)
    for kind in sorted(simulated.keys() | live.keys()):
        n_simulated, n_live = simulated.get(kind, none).originated, live.get(kind, none).originated
        if kind == "chat_from_phone":
            # Exactly the same lines, but for those the end of the run cut off in one mode only.
            assert n_simulated - cut_simulated == n_live - cut_live, \
                (kind, n_simulated, n_live, pair.context)
        else:
            slack = count_slack(kind, n_simulated)
            assert abs(n_simulated - n_live) <= slack, (kind, n_simulated, n_live, slack, pair.context)
    assert pair.simulated.outcomes["unexpected"] == pair.live.outcomes["unexpected"] == 0


def test_delivery_ratios_agree(pair: Pair) -> None:
    simulated, live = counts(pair.simulated), counts(pair.live)
    for kind in sorted(simulated.keys() & live.keys()):
        mine, theirs = simulated[kind].delivery, live[kind].delivery
        assert mine is not None and theirs is not None
        assert math.isclose(mine, theirs, abs_tol=DELIVERY_TOLERANCE), (
            kind, simulated[kind].to_json(), live[kind].to_json(), pair.context)
