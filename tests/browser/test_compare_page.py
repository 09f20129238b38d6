"""compare.html in a real headless Chromium: offline, error-free, the verdicts as the runs judged them.

The two runs are the outage world under ``beacon-1.0`` and ``resilient`` (see
tests/test_compare_cli.py); their comparison is opened from disk through a ``file://`` URI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulator.report import REPORT_JSON
from tests.browser.conftest import BrowserPage
from tests.test_compare_cli import OUTAGE, POLICIES, cli

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """compare.html of the two runs, and each run's folder by label."""
    base = tmp_path_factory.mktemp("compare-page")
    folders = {}
    for policy in POLICIES:
        out = base / policy.replace(".", "_")
        done = cli("simulate", str(OUTAGE), "--policy", policy, "--out", str(out), "--no-progress")
        assert done.returncode in (0, 1), done.stderr
        folders[policy] = out
    out = base / "cmp"
    done = cli("compare", *(str(folders[p]) for p in POLICIES), "--out", str(out))
    assert done.returncode in (0, 1), done.stderr
    return out, folders


def stored(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8"))
    return document


def test_compare_page_opens_offline_and_shows_each_runs_verdicts(
        browser_page: BrowserPage, comparison: tuple[Path, dict[str, Path]]) -> None:
    out, folders = comparison
    page: Any = browser_page.page
    page.goto((out / "compare.html").as_uri())
    page.wait_for_load_state("load")

    assert browser_page.console_errors == []
    assert browser_page.external_requests == []
    assert all(url.startswith("file:") for url in browser_page.requests), browser_page.requests

    matrix = page.locator("#compare-verdicts")
    assert matrix.count() == 1
    headers = matrix.locator("thead th").all_inner_texts()
    assert [h for h in headers if h in POLICIES] == list(POLICIES)
    for column, label in enumerate(POLICIES):
        for verdict in stored(folders[label])["verdicts"]:
            cells = page.locator(f'[id="cmp-{verdict["id"]}"] td.verdict')
            assert cells.count() == len(POLICIES)
            cell = cells.nth(column)
            assert cell.get_attribute("data-verdict") == verdict["verdict"], (label, verdict["id"])
            assert cell.get_attribute("data-run") == label
    assert page.locator('[id="cmp-loss-reconnect"]').get_attribute("class") == "differs"
    assert page.locator('[id="cmp-connect"] td.marker').inner_text() == ""

    document = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    plotted = [name for name, d in document["distributions"].items()
               if any(summary["n"] for summary in d["runs"].values())]
    assert set(plotted) >= {"latency-phone-to-operator", "latency-operator-to-phone", "delivery-delay",
                            "connect", "reconnect", "battery"}
    for name in plotted:
        svg = page.locator(f'[id="plot-{name}"] svg')
        assert svg.count() == 1, name
        box = svg.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0, name

    kinds = page.locator("#compare-messages tbody tr")
    assert kinds.count() == len(document["messages"])

    shot = browser_page.screenshot("compare-html")
    assert shot.stat().st_size > 0
