"""Make ``docs/report-screenshot.png``: the top of a simulated run's report.html, for the README.

Runs ``beacon-fleet simulate`` (``first-look`` by default) into a temporary folder, opens its
report.html in the system Chromium through Playwright (no browser download; ``BEACON_CHROMIUM``
overrides the binary), refuses any request that would leave the machine, and saves the first
``--height`` pixels of the page at 1400 px wide as a PNG.

Usage::

    python docs/make_screenshot.py [--profile first-look] [--devices N] [--height 2600] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Route, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 1400


def chromium() -> str:
    """The Chromium binary to drive (``BEACON_CHROMIUM``, else the first one on PATH)."""
    configured = os.environ.get("BEACON_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("make_screenshot: no chromium binary (apt-get install chromium, or set BEACON_CHROMIUM)")


def simulate(profile: str, devices: int | None, out: Path) -> None:
    """Run ``beacon-fleet simulate`` into ``out`` (a failed verdict is fine: it is what a report shows)."""
    args = [sys.executable, "-m", "simulator.cli", "simulate", profile, "--out", str(out), "--no-progress"]
    if devices is not None:
        args += ["--devices", str(devices)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"make_screenshot: simulate failed ({done.returncode}): {done.stderr.strip()}")


def screenshot(page_path: Path, out: Path, height: int) -> None:
    """Save the first ``height`` pixels of ``page_path`` (opened offline) to ``out``."""
    leaks: list[str] = []
    errors: list[str] = []

    def offline(route: Route) -> None:
        if urlsplit(route.request.url).scheme in ("file", "data", "about"):
            route.continue_()
        else:
            leaks.append(route.request.url)
            route.abort()

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium(), headless=True,
                                         args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.route("**/*", offline)
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            full = int(page.evaluate("document.documentElement.scrollHeight"))
            page.screenshot(path=str(out), full_page=True,
                            clip={"x": 0, "y": 0, "width": WIDTH, "height": min(height, full)})
        finally:
            browser.close()
    if leaks or errors:
        raise SystemExit(f"make_screenshot: the page is not self-contained: {leaks or errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Make docs/report-screenshot.png from a simulated run.")
    parser.add_argument("--profile", default="first-look", help="profile to simulate (default: first-look)")
    parser.add_argument("--devices", type=int, default=None, help="phones (default: the profile's)")
    parser.add_argument("--height", type=int, default=2600, help="pixels of the page kept (default: 2600)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report-screenshot.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="beacon-screenshot-") as folder:
        run = Path(folder) / "run"
        simulate(args.profile, args.devices, run)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(run / "report.html", args.out, args.height)
    print(f"{args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
