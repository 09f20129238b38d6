"""report.html in a real Chromium: offline, no errors, the verdicts of report.json, every plot drawn."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from simulator.report import REPORT_HTML, REPORT_JSON, render_html
from simulator.report.text import VERDICT_WORDS
from tests.browser.conftest import BrowserPage
from tests.simulator.test_plots import synthetic_views
from tests.simulator.test_report import SECTIONS, failing_result

pytestmark = pytest.mark.browser

PLOT_SECTIONS = [s for s in SECTIONS if s != "verdicts"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ci-smoke run's report folder, written by the CLI as a user would get it."""
    out = tmp_path_factory.mktemp("report-page") / "smoke"
    done = subprocess.run([sys.executable, "-m", "simulator.cli", "simulate", "ci-smoke", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode in (0, 1), done.stderr
    return out


def open_page(browser_page: BrowserPage, path: Path) -> Any:
    page = browser_page.page
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page


def drawn_sections(page: Any) -> dict[str, dict[str, Any]]:
    """Per plot section: the size of every plot in it, and its "not measured" lines."""
    return page.evaluate("""ids => Object.fromEntries(ids.map(id => {
        const section = document.getElementById(id);
        return [id, {
            plots: [...section.querySelectorAll('svg.plot')].map(svg => {
                const box = svg.getBoundingClientRect();
                return [box.width, box.height];
            }),
            empty: [...section.querySelectorAll('p.empty')].map(p => p.textContent),
        }];
    }))""", PLOT_SECTIONS)


def test_report_html_of_a_run_opens_offline_and_matches_report_json(browser_page: BrowserPage,
                                                                    smoke_run: Path) -> None:
    page = open_page(browser_page, smoke_run / REPORT_HTML)
    assert browser_page.console_errors == []
    assert browser_page.external_requests == []
    assert all(url.startswith(("file:", "data:")) for url in browser_page.requests), browser_page.requests

    document = json.loads((smoke_run / REPORT_JSON).read_text(encoding="utf-8"))
    rows = page.eval_on_selector_all(
        "table.verdicts tbody tr",
        "rows => rows.map(r => [r.id, r.className, r.querySelector('td.verdict').textContent])")
    expected = [[f"verdict-{v['id']}", v["verdict"], VERDICT_WORDS[v["verdict"]]]
                for v in document["verdicts"]]
    assert rows == expected
    # The verdicts come first: the table sits above every plot.
    table_top = page.eval_on_selector("#verdicts", "e => e.getBoundingClientRect().top")
    for section_id in PLOT_SECTIONS:
        assert page.eval_on_selector(f"#{section_id}", "e => e.getBoundingClientRect().top") > table_top

    failed = [v for v in document["verdicts"] if v["verdict"] == "fail"]
    for verdict in failed:
        note = page.eval_on_selector(f"#verdict-{verdict['id']} td.note",
                                     "e => [e.textContent, getComputedStyle(e).fontWeight]")
        assert note[0] == verdict["note"] and int(note[1]) >= 600

    for section_id, drawn in drawn_sections(page).items():
        assert drawn["plots"] or drawn["empty"], section_id
        for width, height in drawn["plots"]:
            assert width > 100 and height > 50, (section_id, width, height)
    # The contents' links all land somewhere; the page fits the window's width.
    targets = page.eval_on_selector_all("nav.contents a", "links => links.map(a => a.getAttribute('href'))")
    assert [t.lstrip("#") for t in targets][:1] == ["verdicts"]
    for target in targets:
        assert page.query_selector(target) is not None, target
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400

    shot = browser_page.screenshot("report-html")
    assert shot.stat().st_size > 10_000


def test_a_10000_phone_page_loads_quickly_and_without_errors(browser_page: BrowserPage,
                                                             tmp_path: Path) -> None:
    result = failing_result()
    views = synthetic_views(10_000, tracks=500, points=240, alerts=5_000, lost_per_phone=2_000)
    big = dataclasses.replace(result, run=dataclasses.replace(result.run, devices=10_000), views=views)
    path = tmp_path / REPORT_HTML
    path.write_text(render_html(big), encoding="utf-8")
    started = time.monotonic()
    page = open_page(browser_page, path)
    assert time.monotonic() - started < 10.0
    assert browser_page.console_errors == [] and browser_page.external_requests == []
    assert page.evaluate("document.getElementsByTagName('*').length") < 8_000
    for section_id, drawn in drawn_sections(page).items():
        assert drawn["plots"], section_id
