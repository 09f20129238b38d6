"""A real headless Chromium for the pages people look at (report.html, the live view, compare).

The system ``chromium`` binary (Debian's package; ``BEACON_CHROMIUM`` overrides the path) is driven
by Playwright's Python API through ``executable_path``, so no browser is downloaded. Every page
opened through :class:`BrowserPage` records:

- console messages of type ``error`` and uncaught page errors (``console_errors``);
- every request whose host is not loopback (``external_requests``); such requests are aborted, so a
  page that tries to fetch a font or a tile fails its test instead of reaching the internet.

Screenshots go to ``test-artifacts/`` at the repository root (``BEACON_TEST_ARTIFACTS`` overrides it),
so CI can keep them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

playwright_sync = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})


def chromium_path() -> str | None:
    """The Chromium binary to drive, or ``None`` when the machine has none."""
    configured = os.environ.get("BEACON_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def artifacts_dir() -> Path:
    """Where screenshots are kept (created on demand)."""
    path = Path(os.environ.get("BEACON_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_local(url: str) -> bool:
    """Whether a request stays on this machine: loopback hosts, ``file:``, ``data:`` and ``about:``."""
    parts = urlsplit(url)
    if parts.scheme in ("file", "data", "about", "blob"):
        return True
    return (parts.hostname or "") in LOOPBACK_HOSTS


@dataclass
class BrowserPage:
    """One Chromium page and what it did: console errors, and requests that left loopback."""

    page: object  # playwright.sync_api.Page (typed loosely: the tests are not type-checked)
    console_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def screenshot(self, name: str, full_page: bool = True) -> Path:
        """Save a PNG screenshot under the artifacts folder and return its path."""
        path = artifacts_dir() / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)  # type: ignore[attr-defined]
        return path


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """A headless Chromium for one test module (skips when the machine has none).

    Not for the whole session: while Playwright's sync API is active, asyncio believes an event
    loop is running in the main thread, so a later test that runs the fleet in-process could not
    start its own loop.
    """
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium binary (apt-get install chromium, or set BEACON_CHROMIUM)")
    with playwright_sync.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=path, headless=True,
                                         args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium: object) -> Iterator[BrowserPage]:
    """A fresh page (1400x1000) that records console errors and blocks requests leaving loopback."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    seen = BrowserPage(page)

    def on_console(message: object) -> None:
        if message.type == "error":  # type: ignore[attr-defined]
            seen.console_errors.append(message.text)  # type: ignore[attr-defined]

    def on_route(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        seen.requests.append(url)
        if is_local(url):
            route.continue_()  # type: ignore[attr-defined]
        else:
            seen.external_requests.append(url)
            route.abort()  # type: ignore[attr-defined]

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.console_errors.append(f"uncaught: {error}"))
    context.route("**/*", on_route)
    try:
        yield seen
    finally:
        context.close()
