"""Progress of a run on the terminal: a pure formatting function and a small writer.

:func:`format_progress` turns one :class:`~simulator.simulate.Progress` into one line of text (a bar,
virtual time against the end, events, events per wall second, and the phase) and, given a
:class:`~simulator.tally.Tally` of the running fleet, what the fleet is doing: phones connected,
alerts open, messages per second, the worst latency so far and the wall time left. :class:`ProgressWriter`
puts those lines on a stream: redrawn in place on a terminal, or, on a pipe or a file, one plain line
every tenth of the run, so CI logs show that a long run is moving without filling up with bars.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from typing import TextIO

from simulator.simulate import Progress
from simulator.tally import Tally

BAR_WIDTH = 24


def clock(seconds: float) -> str:
    """Model time as ``h:mm:ss`` (``0:05:00``); days stay in the hours (``26:00:00``)."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def rate(per_second: float) -> str:
    """A rate, short: ``950``, ``12.3k``, ``1.25M``."""
    if per_second >= 1e6:
        return f"{per_second / 1e6:.3g}M"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.3g}k"
    return f"{per_second:.0f}"


def format_progress(progress: Progress, bar: bool = True, width: int = BAR_WIDTH,
                    tally: Tally | None = None) -> str:
    """One line describing how far a run has got.

    Args:
        progress: The run's latest progress report.
        bar: Whether to start with a ``[#####-----]`` bar (terminals) or not (logs).
        width: The bar's width in characters.
        tally: The running fleet's figures (already updated); without it, events and their rate.

    Returns:
        For example ``[######------------------]  25%  0:15:00 / 1:02:00  run  1,234,567 events
        410k ev/s``, or with a tally ``... run  28/30 connected  2 alerts open  3.1 msg/s
        worst 212 ms  0:00:41 left``, without a newline.
    """
    fraction = min(1.0, max(0.0, progress.model_s / progress.end_s)) if progress.end_s > 0 else 1.0
    per_second = progress.events / progress.wall_s if progress.wall_s > 0 else 0.0
    text = f"{math.floor(fraction * 100):3d}%  {clock(progress.model_s)} / {clock(progress.end_s)}  "
    if tally is None:
        text += f"{progress.phase:<5}  {progress.events:,} events  {rate(per_second)} ev/s"
    else:
        text += f"{progress.phase:<5}  {fleet_figures(tally)}  {time_left(progress)}"
    if not bar:
        return text
    filled = math.floor(fraction * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {text}"


def fleet_figures(tally: Tally) -> str:
    """``28/30 connected  2 alerts open  3.1 msg/s  worst 212 ms`` (worst: latency so far)."""
    worst = "-" if tally.worst_latency_s is None else f"{tally.worst_latency_s * 1000:,.0f} ms"
    return (f"{tally.counts()['connected']:,}/{max(tally.expected, len(tally.phones)):,} connected  "
            f"{tally.alerts_open:,} alert{'' if tally.alerts_open == 1 else 's'} open  "
            f"{tally.rate():.1f} msg/s  worst {worst}")


def time_left(progress: Progress) -> str:
    """Wall time left at the pace so far (``0:00:41 left``; the drain may end sooner)."""
    if progress.model_s <= 0 or progress.wall_s <= 0:
        return "-:--:-- left"
    remaining = max(0.0, progress.end_s - progress.model_s) * progress.wall_s / progress.model_s
    return f"{clock(math.ceil(remaining))} left"


class ProgressWriter:
    """Shows progress on ``stream``: in place on a terminal, else a line every ``every`` of the run.

    Call it with each :class:`~simulator.simulate.Progress` (it is an ``on_progress`` callback);
    :meth:`close` ends the display (on a terminal, the last state stays on its own line).

    Args:
        stream: Where to write (usually ``sys.stderr``).
        tty: Whether ``stream`` is a terminal (redraw in place) or not (append lines).
        every: The share of the run between two lines when not on a terminal.
        min_interval_s: On a terminal, the shortest wall time between two redraws.
        now: The wall clock (a parameter so tests need not sleep).
        tally: A tally another display keeps of the same run, to share rather than fold the ledger
            twice (folding is idempotent: each record is read once, whoever calls first).

    When a progress report carries the running fleet (``Progress.fleet``), the writer keeps a
    :class:`~simulator.tally.Tally` of its ledger and shows the fleet's figures instead of event counts.
    """

    def __init__(self, stream: TextIO, tty: bool, every: float = 0.1, min_interval_s: float = 0.1,
                 now: Callable[[], float] = time.monotonic, tally: Tally | None = None) -> None:
        self.stream = stream
        self.tty = tty
        self.every = every
        self.min_interval_s = min_interval_s
        self.now = now
        self._next_share = every
        self._last_draw = -math.inf
        self._width = 0
        self._last: Progress | None = None
        self._tally: Tally | None = None
        self._shared = tally

    def __call__(self, progress: Progress) -> None:
        self._last = progress
        if progress.fleet is not None:
            if self._tally is None:
                self._tally = self._shared if self._shared is not None else Tally()
            self._tally.update(progress.fleet.ledger)
            self._tally.expected = len(progress.fleet.phones)
        share = progress.model_s / progress.end_s if progress.end_s > 0 else 1.0
        if self.tty:
            if self.now() - self._last_draw >= self.min_interval_s or share >= 1.0:
                self._draw(progress)
        elif share >= self._next_share - 1e-9:
            while self._next_share <= share + 1e-9:
                self._next_share += self.every
            self.stream.write(format_progress(progress, bar=False, tally=self._tally) + "\n")
            self.stream.flush()

    def _draw(self, progress: Progress) -> None:
        line = format_progress(progress, width=BAR_WIDTH if self._tally is None else BAR_WIDTH // 2,
                               tally=self._tally)
        # a wrapped line cannot be redrawn in place: keep it within the terminal
        line = line[:max(20, shutil.get_terminal_size((160, 24)).columns - 1)]
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)
        self._last_draw = self.now()

    def note(self, message: str) -> None:
        """A line of its own (e.g. "stopping..."), leaving the bar to be redrawn below it."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(message + "\n")
        self.stream.flush()
        self._last_draw = -math.inf

    def close(self) -> None:
        """Finish: on a terminal, draw the last state and end its line."""
        if self.tty and self._last is not None:
            self._draw(self._last)
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
            self._last = None
