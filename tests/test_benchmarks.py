"""The benchmarks still run end to end (at a tiny size: their figures are not checked here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.live
@pytest.mark.timeout(180)
def test_the_run_benchmark_holds_a_tiny_fleet_on_both_sides() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--steps", "20", "--window", "3",
         "--settle", "1", "--min-spread", "2"],
        capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert "  fleet            held 20 phones (" in done.stdout, done.stdout[-2000:]
    assert "  bare websockets  held 20 phones (" in done.stdout, done.stdout[-2000:]
    assert "target: >= 10,000 concurrent phones per fleet process" in done.stdout
