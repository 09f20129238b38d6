"""Benchmark ``run``: how many live phones one fleet process holds, beside a bare client (issue 4, "Speed").

    python benchmarks/run.py [--steps 500,1000,2000,5000,10000] [--window 45] [--alert-share 0.1]
                             [--connect-rate 100] [--settle 5] [--loop auto] [--keep-going] [--quick]

One reference backend (``beacon-fleet backend serve --port 0``, one process, SQLite, in-memory
channel layer) is started on loopback and ``backend provision`` makes a fresh set of users for every
step. Then, for each step of N phones:

(a) the fleet: N phones built through the real code path (``simulator.fleet.populate`` on a
    ``WallClock`` with a ``LiveWire``), from a benchmark profile made here: all phones on Wi-Fi and
    in the foreground, no outages, no handovers, the ``resilient`` policy, heartbeats every 30 s, and
    ``--alert-share`` of the phones pressing panic as they start, so that they stream a location
    every 30 s over the alert's channels (alert, location and chat sockets: four sockets each);
(b) a bare client: plain ``websockets`` (asyncio API, the same event loop), N user sockets to the
    same routes with the same tokens, ``{"type": "ping"}`` every 30 s on each, and for the same
    number of phones an alert created over HTTP, its three sockets, and a ``location_update`` every
    30 s on the location socket, on the same connect schedule as the fleet.

Each side runs in a child process of its own (so CPU and RSS are its own), after the backend has
gone idle, with tokens from one login per step. Each side connects over ``start_spread`` =
max(min spread, N / --connect-rate) seconds, settles, then is measured for ``--window`` seconds:
its loop lag (the fleet: the ``WallClock``'s own histogram, ``clock.loop_lag_ms``; both: a 10 ms
asyncio timer measuring its own lateness), the messages it sent (heartbeats + locations) and the
frames it received per second, its own CPU (``process_time``), CPU per message sent, time in the
garbage collector, RSS growth per phone, and the backend's CPU (from ``/proc``) in the same window;
and whether every socket stayed open. A step is *held* when every socket was open at the start
and the end of the window, none closed during it, and loop lag p99 < 5 ms.

Printed last: the largest step each side held, and whether the targets are met: at least 10,000
phones held by one fleet process, and the fleet's CPU per message within 3x of the bare client's
(at the largest step both sides ran). The exit status is 0 either way (a benchmark, not a test).

The ramp stops after the first step the fleet does not hold (``--keep-going`` runs every step).
Run time: ``--quick`` (steps 200 and 500, 10 s spread, 30 s windows) about 3.5 minutes; the default
(500 ... 10,000, 45 s windows, 100 connects/s) about 18 minutes when every step runs. Event loop:
uvloop's for both sides when it is installed (as ``beacon-fleet run`` uses), else asyncio's.
Needs about 1.3 file descriptors per phone in this process (and as many in the backend): the soft
limit is raised to the hard limit.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import fields
from importlib.metadata import version
from pathlib import Path
from typing import Any

# Benchmark the checkout this file is in, not whichever copy happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

# Sibling modules (the script's own directory is on sys.path when it is run).
from bare import HEARTBEAT_S, run_bare
from measure import (
    TARGET_LAG_P99_MS,
    GcWatch,
    LagProbe,
    Side,
    _lag_histogram,
    backend_usage,
    close_window,
    open_window,
    own_rss_mb,
    raise_fd_limit,
)

from simulator import profile
from simulator.clock import WallClock
from simulator.correlate import Correlator
from simulator.fleet import FleetConfig, populate
from simulator.hdr import Histogram
from simulator.ledger import ATTEMPT, CONNECTION, HEARTBEAT, Ledger
from simulator.protocol.actions import LOCATION
from simulator.run import EmbeddedBackend, RunError, login_all, settle_heap
from simulator.transport.live import OPEN, LiveWire

TARGET_PHONES = 10_000
TARGET_CPU_RATIO = 3.0
SLICE_S = 5.0  # the fleet's clock runs in slices of this many seconds (progress, bounded waits)
STEP_GRACE_S = 180.0  # a side's step is cut off this long after it should have ended
IDLE_WAIT_S = 90.0  # how long to wait for the backend to go idle between two sides
BACKEND_SATURATED = 0.85  # share of one core above which the (single-process) backend is the limit
DEFAULT_STEPS = (500, 1000, 2000, 5000, 10_000)
QUICK_STEPS = (200, 500)


# -- the benchmark profile -----------------------------------------------------------------------------

def bench_config(phones: int, alert_share: float, spread_s: float, seed: int) -> FleetConfig:
    """All foreground on Wi-Fi, no trouble; ``alert_share`` of the phones press panic while starting.

    Panic presses are a Poisson process over ``duration_s``; the phone keeps only presses made
    before it starts (they fire at its start) and the first after. With the duration set to the
    connect spread, a phone has pressed panic by then with probability ``1 - exp(-rate * spread)``:
    the rate is chosen so that this is ``alert_share``. No operator and no cancel: alerts stay open.
    """
    horizon = max(spread_s, 1.0)
    rate_per_h = -math.log1p(-alert_share) / horizon * 3600.0 if alert_share > 0 else 0.0
    text = f"""
name = "bench-run"
description = "benchmarks/run.py: heartbeats every 30 s, locations every 30 s for phones in an alert"
devices = {phones}
operators = 0
duration = {horizon!r}
seed = {seed}
policy = "resilient"
drain = 0
start_spread = {spread_s!r}
[area]
latitude = 51.5074
longitude = -0.1278
radius_m = 2000
[device_models]
"iPhone 15" = 0.5
"Galaxy S24" = 0.5
[network]
presets = {{ wifi = 1.0 }}
handover_mean = false
outage_rate_per_h = 0.0
[lifecycle]
start_foreground = true
mean_foreground = "10000h"
kill_probability_per_hour = 0.0
[user]
panic_rate_per_h = {rate_per_h!r}
chat_max = 0
cancel_probability = 0.0
[[groups]]
name = "bench"
share = 1.0
travel = "walk"
mobility = "random_waypoint"
sky = "open"
battery_pct = [95, 100]
"""
    return profile.loads(text, source="<benchmarks/run.py profile>", name="bench-run")


# -- (a) the fleet -------------------------------------------------------------------------------------

class CountingWire(LiveWire):
    """The live wire, also counting socket events (frames, opens, closes) while ``counting``."""

    received = 0
    counting = False

    def inject(self, call: Callable[[float], None]) -> None:
        if self.counting:
            self.received += 1
        super().inject(call)


async def run_fleet(config: FleetConfig, url: str, tokens: dict[int, str], user_ids: list[int],
                    settle_s: float, window_s: float, backend_pid: int | None
                    ) -> Side:
    """One step of the fleet (``Side.alerting``: the users whose phone is in an alert)."""
    side = Side("fleet", config.devices)
    gc.collect()
    rss0 = own_rss_mb()
    clock = WallClock(speed=1.0)
    wire = CountingWire(clock, url, tokens)
    ledger, correlator = Ledger(), Correlator()
    probe = LagProbe()
    watch = GcWatch()
    try:
        watch.__enter__()
        phones, _ = populate(config, clock, wire, ledger, correlator, user_ids, [])
        settle_heap()  # as `beacon-fleet run` does after building its fleet
        probe.start()
        started = time.monotonic()
        ramp_end = config.start_spread_s + settle_s
        while clock.now < ramp_end:
            await clock.run(until=min(ramp_end, clock.now + SLICE_S))
        side.ramp_s = time.monotonic() - started
        side.alerting = [p.user_id for p in phones if p.client.alert_open]
        side.alerts = len(side.alerting)
        side.sockets_wanted = side.phones + 3 * side.alerts
        side.open_at_start = sum(1 for s in wire.open_sockets.values() if s.state == OPEN)
        problems_before = dict(wire.problems)
        clock.loop_lag_ms = _lag_histogram()
        probe.reset()
        watch.reset()
        t0 = float(clock.now)
        window = open_window(backend_pid)
        wire.counting = True
        while clock.now < t0 + window_s:
            await clock.run(until=min(t0 + window_s, clock.now + SLICE_S))
        close_window(side, window, backend_pid)
        side.gc_ms = (watch.total_ms, watch.max_ms, watch.collections)
        wire.counting = False
        t1 = float(clock.now)
        side.open_at_end = sum(1 for s in wire.open_sockets.values() if s.state == OPEN)
        side.rss_growth_mb = own_rss_mb() - rss0
        side.lag_ms, side.probe_ms = clock.loop_lag_ms, probe.lag_ms
        side.problems = {k: v - problems_before.get(k, 0) for k, v in wire.problems.items()
                         if v != problems_before.get(k, 0)}
        for record in ledger.records:
            kind, t = record[0], record[1]
            if not t0 <= t < t1:
                continue
            if kind == HEARTBEAT:
                side.pings += 1
            elif kind == ATTEMPT and record[3] == "ws" and record[4] == LOCATION:
                side.locations += 1
            elif kind == CONNECTION and record[4] in ("closed", "refused", "half_open"):
                side.closes += 1
        side.frames_in = wire.received
    finally:
        watch.__exit__()
        probe.stop()
        await wire.aclose()
    return side


# -- one step: each side in a process of its own -------------------------------------------------------

def side_to_json(side: Side) -> dict[str, Any]:
    data = {f.name: getattr(side, f.name) for f in fields(Side)}
    data["lag_ms"], data["probe_ms"] = side.lag_ms.to_dict(), side.probe_ms.to_dict()
    return data


def side_from_json(data: dict[str, Any]) -> Side:
    data = {**data, "lag_ms": Histogram.from_dict(data["lag_ms"]),
            "probe_ms": Histogram.from_dict(data["probe_ms"]), "gc_ms": tuple(data["gc_ms"])}
    return Side(**data)


def run_on_loop(coro: Coroutine[Any, Any, Side], loop: str) -> Side:
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


def child_main(which: str, plan_path: Path, out: Path) -> int:
    """Run one side of one step (the plan is a JSON file the parent wrote); write its Side."""
    plan = json.loads(plan_path.read_text())
    config = bench_config(plan["phones"], plan["alert_share"], plan["spread_s"], plan["seed"])
    tokens = {int(k): str(v) for k, v in plan["tokens"].items()}
    users = [int(u) for u in plan["users"]]
    args = (config, plan["url"], tokens, users)
    timing = (plan["settle_s"], plan["window_s"], plan["backend_pid"])
    try:
        if which == "fleet":
            side = run_on_loop(run_fleet(*args, *timing), plan["loop"])
        else:
            side = run_on_loop(run_bare(*args, [int(u) for u in plan["alerting"]], *timing), plan["loop"])
    except (RunError, httpx.HTTPError, OSError) as error:  # the backend gave out: say so, in one line
        side = Side(which, config.devices)
        side.error = f"{type(error).__name__}: {error}".rstrip(": ")
    out.write_text(json.dumps(side_to_json(side)))
    return 0


def wait_idle(backend_pid: int | None, say: Callable[[str], None], limit_s: float = IDLE_WAIT_S) -> None:
    """Wait (at most ``limit_s``) until the backend uses under 10% of a core over a second, so that
    one side does not inherit the other's backlog."""
    started = time.monotonic()
    before = backend_usage(backend_pid)[0]
    while time.monotonic() - started < limit_s:
        time.sleep(1.0)
        now = backend_usage(backend_pid)[0]
        if now - before < 0.1:
            return
        before = now
    say(f"  (the backend was still busy after {limit_s:.0f} s: going on)")


def run_side(which: str, plan: dict[str, Any], scratch: Path) -> Side:
    """Start this script as a child for one side of a step, bounded in time; its measured Side."""
    plan_path, out = scratch / "plan.json", scratch / f"{which}.json"
    plan_path.write_text(json.dumps(plan))
    out.unlink(missing_ok=True)
    budget = plan["spread_s"] + plan["settle_s"] + plan["window_s"] + STEP_GRACE_S
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", which,
                              "--plan", str(plan_path), "--out", str(out)])
    try:
        child.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return Side(which, plan["phones"], error=f"cut off after {budget:.0f} s")
    if child.returncode != 0 or not out.exists():
        return Side(which, plan["phones"], error=f"the {which} process exited with {child.returncode}")
    return side_from_json(json.loads(out.read_text()))


def run_step(plan: dict[str, Any], users: list[dict[str, Any]], scratch: Path,
             say: Callable[[str], None]) -> tuple[Side, Side]:
    """Log the users in, then run the fleet and the bare client (same users, tokens, schedule)."""
    started = time.monotonic()
    tokens = asyncio.run(login_all(plan["url"], users))
    say(f"  logged in {len(tokens):,} users in {time.monotonic() - started:.1f} s; fleet ...")
    plan = {**plan, "users": [int(entry["id"]) for entry in users], "tokens": tokens}
    wait_idle(plan["backend_pid"], say)
    fleet = run_side("fleet", plan, scratch)
    say(f"  fleet: {fleet.ramp_s:.0f} s ramp + {fleet.window_s:.0f} s window; bare client ...")
    alerting = fleet.alerting if not fleet.error else \
        plan["users"][:round(len(users) * plan["alert_share"])]  # no count to copy: the share asked
    wait_idle(plan["backend_pid"], say)
    bare = run_side("bare", {**plan, "alerting": alerting}, scratch)
    say(f"  bare: {bare.ramp_s:.0f} s ramp + {bare.window_s:.0f} s window")
    return fleet, bare


# -- printing ------------------------------------------------------------------------------------------

def _lag(h: Histogram) -> str:
    if not h.count:
        return "-"
    return f"{h.percentile(50.0):.2f} / {h.percentile(99.0):.2f} / {h.max:.1f}"


def _core(cpu_s: float, wall_s: float) -> str:
    return f"{cpu_s:.2f} s ({cpu_s / wall_s * 100:.0f}% of a core)" if wall_s > 0 else "-"


def print_step(fleet: Side, bare: Side, say: Callable[[str], None]) -> None:
    rows: list[tuple[str, Callable[[Side], str]]] = [
        ("phones in an alert", lambda s: f"{s.alerts:,}"),
        ("sockets open: start / end / wanted",
         lambda s: f"{s.open_at_start:,} / {s.open_at_end:,} / {s.sockets_wanted:,}"),
        ("closes in window", lambda s: f"{s.closes:,}"),
        ("problems", lambda s: ", ".join(f"{k} x{v}" for k, v in s.problems.items()) or "none"),
        ("window (wall s)", lambda s: f"{s.window_s:.1f}"),
        ("msgs sent (pings + locations)", lambda s: f"{s.pings:,} + {s.locations:,}"),
        ("msgs sent per s", lambda s: f"{s.rate:,.1f}"),
        ("frames in per s", lambda s: f"{s.frames_in / s.window_s:,.1f}" if s.window_s else "-"),
        ("loop lag p50 / p99 / max ms", lambda s: _lag(s.lag_ms)),
        ("  10 ms probe p50 / p99 / max ms", lambda s: _lag(s.probe_ms)),
        ("own CPU in window", lambda s: _core(s.cpu_s, s.window_s)),
        ("own CPU per msg sent (us)", lambda s: f"{s.cpu_per_msg_us:,.0f}"),
        ("GC in window: total / longest ms", lambda s: f"{s.gc_ms[0]:,.0f} / {s.gc_ms[1]:,.1f}"),
        ("own RSS growth per phone (KiB)", lambda s: f"{s.rss_growth_mb * 1024 / s.phones:,.1f}"),
        ("backend CPU in window", lambda s: _core(s.backend_cpu_s, s.window_s)),
        ("backend RSS (MiB)", lambda s: f"{s.backend_rss_mb:,.0f}"),
        ("held (all open, lag p99 < 5 ms)", lambda s: "yes" if s.held else f"NO {s.error}".rstrip()),
    ]
    say(f"    {'':<36} {'fleet':>26} {'bare websockets':>26}")
    for label, show in rows:
        say(f"    {label:<36} {show(fleet):>26} {show(bare):>26}")
    ratio = fleet.cpu_per_msg_us / bare.cpu_per_msg_us if bare.sent and fleet.sent else math.nan
    say(f"    fleet / bare CPU per msg: {ratio:.2f}x; {_saturation(fleet)}")


def _saturation(side: Side) -> str:
    if side.window_s <= 0:
        return "no window"
    backend = side.backend_cpu_s / side.window_s
    own = side.cpu_s / side.window_s
    if backend >= BACKEND_SATURATED:
        return f"the backend saturated during the fleet's window ({backend:.0%} of its one core)"
    if own >= BACKEND_SATURATED:
        return f"the fleet process saturated ({own:.0%} of a core)"
    return f"neither side saturated (backend {backend:.0%}, fleet {own:.0%} of a core)"


# -- main ----------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default=None,
                        help="comma-separated phone counts (default "
                             f"{','.join(map(str, DEFAULT_STEPS))}; --quick: "
                             f"{','.join(map(str, QUICK_STEPS))})")
    parser.add_argument("--window", type=float, default=None,
                        help="measurement window per side and step, seconds (default 45; --quick 30)")
    parser.add_argument("--settle", type=float, default=None,
                        help="wait after the last connect before measuring, s (default 5)")
    parser.add_argument("--connect-rate", type=float, default=100.0,
                        help="phones connected per second at most (default 100)")
    parser.add_argument("--min-spread", type=float, default=None,
                        help="shortest connect spread, s (default 30; --quick 10)")
    parser.add_argument("--alert-share", type=float, default=0.1,
                        help="share of phones in an alert, streaming locations (default 0.1)")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="event loop of both sides (default auto: uvloop's when installed, "
                             "as `beacon-fleet run` uses, else asyncio's)")
    parser.add_argument("--seed", type=int, default=1, help="fleet seed (default 1)")
    parser.add_argument("--keep-going", action="store_true",
                        help="run every step, even after one the fleet did not hold")
    parser.add_argument("--quick", action="store_true",
                        help="steps 200,500, 30 s windows, 10 s spread: about 3.5 minutes")
    parser.add_argument("--child", choices=("fleet", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.plan is None or args.out is None:
            parser.error("--child needs --plan and --out")
        return args
    quick = args.quick
    try:
        args.steps = [int(s) for s in args.steps.split(",")] if args.steps else \
            list(QUICK_STEPS if quick else DEFAULT_STEPS)
    except ValueError:
        parser.error(f"--steps: expected comma-separated whole numbers, got {args.steps!r}")
    args.window = args.window if args.window is not None else (30.0 if quick else 45.0)
    args.settle = args.settle if args.settle is not None else 5.0
    args.min_spread = args.min_spread if args.min_spread is not None else (10.0 if quick else 30.0)
    if not args.steps or min(args.steps) < 1 or args.window <= 0 or args.settle < 0 \
            or args.connect_rate <= 0 or args.min_spread < 0:
        parser.error("steps, --window and --connect-rate must be positive; --settle, --min-spread >= 0")
    if not 0.0 <= args.alert_share < 1.0:
        parser.error("--alert-share must be in [0, 1)")
    if args.loop == "auto":
        args.loop = "uvloop" if _has_uvloop() else "asyncio"
    elif args.loop == "uvloop" and not _has_uvloop():
        parser.error("--loop uvloop: uvloop is not installed")
    return args


def ramp(args: argparse.Namespace, backend_pid: int | None, url: str, users: list[dict[str, Any]],
         scratch: Path, say: Callable[[str], None]) -> list[tuple[Side, Side]]:
    results: list[tuple[Side, Side]] = []
    offset = 0
    for phones in args.steps:
        spread = max(args.min_spread, phones / args.connect_rate)
        plan = {"url": url, "phones": phones, "alert_share": args.alert_share, "spread_s": spread,
                "settle_s": args.settle, "window_s": args.window, "seed": args.seed,
                "loop": args.loop, "backend_pid": backend_pid}
        step_users = users[offset:offset + phones]
        offset += phones
        say("")
        say(f"step: {phones:,} phones, connects spread over {spread:.0f} s, settle {args.settle:g} s, "
            f"window {args.window:g} s")
        fleet, bare = run_step(plan, step_users, scratch, say)
        print_step(fleet, bare, say)
        results.append((fleet, bare))
        if not fleet.held and not args.keep_going:
            say("  the fleet did not hold this step: the ramp stops here (--keep-going runs on)")
            break
    return results


def summarise(results: list[tuple[Side, Side]], say: Callable[[str], None]) -> None:
    say("")
    say("summary")
    for label, index in (("fleet", 0), ("bare websockets", 1)):
        held = [pair[index] for pair in results if pair[index].held]
        best = max(held, key=lambda s: s.phones) if held else None
        if best is None:
            say(f"  {label:<16} held no step")
        else:
            say(f"  {label:<16} held {best.phones:,} phones ({best.sockets_wanted:,} sockets): "
                f"lag p99 {best.lag_p99:.2f} ms, {best.rate:,.0f} msgs/s sent, "
                f"{best.cpu_per_msg_us:,.0f} us CPU/msg, {_core(best.cpu_s, best.window_s)}")
    fleet_held = [f for f, _ in results if f.held]
    top = max((f.phones for f in fleet_held), default=0)
    met = top >= TARGET_PHONES
    say(f"target: >= {TARGET_PHONES:,} concurrent phones per fleet process with loop lag p99 < "
        f"{TARGET_LAG_P99_MS:g} ms: held {top:,} -> {'target met' if met else 'target NOT met'}"
        + ("" if met or any(f.phones >= TARGET_PHONES for f, _ in results)
           else f" (largest step run: {max(f.phones for f, _ in results):,})"))
    compared = [(f, b) for f, b in results if f.sent and b.sent]
    if compared:
        fleet, bare = compared[-1]
        ratio = fleet.cpu_per_msg_us / bare.cpu_per_msg_us
        say(f"target: fleet CPU per message within {TARGET_CPU_RATIO:g}x of the bare client "
            f"(at {fleet.phones:,} phones): {fleet.cpu_per_msg_us:,.0f} us vs {bare.cpu_per_msg_us:,.0f} us "
            f"= {ratio:.2f}x -> {'target met' if ratio <= TARGET_CPU_RATIO else 'target NOT met'}")
    else:
        say("target: CPU per message within 3x of the bare client: not measured (no messages sent)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child, args.plan, args.out)

    def say(line: str) -> None:
        print(line, flush=True)

    need = round(max(args.steps) * (1 + 3 * args.alert_share) * 1.05) + 100
    say(f"beacon-fleet run benchmark: Python {sys.version.split()[0]}, websockets "
        f"{version('websockets')}, event loop {args.loop} for both sides, each side in a process "
        f"of its own")
    say(f"machine: {os.cpu_count()} CPU(s), shared by the fleet or bare process and the backend; "
        + raise_fd_limit(need))
    say(f"steps {', '.join(f'{s:,}' for s in args.steps)}; {args.alert_share:.0%} of phones in an "
        f"alert; heartbeat and location every {HEARTBEAT_S:g} s; policy resilient, all on Wi-Fi")
    scratch = Path(tempfile.mkdtemp(prefix="beacon-bench-run-"))
    backend = EmbeddedBackend(scratch)
    try:
        started = time.monotonic()
        url = backend.start()
        creds = backend.provision(sum(args.steps), 0)
        say(f"backend: {url} (one process, SQLite, in-memory channel layer, server pings every "
            f"{backend.keepalive[0]:g} s); provisioned {sum(args.steps):,} users in "
            f"{time.monotonic() - started:.1f} s")
        pid = backend.process.pid if backend.process is not None else None
        results = ramp(args, pid, url, creds["phones"], scratch, say)
    except RunError as error:
        print(f"benchmarks/run.py: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("benchmarks/run.py: interrupted", file=sys.stderr)
        return 130
    finally:
        backend.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    summarise(results, say)
    return 0


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
