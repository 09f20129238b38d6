"""``junit.xml``: one ``<testcase>`` per claim, for CI.

A failed verdict is a ``<failure>`` whose message gives measured vs target and the note; a claim not
measured is ``<skipped>`` with its reason, or a ``<failure>`` in strict mode (REPORT.md). The run's
description goes in ``<properties>``. Built with :mod:`xml.etree.ElementTree`, so every attribute
and text is escaped; characters XML cannot hold at all (such as ESC) become U+FFFD. The document
validates against Jenkins xUnit's ``junit-10.xsd`` (vendored in ``tests/data/junit/``), so
``skipped`` is counted on ``<testsuite>`` only, never on ``<testsuites>``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from simulator.report.text import measured
from simulator.result import FAIL, NOT_MEASURED, RunResult

# Characters XML 1.0 cannot carry at all, not even escaped (a backend's error text may hold them).
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def render_junit(result: RunResult, strict: bool | None = None) -> str:
    """The junit.xml text for a result.

    Args:
        result: The judged run.
        strict: Whether a claim not measured is a failure; defaults to ``result.strict``.

    Returns:
        A JUnit XML document (``testsuites`` > ``testsuite`` > ``testcase``).
    """
    strict = result.strict if strict is None else strict
    run = result.run
    cases = []
    failures = skipped = 0
    for verdict in result.verdicts:
        case = ET.Element("testcase", {"classname": f"beacon_fleet.{run.profile.replace('.', '_')}",
                                       "name": verdict.id, "time": "0"})
        line = f"measured {measured(verdict)} vs target {verdict.target}"
        if verdict.verdict == FAIL:
            failures += 1
            failure = ET.SubElement(case, "failure", {"type": "fail",
                                                      "message": f"{line}: {verdict.note}"})
            failure.text = f"{verdict.claim}: {line} (n={verdict.n}). {verdict.note}"
        elif verdict.verdict == NOT_MEASURED and strict:
            failures += 1
            failure = ET.SubElement(case, "failure", {"type": "not_measured",
                                                      "message": f"not measured (strict): {verdict.note}"})
            failure.text = f"{verdict.claim}: not measured. {verdict.note}"
        elif verdict.verdict == NOT_MEASURED:
            skipped += 1
            ET.SubElement(case, "skipped", {"message": f"not measured: {verdict.note}"})
        out = ET.SubElement(case, "system-out")
        out.text = f"{verdict.claim}: {line} (n={verdict.n}). {verdict.note}"
        cases.append(case)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": str(skipped),
              "time": f"{run.wall_s:.3f}"}
    # junit-10.xsd allows no ``skipped`` on <testsuites>: Jenkins' xUnit would reject the file.
    suites = ET.Element("testsuites", {"name": "beacon-fleet",
                                       **{k: v for k, v in counts.items() if k != "skipped"}})
    suite_attributes = {"name": f"beacon-fleet.{run.profile}", **counts}
    if run.started_at:
        suite_attributes["timestamp"] = run.started_at
    suite = ET.SubElement(suites, "testsuite", suite_attributes)
    properties = ET.SubElement(suite, "properties")
    for name, value in (("mode", run.mode), ("profile", run.profile), ("policy", run.policy),
                        ("seed", str(run.seed)), ("devices", str(run.devices)),
                        ("operators", str(run.operators)), ("duration_s", f"{run.duration_s:g}"),
                        ("speed", f"{run.speed:g}"), ("backend", run.backend_url),
                        ("strict", str(strict).lower())):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    suite.extend(cases)
    for element in suites.iter():
        if element.text:
            element.text = xml_safe(element.text)
        element.attrib.update({k: xml_safe(v) for k, v in element.attrib.items()})
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold replaced by U+FFFD."""
    return NOT_XML.sub("\ufffd", text)


def write_junit(result: RunResult, path: Path, strict: bool | None = None) -> None:
    """Write junit.xml to ``path`` (see :func:`render_junit`)."""
    path.write_text(render_junit(result, strict), encoding="utf-8")
