"""``simulate``: a whole fleet in virtual time against the modelled backend, then the verdicts.

The run: build the backend model, the wire, ``devices`` phones and ``operators`` dispatchers; run
the model for ``duration_s``; stop originating and drain for ``drain_s`` so in-flight messages and
outboxes can land; read what the backend stored (the ``stored`` records); judge the ledger.
Virtual time runs as fast as the CPU allows; progress is reported through a callback every slice
of model time, so a caller can draw a progress bar and a Ctrl-C still leaves a judged, partial run.
"""

from __future__ import annotations

import gc
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import simpy

from simulator import checks, correlate
from simulator.correlate import Correlator
from simulator.device.phone import Phone
from simulator.fleet import FleetConfig, populate, stop_originating
from simulator.ledger import Ledger
from simulator.operators import Operator
from simulator.result import GeneratorStats, RunInfo, RunResult
from simulator.rng import Actor, Concern, generator
from simulator.transport.backend_model import BackendModel
from simulator.transport.modelled import Wire


@dataclass(frozen=True, slots=True)
class Watched:
    """Read-only handles on a running fleet, for live displays (the console's figures, the live view).

    Reports never use these: they are pure functions of the judged result.
    """

    ledger: Ledger
    phones: Sequence[Phone]
    operators: Sequence[Operator]


@dataclass(frozen=True)
class Progress:
    """What a progress display shows."""

    model_s: float
    end_s: float
    events: int
    wall_s: float
    phase: str  # "run" or "drain"
    fleet: Watched | None = None  # the running fleet, for displays that show more than time


@dataclass
class Simulation:
    """A built fleet, ready to run (kept apart from :func:`simulate` so tests can inspect it)."""

    config: FleetConfig
    env: simpy.Environment
    ledger: Ledger
    correlator: Correlator
    backend: BackendModel
    wire: Wire
    phones: list[Phone]
    operators: list[Operator]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (restored on exit, even on Ctrl-C).

    A fleet is millions of small, long-lived containers (ledger records, messages, events) and
    makes almost no reference cycles (a 2,000-phone hour leaves about ten), so the collector's
    full passes, each walking the whole heap, cost a third of the run and find nothing.
    Reference counting still frees everything else at once. The checker pauses it the same way.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def build(config: FleetConfig) -> Simulation:
    with _collector_paused():
        return _build(config)


def _build(config: FleetConfig) -> Simulation:
    env = simpy.Environment()
    ledger = Ledger()
    correlator = Correlator()
    backend = BackendModel(generator(config.seed, Actor.BACKEND, 0, Concern.SERVICE).random,
                           drop_rate=config.backend.drop_rate, gap_fill=config.backend.gap_fill)
    wire = Wire(env, backend, generator(config.seed, Actor.BACKEND, 1, Concern.SERVICE),
                config.wire)
    phone_ids = range(1, config.devices + 1)
    operator_ids = range(config.devices + 1, config.devices + config.operators + 1)
    for user_id in phone_ids:
        backend.add_user(user_id, staff=False)
    for user_id in operator_ids:
        backend.add_user(user_id, staff=True)
    phones, operators = populate(config, env, wire, ledger, correlator, phone_ids, operator_ids)
    return Simulation(config, env, ledger, correlator, backend, wire, phones, operators)


def run_model(sim: Simulation, on_progress: Callable[[Progress], None] | None = None,
              slices: int = 100) -> float:
    """Run for the duration then drain; return the model time reached (less if interrupted)."""
    with _collector_paused():
        return _run_model(sim, on_progress, slices)


def _run_model(sim: Simulation, on_progress: Callable[[Progress], None] | None, slices: int) -> float:
    config = sim.config
    started = time.monotonic()
    end = config.duration_s
    try:
        for phase, until in (("run", end), ("drain", end + config.drain_s)):
            begin = sim.env.now
            step = max((until - begin) / slices, 1e-3)
            t = begin
            while t < until:
                t = min(until, t + step)
                sim.env.run(until=t)
                if on_progress is not None:
                    on_progress(Progress(sim.env.now, end + config.drain_s, sim.wire.events,
                                         time.monotonic() - started, phase,
                                         Watched(sim.ledger, sim.phones, sim.operators)))
            if phase == "run":
                _stop_originating(sim)
    except KeyboardInterrupt:
        _stop_originating(sim)
    return float(sim.env.now)


def _stop_originating(sim: Simulation) -> None:
    stop_originating(sim.phones, sim.operators, sim.env.now, sim.config.duration_s)


def record_stored(sim: Simulation) -> None:
    """The drain's last step: what the backend holds, matched to origins."""
    with _collector_paused():
        _record_stored(sim)


def _record_stored(sim: Simulation) -> None:
    correlate.record_stored(sim.ledger, sim.correlator, sim.backend.stored_records())


def simulate(config: FleetConfig, on_progress: Callable[[Progress], None] | None = None,
             strict: bool = False, profile_name: str | None = None) -> tuple[RunResult, Ledger]:
    """Build, run, drain and judge one fleet."""
    started_at = datetime.now(UTC).replace(microsecond=0).isoformat()
    wall = time.monotonic()
    cpu = time.process_time()
    sim = build(config)
    reached = run_model(sim, on_progress)
    record_stored(sim)
    run = RunInfo(
        mode="simulate", profile=profile_name or config.name, seed=config.seed,
        devices=config.devices, operators=config.operators,
        duration_s=min(reached, config.duration_s), policy=config.policy, speed=0.0,
        backend_url="model://reference", backend_embedded=True, started_at=started_at,
        wall_s=round(time.monotonic() - wall, 3), shards=1,
    )
    stats = GeneratorStats(loop_lag_ms=None, cpu_s=round(time.process_time() - cpu, 3),
                           peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    return checks.judge(sim.ledger, run, config.targets, stats, strict=strict), sim.ledger
