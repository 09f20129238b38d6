"""The HDR histogram: bounded relative error against numpy, merging, and JSON round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simulator.hdr import Histogram

PERCENTILES = (1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 100.0)


def samples(name: str, n: int = 50_000) -> np.ndarray:
    rng = np.random.default_rng(DISTRIBUTIONS.index(name) + 1)
    if name == "lognormal latency":
        return rng.lognormal(mean=-2.0, sigma=1.2, size=n)
    if name == "uniform":
        return rng.uniform(0.0, 100.0, size=n)
    if name == "exponential":
        return rng.exponential(0.2, size=n)
    if name == "heavy tail":
        return rng.pareto(1.5, size=n) + 0.01
    raise ValueError(name)


DISTRIBUTIONS = ("lognormal latency", "uniform", "exponential", "heavy tail")


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_percentiles_within_the_relative_error_of_two_significant_figures(name: str) -> None:
    data = samples(name)
    histogram = Histogram()
    histogram.record_many(data.tolist())
    ordered = np.sort(data)
    for p in PERCENTILES:
        got = histogram.percentile(p)
        # the value at rank ceil(p% of n), as numpy's inverted_cdf defines it
        exact = float(ordered[max(1, math.ceil(p * len(data) / 100 - 1e-9)) - 1])
        assert exact <= got <= exact * (1 + 1 / 128) + 1e-12, (p, got, exact)  # never under-reports
        interpolated = float(np.percentile(data, p))
        assert got == pytest.approx(interpolated, rel=1e-2, abs=1e-3), (p, got, interpolated)


def test_small_values_keep_their_relative_precision() -> None:
    histogram = Histogram()
    for value in (0.0012, 0.0123, 0.1234):
        histogram.record(value)
    assert histogram.percentile(0) == pytest.approx(0.0012, rel=1e-2)
    assert histogram.percentile(50) == pytest.approx(0.0123, rel=1e-2)
    assert histogram.percentile(100) == 0.1234


def test_more_significant_figures_are_more_precise() -> None:
    data = samples("lognormal latency")
    fine = Histogram(significant_figures=3)
    fine.record_many(data.tolist())
    for p in (50.0, 90.0, 99.0):
        assert fine.percentile(p) == pytest.approx(float(np.percentile(data, p, method="inverted_cdf")),
                                                   rel=2e-3)


def test_record_and_record_many_agree() -> None:
    data = samples("exponential", 5_000).tolist()
    one_by_one = Histogram()
    for value in data:
        one_by_one.record(value)
    at_once = Histogram()
    at_once.record_many(data)
    assert one_by_one == at_once
    assert at_once.count == 5_000
    assert at_once.max == max(data) and at_once.min == min(data)
    assert at_once.mean == pytest.approx(sum(data) / len(data))


def test_record_with_a_count() -> None:
    histogram = Histogram()
    histogram.record(0.5, count=99)
    histogram.record(2.0)
    assert histogram.count == 100
    assert histogram.percentile(99) == pytest.approx(0.5, rel=1e-2)
    assert histogram.percentile(100) == 2.0


def test_merge_equals_recording_everything_in_one() -> None:
    data = samples("heavy tail", 20_000).tolist()
    whole = Histogram()
    whole.record_many(data)
    shards = [Histogram() for _ in range(4)]
    for i, shard in enumerate(shards):
        shard.record_many(data[i::4])
    merged = Histogram()
    for shard in shards:
        merged.merge(shard)
    assert merged == whole
    assert merged.summary() == whole.summary()


def test_merge_refuses_different_parameters() -> None:
    with pytest.raises(ValueError, match="cannot merge"):
        Histogram().merge(Histogram(significant_figures=3))


def test_json_round_trip_is_exact() -> None:
    histogram = Histogram()
    histogram.record_many(samples("lognormal latency", 10_000).tolist())
    text = json.dumps(histogram.to_dict())
    again = Histogram.from_dict(json.loads(text))
    assert again == histogram
    assert again.to_dict() == histogram.to_dict()
    for p in PERCENTILES:
        assert again.percentile(p) == histogram.percentile(p)
    assert len(text) < 20_000  # sparse: only non-empty buckets


def test_from_dict_refuses_inconsistent_counts() -> None:
    data = Histogram().to_dict()
    data["count"] = 3
    with pytest.raises(ValueError, match="do not add up"):
        Histogram.from_dict(data)


def test_summary_shape_and_scale() -> None:
    histogram = Histogram()
    histogram.record_many([0.1] * 90 + [0.2] * 9 + [1.0])
    summary = histogram.summary()
    assert list(summary) == ["n", "p50", "p90", "p95", "p99", "max"]
    assert summary["n"] == 100 and summary["max"] == 1.0
    assert summary["p50"] == pytest.approx(0.1, rel=1e-2)
    assert summary["p99"] == pytest.approx(0.2, rel=1e-2)
    in_ms = histogram.summary(1000.0)
    assert in_ms["max"] == 1000.0 and in_ms["n"] == 100


def test_empty_histogram() -> None:
    histogram = Histogram()
    assert histogram.count == 0 and histogram.max == 0.0
    assert histogram.summary() == {"n": 0, "p50": None, "p90": None, "p95": None, "p99": None, "max": None}
    with pytest.raises(ValueError, match="empty"):
        histogram.percentile(50)
    assert Histogram.from_dict(histogram.to_dict()) == histogram


def test_out_of_range_values() -> None:
    histogram = Histogram(lowest=0.001, highest=10.0)
    histogram.record(0.0)
    histogram.record(1e6)  # above highest: shares its bucket, the exact max is kept
    assert histogram.count == 2
    assert histogram.max == 1e6
    assert 0.0 <= histogram.percentile(50) <= 0.001 / 256
    assert histogram.percentile(100) == 1e6
    with pytest.raises(ValueError):
        histogram.record(-1.0)
    with pytest.raises(ValueError):
        histogram.record(float("nan"))
    with pytest.raises(ValueError):
        histogram.record(float("inf"))
    with pytest.raises(ValueError):
        histogram.record_many([1.0, float("inf")])
    with pytest.raises(ValueError):
        histogram.record_many([1.0, -0.5])
    with pytest.raises(ValueError):
        histogram.percentile(101)


def test_bad_parameters() -> None:
    for kwargs in ({"lowest": 0.0}, {"highest": 0.0001}, {"significant_figures": 0},
                   {"significant_figures": 6}):
        with pytest.raises(ValueError):
            Histogram(**kwargs)
