"""The link emulator of ``beacon-fleet run``: a phone's modelled network, applied to real bytes.

A phone's sockets are real TCP connections to a real backend on a fast network (often loopback);
what the backend must see is the phone's network. So every chunk of bytes, either way, waits in a
:class:`DelayLine` for the one-way delay the phone's model gives it (``Endpoint.link_delay``, in
model seconds, divided by the clock's speed for the wall wait) before it is written to the socket,
or fed to the WebSocket protocol.

Rules, after the modelled wire (:mod:`simulator.transport.modelled`), so a run and a simulation
of the same fleet see the same network:

* **Order.** A line is a FIFO: a chunk never leaves before the one ahead of it, whatever the
  delays drawn (TCP delivers in order; jitter shows up as head-of-line blocking).
* **Blackhole.** While ``link_delay`` says None (network down, Doze, phone off) the
  :class:`Link` is *blackholed*: every line of the device holds its chunks, both ways, including
  chunks already on their way; nothing is written, no close frame, no FIN. The backend sees a
  half-open connection that only its keep-alive pings can discover.
* **Restoration.** When the network returns (:meth:`Link.restore`), held chunks leave at their
  next TCP retransmission tick (:func:`~simulator.transport.modelled.rto_tick`, from when each was
  first sent) plus the link's one-way delay, still in order.

A line knows nothing of WebSockets: it moves ``bytes`` and an end-of-stream marker (``None``).
Times kept here are loop times (``loop.time()``); delays are asked for at the mapped model time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from simulator.clock import WallClock
from simulator.transport.modelled import rto_tick

#: Bytes charged for an end-of-stream marker (a FIN segment) when asking the link for a delay.
EOF_SIZE = 40
#: A chunk due within this much of the loop's time leaves now. Loops with millisecond timers
#: (uvloop) fire a timer up to a millisecond before its time and cache ``loop.time()`` per
#: iteration; without the slack such a line re-arms and fires again until the time catches up.
DUE_SLACK_S = 0.001


class LinkEndpoint(Protocol):
    """What the emulator needs of an endpoint: its name and its network's one-way delays."""

    name: str

    def link_delay(self, size: int, up: bool, now: float) -> float | None: ...


@dataclass(slots=True)
class Chunk:
    payload: bytes | None  # None: the end of the stream
    size: int
    sent: float  # model time it entered the line
    release: float | None  # loop time it leaves; None while held by a blackhole


class Link:
    """One device's network as its sockets see it: delays, and the blackhole flag.

    Args:
        clock: The wall clock (maps loop time to model time, gives the speed).
        endpoint: The device; its ``link_delay`` decides every delay.
    """

    def __init__(self, clock: WallClock, endpoint: LinkEndpoint) -> None:
        self.clock = clock
        self.endpoint = endpoint
        self.blackholed = False
        self.held_from = float("inf")  # loop time the current blackhole began (its model time, mapped)
        self.lines: set[DelayLine] = set()
        self.restored: list[Callable[[], None]] = []  # one-shot callbacks for the next restore

    def now(self) -> float:
        """Model time now: the mapped wall time, never before the model's last event."""
        clock = self.clock
        return max(float(clock.now), clock.now_mapped())

    def delay(self, size: int, up: bool) -> float | None:
        """The one-way delay (model s) for ``size`` bytes; None (and blackholed) while down."""
        if self.blackholed:
            return None
        delay = self.endpoint.link_delay(max(1, size), up, self.now())
        if delay is None:
            self.hold()
            return None
        return max(0.0, float(delay))

    def rtt(self, size: int = 60) -> float | None:
        """A round trip for a small segment (model s), or None while blackholed."""
        up = self.delay(size, True)
        down = self.delay(size, False) if up is not None else None
        return None if up is None or down is None else up + down

    def wall(self, model_seconds: float) -> float:
        """Model seconds as wall seconds."""
        return model_seconds / self.clock.speed

    def hold(self) -> None:
        """The network went down: from now on nothing crosses, either way.

        A chunk due to arrive before the model time the network went down still arrives, even if
        the loop runs late and fires its timer after this (:meth:`DelayLine._fire`).
        """
        if not self.blackholed:
            self.held_from = self.clock.wall_deadline(float(self.clock.now))
        self.blackholed = True

    def restore(self) -> None:
        """The network is back: held chunks leave on the retransmission schedule."""
        self.blackholed = False
        self.held_from = float("inf")
        for line in list(self.lines):
            line.reschedule()
        callbacks, self.restored = self.restored, []
        for callback in callbacks:
            callback()


class DelayLine:
    """One direction of one connection: chunks leave in order, each after its link delay.

    Args:
        link: The device's link (delays and blackhole).
        up: True for phone -> backend, False for backend -> phone.
        deliver: Called with each chunk's payload when it leaves (``None``: end of stream).
    """

    def __init__(self, link: Link, up: bool, deliver: Callable[[bytes | None], None]) -> None:
        self.link = link
        self.up = up
        self.deliver = deliver
        self.queue: deque[Chunk] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._last_release = 0.0
        link.lines.add(self)

    def __len__(self) -> int:
        return len(self.queue)

    def push(self, payload: bytes | None) -> None:
        """Send ``payload`` (or the end of the stream) down the line."""
        link = self.link
        size = EOF_SIZE if payload is None else len(payload)
        chunk = Chunk(payload, size, link.now(), None)
        held = bool(self.queue) and self.queue[-1].release is None
        if not held:
            delay = link.delay(size, self.up)
            if delay is not None:
                chunk.release = self._after(delay)
        self.queue.append(chunk)
        self._arm()

    def clear(self) -> None:
        """Drop everything queued (the connection is gone)."""
        self.queue.clear()
        self._cancel()

    def close(self) -> None:
        """Stop for good: drop the queue and leave the link."""
        self.clear()
        self.link.lines.discard(self)

    def reschedule(self) -> None:
        """After a restoration: give every held chunk its retransmission time, in order."""
        link = self.link
        if link.blackholed:
            return
        now_model = link.now()
        loop_now = asyncio.get_running_loop().time()
        for chunk in self.queue:
            if chunk.release is not None:
                continue
            delay = link.delay(chunk.size, self.up)
            if delay is None:
                return  # down again at once: the rest stays held
            retransmit = max(rto_tick(chunk.sent, now_model), now_model) - now_model
            chunk.release = max(self._last_release, loop_now + link.wall(retransmit + delay))
            self._last_release = chunk.release
        self._arm()

    # -- internals -------------------------------------------------------------------------------

    def _after(self, delay: float) -> float:
        release = asyncio.get_running_loop().time() + self.link.wall(delay)
        release = max(release, self._last_release)  # FIFO: never overtake the chunk ahead
        self._last_release = release
        return release

    def _arm(self) -> None:
        if self._timer is not None or not self.queue:
            return
        head = self.queue[0].release
        if head is None:
            return
        self._timer = asyncio.get_running_loop().call_at(head, self._fire)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        link = self.link
        if link.blackholed:
            while self.queue:  # due before the link died (the loop ran late): it got through
                head = self.queue[0]
                if head.release is None or head.release > link.held_from:
                    break
                self.queue.popleft()
                self.deliver(head.payload)
            for chunk in self.queue:  # in flight when the link died: retransmitted later
                chunk.release = None
            return
        loop_now = asyncio.get_running_loop().time() + DUE_SLACK_S
        while self.queue:
            head = self.queue[0]
            if head.release is None or head.release > loop_now:
                break
            self.queue.popleft()
            self.deliver(head.payload)
            if self._timer is not None or self.link.blackholed:
                return  # the delivery re-armed the line or took the link down
        self._arm()

