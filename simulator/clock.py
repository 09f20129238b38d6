"""The wall clock: the phone model's SimPy environment, paced by asyncio for ``beacon-fleet run``.

The phone model is written once, as SimPy processes. ``simulate`` runs it on a plain
:class:`simpy.Environment` (virtual time, as fast as the CPU goes); ``run`` runs the very same
processes on a :class:`WallClock`, which is a ``simpy.Environment`` whose ``run`` is a coroutine: it
keeps model time in step with the event loop's clock, ``speed`` model seconds per wall second, so the
model can talk to real sockets on the same loop.

How the runner paces the model (after SimPy's ``rt.py``, which swaps the clock by overriding one
method, but without its ``time.sleep``: ``RealtimeEnvironment`` blocks the loop and cannot take
socket input, so it is not used):

1. Peek the next event. Its *wall deadline* is ``wall_start + (t - model_start) / speed``.
2. If the deadline has passed, step every event that is due, but for at most ``budget_s`` of wall
   time; then yield to the loop once, so sockets are served even during a burst of due events.
3. Otherwise wait, on one timer (``loop.call_at``) and one future, until that deadline or until
   :meth:`WallClock.inject` reports a socket event, whichever comes first. There is no
   ``asyncio.wait_for`` per event and no polling.

Socket input enters the model only through :meth:`WallClock.inject`, which dates it at the model time
that matches the wall time it arrived (:meth:`WallClock.now_mapped`) with ``env.timeout(mapped -
env.now)``. ``event.succeed()`` or ``store.put()`` from a socket callback would be wrong twice: the
event would be dated at the last *processed* event (``env.now``, possibly long ago), and a runner
asleep until a far-future event would not wake for it.

Loop lag is measured, never hidden: on every wake that steps events, the lag is how late the first
(most overdue) event is stepped against its wall deadline. Samples go, in milliseconds, into the HDR
histogram :attr:`WallClock.loop_lag_ms` (the report's ``generator.loop_lag_ms``). A late model is
not corrected by skipping time: overdue events are all stepped, in model order, as fast as the
budget allows; latencies are measured from the model's intended times, so lag shows up in them too
(no coordinated omission).

Determinism: the model-driven schedule (the phone's own timeouts: heartbeats, network changes,
lifecycle transitions, panic presses, chat) is the same as under ``simulate`` for the same seeds,
since the wall clock only decides *when* events are stepped, never their order. What the network
delivers is not: socket events are dated by their arrival, so their times, and the order among
events arriving together, depend on the network and the host's load, and so does everything the
model does in response to them.

``inject`` must be called on the loop's thread (from protocol callbacks or coroutines on the loop
that runs the clock). The wall mapping is anchored when :meth:`WallClock.run` is first called and
is kept across later calls, so a pause between runs makes the model late (the lag shows it); call
:meth:`WallClock.sync` after a deliberate pause to re-anchor.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import simpy
from simpy.events import URGENT, Event, Timeout

from simulator.hdr import Histogram

#: Default wall-time budget for one batch of due events before yielding to the loop (5 ms).
BATCH_BUDGET_S = 0.005


class WallClock(simpy.Environment):
    """A SimPy environment whose time follows the asyncio loop's clock, scaled by ``speed``.

    Args:
        speed: Model seconds per wall second: 1.0 is real time, 10 runs ten times faster.
        initial_time: The model time to start at (as for :class:`simpy.Environment`).
        budget_s: Wall seconds spent stepping due events before yielding to the loop once.

    Attributes:
        loop_lag_ms: How late events were stepped against their wall deadlines, one sample per
            wake, in milliseconds (0.01 ms to one hour at full precision).
    """

    def __init__(self, speed: float = 1.0, initial_time: float = 0.0,
                 budget_s: float = BATCH_BUDGET_S) -> None:
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a positive, finite number, got {speed!r}")
        if not (budget_s > 0 and math.isfinite(budget_s)):
            raise ValueError(f"budget_s must be a positive, finite number, got {budget_s!r}")
        super().__init__(initial_time)
        self.speed = float(speed)
        self.budget_s = float(budget_s)
        self.loop_lag_ms = Histogram(lowest=0.01, highest=3_600_000.0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wall_start = 0.0
        self._model_start = float(initial_time)
        self._waiter: asyncio.Future[None] | None = None
        self._running = False
        # A loop fires a timer up to one clock tick early (uvloop: up to a millisecond, and it
        # caches its time per iteration); an event that close is due, or the runner would spin.
        self._slack_s = max(time.get_clock_info("monotonic").resolution, 0.001)

    # -- the mapping between wall and model time ---------------------------------------------

    @property
    def anchored(self) -> bool:
        """Whether the wall mapping is set (by the first :meth:`run` or by :meth:`sync`)."""
        return self._loop is not None

    def sync(self) -> None:
        """Anchor the mapping afresh: the model's current time corresponds to the wall time now.

        Raises:
            RuntimeError: If called outside a running event loop.
        """
        self._loop = asyncio.get_running_loop()
        self._wall_start = self._loop.time()
        self._model_start = float(self.now)

    def now_mapped(self) -> float:
        """The model time that corresponds to the current wall time.

        ``env.now`` is the time of the last processed event; this is where model time *is* now,
        ``model_start + (loop.time() - wall_start) * speed``. Before the clock is anchored, it is
        ``env.now``.
        """
        if self._loop is None:
            return float(self.now)
        return self._model_start + (self._loop.time() - self._wall_start) * self.speed

    def wall_deadline(self, model_time: float) -> float:
        """The loop time (``loop.time()``) at which an event at ``model_time`` is due.

        Raises:
            RuntimeError: If the clock is not anchored yet.
        """
        if self._loop is None:
            raise RuntimeError("the wall clock is not anchored: call run() or sync() first")
        return self._wall_start + (model_time - self._model_start) / self.speed

    @property
    def max_lag_ms(self) -> float:
        """The largest loop lag seen, in milliseconds (0.0 before any)."""
        return self.loop_lag_ms.max

    # -- socket input ------------------------------------------------------------------------

    def inject(self, callback: Callable[[Event], None], value: Any = None) -> Timeout:
        """Bring an outside (socket) event into the model, dated at the current mapped time.

        The event is ``env.timeout(max(0, now_mapped() - env.now), value)`` with ``callback``
        attached (SimPy style: it is called with the event, ``event.value`` is ``value``); a runner
        waiting for a later event is woken at once. Call it on the loop's thread.

        Args:
            callback: Called with the event when the model reaches it.
            value: The event's value, e.g. the frame received.

        Returns:
            The scheduled event (a process may also wait on it).
        """
        event = self.timeout(max(0.0, self.now_mapped() - self.now), value)
        assert event.callbacks is not None  # a fresh event is not processed yet
        event.callbacks.append(callback)
        self._wake()
        return event

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the runner --------------------------------------------------------------------------

    async def run(self, until: float) -> None:  # type: ignore[override]
        """Step the model in wall-clock time until model time ``until``, then return.

        Like :meth:`simpy.Environment.run` with a number: events at exactly ``until`` are left for
        the next run, and ``env.now == until`` on return. (This overrides SimPy's blocking
        ``run``, which on a wall clock would ignore the clock.)

        Args:
            until: The model time to stop at; must be after ``env.now``.

        Raises:
            ValueError: If ``until`` is not after the current model time.
            RuntimeError: If another ``run`` of this clock is in progress, or the loop differs from
                the one the clock was anchored on.
            Exception: Whatever a model event raises (as ``simpy.Environment.step`` does).
        """
        if not until > self.now:
            raise ValueError(f"until ({until}) must be greater than the current model time {self.now}")
        if self._running:
            raise RuntimeError("this WallClock is already running")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self.sync()
        elif self._loop is not loop:
            raise RuntimeError("a WallClock runs on the event loop it was anchored on")
        stop = Event(self)  # processed before ordinary events at ``until``, as in SimPy's run
        stop._ok = True
        stop._value = None
        self.schedule(stop, URGENT, until - self.now)
        self._running = True
        try:
            while not stop.processed:
                if self._step_due(loop, stop):
                    await asyncio.sleep(0)  # the budget ran out: let sockets in, then go on
                elif not stop.processed:
                    await self._sleep_until(loop, self.wall_deadline(self.peek()))
        finally:
            self._running = False

    def _step_due(self, loop: asyncio.AbstractEventLoop, stop: Event) -> bool:
        """Step due events for at most the budget, up to ``stop``.

        Returns:
            True if the budget ran out with events still due, False if none is due (or ``stop``
            was reached).
        """
        wall = loop.time()
        give_up = wall + self.budget_s
        first = True
        while True:
            deadline = self.wall_deadline(self.peek())  # ``stop`` is pending: never Infinity
            if deadline > wall + self._slack_s:
                return False
            if first:
                self.loop_lag_ms.record(max(0.0, wall - deadline) * 1000.0)
                first = False
            self.step()
            if stop.processed:
                return False
            wall = loop.time()
            if wall >= give_up:
                return self.wall_deadline(self.peek()) <= wall + self._slack_s

    async def _sleep_until(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Wait for ``deadline`` (loop time) or an :meth:`inject`: one timer, one future."""
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_at(deadline, _resolve, waiter)
        self._waiter = waiter
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
