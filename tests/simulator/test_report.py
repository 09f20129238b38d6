"""Reports: the report.json contract, byte-stable re-rendering, JUnit counts, an offline HTML page."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from simulator.checks import judge
from simulator.hdr import Histogram
from simulator.ledger import Ledger
from simulator.report import (
    read_json,
    render_console,
    render_html,
    render_json,
    render_junit,
    write_report,
)
from simulator.result import SCHEMA, GeneratorStats, MessageCounts, RunInfo, RunResult, Targets
from tests.simulator.test_checks import GENERATOR, RUN, clean_ledger, send
from tests.simulator.test_plots import KINDS, synthetic_views

SUMMARY_KEYS = {"n", "p50", "p90", "p95", "p99", "max"}


def failing_result(strict: bool = False) -> RunResult:
    """One lost location of 61 (delivery fails); no outage, so no reconnection; memory not measured."""
    ledger = clean_ledger(outage=False)
    send(ledger, "phone-2:10", "location", "phone-2", "operators", 700.0)
    lag = Histogram(lowest=0.001, highest=60_000.0)
    lag.record_many([0.5, 1.0, 2.0, 40.0])
    return judge(ledger, RUN, Targets(), GeneratorStats(loop_lag_ms=lag, cpu_s=2.0), strict=strict)


def test_report_json_has_the_contract_fields() -> None:
    document = json.loads(render_json(judge(clean_ledger(), RUN, Targets(), GENERATOR)))
    assert document["schema"] == SCHEMA == "beacon-fleet/report@1"
    for key in ("run", "verdicts", "messages", "latency_ms", "connect_s", "reconnect_s", "uptime",
                "battery", "generator"):
        assert key in document, key
    run = document["run"]
    assert set(run) >= {"mode", "profile", "seed", "devices", "operators", "duration_s", "speed", "policy",
                        "backend", "started_at", "wall_s", "shards"}
    assert set(run["backend"]) == {"url", "embedded"}
    for verdict in document["verdicts"]:
        assert set(verdict) >= {"id", "claim", "target", "measured", "verdict", "n", "note"}
        assert verdict["verdict"] in ("pass", "fail", "not_measured")
    assert [v["id"] for v in document["verdicts"]][:10] == [
        "connect", "reconnect", "latency", "heartbeat", "delivery", "loss-reconnect", "uptime",
        "reconnect-success", "duplicates", "battery"]
    for kind in ("create", "location", "chat_from_phone", "chat_from_operator", "status_update", "cancel"):
        row = document["messages"][kind]
        assert set(row) >= {"originated", "delivered", "lost", "duplicated", "reordered",
                            "lost_during_reconnect"}
    assert set(document["latency_ms"]) == {"phone_to_operator", "operator_to_phone", "delivery_delay"}
    summaries = [*document["latency_ms"].values(), document["connect_s"], document["reconnect_s"],
                 document["battery"]["pct_per_hour"], *document["battery"]["by_network"].values()]
    for summary in summaries:
        assert set(summary) == SUMMARY_KEYS
    assert document["latency_ms"]["phone_to_operator"]["p99"] == pytest.approx(100.0, rel=0.01)
    assert isinstance(document["uptime"], float)
    assert set(document["generator"]) == {"loop_lag_ms", "cpu_s", "peak_rss_mb"}
    assert document["generator"]["peak_rss_mb"] == 120.0
    assert document["exit_code"] == 0


def test_report_json_is_byte_identical_when_rendered_again() -> None:
    result = failing_result()
    first = render_json(result)
    assert render_json(result) == first
    again = RunResult.from_json(json.loads(first))
    assert render_json(again) == first
    assert again.verdicts == result.verdicts
    assert again.latency == result.latency
    # and judging the same ledger again gives the same bytes
    assert render_json(failing_result()) == first


def test_report_json_is_indented_for_people_but_its_bulk_is_one_line_per_block() -> None:
    text = render_json(judge(clean_ledger(), RUN, Targets(), GENERATOR))
    lines = text.splitlines()
    bulky = [line for line in lines if line.startswith(('  "histograms": ', '  "views": '))]
    assert len(bulky) == 2 and all(line.endswith(("},", "}")) for line in bulky)
    assert '  "verdicts": [' in lines and '      "id": "connect",' in lines  # the rest reads as before
    assert max(len(line) for line in lines if line not in bulky) < 400
    assert len(lines) < 500  # indented, the histograms' [index, count] pairs alone took thousands


def test_from_json_refuses_other_documents() -> None:
    with pytest.raises(ValueError, match="not a beacon-fleet/report@1"):
        RunResult.from_json({"schema": "something/else"})
    document = json.loads(render_json(failing_result()))
    del document["histograms"]
    with pytest.raises(ValueError, match="histograms"):
        RunResult.from_json(document)


def test_junit_counts_and_failure_messages() -> None:
    result = failing_result()
    root = ET.fromstring(render_junit(result))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    cases = suite.findall("testcase")
    assert len(cases) == len(result.verdicts) == int(suite.get("tests", "")) == int(root.get("tests", ""))
    failures = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert [c.get("name") for c in failures] == ["delivery"]
    assert sorted(c.get("name", "") for c in skipped) == ["loss-reconnect", "memory", "reconnect",
                                                       "reconnect-success"]
    assert suite.get("failures") == "1" and suite.get("skipped") == "4" and suite.get("errors") == "0"
    failure = failures[0].find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert "measured 98.36%" in message and "target >= 99% per kind" in message
    assert "policy beacon-1.0" in message
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["policy"] == "beacon-1.0" and properties["profile"] == "unit"


def test_junit_strict_mode_fails_what_was_not_measured() -> None:
    root = ET.fromstring(render_junit(failing_result(strict=True)))
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "5" and suite.get("skipped") == "0"
    kinds = sorted(f.get("type", "") for f in suite.iter("failure"))
    assert kinds == ["fail"] + ["not_measured"] * 4


SECTIONS = ("verdicts", "plot-latency", "plot-connect", "plot-timeline", "plot-delivery", "plot-battery",
            "plot-map", "worst-phones")
VIEW_SECTIONS = {"plot-timeline": "fleet timeline", "plot-map": "map", "worst-phones": "worst phones"}


def assert_offline(page: str) -> None:
    """Nothing on the page is fetched: no script, style sheet or font; links and references stay inside."""
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script|<link|<iframe|<object|<embed|@import|@font-face|\ssrc\s*=", page,
                         re.IGNORECASE)
    for target in re.findall(r"""href\s*=\s*["']?([^"'\s>]*)""", page, re.IGNORECASE):
        assert target.startswith(("#", "data:image/png;base64,")), target
    assert not re.search(r"url\(\s*(?!#)", page, re.IGNORECASE)


def section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', page, re.DOTALL)
    assert match, section_id
    return match.group(1)


def test_html_is_self_contained_and_lists_every_verdict() -> None:
    result = failing_result()
    page = render_html(result)
    assert page.startswith("<!DOCTYPE html>")
    for verdict in result.verdicts:
        assert f'id="verdict-{verdict.id}"' in page
    assert page.index('id="verdict-connect"') < page.index("<h2>Messages</h2>") < page.index("<h2>Latency")
    assert '<tr class="fail" id="verdict-delivery">' in page
    assert '<tr class="not_measured" id="verdict-reconnect">' in page
    assert_offline(page)
    assert "<svg" in page


def test_html_has_every_section_and_a_table_of_contents() -> None:
    page = render_html(dataclasses.replace(failing_result(), views=synthetic_views(50)))
    nav = page[page.index('<nav class="contents">'):page.index("</nav>")]
    positions = []
    for section_id in SECTIONS:
        assert page.count(f'id="{section_id}"') == 1, section_id
        assert f'href="#{section_id}"' in nav
        positions.append(page.index(f'id="{section_id}"'))
    assert positions == sorted(positions)  # the verdicts first, then the plots in order
    assert_offline(page)


def test_a_failed_verdict_shows_its_note_in_its_row() -> None:
    result = failing_result()
    failed = result.verdict("delivery")
    assert failed.verdict == "fail" and failed.note
    row = re.search(r'<tr class="fail" id="verdict-delivery">(.*?)</tr>', render_html(result), re.DOTALL)
    assert row and f'<td class="note">{html.escape(failed.note)}</td>' in row.group(1)
    assert "<td class=\"verdict\">FAIL</td>" in row.group(1)


def test_every_plot_section_draws_with_views_and_says_why_without() -> None:
    result = failing_result()
    drawn = render_html(dataclasses.replace(result, views=synthetic_views(50)))
    for section_id in SECTIONS[1:]:
        assert "<svg" in section(drawn, section_id), section_id
    assert "not recorded" not in drawn
    bare = render_html(dataclasses.replace(result, views={}))
    for section_id, what in VIEW_SECTIONS.items():
        assert f'<p class="empty">{what}: not recorded for this run</p>' in section(bare, section_id)
    # What the result itself holds is still drawn; what the run did not measure says so.
    assert "<svg" in section(bare, "plot-delivery") and "<svg" in section(bare, "plot-latency")
    assert "not recorded for this run" in section(bare, "plot-delivery")
    assert "Reconnection time after network restoration: not measured" in section(bare, "plot-connect")
    assert_offline(bare)


def test_html_is_byte_identical_for_the_same_result() -> None:
    stored = RunResult.from_json(json.loads(json.dumps(
        dataclasses.replace(failing_result(), views=synthetic_views(50)).to_json())))
    page = render_html(stored)
    assert render_html(RunResult.from_json(json.loads(json.dumps(stored.to_json())))) == page


def test_a_10000_phone_run_stays_a_small_page() -> None:
    """Views are bounded samples and aggregates: nothing on the page grows with messages or phones."""
    result = failing_result()
    run = dataclasses.replace(result.run, devices=10_000)
    messages = {kind: MessageCounts(originated=1_000_000, delivered=990_000, lost=10_000,
                                    lost_during_reconnect=5_000) for kind in KINDS}
    views = synthetic_views(10_000, tracks=500, points=240, alerts=5_000, lost_per_phone=2_000)
    views["timeline"]["outages"] = [[float(i), i + 30.0] for i in range(0, 3600, 2)]
    page = render_html(dataclasses.replace(result, run=run, messages=messages, views=views))
    assert len(page.encode("utf-8")) < 3_000_000
    assert page.count("<tr") < 100
    assert page.count("<") < 8_000  # elements: one per lost message, alert or track point is far more
    assert page.count("<svg") <= 16
    assert len(re.findall(r"\(phone-\d+:\d+\)", page)) <= 5 * 12  # lost messages: a few named per phone
    assert_offline(page)


def test_html_escapes_everything_from_the_run() -> None:
    run = dataclasses.replace(RUN, profile='<script>alert("x")</script>', policy="a&b",
                              backend_url="http://127.0.0.1:8000/?a=<b>")
    result = judge(clean_ledger(), run, Targets(), GENERATOR)
    page = render_html(result)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a&amp;b" in page
    assert "http://" in page  # the backend's address is shown as text...
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page)  # ...never fetched
    ET.fromstring(render_junit(result))  # still well-formed XML


def test_console_table() -> None:
    result = failing_result()
    plain = render_console(result)
    assert "\x1b[" not in plain
    lines = plain.splitlines()
    for verdict in result.verdicts:
        assert any(line.startswith(verdict.id + " ") for line in lines), verdict.id
    assert "FAIL: " in plain and "1 failed" in plain
    coloured = render_console(result, colour=True)
    assert "\x1b[31;1mFAIL" in coloured and "\x1b[0m" in coloured
    strict = render_console(failing_result(strict=True))
    assert "(strict: they fail)" in strict


def test_write_report_writes_the_folder_and_the_ledger_rechecks(tmp_path: Path) -> None:
    ledger = clean_ledger()
    result = judge(ledger, RUN, Targets(), GENERATOR)
    out = tmp_path / "reports" / "unit-20260101T000000Z"
    write_report(result, ledger, out)
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "ledger.jsonl.gz", "report.html",
                                                      "report.json"]
    text = (out / "report.json").read_text(encoding="utf-8")
    assert text == render_json(result)
    assert render_json(read_json(out / "report.json")) == text
    ET.parse(out / "junit.xml")
    stored = Ledger.read(out / "ledger.jsonl.gz")
    assert len(stored) == len(ledger)
    assert render_json(judge(stored, RUN, Targets(), GENERATOR)) == text


def test_targets_from_a_profile() -> None:
    targets = Targets.from_dict({"connect_p99_s": 2.0, "battery_pct_per_hour": 3.0})
    assert targets.connect_p99_s == 2.0 and targets.reconnect_p99_s == 5.0
    with pytest.raises(ValueError, match="unknown target"):
        Targets.from_dict({"latency_p50_ms": 1.0})
    result = judge(clean_ledger(), RUN, targets, GENERATOR)
    assert result.verdict("connect").target == "p99 < 2 s"
    assert RunResult.from_json(result.to_json()).targets == targets


def test_run_info_round_trip() -> None:
    run = RunInfo(mode="run", profile="p", seed=3, devices=10, operators=2, duration_s=60.0,
                  policy="resilient", speed=1.0, backend_url="http://127.0.0.1:8000/", backend_embedded=True,
                  started_at="2026-01-01T00:00:00Z", wall_s=61.5, shards=2)
    assert RunInfo.from_json(json.loads(json.dumps(run.to_json()))) == run
