"""Benchmark ``simulate``: bare SimPy against the fleet, in one run (issue 3, "Speed").

    python benchmarks/simulate.py [--phones N] [--hours H] [--profile NAME] [--policy P] [--seed S]

Prints, for the same process and machine:

(a) bare SimPy: events per second of a loop of timeout callbacks (the shape of the fleet's wire
    events) and of processes yielding timeouts (the shape of its network, lifecycle and battery
    processes), with as many events pending in the queue as the fleet had on average;
(b) the fleet: phone-hours simulated per CPU-second, wire events and all SimPy events per second,
    the time to build, run (model + drain) and judge, and the peak RSS;

then the ratio of the two (what one fleet event costs in bare SimPy events), and whether the target
"10,000 phones x 1 simulated hour in under 60 s on one core" is met: measured when the run is that
size, else extrapolated linearly from the measured phone-hours per CPU-second (the cost per phone
grows a little with the fleet, so an extrapolation from a small fleet is optimistic).

Times are CPU seconds of this (single-threaded) process unless marked wall. The default profile is
``city-commute`` (profiles/city-commute.toml) resized to ``--phones`` and ``--hours``; any profile
name or TOML path works.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Benchmark the checkout this file is in, not whichever copy happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import simpy

from simulator import checks, profile
from simulator.fleet import FleetConfig
from simulator.result import GeneratorStats, RunInfo
from simulator.simulate import Progress, build, record_stored, run_model

TARGET_PHONES = 10_000
TARGET_HOURS = 1.0
TARGET_S = 60.0


def _cpu() -> float:
    return time.process_time()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


# -- (a) bare SimPy ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bare:
    shape: str
    events: int
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.events / self.cpu_s if self.cpu_s > 0 else float("inf")


def _seed_times(pending: int, mean_s: float) -> list[float]:
    draw = random.Random(1)
    return [draw.expovariate(1.0 / mean_s) for _ in range(pending)]


def bare_callbacks(events: int, pending: int, mean_s: float = 10.0) -> Bare:
    """Timeouts whose callback schedules the next timeout: ``pending`` chains, ``events`` in all."""
    env = simpy.Environment()
    draw = random.Random(2).expovariate
    rate = 1.0 / mean_s
    left = [events]

    def fire(_event: simpy.Event) -> None:
        left[0] -= 1
        if left[0] > 0:
            env.timeout(draw(rate)).callbacks.append(fire)

    for delay in _seed_times(pending, mean_s):
        env.timeout(delay).callbacks.append(fire)
    return _timed("timeout + callback", env, events)


def bare_processes(events: int, pending: int, mean_s: float = 10.0) -> Bare:
    """``pending`` processes, each a loop yielding timeouts, ``events`` timeouts in all."""
    env = simpy.Environment()
    draw = random.Random(3).expovariate
    rate = 1.0 / mean_s
    left = [events]

    def loop(first: float) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(first)
        while left[0] > 0:
            left[0] -= 1
            yield env.timeout(draw(rate))

    for delay in _seed_times(pending, mean_s):
        env.process(loop(delay))
    return _timed("process yielding timeouts", env, events)


def _timed(shape: str, env: simpy.Environment, events: int) -> Bare:
    gc.collect()
    collecting = gc.isenabled()
    gc.disable()  # as the fleet runs
    try:
        start = _cpu()
        env.run()
        cpu = _cpu() - start
    finally:
        if collecting:
            gc.enable()
    return Bare(shape, events, cpu)


# -- (b) the fleet -----------------------------------------------------------------------------------

@dataclass
class Fleet:
    config: FleetConfig
    build_s: float = 0.0
    run_s: float = 0.0  # model + drain
    judge_s: float = 0.0  # reading the backend's store + the checker
    wall_s: float = 0.0
    wire_events: int = 0
    simpy_events: int | None = None
    mean_pending: float = 0.0
    peak_rss_mb: float = 0.0
    records: int = 0
    exit_code: int = 0

    @property
    def total_s(self) -> float:
        return self.build_s + self.run_s + self.judge_s

    @property
    def phone_hours(self) -> float:
        return self.config.devices * self.config.duration_s / 3600.0

    @property
    def events_per_s(self) -> float:
        events = self.simpy_events if self.simpy_events is not None else self.wire_events
        return events / self.run_s if self.run_s > 0 else float("inf")


def _processed(env: simpy.Environment) -> int | None:
    """SimPy events processed so far: every event is scheduled once with the next id of a counter,
    so the ids handed out less what is still queued (SimPy internals; None if they change)."""
    ids, queue = getattr(env, "_eid", None), getattr(env, "_queue", None)
    if ids is None or queue is None:
        return None
    return int(next(ids)) - len(queue)  # consumes one id: harmless, order is kept


def run_fleet(config: FleetConfig, report: Callable[[str], None]) -> Fleet:
    fleet = Fleet(config)
    gc.collect()
    wall = time.perf_counter()
    start = _cpu()
    sim = build(config)
    fleet.build_s = _cpu() - start
    pending: list[int] = []
    slices = [0]
    last = [time.perf_counter()]

    def on_progress(progress: Progress) -> None:
        slices[0] += 1
        pending.append(len(getattr(sim.env, "_queue", ())))
        if time.perf_counter() - last[0] >= 10.0:
            last[0] = time.perf_counter()
            report(f"  ... {progress.phase} {progress.model_s:,.0f} / {progress.end_s:,.0f} model s, "
                   f"{progress.events:,} wire events, {progress.wall_s:.0f} s")

    start = _cpu()
    reached = run_model(sim, on_progress)
    fleet.run_s = _cpu() - start
    processed = _processed(sim.env)
    # Less the one stop event SimPy schedules per env.run(until=...) call (one per progress slice).
    fleet.simpy_events = None if processed is None else processed - slices[0]
    fleet.wire_events = sim.wire.events
    fleet.mean_pending = sum(pending) / len(pending) if pending else 0.0
    start = _cpu()
    record_stored(sim)
    run = RunInfo(mode="simulate", profile=config.name, seed=config.seed, devices=config.devices,
                  operators=config.operators, duration_s=min(reached, config.duration_s),
                  policy=config.policy, speed=0.0, backend_url="model://reference",
                  backend_embedded=True)
    fleet.peak_rss_mb = _peak_rss_mb()
    result = checks.judge(sim.ledger, run, config.targets,
                          GeneratorStats(cpu_s=fleet.build_s + fleet.run_s, peak_rss_mb=fleet.peak_rss_mb))
    fleet.judge_s = _cpu() - start
    fleet.wall_s = time.perf_counter() - wall
    fleet.peak_rss_mb = _peak_rss_mb()
    fleet.records = len(sim.ledger)
    fleet.exit_code = result.exit_code
    return fleet


# -- main --------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phones", type=int, default=TARGET_PHONES,
                        help=f"fleet size (default {TARGET_PHONES:,}: the target itself)")
    parser.add_argument("--hours", type=float, default=TARGET_HOURS, help="simulated hours (default 1)")
    parser.add_argument("--profile", default="city-commute",
                        help="profile name or TOML path (default city-commute)")
    parser.add_argument("--policy", default=None, help="override the profile's client policy")
    parser.add_argument("--seed", type=int, default=None, help="override the profile's seed")
    parser.add_argument("--bare-events", type=int, default=1_000_000,
                        help="events per bare SimPy loop (default 1,000,000)")
    args = parser.parse_args(argv)
    if args.phones < 1 or args.hours <= 0 or args.bare_events < 1:
        parser.error("--phones, --hours and --bare-events must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = profile.load(args.profile, devices=args.phones, duration_s=args.hours * 3600.0,
                              policy=args.policy, seed=args.seed)
    except profile.ProfileError as error:
        print(f"benchmarks/simulate.py: {error}", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(line, flush=True)

    say(f"beacon-fleet simulate benchmark: Python {sys.version.split()[0]}, SimPy {simpy.__version__}")
    say(f"fleet: profile {config.name}, {config.devices:,} phones x {config.duration_s / 3600:g} h "
        f"(+ {config.drain_s:g} s drain), policy {config.policy}, seed {config.seed}")
    fleet = run_fleet(config, say)
    pending = max(1, round(fleet.mean_pending))
    bare = [bare_callbacks(args.bare_events, pending), bare_processes(args.bare_events, pending)]

    say("")
    say(f"(a) bare SimPy, {args.bare_events:,} events each, {pending:,} pending (the fleet's mean queue)")
    for b in bare:
        say(f"    {b.shape:<28} {b.rate:>12,.0f} events/s  ({b.cpu_s:.2f} s)")
    say("")
    say(f"(b) fleet: {config.devices:,} phones x {config.duration_s / 3600:g} h = "
        f"{fleet.phone_hours:,.0f} phone-hours")
    say(f"    build                        {fleet.build_s:8.2f} s")
    say(f"    run (model + drain)          {fleet.run_s:8.2f} s")
    say(f"    judge (store + checker)      {fleet.judge_s:8.2f} s")
    say(f"    total                        {fleet.total_s:8.2f} s CPU  ({fleet.wall_s:.2f} s wall)")
    say(f"    phone-hours per CPU-second   {fleet.phone_hours / fleet.total_s:12,.1f}  "
        f"(run only: {fleet.phone_hours / fleet.run_s:,.1f})")
    say(f"    wire events                  {fleet.wire_events:12,}  "
        f"({fleet.wire_events / fleet.run_s:,.0f}/s of run)")
    if fleet.simpy_events is not None:
        say(f"    all SimPy events             {fleet.simpy_events:12,}  "
            f"({fleet.simpy_events / fleet.run_s:,.0f}/s of run)")
    say(f"    ledger records               {fleet.records:12,}")
    say(f"    peak RSS                     {fleet.peak_rss_mb:10,.0f} MB")
    say(f"    verdicts exit code           {fleet.exit_code:12}")
    say("")
    callbacks = bare[0].rate
    say(f"ratio: bare timeout+callback / fleet = {callbacks / fleet.events_per_s:.1f} "
        f"(one fleet event costs as much CPU as {callbacks / fleet.events_per_s:.1f} bare SimPy events)")
    target_ph = TARGET_PHONES * TARGET_HOURS
    seconds = fleet.total_s * target_ph / fleet.phone_hours
    if fleet.phone_hours == target_ph:
        how = "measured"
    elif fleet.phone_hours > target_ph:
        how = f"scaled from {fleet.phone_hours:,.0f} phone-hours"
    else:
        how = f"extrapolated from {fleet.phone_hours:,.0f} phone-hours (optimistic: cost grows with size)"
    met = seconds < TARGET_S
    say(f"target: {TARGET_PHONES:,} phones x {TARGET_HOURS:g} h in < {TARGET_S:g} s on one core: "
        f"{seconds:.1f} s ({how}) -> {'MET' if met else 'NOT MET'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
