"""The network model: link delays with Gilbert-Elliott loss, and the schedule of changes in virtual time."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import simpy

from simulator.device.network import (
    PRESETS,
    Congestion,
    MassOutage,
    Network,
    NetworkConfig,
    NetworkPreset,
    NetworkState,
    loss_bursts,
    outage_duration,
    transfer_delay,
)
from simulator.rng import Actor, Concern, generator

HOUR = 3600.0


def rng(seed: int, index: int = 0, concern: Concern = Concern.NETWORK) -> np.random.Generator:
    return generator(seed, Actor.DEVICE, index, concern)


class CountingEnvironment(simpy.Environment):
    """Counts processed events, to check the model sleeps instead of polling."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        super().step()


def run_network(
    config: NetworkConfig, seed: int, hours: float, index: int = 0, env: simpy.Environment | None = None
) -> tuple[Network, list[tuple[NetworkState, NetworkState]]]:
    env = env or simpy.Environment()
    changes: list[tuple[NetworkState, NetworkState]] = []
    network = Network(env, rng(seed, index), config, lambda old, new: changes.append((old, new)))
    network.start()
    env.run(until=hours * HOUR)
    return network, changes


def ignore(old: NetworkState, new: NetworkState) -> None:
    pass


def down_periods(history: list[tuple[float, NetworkState]], end: float) -> list[float]:
    periods, since = [], None
    for t, state in history:
        if not state.up and since is None:
            since = t
        elif state.up and since is not None:
            periods.append(t - since)
            since = None
    if since is not None:
        periods.append(end - since)
    return periods


# ---- presets and the delay model ---------------------------------------------------------------


def test_presets_carry_the_sourced_figures() -> None:
    assert {"wifi", "lte", "fast-4g", "slow-4g", "3g", "edge", "very-bad"} <= set(PRESETS)
    assert (PRESETS["fast-4g"].down_kbps, PRESETS["fast-4g"].up_kbps) == (8_100, 1_350)
    assert PRESETS["slow-4g"].latency_ms == pytest.approx(562.5 / 2)  # DevTools RTT, halved
    assert PRESETS["lte"].latency_ms == 50.0  # NLC, one-way
    assert PRESETS["very-bad"].loss_rate == pytest.approx(0.10)
    assert PRESETS["lte"].loss_rate == pytest.approx(0.01, rel=0.05)
    assert PRESETS["lte"].mean_burst == pytest.approx(3.0, rel=0.02)
    for preset in PRESETS.values():
        assert preset.kind in ("wifi", "lte", "3g", "edge")


def test_preset_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        NetworkPreset("x", "lte", 0, 1, 1, 1)
    with pytest.raises(ValueError):
        NetworkPreset("x", "lte", 1, 1, 1, 1, ge_p=0.1, ge_r=0.0)


def test_lossless_delay_is_latency_plus_serialization_plus_nonnegative_jitter() -> None:
    preset = replace(PRESETS["slow-4g"], ge_p=0.0)
    r = rng(1, concern=Concern.LINK)
    up = [transfer_delay(preset, 14_000, r, up=True) for _ in range(20_000)]
    down = [transfer_delay(preset, 14_000, r, up=False) for _ in range(20_000)]
    floor_up = 0.28125 + 14_000 * 8 / 675_000
    floor_down = 0.28125 + 14_000 * 8 / 1_440_000
    assert min(up) >= floor_up and min(down) >= floor_down
    # Jitter is exponential with mean jitter_ms.
    assert np.mean(up) - floor_up == pytest.approx(0.028125, rel=0.05)
    assert np.mean(down) < np.mean(up)  # the uplink is the slower direction here


def test_loss_bursts_match_gilbert_elliott_rate_and_burst_length() -> None:
    r = rng(2, concern=Concern.LINK)
    for name in ("lte", "very-bad"):
        preset = PRESETS[name]
        packets, trials = 50, 40_000
        bursts = [b for _ in range(trials) for b in loss_bursts(preset, packets, r)]
        lost = sum(bursts)
        # Loss rate p/(p+r); tolerance is ~6 standard errors of a clustered count.
        expected = preset.loss_rate * packets * trials
        assert lost == pytest.approx(expected, rel=0.06)
        assert np.mean(bursts) == pytest.approx(preset.mean_burst, rel=0.06)
        # Single-packet messages take the scalar path; same rate.
        singles = sum(sum(loss_bursts(preset, 1, r)) for _ in range(400_000))
        assert singles == pytest.approx(preset.loss_rate * 400_000, rel=0.1)


def test_loss_shows_as_retransmission_delay() -> None:
    lossy = PRESETS["very-bad"]
    clean = replace(lossy, ge_p=0.0)
    n = 20_000
    r1, r2 = rng(3, concern=Concern.LINK), rng(4, concern=Concern.LINK)
    with_loss = np.array([transfer_delay(lossy, 3_000, r1) for _ in range(n)])
    without = np.array([transfer_delay(clean, 3_000, r2) for _ in range(n)])
    assert with_loss.mean() > without.mean() + 0.5  # 10% loss: many RTOs of >= 1 s (RTT 1 s)
    # A stalled message costs at least one RTO (>= 0.2 s) over the lossless range.
    stalled = with_loss > without.max()
    start = lossy.loss_rate * lossy.ge_r  # a burst starts at a packet with this probability
    assert stalled.mean() == pytest.approx(1 - (1 - start) ** 3, rel=0.1)  # 3 packets: ~9.6%
    assert with_loss.max() <= 15 * 120 + 10  # retries and RTO are capped


def test_congestion_raises_delay() -> None:
    preset = PRESETS["lte"]
    r1, r2 = rng(5, concern=Concern.LINK), rng(5, concern=Concern.LINK)
    calm = [transfer_delay(preset, 50_000, r1, 1.0) for _ in range(5_000)]
    crowded = [transfer_delay(preset, 50_000, r2, 3.0) for _ in range(5_000)]
    # Same draws, so each crowded delay is at least the calm one; the mean roughly triples.
    assert all(c >= k for c, k in zip(crowded, calm, strict=True))
    assert np.median(crowded) == pytest.approx(3 * np.median(calm), rel=0.05)


def test_transfer_delay_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        transfer_delay(PRESETS["lte"], -1, rng(1))
    with pytest.raises(ValueError):
        transfer_delay(PRESETS["lte"], 10, rng(1), congestion=0.0)


def test_transfer_delay_is_cheap() -> None:
    import time

    r = rng(6, concern=Concern.LINK)
    preset = PRESETS["lte"]
    started = time.process_time()
    for _ in range(20_000):
        transfer_delay(preset, 600, r)
    per_call = (time.process_time() - started) / 20_000
    assert per_call < 20e-6  # a few microseconds in practice; generous for slow CI machines


# ---- the schedule --------------------------------------------------------------------------------


def test_same_seed_same_schedule_different_seed_different() -> None:
    mass = tuple(MassOutage(3600.0 * k + 1800.0, 60.0, 0.5) for k in range(12))
    config = NetworkConfig(handover_mean_s=600.0, outage_rate_per_h=3.0, mass_outages=mass)
    a, _ = run_network(config, seed=7, hours=24)
    b, _ = run_network(config, seed=7, hours=24)
    c, _ = run_network(config, seed=8, hours=24)
    assert len(a.history) > 20
    assert a.history == b.history
    assert a.history != c.history


def test_schedule_ignores_what_the_callback_does() -> None:
    config = NetworkConfig(handover_mean_s=600.0, outage_rate_per_h=3.0)
    env = simpy.Environment()
    r = rng(9)

    def draw(old: NetworkState, new: NetworkState) -> None:
        r.random()  # the callback draws from the parent generator

    noisy = Network(env, r, config, draw)
    noisy.start()
    env.run(until=24 * HOUR)
    quiet, _ = run_network(config, seed=9, hours=24)
    assert noisy.history == quiet.history


def test_on_change_reports_old_and_new_and_history_matches() -> None:
    network, changes = run_network(NetworkConfig(handover_mean_s=600.0, outage_rate_per_h=3.0), 10, 12)
    assert len(changes) == len(network.history) - 1
    assert network.history[0][1].cause == "initial"
    for (old, new), (_, recorded), (_, previous) in zip(
        changes, network.history[1:], network.history[:-1], strict=True
    ):
        assert new == recorded and old == previous and old != new
    assert network.state == network.history[-1][1]


def test_outage_rate_matches_config() -> None:
    rate, hours = 2.0, 1000.0
    config = NetworkConfig(handover_mean_s=None, outage_rate_per_h=rate)
    network, _ = run_network(config, seed=11, hours=hours)
    downs = sum(1 for _, s in network.history if not s.up)
    # Poisson count: sd = sqrt(2000) ~ 45; outages that arrive during another merge into it (~1.5%
    # of the time is spent down), so allow 5 sd around the rate.
    expected = rate * hours
    assert abs(downs - expected) < 5 * math.sqrt(expected)
    assert {s.cause for _, s in network.history if not s.up} == {"tunnel", "elevator", "dead_zone"}


def test_outage_durations_are_bounded_and_heavy_tailed() -> None:
    config = NetworkConfig()
    r = rng(12)
    draws = np.array([outage_duration(config, r) for _ in range(50_000)])
    assert draws.min() >= config.outage_min_s
    assert draws.max() <= config.outage_max_s
    p50, p99 = np.percentile(draws, [50, 99])
    assert p50 == pytest.approx(10 * 2 ** (1 / 1.5), rel=0.05)  # Pareto median
    assert p99 / p50 > 8  # heavy tail (Pareto 1.5: ~13.6)
    # The same shape in the schedule itself.
    network, _ = run_network(NetworkConfig(handover_mean_s=None, outage_rate_per_h=4.0), 13, 500)
    periods = np.array(down_periods(network.history, 500 * HOUR))
    assert periods.min() >= config.outage_min_s
    assert np.percentile(periods, 99) / np.percentile(periods, 50) > 8


def test_outage_during_outage_extends_it() -> None:
    config = NetworkConfig(
        handover_mean_s=None,
        outage_rate_per_h=0.0,
        mass_outages=(
            MassOutage(100.0, 200.0, 1.0),
            MassOutage(200.0, 300.0, 1.0),
            MassOutage(250.0, 10.0, 1.0),
        ),
    )
    network, changes = run_network(config, 14, 1)
    assert [(t, s.up) for t, s in network.history] == [(0.0, True), (100.0, False), (500.0, True)]
    assert changes[0][1].cause == "mass_outage" and changes[1][1].cause == "recovered"


def test_handover_alternates_wifi_and_cellular() -> None:
    config = NetworkConfig(handover_mean_s=300.0, outage_rate_per_h=0.0)
    network, changes = run_network(config, 15, 24)
    assert len(changes) > 200  # ~288 expected
    families = [s.preset.is_wifi for _, s in network.history]
    assert all(a != b for a, b in itertools.pairwise(families))
    assert {s.cause for _, s in network.history[1:]} == {"handover"}
    assert {s.preset.name for _, s in network.history} - {"wifi"}  # some cellular presets used


def test_handover_is_deferred_during_an_outage() -> None:
    config = NetworkConfig(
        handover_mean_s=60.0, outage_rate_per_h=0.0, mass_outages=(MassOutage(600.0, 3000.0, 1.0),)
    )
    network, _ = run_network(config, 16, 2)
    during = [(t, s) for t, s in network.history if 600.0 <= t <= 3600.0]
    assert [s.up for _, s in during] == [False, True]  # no handover events while down
    (_, down), (t_up, up) = during
    assert t_up == 3600.0 and down.preset.is_wifi != up.preset.is_wifi  # came back on the other family


def test_mass_outage_takes_about_fraction_of_phones_down() -> None:
    fraction, phones = 0.3, 1000
    config = NetworkConfig(
        handover_mean_s=None, outage_rate_per_h=0.0, mass_outages=(MassOutage(600.0, 300.0, fraction),)
    )
    env = simpy.Environment()
    networks = [Network(env, rng(17, k), config, lambda old, new: None) for k in range(phones)]
    for network in networks:
        network.start()
    env.run(until=599.0)
    assert all(n.state.up for n in networks)
    env.run(until=700.0)
    down = sum(1 for n in networks if not n.state.up)
    sd = math.sqrt(phones * fraction * (1 - fraction))  # binomial, ~14.5
    assert abs(down - phones * fraction) < 4.5 * sd
    assert all(n.state.cause == "mass_outage" for n in networks if not n.state.up)
    env.run(until=1000.0)
    assert all(n.state.up for n in networks)


def test_congestion_windows() -> None:
    config = NetworkConfig(congestion=(Congestion(100.0, 200.0, 2.0), Congestion(150.0, 300.0, 1.5)))
    network = Network(simpy.Environment(), rng(18), config, lambda old, new: None)
    assert network.congestion(50.0) == 1.0
    assert network.congestion(120.0) == 2.0
    assert network.congestion(160.0) == 3.0
    assert network.congestion(250.0) == 1.5
    assert network.congestion(300.0) == 1.0


def test_only_state_changes_cost_events() -> None:
    env = CountingEnvironment()
    phones, hours = 200, 5.0
    networks = [Network(env, rng(19, k), NetworkConfig(), lambda old, new: None) for k in range(phones)]
    for network in networks:
        network.start()
    env.run(until=hours * HOUR)
    changes = sum(len(n.history) - 1 for n in networks)
    per_phone_hour = env.steps / (phones * hours)
    # Defaults: 2 handovers + 1 outage (2 changes) an hour; no polling in between.
    assert per_phone_hour < 8
    assert env.steps <= 2 * changes + 3 * phones  # one timeout per change, plus start-up


def test_quiet_network_schedules_nothing() -> None:
    env = CountingEnvironment()
    network = Network(env, rng(20), NetworkConfig(handover_mean_s=None, outage_rate_per_h=0.0), ignore)
    network.start()
    env.run(until=1000 * HOUR)
    assert env.steps <= 3 and len(network.history) == 1  # process start and the run's end only


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="unknown network presets"):
        NetworkConfig(presets={"5g": 1.0})
    with pytest.raises(ValueError):
        NetworkConfig(outage_min_s=400.0, outage_max_s=300.0)
    with pytest.raises(ValueError):
        MassOutage(0.0, 10.0, 1.5)
    with pytest.raises(ValueError):
        Congestion(10.0, 5.0, 2.0)
    network = Network(simpy.Environment(), rng(21), NetworkConfig(), ignore)
    network.start()
    with pytest.raises(RuntimeError):
        network.start()
