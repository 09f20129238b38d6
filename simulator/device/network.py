"""A phone's network: which link it is on, whether that link works, and what one message costs.

Two levels of trouble, as MODELS.md asks. *Packet loss* lives inside a link and is never an event:
:func:`transfer_delay` turns a Gilbert-Elliott loss process into TCP retransmission delay, so a
message on a lossy link arrives late rather than not at all. *Outages* are events: :class:`Network`
runs one SimPy process that sleeps until the next change of state and reports it through
``on_change(old, new)``. Changes are of three kinds:

- handover: the phone moves between Wi-Fi and cellular (a Poisson process, ``handover_mean_s``);
- outage: tunnels, elevators and dead zones (a Poisson process, ``outage_rate_per_h``), lasting a
  Pareto-distributed time capped at ``outage_max_s``;
- mass outage: a scheduled, shared failure (a cell or carrier going dark) that each phone joins with
  probability ``fraction``, decided by its own generator.

Outages combine: one arriving while the phone is already down extends the down period to the later
end, with no new event. A handover that falls due while the phone is down is deferred, and the phone
comes back up on the other family of link (one event, not two).

The schedule is a function of the generator and the config only: the process draws from three child
generators spawned at construction (handover, outage, mass outage), never from anything the rest of
the phone touches, and ``on_change`` cannot influence it. The link delay draws should come from a
different generator (``Concern.LINK``), so sending a message never shifts the outage schedule.

Cost: one SimPy timeout per change (about four an hour with the defaults, none while idle), and a
few scalar draws per message.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import simpy

Kind = Literal["wifi", "lte", "3g", "edge"]

MSS_BYTES = 1400  # payload per TCP segment (1500 MTU less IP/TCP headers and options)
RTO_MIN_S = 0.2  # Linux TCP_RTO_MIN (RFC 6298 allows 1 s; Linux and phones use 200 ms)
RTO_MAX_S = 120.0  # Linux TCP_RTO_MAX: a doubling RTO stops growing here
MAX_RETRIES = 15  # Linux tcp_retries2: after this many timeouts the connection is abandoned

# Gilbert-Elliott default: 1% loss in 3-packet bursts, the `tc netem loss gemodel` example in
# MODELS.md (loss = p/(p+r), mean burst = 1/r). ASSUME it for every preset without a loss figure.
GE_P = 0.0034
GE_R = 0.33


@dataclass(frozen=True, slots=True)
class NetworkPreset:
    """One kind of link, as the phone sees it.

    Attributes:
        name: Key in :data:`PRESETS`.
        kind: Radio family ("wifi", "lte", "3g", "edge"); the battery model keys RRC costs on it.
        down_kbps: Downlink bandwidth, kilobits per second.
        up_kbps: Uplink bandwidth, kilobits per second.
        latency_ms: One-way propagation and queueing delay, milliseconds.
        jitter_ms: Mean of the extra, exponentially distributed one-way delay, milliseconds.
        ge_p: Gilbert-Elliott probability of moving good -> bad per packet.
        ge_r: Gilbert-Elliott probability of moving bad -> good per packet (mean burst = 1/r).
    """

    name: str
    kind: Kind
    down_kbps: float
    up_kbps: float
    latency_ms: float
    jitter_ms: float
    ge_p: float = GE_P
    ge_r: float = GE_R
    # Derived once (every message reads them): the same expressions transfer_delay used to
    # evaluate per call, so the figures are bit-for-bit the same.
    latency_s: float = field(init=False, repr=False, compare=False)
    jitter_s: float = field(init=False, repr=False, compare=False)
    up_bps: float = field(init=False, repr=False, compare=False)
    down_bps: float = field(init=False, repr=False, compare=False)
    burst_start: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.down_kbps <= 0 or self.up_kbps <= 0:
            raise ValueError(f"{self.name}: bandwidth must be positive")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError(f"{self.name}: latency and jitter must be non-negative")
        if not (0.0 <= self.ge_p <= 1.0 and 0.0 < self.ge_r <= 1.0):
            raise ValueError(f"{self.name}: need 0 <= ge_p <= 1 and 0 < ge_r <= 1")
        setattr_ = object.__setattr__
        setattr_(self, "latency_s", self.latency_ms * 1e-3)
        setattr_(self, "jitter_s", self.jitter_ms * 1e-3)
        setattr_(self, "up_bps", self.up_kbps * 1000.0)
        setattr_(self, "down_bps", self.down_kbps * 1000.0)
        setattr_(self, "burst_start", self.loss_rate * self.ge_r)

    @property
    def loss_rate(self) -> float:
        """Stationary packet loss probability, p / (p + r)."""
        return self.ge_p / (self.ge_p + self.ge_r)

    @property
    def mean_burst(self) -> float:
        """Mean number of consecutive lost packets, 1 / r."""
        return 1.0 / self.ge_r

    @property
    def is_wifi(self) -> bool:
        """Whether a handover from this link goes to cellular (True) or to Wi-Fi (False)."""
        return self.kind == "wifi"


PRESETS: dict[str, NetworkPreset] = {
    preset.name: preset
    for preset in (
        # Network Link Conditioner (~): delays are set per direction, so they are one-way already.
        # Wi-Fi 40/33 Mbps, 1 ms; jitter ASSUME 2 ms (contention on a shared channel).
        NetworkPreset("wifi", "wifi", 40_000, 33_000, 1.0, 2.0),
        # NLC LTE 50/10 Mbps, 50 ms; jitter ASSUME 10% of latency, as for every preset below that
        # has no latency range.
        NetworkPreset("lte", "lte", 50_000, 10_000, 50.0, 5.0),
        # Chrome DevTools `NetworkManager.ts`: latency is added per request (a round trip), so the
        # one-way figure is half. Fast 4G 8.1 / 1.35 Mbps, 165 ms.
        NetworkPreset("fast-4g", "lte", 8_100, 1_350, 82.5, 8.25),
        # DevTools Slow 4G 1.44 Mbps / 675 kbps, 562.5 ms.
        NetworkPreset("slow-4g", "lte", 1_440, 675, 281.25, 28.125),
        # DevTools "3G" 400 / 400 kbps, 2000 ms.
        NetworkPreset("3g", "3g", 400, 400, 1000.0, 100.0),
        # Android emulator `-netspeed umts` 384 kbps, `-netdelay umts` 35-200 ms: latency = the
        # minimum, and the maximum taken as the 95th percentile of the exponential jitter, so
        # jitter mean = (max - min) / 3.
        NetworkPreset("umts", "3g", 384, 384, 35.0, 55.0),
        # NLC 3G 780 / 330 kbps, 100 ms.
        NetworkPreset("nlc-3g", "3g", 780, 330, 100.0, 10.0),
        # Android emulator edge 473.6 kbps, 80-400 ms (same reading as umts).
        NetworkPreset("edge", "edge", 473.6, 473.6, 80.0, 320.0 / 3.0),
        # NLC Edge 240 / 200 kbps, 400 ms.
        NetworkPreset("nlc-edge", "edge", 240, 200, 400.0, 40.0),
        # NLC "Very Bad Network" 1 Mbps, 500 ms, 10% loss (bursts of 3 ASSUMEd as above); kind
        # ASSUME 3g (a degraded cellular link).
        NetworkPreset("very-bad", "3g", 1_000, 1_000, 500.0, 50.0, 0.1 * GE_R / 0.9, GE_R),
    )
}


_NO_BURSTS = np.zeros(0, dtype=np.int64)
_NO_BURSTS.flags.writeable = False


def loss_bursts(preset: NetworkPreset, packets: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Draw the loss bursts that hit ``packets`` consecutive packets on ``preset``.

    An aggregate Gilbert-Elliott draw, with no loop over packets: a burst starts at a packet with
    probability ``loss_rate / mean_burst`` (binomial over the packets) and lasts a geometric number
    of packets with mean ``1/r``, so the expected number of lost packets is
    ``packets * p / (p + r)``. Each call starts from the stationary distribution.

    Args:
        preset: The link.
        packets: Number of packets sent.
        rng: The link generator.

    Returns:
        The length of each burst, in packets (empty, and read-only, when nothing was lost).
    """
    start = preset.burst_start
    if start <= 0.0 or packets <= 0:
        return _NO_BURSTS
    # One packet (most messages): a plain comparison, cheaper than a binomial draw.
    bursts = int(rng.random() < start) if packets == 1 else int(rng.binomial(packets, start))
    if bursts == 0:
        return _NO_BURSTS
    return rng.geometric(preset.ge_r, size=bursts).astype(np.int64, copy=False)


def _timeouts(bursts: npt.NDArray[np.int64], rto: float) -> float:
    """Seconds of timeouts for segments lost ``L`` times in a row: rto, 2 rto, 4 rto, ... each."""
    lost = np.minimum(bursts, MAX_RETRIES)
    doublings = max(0, math.ceil(math.log2(RTO_MAX_S / rto)))  # timeouts before the cap
    below = np.minimum(lost, doublings)
    return float(np.sum(rto * (2.0**below - 1.0) + RTO_MAX_S * (lost - below)))


def transfer_delay(
    preset: NetworkPreset,
    size_bytes: int,
    rng: np.random.Generator,
    congestion: float = 1.0,
    up: bool = True,
) -> float:
    """One-way delay of a message of ``size_bytes`` over ``preset``, in seconds.

    latency + jitter (exponential, mean ``jitter_ms``) + serialization (size over the bandwidth of
    the direction) + retransmissions. Loss is TCP's: each burst of ``L`` lost packets costs ``L``
    successive timeouts of ``RTO, 2 RTO, 4 RTO, ...`` (RTO = max(0.2 s, RTT + 4 x jitter), each
    capped at 120 s, at most 15), plus sending the lost segments again. This is pessimistic next to
    SACK and fast retransmit, which often recover a burst in one round trip; it makes lossy links
    show in the tail of the latency distribution, where the claims look.

    Args:
        preset: The phone's current link.
        size_bytes: Application bytes (a payload of 0 still costs one packet).
        rng: The link generator (not the one driving :class:`Network`).
        congestion: Crowding factor >= 1 from :meth:`Network.congestion`; multiplies latency and
            jitter and divides bandwidth.
        up: True for phone -> server (uplink bandwidth), False for server -> phone.

    Returns:
        Seconds from the first byte sent to the last byte received.
    """
    if size_bytes < 0:
        raise ValueError("size_bytes must be non-negative")
    if congestion <= 0:
        raise ValueError("congestion must be positive")
    # The hot path of the whole fleet (every frame): the arithmetic is written in the order the
    # model defines it (latency_ms * 1e-3 * congestion, ...), and x * 1.0 == x exactly, so
    # skipping the multiplications by an unit congestion changes no result.
    bits_per_s = preset.up_bps if up else preset.down_bps
    if congestion == 1.0:
        latency, jitter = preset.latency_s, preset.jitter_s
    else:
        latency, jitter = preset.latency_s * congestion, preset.jitter_s * congestion
        bits_per_s = bits_per_s / congestion
    delay = latency + size_bytes * 8.0 / bits_per_s
    if jitter > 0.0:
        delay += rng.exponential(jitter)
    start = preset.burst_start
    if size_bytes <= MSS_BYTES:  # one packet, most messages: a plain comparison (as loss_bursts)
        if start <= 0.0 or rng.random() >= start:
            return delay
        bursts = rng.geometric(preset.ge_r, size=1).astype(np.int64, copy=False)
    else:
        bursts = loss_bursts(preset, -(-size_bytes // MSS_BYTES), rng)
    if bursts.size:
        rto = max(RTO_MIN_S, 2.0 * latency + 4.0 * jitter)
        segment_bits = min(max(size_bytes, 1), MSS_BYTES) * 8.0
        delay += _timeouts(bursts, rto) + int(bursts.sum()) * segment_bits / bits_per_s
    return delay


@dataclass(frozen=True, slots=True)
class MassOutage:
    """A shared failure: from ``start_s`` for ``duration_s``, each phone down with ``fraction``."""

    start_s: float
    duration_s: float
    fraction: float

    def __post_init__(self) -> None:
        if self.start_s < 0 or self.duration_s <= 0 or not 0.0 <= self.fraction <= 1.0:
            raise ValueError("mass outage needs start_s >= 0, duration_s > 0, 0 <= fraction <= 1")


@dataclass(frozen=True, slots=True)
class Congestion:
    """Shared-cell crowding: from ``start_s`` to ``end_s`` delays scale by ``factor``."""

    start_s: float
    end_s: float
    factor: float

    def __post_init__(self) -> None:
        if self.end_s <= self.start_s or self.factor <= 0:
            raise ValueError("congestion needs end_s > start_s and factor > 0")


@dataclass(frozen=True)
class NetworkConfig:
    """What a phone's network does over time.

    Attributes:
        presets: Weights of the initial link by preset name; handovers pick the other family by the
            same weights (falling back to "wifi" or "lte" when a family has no weight).
        handover_mean_s: Mean time between Wi-Fi <-> cellular switches; None for never. ASSUME
            30 min (a phone carried about, leaving and joining Wi-Fi a few times a day or more).
        outage_rate_per_h: Outages per hour. ASSUME 1/h: over 20% of mobile connections are down
            more than 10 min a day (Baltrunas et al., IMC 2014); at ~26 s mean outage (below) that
            is ~0.9 outages an hour for that fifth of connections.
        outage_min_s: Pareto scale, the shortest outage (MODELS.md: 10 s).
        outage_alpha: Pareto shape. ASSUME 1.5 (heavy-tailed, finite mean 30 s before the cap).
        outage_max_s: Cap on one outage (MODELS.md: "a few minutes"; ASSUME 300 s).
        outage_causes: Weights of the cause label of an outage.
        mass_outages: Scheduled shared failures.
        congestion: Windows of shared-cell crowding.
    """

    # ASSUME: half the phones start on Wi-Fi, the rest on a spread of cellular links.
    presets: Mapping[str, float] = field(
        default_factory=lambda: {"wifi": 0.5, "lte": 0.25, "fast-4g": 0.1, "slow-4g": 0.1, "3g": 0.05}
    )
    handover_mean_s: float | None = 1800.0
    outage_rate_per_h: float = 1.0
    outage_min_s: float = 10.0
    outage_alpha: float = 1.5
    outage_max_s: float = 300.0
    # ASSUME: no source splits outages by cause.
    outage_causes: Mapping[str, float] = field(
        default_factory=lambda: {"tunnel": 0.3, "elevator": 0.2, "dead_zone": 0.5}
    )
    mass_outages: tuple[MassOutage, ...] = ()
    congestion: tuple[Congestion, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.presets) - set(PRESETS))
        if unknown:
            raise ValueError(f"unknown network presets {unknown}; known: {sorted(PRESETS)}")
        for name, weights in (("presets", self.presets), ("outage_causes", self.outage_causes)):
            if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError(f"{name} weights must be non-negative with a positive sum")
        if (self.handover_mean_s is not None and self.handover_mean_s <= 0) or self.outage_rate_per_h < 0:
            raise ValueError("need handover_mean_s > 0 (or None) and outage_rate_per_h >= 0")
        if not 0 < self.outage_min_s <= self.outage_max_s or self.outage_alpha <= 0:
            raise ValueError("need 0 < outage_min_s <= outage_max_s and outage_alpha > 0")


def outage_duration(config: NetworkConfig, rng: np.random.Generator) -> float:
    """Draw one outage length: Pareto(``outage_min_s``, ``outage_alpha``) capped at ``outage_max_s``."""
    pareto = config.outage_min_s * (1.0 - rng.random()) ** (-1.0 / config.outage_alpha)
    return float(min(config.outage_max_s, pareto))


def _choose(weights: Mapping[str, float], rng: np.random.Generator) -> str:
    """A weighted choice among a few names (one uniform draw, no numpy arrays)."""
    names = [name for name, w in weights.items() if w > 0]
    target = rng.random() * sum(weights[name] for name in names)
    for name in names:
        target -= weights[name]
        if target < 0:
            return name
    return names[-1]


@dataclass(frozen=True, slots=True)
class NetworkState:
    """The phone's network at one moment: its link, whether it carries traffic, and why."""

    preset: NetworkPreset
    up: bool
    cause: str  # "initial", "handover", "recovered", or an outage cause ("tunnel", "mass_outage", ...)


class Network:
    """One phone's network over time, as a single SimPy process.

    Args:
        env: The SimPy environment (virtual or wall-clock).
        rng: The phone's network generator; three children are spawned from it here.
        config: What the network does.
        on_change: Called with ``(old, new)`` at each change, after :attr:`state` is updated.

    Attributes:
        history: ``(t, state)`` for the initial state and every change since.
    """

    def __init__(
        self,
        env: simpy.Environment,
        rng: np.random.Generator,
        config: NetworkConfig,
        on_change: Callable[[NetworkState, NetworkState], None],
    ) -> None:
        self._env = env
        self._config = config
        self._on_change = on_change
        self._congestion = config.congestion
        self._handover_rng, self._outage_rng, mass_rng = rng.spawn(3)
        preset = PRESETS[_choose(config.presets, self._handover_rng)]
        self.state = NetworkState(preset, True, "initial")
        self.history: list[tuple[float, NetworkState]] = [(env.now, self.state)]
        self._process: simpy.Process | None = None
        now = env.now
        self._down_until = -math.inf
        self._handover_pending = False
        self._next_handover = self._draw_handover(now)
        self._next_outage, self._next_outage_len, self._next_cause = self._draw_outage(now)
        # Each phone decides once, in schedule order, whether each mass outage takes it down.
        affected = [m for m in config.mass_outages if mass_rng.random() < m.fraction]
        self._mass = sorted((m.start_s, m.duration_s) for m in affected if m.start_s >= now)

    def congestion(self, now: float) -> float:
        """The crowding factor at ``now``: the product of the active windows' factors (1.0 if none)."""
        windows = self._congestion
        if not windows:  # most profiles: asked for every message, so answer without a generator
            return 1.0
        return float(math.prod(w.factor for w in windows if w.start_s <= now < w.end_s))

    def start(self) -> simpy.Process:
        """Launch the process that applies changes; call once."""
        if self._process is not None:
            raise RuntimeError("network already started")
        self._process = self._env.process(self._run())
        return self._process

    def _draw_handover(self, now: float) -> float:
        mean = self._config.handover_mean_s
        return math.inf if mean is None else now + float(self._handover_rng.exponential(mean))

    def _draw_outage(self, now: float) -> tuple[float, float, str]:
        rate = self._config.outage_rate_per_h
        if rate <= 0:
            return math.inf, 0.0, ""
        start = now + float(self._outage_rng.exponential(3600.0 / rate))
        length = outage_duration(self._config, self._outage_rng)
        return start, length, _choose(self._config.outage_causes, self._outage_rng)

    def _other_family(self) -> NetworkPreset:
        wifi = not self.state.preset.is_wifi
        weights = {n: w for n, w in self._config.presets.items() if PRESETS[n].is_wifi == wifi and w > 0}
        if not weights:
            return PRESETS["wifi" if wifi else "lte"]
        return PRESETS[_choose(weights, self._handover_rng)]

    def _next_time(self) -> float:
        down_end = self._down_until if not self.state.up else math.inf
        mass = self._mass[0][0] if self._mass else math.inf
        return min(self._next_handover, self._next_outage, mass, down_end)

    def _step(self, now: float) -> NetworkState:
        """Apply everything due at ``now``; return the resulting state."""
        state = self.state
        arrivals: list[tuple[float, str]] = []
        while self._mass and self._mass[0][0] <= now:
            arrivals.append((self._mass.pop(0)[1], "mass_outage"))
        if self._next_outage <= now:
            arrivals.append((self._next_outage_len, self._next_cause))
            self._next_outage, self._next_outage_len, self._next_cause = self._draw_outage(now)
        for length, cause in arrivals:
            if state.up:
                state = NetworkState(state.preset, False, cause)
            self._down_until = max(self._down_until, now + length)
        if self._next_handover <= now:
            self._handover_pending = True
            self._next_handover = self._draw_handover(now)
        if not state.up and self._down_until <= now:
            state = NetworkState(state.preset, True, "recovered")
        if state.up and self._handover_pending:
            self._handover_pending = False
            cause = "recovered" if not self.state.up else "handover"
            state = NetworkState(self._other_family(), True, cause)
        return state

    def _run(self) -> Generator[simpy.Event, Any, None]:
        while True:
            when = self._next_time()
            if when == math.inf:
                return
            yield self._env.timeout(max(0.0, when - self._env.now))
            old = self.state
            new = self._step(self._env.now)
            if new != old:
                self.state = new
                self.history.append((self._env.now, new))
                self._on_change(old, new)
