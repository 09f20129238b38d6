"""junit.xml validates against the JUnit schema CI tools accept (Jenkins xUnit's junit-10.xsd).

Every shape the report takes (all pass, a failed verdict, not measured, strict mode, texts with
XML-special and non-ASCII characters, the written file) is checked against the vendored schema
(``tests/data/junit/``); broken documents must be rejected, so the validator is known to be live.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import xmlschema

from simulator.checks import judge
from simulator.report import render_junit, write_junit
from simulator.result import FAIL, NOT_MEASURED, PASS, RunResult, Targets
from tests.simulator.test_checks import GENERATOR, RUN, clean_ledger
from tests.simulator.test_report import failing_result

XSD = Path(__file__).resolve().parent.parent / "data" / "junit" / "junit-10.xsd"
SCHEMA = xmlschema.XMLSchema(XSD)

# Every character XML treats specially, quotes of both kinds, and text outside ASCII (accents,
# a non-Latin script, a symbol outside the BMP).
AWKWARD = "<tag attr=\"x\" other='y'> & &amp; ]]> Zürich \u2013 Ünïcödé 東京 🚨"


def errors(document: str | Path) -> list[str]:
    """What the schema finds wrong with ``document`` (XML text or a file); empty when it validates."""
    source = str(document) if isinstance(document, Path) else document
    return [f"{error.path}: {error.reason}" for error in SCHEMA.iter_errors(source)]


def passing_result() -> RunResult:
    return judge(clean_ledger(), RUN, Targets(), GENERATOR)


def awkward_result() -> RunResult:
    """A failing result whose run description and verdict texts are full of awkward characters."""
    result = failing_result()
    run = dataclasses.replace(result.run, profile=f"unit {AWKWARD}", policy=f"policy {AWKWARD}",
                              backend_url=f"http://127.0.0.1:8000/?a=<b>&c=\"d\"#{AWKWARD}")
    verdicts = tuple(dataclasses.replace(v, claim=f"{v.claim} {AWKWARD}", note=f"{v.note} {AWKWARD}",
                                         target=f"{v.target} {AWKWARD}")
                     for v in result.verdicts)
    return dataclasses.replace(result, run=run, verdicts=verdicts)


def cases(document: str) -> dict[str, ET.Element]:
    suite = ET.fromstring(document).find("testsuite")
    assert suite is not None
    return {case.get("name", ""): case for case in suite.iter("testcase")}


def test_the_schema_is_the_vendored_jenkins_one() -> None:
    text = XSD.read_text(encoding="utf-8")
    assert "The MIT License (MIT)" in text and "Gregory Boissinot" in text
    assert {"testsuites", "testsuite", "testcase", "failure", "skipped"} <= set(SCHEMA.elements)


def test_all_pass_validates() -> None:
    result = passing_result()
    assert {v.verdict for v in result.verdicts} == {PASS}
    document = render_junit(result)
    assert errors(document) == []
    assert all(case.find("failure") is None and case.find("skipped") is None
               for case in cases(document).values())


def test_a_failed_verdict_validates_as_a_failure() -> None:
    result = failing_result()
    document = render_junit(result)
    assert errors(document) == []
    failed = [v.id for v in result.verdicts if v.verdict == FAIL]
    assert failed == ["delivery"]
    assert cases(document)["delivery"].find("failure") is not None


def test_not_measured_validates_as_skipped() -> None:
    result = failing_result()
    document = render_junit(result)
    assert errors(document) == []
    unmeasured = [v.id for v in result.verdicts if v.verdict == NOT_MEASURED]
    assert unmeasured
    by_name = cases(document)
    for name in unmeasured:
        assert by_name[name].find("skipped") is not None and by_name[name].find("failure") is None, name


def test_strict_mode_validates_with_not_measured_as_failures() -> None:
    result = failing_result(strict=True)
    document = render_junit(result)
    assert errors(document) == []
    by_name = cases(document)
    for verdict in result.verdicts:
        if verdict.verdict == NOT_MEASURED:
            failure = by_name[verdict.id].find("failure")
            assert failure is not None and failure.get("type") == "not_measured", verdict.id
            assert by_name[verdict.id].find("skipped") is None, verdict.id
    # the strict flag can also be given to the renderer, overriding the result's own
    assert errors(render_junit(failing_result(), strict=True)) == []
    assert errors(render_junit(failing_result(strict=True), strict=False)) == []


def test_xml_special_and_non_ascii_texts_validate_and_survive(tmp_path: Path) -> None:
    result = awkward_result()
    document = render_junit(result)
    assert errors(document) == []
    root = ET.fromstring(document)
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("name") == f"beacon-fleet.unit {AWKWARD}"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["policy"] == f"policy {AWKWARD}" and properties["backend"].endswith(AWKWARD)
    delivery = cases(document)["delivery"]
    failure = delivery.find("failure")
    assert failure is not None and failure.text is not None and failure.text.endswith(AWKWARD)
    assert failure.get("message", "").endswith(AWKWARD)
    skipped = cases(document)["memory"].find("skipped")
    assert skipped is not None and skipped.get("message", "").endswith(AWKWARD)
    # the file on disk, as CI reads it (encoding from its declaration)
    path = tmp_path / "junit.xml"
    write_junit(result, path)
    assert errors(path) == []
    written = ET.parse(path).getroot().find("testsuite")
    assert written is not None and written.get("name") == suite.get("name")


def test_characters_xml_cannot_hold_are_replaced_not_written() -> None:
    result = failing_result()
    raw = "backend said \x1b[31mno\x1b[0m\x00 \x07"
    verdicts = tuple(dataclasses.replace(v, note=f"{v.note} {raw}") for v in result.verdicts)
    run = dataclasses.replace(result.run, backend_url=f"http://127.0.0.1:1/\x0b{raw}")
    document = render_junit(dataclasses.replace(result, run=run, verdicts=verdicts))
    assert errors(document) == []
    assert not any(c in document for c in "\x1b\x00\x07\x0b")
    failure = cases(document)["delivery"].find("failure")
    assert failure is not None and "backend said \ufffd[31mno\ufffd[0m\ufffd \ufffd" in (failure.text or "")


def test_the_written_file_validates_in_every_mode(tmp_path: Path) -> None:
    for name, result, strict in (("pass", passing_result(), None), ("lenient", failing_result(), None),
                                 ("strict", failing_result(), True)):
        path = tmp_path / f"{name}.xml"
        write_junit(result, path, strict)
        assert errors(path) == [], name


# -- negative controls: the validator rejects what a CI tool would ------------------------------------

def drop_a_testcase_name(root: ET.Element) -> None:
    case = root.find("testsuite/testcase")
    assert case is not None
    del case.attrib["name"]


def put_a_failure_under_testsuites(root: ET.Element) -> None:
    ET.SubElement(root, "failure", {"type": "fail", "message": "misplaced"})


def count_skipped_on_testsuites(root: ET.Element) -> None:
    root.set("skipped", "4")  # what junit.xml used to carry; Jenkins' xUnit rejects it


def add_an_unknown_element_to_a_testcase(root: ET.Element) -> None:
    case = root.find("testsuite/testcase")
    assert case is not None
    ET.SubElement(case, "verdict")


@pytest.mark.parametrize("break_it", [drop_a_testcase_name, put_a_failure_under_testsuites,
                                      count_skipped_on_testsuites, add_an_unknown_element_to_a_testcase])
def test_a_broken_document_is_rejected(break_it: Callable[[ET.Element], None]) -> None:
    document = render_junit(failing_result())
    assert errors(document) == []  # valid before it is broken...
    root = ET.fromstring(document)
    break_it(root)
    broken = ET.tostring(root, encoding="unicode")
    assert errors(broken), break_it.__name__  # ...and rejected after
    assert not SCHEMA.is_valid(broken)
