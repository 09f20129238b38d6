"""Determinism: same config and seed, same report; phone ``k`` is the same phone whatever the fleet.

Every random draw comes from a per-device generator spawned from the run seed (ARCHITECTURE.md), so

- one config and seed give the same report.json twice over (wall-clock fields aside);
- phone ``k``'s model-driven timeline (its network changes, its app's lifecycle changes and its
  panic presses) is the same in a fleet of 10 and of 1,000: the other 990 phones share its backend
  and operators, but never its generators;
- another seed gives another timeline.

The fleet here keeps the timeline model-driven on purpose: phones do not cancel, operators resolve
nothing within the run and batteries start full, so nothing the backend or operators do (which does
depend on the fleet's size) feeds back into a lifecycle or a press.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from simulator.device.lifecycle import LifecycleConfig
from simulator.device.mobility import Area
from simulator.device.network import MassOutage, NetworkConfig
from simulator.device.user import UserConfig
from simulator.fleet import FleetConfig, Group
from simulator.ledger import ORIGINATED, STATE, Record
from simulator.operators import OperatorConfig
from simulator.report.json_report import render_json
from simulator.simulate import build, run_model, simulate

SEED = 2024
TEN_MINUTES = 600.0


def fleet(devices: int, seed: int = SEED, duration_s: float = TEN_MINUTES) -> FleetConfig:
    """A mixed fleet: walkers and transit riders, outages and handovers, iOS and Android, panics."""
    user = UserConfig(panic_rate_per_h=3.0, cancel_probability=0.0)
    return FleetConfig(
        name="determinism", devices=devices, operators=2, duration_s=duration_s, seed=seed,
        policy="resilient", area=Area(51.5074, -0.1278, 4000.0), drain_s=30.0,
        groups=(
            Group("walkers", 0.5, travel="walk", user=user, battery_pct=(90.0, 100.0),
                  network=NetworkConfig(outage_rate_per_h=4.0, handover_mean_s=600.0),
                  lifecycle=LifecycleConfig(mean_background_s=300.0)),
            Group("transit", 0.5, travel="transit", mobility="gauss_markov", user=user,
                  battery_pct=(90.0, 100.0),
                  network=NetworkConfig(outage_rate_per_h=8.0,
                                        presets={"lte": 0.5, "3g": 0.3, "wifi": 0.2},
                                        mass_outages=(MassOutage(200.0, 60.0, 0.5),)),
                  lifecycle=LifecycleConfig(start_foreground=True, mean_background_s=240.0,
                                            kill_probability_per_hour=0.2)),
        ),
        device_models={"iPhone 15": 0.5, "Galaxy S24": 0.5},
        operator=OperatorConfig(resolve_after=(36_000.0, 0.1)),  # nothing resolves within the run
    )


def normalised_report(config: FleetConfig) -> dict[str, Any]:
    """report.json for one simulate() run, with what the wall clock and the process decide removed."""
    result, _ = simulate(config)
    document: dict[str, Any] = json.loads(render_json(result))
    for key in ("started_at", "wall_s"):
        document["run"].pop(key)
    for key in ("cpu_s", "peak_rss_mb"):
        document["generator"].pop(key)
    for verdict in document["verdicts"]:
        if verdict["id"] == "memory":  # the process's peak RSS: it only grows within one process
            verdict.pop("measured")
            verdict.pop("note")
    return document


def timelines(config: FleetConfig, phones: range) -> dict[str, list[Record]]:
    """Each phone's network and lifecycle changes and its panic originations, in ledger order."""
    sim = build(config)
    run_model(sim)
    names = {f"phone-{k}" for k in phones}
    found: dict[str, list[Record]] = {name: [] for name in names}
    for record in sim.ledger.records:
        if record[0] == STATE and record[2] in names and record[3] in ("network", "lifecycle"):
            found[record[2]].append(record)
        elif record[0] == ORIGINATED and record[3] == "create" and record[4] in names:
            found[record[4]].append(record)
    return found


def test_same_config_and_seed_give_the_same_report() -> None:
    config = fleet(40, duration_s=900.0)
    first = normalised_report(config)
    second = normalised_report(config)
    assert first["messages"], "the fleet must originate messages, or there is nothing to compare"
    assert first == second
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


@pytest.fixture(scope="module")
def small_and_large() -> tuple[dict[str, list[Record]], dict[str, list[Record]]]:
    phones = range(10)
    return timelines(fleet(10), phones), timelines(fleet(1000), phones)


def test_phone_k_has_the_same_timeline_in_a_fleet_of_10_and_of_1000(
        small_and_large: tuple[dict[str, list[Record]], dict[str, list[Record]]]) -> None:
    small, large = small_and_large
    for name in sorted(small):
        assert small[name] == large[name], name
    # Not vacuous: the phones changed network and lifecycle, lost the network, and pressed panic.
    records = [r for found in small.values() for r in found]
    assert sum(r[0] == ORIGINATED for r in records) >= 2
    assert sum(r[0] == STATE and r[3] == "network" and r[4] == "down" for r in records) >= 5
    assert sum(r[0] == STATE and r[3] == "lifecycle" for r in records) >= 20


def test_another_seed_gives_another_timeline(
        small_and_large: tuple[dict[str, list[Record]], dict[str, list[Record]]]) -> None:
    small, _ = small_and_large
    other = timelines(fleet(10, seed=SEED + 1), range(10))
    assert other != small
    differing = [name for name in small if other[name] != small[name]]
    assert len(differing) >= 8, differing  # not one stray draw: (nearly) every phone is another one
