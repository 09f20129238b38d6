"""The progress display: one pure line per report, redrawn on a terminal, every tenth in a log."""

from __future__ import annotations

import io

from simulator.progress import ProgressWriter, clock, format_progress, rate
from simulator.simulate import Progress


def at(model_s: float, events: int = 1000, wall_s: float = 2.0, phase: str = "run",
       end_s: float = 3720.0) -> Progress:
    return Progress(model_s=model_s, end_s=end_s, events=events, wall_s=wall_s, phase=phase)


def test_clock_and_rate() -> None:
    assert clock(0) == "0:00:00"
    assert clock(3725.9) == "1:02:05"
    assert clock(93600) == "26:00:00"
    assert (rate(950), rate(12_345), rate(1_250_000)) == ("950", "12.3k", "1.25M")


def test_a_line_shows_bar_virtual_time_events_rate_and_phase() -> None:
    line = format_progress(at(930.0, events=1_234_567, wall_s=3.0), width=20)
    assert line == "[#####---------------]  25%  0:15:30 / 1:02:00  run    1,234,567 events  412k ev/s"
    plain = format_progress(at(3720.0, phase="drain"), bar=False)
    assert plain == "100%  1:02:00 / 1:02:00  drain  1,000 events  500 ev/s"


def test_no_wall_time_yet_is_not_a_division_by_zero() -> None:
    assert "0 ev/s" in format_progress(at(0.0, events=0, wall_s=0.0))


def test_a_log_gets_a_line_every_tenth_of_the_run() -> None:
    out = io.StringIO()
    writer = ProgressWriter(out, tty=False)
    for step in range(1, 101):
        writer(at(37.2 * step))
    writer.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in out.getvalue()
    assert lines[0].startswith(" 10%") and lines[-1].startswith("100%")


def test_a_terminal_redraws_in_place_and_keeps_the_last_state() -> None:
    out = io.StringIO()
    ticks = iter(float(t) for t in range(1000))
    writer = ProgressWriter(out, tty=True, min_interval_s=0.0, now=lambda: next(ticks))
    writer(at(372.0))
    writer.note("stopping")
    writer(at(744.0))
    writer.close()
    text = out.getvalue()
    assert text.startswith("\r[")
    assert "\nstopping\n" in text or "\rstopping\n" in text
    assert text.endswith(format_progress(at(744.0)) + "\n")


def test_a_terminal_is_not_redrawn_faster_than_asked() -> None:
    out = io.StringIO()
    writer = ProgressWriter(out, tty=True, min_interval_s=1.0, now=lambda: 5.0)
    for step in range(1, 50):
        writer(at(float(step)))
    assert out.getvalue().count("\r") == 1
