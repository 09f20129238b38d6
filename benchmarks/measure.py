"""What ``benchmarks/run.py`` measures on each side: loop lag, GC pauses, CPU and memory, the
backend's usage, and one side's figures for one step (:class:`Side`)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Benchmark the checkout this file is in, not whichever copy happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from simulator.hdr import Histogram

TARGET_LAG_P99_MS = 5.0
PROBE_S = 0.010  # the loop-lag probe's period


def _lag_histogram() -> Histogram:
    return Histogram(lowest=0.01, highest=3_600_000.0)  # as WallClock.loop_lag_ms


# -- measuring -----------------------------------------------------------------------------------------

class LagProbe:
    """A timer every ``period`` seconds that records how late it fires (ms), as a bare loop sees lag."""

    def __init__(self, period: float = PROBE_S) -> None:
        self.period = period
        self.lag_ms = _lag_histogram()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time() + self.period
        self._handle = self._loop.call_at(self._due, self._tick)

    def reset(self) -> None:
        self.lag_ms = _lag_histogram()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        self.lag_ms.record(max(0.0, now - self._due) * 1000.0)
        self._due = now + self.period
        self._handle = self._loop.call_at(self._due, self._tick)


class GcWatch:
    """Time spent in the garbage collector (``gc.callbacks``): total and longest pause, in ms."""

    def __init__(self) -> None:
        self.total_ms = 0.0
        self.max_ms = 0.0
        self.collections = 0
        self._began = 0.0

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def reset(self) -> None:
        self.total_ms = self.max_ms = 0.0
        self.collections = 0

    def _callback(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        pause = (time.perf_counter() - self._began) * 1000.0
        self.total_ms += pause
        self.max_ms = max(self.max_ms, pause)
        self.collections += 1


def _proc_tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc), so a multi-worker backend is counted whole."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    tree: list[int] = []
    todo = [root]
    while todo and len(tree) < 1000:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def backend_usage(root: int | None) -> tuple[float, float]:
    """CPU seconds (user + system) and RSS (MiB) of the backend's process tree; (0, 0) if unknown."""
    if root is None:
        return 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    cpu = rss = 0.0
    for pid in _proc_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text()
            statm = Path(f"/proc/{pid}/statm").read_text().split()
        except OSError:
            continue
        after = fields[fields.rindex(")") + 2:].split()
        cpu += (int(after[11]) + int(after[12])) / ticks  # utime, stime (fields 14, 15)
        rss += int(statm[1]) * page / 2**20
    return cpu, rss


def own_rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def raise_fd_limit(needed: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    note = f"file descriptors: soft limit {soft:,} (hard {hard:,}); the largest step needs ~{needed:,}"
    if needed > soft:
        note += " -> TOO LOW: the largest steps will fail to connect"
    return note


@dataclass
class Side:
    """One side (fleet or bare) of one step, measured over the window."""

    name: str
    phones: int
    alerts: int = 0
    sockets_wanted: int = 0
    open_at_start: int = 0
    open_at_end: int = 0
    closes: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    window_s: float = 0.0
    pings: int = 0
    locations: int = 0
    frames_in: int = 0
    cpu_s: float = 0.0
    lag_ms: Histogram = field(default_factory=_lag_histogram)  # the fleet: WallClock's; bare: probe
    probe_ms: Histogram = field(default_factory=_lag_histogram)
    rss_growth_mb: float = 0.0
    backend_cpu_s: float = 0.0
    backend_rss_mb: float = 0.0
    ramp_s: float = 0.0
    error: str = ""
    gc_ms: tuple[float, float, int] = (0.0, 0.0, 0)  # in the window: total, longest pause, collections
    alerting: list[int] = field(default_factory=list)  # user ids of the phones in an alert

    @property
    def sent(self) -> int:
        return self.pings + self.locations

    @property
    def rate(self) -> float:
        return self.sent / self.window_s if self.window_s > 0 else 0.0

    @property
    def cpu_per_msg_us(self) -> float:
        return self.cpu_s / self.sent * 1e6 if self.sent else math.inf

    @property
    def lag_p99(self) -> float:
        return self.lag_ms.percentile(99.0) if self.lag_ms.count else math.inf

    @property
    def all_connected(self) -> bool:
        # Closes alone do not fail a step: the phone model's own network closes a socket now and
        # then (a loss burst outlasting a keep-alive: `simulate` of the same profile shows them
        # too) and the phone reconnects, so a few may be reconnecting at any instant. What must
        # hold: no fault of the backend, and every socket open again when the window ends (an
        # alert opened late adds its three).
        return not self.error and not self.problems and self.open_at_end >= self.sockets_wanted

    @property
    def held(self) -> bool:
        return self.all_connected and self.lag_p99 < TARGET_LAG_P99_MS


@dataclass
class Window:
    """Counters read when a measurement window opens."""

    wall: float
    cpu: float
    backend_cpu: float


def open_window(backend_pid: int | None) -> Window:
    return Window(time.monotonic(), time.process_time(), backend_usage(backend_pid)[0])


def close_window(side: Side, window: Window, backend_pid: int | None) -> None:
    side.window_s = time.monotonic() - window.wall
    side.cpu_s = time.process_time() - window.cpu
    backend_cpu, side.backend_rss_mb = backend_usage(backend_pid)
    side.backend_cpu_s = backend_cpu - window.backend_cpu


