"""The wall clock: SimPy events stepped at their mapped wall times, socket input, lag, bursts.

Timing tolerance: an event must never be stepped before its wall deadline, and no later than
``LATE_S`` after it. 50 ms is far above what an idle loop needs (well under 1 ms) but leaves room
for a loaded CI machine descheduling the test process for a few time slices; these tests check
that the clock paces the model, not how fast the host is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Generator

import pytest
import simpy

from simulator.clock import WallClock

LATE_S = 0.050
EARLY_S = 0.001  # asyncio may fire a timer up to one clock tick early; far below any real error


def fire_log(clock: WallClock, loop: asyncio.AbstractEventLoop, times: list[float],
             log: list[tuple[float, float]]) -> None:
    """Schedule a timeout at each model time, logging (model time, loop time) when stepped."""
    for t in times:
        clock.timeout(t).callbacks.append(lambda _e: log.append((clock.now, loop.time())))


async def test_events_fire_at_their_mapped_wall_times() -> None:
    loop = asyncio.get_running_loop()
    clock = WallClock(speed=1.0)
    log: list[tuple[float, float]] = []
    fire_log(clock, loop, [0.05, 0.1, 0.2, 0.3], log)
    start = loop.time()
    await clock.run(until=0.35)
    assert [model for model, _ in log] == [0.05, 0.1, 0.2, 0.3]
    for model, wall in log:
        late = (wall - start) - model
        assert -EARLY_S <= late <= LATE_S, (model, late)


async def test_speed_ten_compresses_time() -> None:
    loop = asyncio.get_running_loop()
    clock = WallClock(speed=10.0)
    log: list[tuple[float, float]] = []
    fire_log(clock, loop, [1.0, 2.0, 3.0], log)
    start = loop.time()
    await clock.run(until=4.0)
    elapsed = loop.time() - start
    assert [model for model, _ in log] == [1.0, 2.0, 3.0]
    for model, wall in log:
        late = (wall - start) - model / 10.0
        assert -EARLY_S <= late <= LATE_S, (model, late)
    assert 0.4 - EARLY_S <= elapsed <= 0.4 + LATE_S  # four model seconds in 0.4 wall seconds


async def test_run_returns_at_until_and_later_runs_keep_the_mapping() -> None:
    loop = asyncio.get_running_loop()
    clock = WallClock(speed=2.0)
    start = loop.time()
    await clock.run(until=0.2)  # nothing scheduled: it still waits for the wall time
    assert clock.now == 0.2
    assert 0.1 - EARLY_S <= loop.time() - start <= 0.1 + LATE_S
    at_until: list[float] = []
    clock.timeout(0.2).callbacks.append(lambda _e: at_until.append(clock.now))  # at 0.4: left over
    await clock.run(until=0.4)
    assert clock.now == 0.4 and at_until == []  # as SimPy: an event at ``until`` waits for the next run
    assert 0.2 - EARLY_S <= loop.time() - start <= 0.2 + LATE_S
    await clock.run(until=0.5)
    assert at_until == [0.4]
    assert clock.now_mapped() == pytest.approx(0.5, abs=LATE_S * 2)


async def test_run_refuses_a_past_until() -> None:
    clock = WallClock()
    await clock.run(until=0.01)
    with pytest.raises(ValueError, match="until"):
        await clock.run(until=0.01)


def test_speed_must_be_positive() -> None:
    for speed in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="speed"):
            WallClock(speed=speed)


async def test_now_mapped_follows_the_loop_clock() -> None:
    loop = asyncio.get_running_loop()
    clock = WallClock(speed=10.0, initial_time=100.0)
    assert clock.now_mapped() == 100.0  # not anchored yet: the model's own time
    clock.sync()
    start = loop.time()
    await asyncio.sleep(0.05)
    expected = 100.0 + (loop.time() - start) * 10.0
    assert clock.now_mapped() == pytest.approx(expected, abs=0.01)
    assert clock.now == 100.0  # nothing was stepped


async def test_inject_is_dated_at_mapped_now_and_wakes_a_waiting_runner_promptly() -> None:
    loop = asyncio.get_running_loop()
    clock = WallClock(speed=1.0)
    clock.timeout(0.02)  # the last event the model processes before the socket input
    clock.timeout(1000.0)  # the runner then sleeps towards this one
    received: list[tuple[float, float, object]] = []
    start = loop.time()
    runner = asyncio.create_task(clock.run(until=2000.0))

    await asyncio.sleep(0.1)
    injected_at = loop.time()
    clock.inject(lambda e: received.append((clock.now, loop.time(), e.value)), "frame")
    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.005)
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner

    assert len(received) == 1
    model_time, stepped_at, value = received[0]
    assert value == "frame"
    # dated at the wall time of the injection (0.1 s in), not at the last event (0.02)
    assert model_time == pytest.approx(injected_at - start, abs=0.002)
    assert model_time > 0.02 + 0.05
    assert stepped_at - injected_at <= LATE_S  # woken at once, not at 1000 s


async def test_inject_before_anything_is_due_keeps_model_order() -> None:
    clock = WallClock(speed=1.0)
    order: list[str] = []
    clock.timeout(0.05).callbacks.append(lambda _e: order.append("model"))
    runner = asyncio.create_task(clock.run(until=0.1))
    await asyncio.sleep(0.02)
    clock.inject(lambda _e: order.append("socket"))
    await runner
    assert order == ["socket", "model"]


async def test_a_burst_of_due_events_is_stepped_in_batches_and_the_loop_stays_responsive() -> None:
    clock = WallClock(speed=1.0)
    burst = 100_000
    stepped = 0

    def count(_event: simpy.Event) -> None:
        nonlocal stepped
        stepped += 1

    for _ in range(burst):
        clock.timeout(0.01).callbacks.append(count)
    seen_mid_burst: list[int] = []

    async def other_coroutine() -> None:
        while stepped < burst:
            if stepped > 0:
                seen_mid_burst.append(stepped)
            await asyncio.sleep(0)

    other = asyncio.create_task(other_coroutine())
    await clock.run(until=0.02)
    await other
    assert stepped == burst
    # the other coroutine ran between batches: several partial counts, increasing
    assert len(set(seen_mid_burst)) >= 2
    assert seen_mid_burst == sorted(seen_mid_burst)
    assert clock.loop_lag_ms.count >= len(set(seen_mid_burst))  # a lag sample per batch


async def test_loop_lag_is_recorded_and_a_blocked_loop_shows_in_it() -> None:
    clock = WallClock(speed=1.0)
    for t in (0.01, 0.02, 0.03):
        clock.timeout(t)
    await clock.run(until=0.05)
    assert clock.loop_lag_ms.count >= 4  # three events and the stop, each on its own wake
    assert clock.max_lag_ms <= LATE_S * 1000

    clock.timeout(0.01)  # due at 0.06 s; the loop is blocked until about 0.15 s

    async def hog() -> None:
        time.sleep(0.1)

    blocker = asyncio.create_task(hog())
    await clock.run(until=0.2)
    await blocker
    assert clock.max_lag_ms >= 50.0  # at least ~90 ms late, reported rather than hidden


def shop(env: simpy.Environment, log: list[tuple[float, str]]) -> Generator[simpy.Event, object, None]:
    """A plain SimPy model: two customers share one counter."""
    counter = simpy.Resource(env, capacity=1)

    def customer(name: str, arrive: float) -> Generator[simpy.Event, object, None]:
        yield env.timeout(arrive)
        with counter.request() as turn:
            yield turn
            log.append((env.now, f"{name} served"))
            yield env.timeout(1.0)
        log.append((env.now, f"{name} leaves"))

    env.process(customer("a", 0.5))
    env.process(customer("b", 1.0))
    yield env.timeout(3.0)
    log.append((env.now, "closed"))


async def test_a_simpy_process_runs_unchanged_with_the_same_schedule() -> None:
    virtual_log: list[tuple[float, str]] = []
    virtual = simpy.Environment()
    virtual.process(shop(virtual, virtual_log))
    virtual.run(until=4.0)

    wall_log: list[tuple[float, str]] = []
    clock = WallClock(speed=40.0)
    clock.process(shop(clock, wall_log))
    await clock.run(until=4.0)

    assert wall_log == virtual_log
    assert wall_log[-1] == (3.0, "closed")
