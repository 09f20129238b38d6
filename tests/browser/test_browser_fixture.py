"""The browser fixture itself: it must see console errors and stop requests that leave loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import BrowserPage, is_local

pytestmark = pytest.mark.browser


def test_loopback_and_files_are_local() -> None:
    assert is_local("http://127.0.0.1:8000/x")
    assert is_local("http://[::1]:8000/x")
    assert is_local("file:///tmp/report.html")
    assert not is_local("https://tile.openstreetmap.org/1/1/1.png")
    assert not is_local("http://10.0.0.1/")


def test_a_page_error_and_an_external_fetch_are_recorded(browser_page: BrowserPage, tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><link rel='stylesheet' href='https://fonts.example.com/a.css'>"
                    "</head><body><script>console.error('boom'); undefinedName();</script></body></html>",
                    encoding="utf-8")
    browser_page.page.goto(page.as_uri())
    browser_page.page.wait_for_load_state("load")
    assert "https://fonts.example.com/a.css" in browser_page.external_requests
    assert any("boom" in e for e in browser_page.console_errors)
    assert any("undefinedName" in e for e in browser_page.console_errors)
    shot = browser_page.screenshot("fixture-negative-control")
    assert shot.stat().st_size > 0
