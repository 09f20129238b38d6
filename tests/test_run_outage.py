"""A mass outage, live: the resilient client loses nothing where the as-shipped one loses data.

``beacon-fleet run`` drives the reference backend over real WebSockets on loopback, in wall-clock
time. The profile (``tests/profiles/outage.toml``) opens an alert on each of six phones in its
first seconds, then blackholes every phone from ``T0`` = 33 s for 25 s: no bytes either way and no
close frame, while the backend pings every 4 s and gives up on a pong 4 s late, so it finds every
half-open socket 4-8 s into the outage and none survives it: each client has to reconnect. On the
phones' side, ``resilient`` hears of the outage from the OS's connectivity callback at once and
lets its sockets go (no close frame can get out), long before its own heartbeat (two missed
30 s pongs) would notice; ``beacon-1.0`` never notices (its pings expect no pong) and sends into
sockets the backend has already dropped. Both client policies run this same world at once (two
threads, each with its own embedded backend), and the test checks, as the issue asks:

* the backend's sockets stay open, half-open, until its keep-alive finds them: every phone socket
  that was up at ``T0`` is still an established TCP connection on the backend's side a few seconds
  into the blackhole, and is gone before the network comes back;
* ``resilient`` reconnects after the outage, resumes, and loses nothing: no loss while
  disconnected, every kind delivered in full, and each message originated during the outage
  (locations from its outbox, chat both ways) reaches its recipient;
* ``beacon-1.0`` (the negative control, as ``tests/simulator/test_negative_control.py`` does in
  virtual time) loses messages originated during the outage, and the checker says so.

How half-open is observed. The backend runs in another process, so the test looks at the two ends
of each real TCP connection the phones' WebSockets use, sampling both every ``POLL_S`` model
seconds from inside the run (probes scheduled on the run's clock, attached by wrapping
:func:`simulator.run.build`):

* the phone's end: :attr:`simulator.transport.live.Socket.peer_gone` turns True when the backend
  closes the TCP connection (its FIN reaches the phone's real socket at once on loopback, even
  while the link emulator withholds every byte from the phone's WebSocket);
* the backend's end, as the kernel holds it: the ``/proc/net/tcp`` row whose local port is the
  backend's and whose remote port is the phone socket's (``ESTABLISHED`` while the backend keeps
  the socket; ``FIN_WAIT``/``TIME_WAIT`` or no row once it hung up). Linux only; elsewhere only
  the phone's end is checked.

A socket the backend closed at the blackhole's start (a close frame or FIN leaking through the
emulator) fails the "still open" check; a backend whose keep-alive never fires (or a profile whose
keep-alive is not applied to the embedded backend) fails the "gone before the network is back"
check, and so does a socket the phone closed for real.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.protocol import State

import simulator.run
from simulator.checks_messages import is_operator
from simulator.clock import WallClock
from simulator.device.network import MassOutage
from simulator.fleet import FleetConfig
from simulator.ledger import OPERATORS, Ledger
from simulator.profile import load
from simulator.run import Credentials, LiveRun, Outcome
from simulator.transport.live import LiveWire, Socket

# The first test to ask for ``runs`` waits for both fleets (about two minutes of wall time).
pytestmark = [pytest.mark.live, pytest.mark.timeout(420)]

PROFILE = Path(__file__).resolve().parent / "profiles" / "outage.toml"
POLICIES = ("resilient", "beacon-1.0")
POLL_S = 0.25  # model seconds between two looks at the sockets during the outage
#: Allowance for the wall clock (loop lag, the FIN crossing loopback) when checking that the backend
#: hung up within its keep-alive's ``interval + timeout`` of the blackhole's start.
SLACK_S = 3.0
PROC_TCP = Path("/proc/net/tcp")
ESTABLISHED = "ESTABLISHED"
TCP_STATES = {"01": ESTABLISHED, "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",  # /proc codes
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


# -- the scenario ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    """The profile's timings that the assertions rest on (model seconds)."""

    config: FleetConfig
    outage: MassOutage
    ping_s: float
    ping_timeout_s: float

    @property
    def start(self) -> float:
        return self.outage.start_s

    @property
    def end(self) -> float:
        return self.outage.start_s + self.outage.duration_s

    @property
    def still_open_until(self) -> float:
        """Before this, no keep-alive can have fired: a ping sent just before the blackhole times
        out ``ping_timeout_s`` after it; half that leaves room for the loop's lag."""
        return self.start + self.ping_timeout_s / 2

    @property
    def gone_by(self) -> float:
        """By this, every keep-alive has fired: the next ping within ``ping_s``, its timeout after."""
        return self.start + self.ping_s + self.ping_timeout_s + SLACK_S


def scenario(policy: str) -> Scenario:
    config = load(PROFILE, policy=policy)
    outages = {m for group in config.groups for m in group.network.mass_outages}
    assert len(outages) == 1, outages
    [outage] = outages
    found = Scenario(config, outage, config.wire.server_ping_s, config.wire.server_ping_timeout_s)
    # The premises of the test, checked so that editing the profile cannot quietly void them.
    assert outage.fraction == 1.0  # every phone goes dark
    assert config.devices <= 8 and config.operators == 1
    assert found.gone_by + 1.0 < found.end < config.duration_s  # detected well inside the outage
    assert all(g.network.outage_rate_per_h == 0 for g in config.groups)  # no other outage
    assert all(g.user.cancel_probability == 0 for g in config.groups)  # alerts stay open
    return found


# -- watching the phones' sockets from inside the run ----------------------------------------------

@dataclass
class Tracked:
    """One phone WebSocket that was up when the blackhole began, and what became of it."""

    sock: Socket
    phone: str
    channel: str
    backend_port: int
    phone_port: int
    phone_saw_close_at: float | None = None  # model time the phone's TCP end saw the backend hang up
    backend_closed_at: float | None = None  # model time the backend's end left ESTABLISHED
    backend_states: list[tuple[float, str | None]] = field(default_factory=list)


@dataclass
class Watch:
    """What the probes saw of one run's phone sockets around the outage."""

    tracked: list[Tracked] = field(default_factory=list)
    looks: int = 0
    kernel_view: bool = False


def tcp_rows() -> dict[tuple[int, int], str]:
    """(local port, remote port) -> state name, for every IPv4 TCP socket of this host."""
    rows: dict[tuple[int, int], str] = {}
    for line in PROC_TCP.read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        rows[int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)] = \
            TCP_STATES.get(state, state)
    return rows


def at(clock: WallClock, when: float, action: Callable[[], None]) -> None:
    """Run ``action`` inside the model at model time ``when``."""
    event = clock.timeout(max(0.0, when - float(clock.now)))
    assert event.callbacks is not None
    event.callbacks.append(lambda _event: action())


def watch(live: LiveRun, plan: Scenario) -> Watch:
    """Schedule the probes on the run's clock: capture at the blackhole's start, then poll."""
    found = Watch(kernel_view=PROC_TCP.exists())
    wire: LiveWire = live.wire
    backend_port = urlsplit(wire.base_url).port
    assert backend_port is not None

    def capture() -> None:
        for sock in list(wire.sockets):
            transport = sock.transport
            if (not sock.endpoint.name.startswith("phone-") or transport is None or sock.peer_gone
                    or sock.protocol.state is not State.OPEN):
                continue
            phone_port = int(transport.get_extra_info("sockname")[1])
            found.tracked.append(Tracked(sock, sock.endpoint.name, sock.channel, backend_port, phone_port))
        look()

    def look() -> None:
        now = float(live.clock.now)
        found.looks += 1
        rows = tcp_rows() if found.kernel_view else {}
        for tracked in found.tracked:
            if tracked.phone_saw_close_at is None and tracked.sock.peer_gone:
                tracked.phone_saw_close_at = now
            if found.kernel_view:
                state = rows.get((tracked.backend_port, tracked.phone_port))  # None: no such socket
                tracked.backend_states.append((now, state))
                if tracked.backend_closed_at is None and state != ESTABLISHED:
                    tracked.backend_closed_at = now

    # 50 ms after the phones went dark: their sockets are held, and no keep-alive can fire so soon.
    at(live.clock, plan.start + 0.05, capture)
    t = plan.start + POLL_S
    while t < plan.end - 0.5:  # up to just before the network returns
        at(live.clock, t, look)
        t += POLL_S
    return found


# -- running both policies at once -----------------------------------------------------------------

@dataclass
class Live:
    """One policy's finished run: its plan, outcome, what the probes saw, and its report.json."""

    plan: Scenario
    outcome: Outcome
    watch: Watch
    report: dict[str, Any]

    def verdict(self, claim: str) -> dict[str, Any]:
        found = [v for v in self.report["verdicts"] if v["id"] == claim]
        assert len(found) == 1, claim
        return dict(found[0])

    @property
    def ledger(self) -> Ledger:
        return self.outcome.ledger


def run_both() -> dict[str, Live]:
    """Both policies on the outage profile at once, each with its sockets watched."""
    plans = {policy: scenario(policy) for policy in POLICIES}
    watches: dict[str, Watch] = {}
    lock = threading.Lock()
    original = simulator.run.build

    def build(config: FleetConfig, clock: WallClock, wire: LiveWire, creds: Credentials,
              tokens: dict[int, str]) -> LiveRun:
        live = original(config, clock, wire, creds, tokens)
        with lock:
            watches[config.policy] = watch(live, plans[config.policy])
        return live

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulator.run, "build", build)
        with ThreadPoolExecutor(max_workers=len(POLICIES), thread_name_prefix="fleet") as pool:
            futures = {policy: pool.submit(simulator.run.run, plans[policy].config,
                                           profile_name=PROFILE.stem)
                       for policy in POLICIES}
            outcomes = {policy: future.result() for policy, future in futures.items()}
    return {policy: Live(plans[policy], outcomes[policy], watches[policy],
                         outcomes[policy].result.to_json())
            for policy in POLICIES}


@pytest.fixture(scope="module")
def runs() -> dict[str, Live]:
    return run_both()


def in_outage(live: Live) -> list[tuple[str, str, str]]:
    """(origin id, kind, recipient) of every message originated while the phones were dark."""
    return [(r[2], r[3], r[5]) for r in live.ledger.of_kind("originated")
            if live.plan.start <= r[1] < live.plan.end]


def receivers(ledger: Ledger) -> dict[str, set[str]]:
    found: defaultdict[str, set[str]] = defaultdict(set)
    for record in ledger.of_kind("received"):
        found[record[2]].add(record[3])
    return found


def reached(recipient: str, got: set[str]) -> bool:
    if recipient == OPERATORS:
        return any(is_operator(name) for name in got)
    return recipient in got


def undelivered_in_outage(live: Live) -> list[tuple[str, str, str]]:
    got = receivers(live.ledger)
    return [m for m in in_outage(live) if not reached(m[2], got.get(m[0], set()))]


# -- both runs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", POLICIES)
def test_the_run_completes_and_every_phone_connects(runs: dict[str, Live], policy: str) -> None:
    live = runs[policy]
    run = live.report["run"]
    assert (run["mode"], run["policy"], run["devices"]) == ("run", policy, live.plan.config.devices)
    assert run["backend"]["embedded"] is True
    assert not live.outcome.interrupted
    # The run reached its end and drained: the drain may end early once nothing is in flight.
    assert live.plan.config.duration_s < live.outcome.reached_s <= live.outcome.end_s + 1e-6
    connect = live.verdict("connect")
    assert (connect["verdict"], connect["n"]) == ("pass", live.plan.config.devices), connect
    assert live.verdict("unexpected")["verdict"] == "pass"
    assert not live.outcome.problems  # a keep-alive close on our own blackhole is not a fault


@pytest.mark.parametrize("policy", POLICIES)
def test_every_phone_goes_dark_for_the_whole_outage(runs: dict[str, Live], policy: str) -> None:
    live = runs[policy]
    network = defaultdict(list)
    for record in live.ledger.of_kind("state"):
        if record[3] == "network" and record[2].startswith("phone-"):
            network[record[2]].append((record[1], record[4]))
    assert len(network) == live.plan.config.devices
    for phone, changes in network.items():
        down = [t for t, value in changes if value == "down"]
        up_again = [t for t, value in changes if value != "down" and t > live.plan.start]
        assert down == [pytest.approx(live.plan.start)], (phone, changes)
        assert up_again[:1] == [pytest.approx(live.plan.end)], (phone, changes)


@pytest.mark.parametrize("policy", POLICIES)
def test_the_backend_keeps_each_socket_half_open_until_its_keepalive_gives_up(
        runs: dict[str, Live], policy: str) -> None:
    live, watched = runs[policy], runs[policy].watch
    plan = live.plan
    assert watched.looks > (plan.end - plan.start) / POLL_S / 2  # the probes ran through the outage
    tracked = watched.tracked
    user_channels = {t.phone for t in tracked if t.channel == "user"}
    assert len(user_channels) == plan.config.devices, [(t.phone, t.channel) for t in tracked]
    for t in tracked:
        where = (t.phone, t.channel, t.backend_states)
        # The phone's end: the backend hung up within its keep-alive's reach, not at once.
        assert t.phone_saw_close_at is not None, where
        assert plan.still_open_until <= t.phone_saw_close_at <= plan.gone_by, where
        if watched.kernel_view:
            # The backend's own socket, as the kernel holds it: established (half-open: the phone
            # can no longer hear or answer) well into the blackhole, then closed by the backend.
            first = t.backend_states[0]
            assert first[1] == ESTABLISHED, where
            assert all(state == ESTABLISHED for when, state in t.backend_states
                       if when < plan.still_open_until), where
            assert t.backend_closed_at is not None, where
            assert plan.still_open_until <= t.backend_closed_at <= plan.gone_by, where
            assert abs(t.backend_closed_at - t.phone_saw_close_at) <= 2 * POLL_S, where


def test_both_runs_face_the_same_world(runs: dict[str, Live]) -> None:
    # Same profile, same seed: the same phones press panic at the same times before the outage.
    presses = {policy: sorted((r[4], round(r[1], 6)) for r in live.ledger.of_kind("originated")
                              if r[3] == "create")
               for policy, live in runs.items()}
    assert presses["resilient"] == presses["beacon-1.0"]
    assert len(presses["resilient"]) == runs["resilient"].plan.config.devices  # one alert each
    assert all(t < runs["resilient"].plan.start for _, t in presses["resilient"])


# -- resilient: reconnects, resumes, loses nothing ----------------------------------------------------

def test_resilient_reconnects_after_the_outage(runs: dict[str, Live]) -> None:
    live = runs["resilient"]
    reconnect = live.verdict("reconnect")
    assert reconnect["n"] >= live.plan.config.devices, reconnect  # one restoration per phone at least
    assert live.report["reconnect"]["failed"] == 0, live.report["reconnect"]
    assert live.verdict("reconnect-success")["measured"] == 1.0
    reopened = {(r[2], r[3]) for r in live.ledger.of_kind("connection")
                if r[4] == "open" and r[1] >= live.plan.end}
    for t in live.watch.tracked:  # every channel the outage killed came back
        assert (t.phone, t.channel) in reopened, (t.phone, t.channel)


def test_resilient_loses_nothing_originated_during_the_outage(runs: dict[str, Live]) -> None:
    live = runs["resilient"]
    loss = live.verdict("loss-reconnect")
    assert loss["verdict"] == "pass" and loss["measured"] == 0 and loss["n"] > 0, loss
    dark = in_outage(live)
    kinds = {kind for _, kind, _ in dark}
    # Queued in the outbox (locations, the phone's chat) and replayed on resume (operator chat).
    assert {"location", "chat_from_phone", "chat_from_operator"} <= kinds, kinds
    assert undelivered_in_outage(live) == []


def test_resilient_delivers_every_kind_in_full(runs: dict[str, Live]) -> None:
    live = runs["resilient"]
    delivery = live.verdict("delivery")
    assert delivery["verdict"] == "pass" and delivery["measured"] == 1.0, delivery
    for kind, row in live.report["messages"].items():
        assert row["originated"] > 0, kind
        assert row["delivered"] == row["originated"] and row["lost"] == 0, (kind, row)
    assert live.verdict("duplicates")["verdict"] == "pass"


# -- beacon-1.0: the negative control ----------------------------------------------------------------

def test_the_shipped_client_loses_what_was_originated_during_the_outage(runs: dict[str, Live]) -> None:
    live = runs["beacon-1.0"]
    outcomes = live.report["outcomes"]
    assert outcomes["lost"] > 0 and outcomes["lost_during_reconnect"] > 0, outcomes
    loss = live.verdict("loss-reconnect")
    assert loss["verdict"] == "fail" and loss["measured"] > 0, loss
    assert "beacon-1.0" in loss["note"]
    delivery = live.verdict("delivery")
    assert delivery["verdict"] == "fail" and delivery["measured"] < 1.0, delivery
    # And it is the outage's doing: messages originated while the phones were dark never arrived.
    assert undelivered_in_outage(live), in_outage(live)
