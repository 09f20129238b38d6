"""The live view's page in a real headless Chromium.

A :class:`~simulator.live.LiveServer` is fed by a synthetic fleet (phones that move, connect, drop
and raise alerts, written to a real ledger and folded by a real :class:`~simulator.live.LiveFeed`,
with no backend) stepped every 0.5 s. The page must load with no console error and no request
leaving loopback, follow the run's model time, draw the phones, stay smooth with 1,000 phones on
the map (frames counted in the page), show the judged verdicts once the run ends, and say so when
the server stops answering. A screenshot of each is kept under test-artifacts/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.live import LiveFeed, LiveServer
from simulator.profile import load
from simulator.simulate import simulate
from tests.browser.conftest import BrowserPage
from tests.simulator.test_live_feed import SyntheticFleet

pytestmark = pytest.mark.browser

TICK_S = 0.5  # wall seconds between two steps of the synthetic fleet
STEP_S = 6.0  # model seconds per step (speed 12)

FRAMES_PER_SECOND = """async () => {
  const started = performance.now();
  let frames = 0;
  await new Promise((done) => {
    const frame = (now) => {
      frames += 1;
      if (now - started < 2000) requestAnimationFrame(frame); else done();
    };
    requestAnimationFrame(frame);
  });
  return frames / ((performance.now() - started) / 1000);
}"""

DRAWN_PIXELS = """() => {
  const canvas = document.getElementById("map");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let coloured = 0;
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
    // a state colour, not the grid's grey
    if (a > 200 && Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured += 1;
  }
  return coloured;
}"""


@dataclass
class Served:
    """A live server fed by a synthetic fleet stepped in the background."""

    fleet: SyntheticFleet
    feed: LiveFeed
    server: LiveServer
    stop: threading.Event
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.server.url

    def halt(self) -> None:
        """Stop stepping the fleet (the server goes on answering with the last snapshot)."""
        self.stop.set()
        self.thread.join(timeout=5)


def serve(phones: int) -> Iterator[Served]:
    fleet = SyntheticFleet(phones, end_s=3600.0)
    feed = LiveFeed(title=f"synthetic {phones:,}")
    server = LiveServer(0, feed.snapshot)
    server.start(announce=None)
    stop = threading.Event()
    feed(fleet.step(STEP_S))

    def drive() -> None:
        for _ in range(2000):  # at most ~17 minutes
            if stop.wait(TICK_S):
                return
            feed(fleet.step(STEP_S))

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    served = Served(fleet, feed, server, stop, thread)
    try:
        yield served
    finally:
        served.halt()
        server.stop()


@pytest.fixture
def served_1000() -> Iterator[Served]:
    yield from serve(1000)


@pytest.fixture
def served_5000() -> Iterator[Served]:
    yield from serve(5000)


def wait_until(page: object, predicate: str, timeout_s: float = 10.0) -> None:
    """Poll ``predicate`` (a JavaScript function) in the page until it is true.

    ``page.wait_for_function`` evaluates its predicate with ``eval``, which the page's
    Content-Security-Policy forbids (as it should); ``page.evaluate`` is not subject to it.
    """
    for _ in range(int(timeout_s / 0.1)):
        if page.evaluate(predicate):  # type: ignore[attr-defined]
            return
        page.wait_for_timeout(100)  # type: ignore[attr-defined]
    raise AssertionError(f"not true within {timeout_s} s: {predicate}")


def model_seconds(text: str) -> int:
    match = re.match(r"(\d+):(\d\d):(\d\d) /", text)
    assert match, text
    h, m, s = (int(g) for g in match.groups())
    return h * 3600 + m * 60 + s


def watch(browser_page: BrowserPage, served: Served, screenshot: str) -> float:
    """Load the page, follow three updates, check what it drew; return the frames per second."""
    page = browser_page.page
    page.goto(served.url)
    wait_until(page, "() => window.beaconLive && window.beaconLive.updates >= 1", 10)
    first = model_seconds(page.inner_text("#model-time"))
    wait_until(page, "() => window.beaconLive.updates >= 4", 15)
    later = model_seconds(page.inner_text("#model-time"))
    assert later > first, (first, later)
    shown = served.feed.snapshot()
    assert b'"shown":' in shown
    assert page.inner_text("#stat-connected").endswith(f"/ {len(served.fleet.phones):,}")
    assert page.locator("#alerts li .badge").count() > 0
    assert page.locator("#lines li").count() > 0
    assert page.locator("#verdicts tr").count() == 4
    assert "so far" in page.inner_text("#verdicts-note")
    assert page.evaluate(DRAWN_PIXELS) > 2000, "the map shows no phones"
    assert page.is_hidden("#banner")
    fps = float(page.evaluate(FRAMES_PER_SECOND))
    draw_ms = float(page.evaluate("window.beaconLive.drawMs"))
    print(f"\nlive view, {len(served.fleet.phones):,} phones: {fps:.0f} frames/s, "
          f"{draw_ms:.1f} ms per map frame")
    browser_page.screenshot(screenshot)
    assert browser_page.console_errors == []
    assert browser_page.external_requests == []
    assert all(url.startswith(served.url) for url in browser_page.requests)
    return fps


def test_the_page_follows_a_1000_phone_run_smoothly(browser_page: BrowserPage, served_1000: Served) -> None:
    fps = watch(browser_page, served_1000, "live-view")
    assert fps >= 20, f"{fps:.0f} frames/s"


def test_the_page_stays_usable_with_5000_phones(browser_page: BrowserPage, served_5000: Served) -> None:
    fps = watch(browser_page, served_5000, "live-view-5000")
    assert fps >= 10, f"{fps:.0f} frames/s"


def test_the_page_shows_the_final_verdicts_then_stops_polling(browser_page: BrowserPage,
                                                             served_1000: Served) -> None:
    page = browser_page.page
    page.goto(served_1000.url)
    wait_until(page, "() => window.beaconLive && window.beaconLive.updates >= 2", 10)
    result, _ = simulate(load("ci-smoke", devices=4, duration_s=60.0))
    served_1000.halt()
    served_1000.feed.finish(result)
    wait_until(page, "() => document.getElementById('phase').textContent === 'ended'", 10)
    assert "final" in page.inner_text("#verdicts-note")
    rows = page.locator("#verdicts tr")
    assert rows.count() == len(result.verdicts)
    assert page.inner_text("#verdicts tr:first-child td:first-child") == result.verdicts[0].claim
    assert page.inner_text("#stat-left") == "done"
    polls = len(browser_page.requests)
    page.wait_for_timeout(1500)
    assert len(browser_page.requests) == polls, "a finished run is not polled again"
    browser_page.screenshot("live-view-ended")
    assert browser_page.console_errors == []
    assert browser_page.external_requests == []


def test_the_page_says_when_the_run_stops_answering(browser_page: BrowserPage, served_1000: Served) -> None:
    page = browser_page.page
    page.goto(served_1000.url)
    wait_until(page, "() => window.beaconLive && window.beaconLive.updates >= 2", 10)
    assert page.is_hidden("#banner")
    served_1000.halt()
    served_1000.server.stop()
    page.wait_for_selector("#banner", state="visible", timeout=10_000)
    assert "disconnected" in page.inner_text("#banner")
    browser_page.screenshot("live-view-disconnected")
    # The browser itself logs each refused connection; the page adds no error of its own.
    assert [e for e in browser_page.console_errors if "ERR_CONNECTION_REFUSED" not in e] == []


@pytest.mark.live
@pytest.mark.timeout(150)
def test_the_page_follows_a_real_run_to_its_verdicts(browser_page: BrowserPage, tmp_path: Path) -> None:
    """``beacon-fleet run --live`` (ci-smoke, 90 model seconds at speed 12, the embedded backend)."""
    out = tmp_path / "report"
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "run", "ci-smoke", "--speed", "12", "--duration", "90s",
         "--live", "0", "--live-hold", "5", "--no-progress", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert first.startswith("live view: http://127.0.0.1:"), first
        page = browser_page.page
        page.goto(first.split(": ", 1)[1].strip())
        wait_until(page, "() => window.beaconLive && ['run', 'drain'].includes(window.beaconLive.phase)", 60)
        wait_until(page, "() => document.getElementById('phase').textContent === 'ended'", 90)
        assert "final" in page.inner_text("#verdicts-note")
        assert page.locator("#verdicts tr").count() >= 10
        assert page.inner_text("#stat-connected").endswith("/ 20")
        assert page.evaluate(DRAWN_PIXELS) > 20
        browser_page.screenshot("live-view-run")
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode in (0, 1)
    assert browser_page.console_errors == []
    assert browser_page.external_requests == []
