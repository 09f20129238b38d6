"""A small HDR-style histogram: log-linear buckets, bounded relative error, mergeable across shards.

Values are recorded in whatever unit the caller picks; the defaults (``lowest=0.001``,
``highest=86400``) are made for **seconds** (1 ms to one day), which is what the checker records for
latencies, delivery delays and connection windows (reports convert to milliseconds on output).
Other users choose their own range, e.g. the generator's loop lag in milliseconds.

How it works (after Gil Tene's HdrHistogram): ``half`` is the power of two with
``2 * half >= 2 * 10**significant_figures`` (128 for 2 figures). A value is turned into an integer
number of units of ``lowest / (2 * half)``. The first ``2 * half`` integers (the values below
``lowest``) each get their own bucket; above that, every power of two is split into ``half`` equal
sub-buckets. A bucket at or above ``lowest`` is therefore never wider than ``1 / half`` of the values
in it: with 2 significant figures any reported value is within 0.79 % of a value really recorded at
that rank (below ``lowest``, within ``lowest / 256``).

Percentiles report the upper edge of the bucket holding the requested rank, clamped to the exact
minimum and maximum seen (the top bucket reports the exact maximum), so they never under-report: a
p99 below a target means the real p99 is below it too. Buckets live in a dict (only non-empty
ones), so a histogram of a one-hour run costs a few kilobytes and serialises to JSON as
``[index, count]`` pairs.

Values below ``lowest`` land in bucket 0; values above ``highest`` are counted in the bucket of
``highest`` (the exact ``max`` is still kept). Negative, infinite or NaN values are refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

PERCENTILES = (50.0, 90.0, 95.0, 99.0)


class Histogram:
    """A log-linear histogram of non-negative values.

    Args:
        lowest: The smallest value kept to full relative precision (below it, the resolution is
            ``lowest / (2 * half)``).
        highest: The largest value tracked separately; larger values share its bucket.
        significant_figures: Decimal digits of relative precision, 1 to 5.
    """

    __slots__ = ("_buckets", "_count", "_half", "_highest_units", "_max", "_min", "_sub_bits", "_sum",
                 "_unit", "highest", "lowest", "significant_figures")

    def __init__(self, lowest: float = 0.001, highest: float = 3600 * 24,
                 significant_figures: int = 2) -> None:
        if not (lowest > 0 and math.isfinite(lowest)):
            raise ValueError(f"lowest must be a positive number, got {lowest!r}")
        if not (highest > lowest and math.isfinite(highest)):
            raise ValueError(f"highest must be finite and above lowest, got {highest!r}")
        if not 1 <= significant_figures <= 5:
            raise ValueError(f"significant_figures must be 1 to 5, got {significant_figures!r}")
        self.lowest = float(lowest)
        self.highest = float(highest)
        self.significant_figures = int(significant_figures)
        self._sub_bits = math.ceil(math.log2(2 * 10**significant_figures))
        self._half = 1 << (self._sub_bits - 1)
        self._unit = self.lowest / (2 * self._half)
        self._highest_units = int(self.highest / self._unit)
        if self._highest_units >= 2**52:
            raise ValueError("highest / lowest is too large (at most 2**44)")
        self._buckets: dict[int, int] = {}
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    # -- recording ---------------------------------------------------------------------------

    def _index(self, value: float) -> int:
        units = min(int(value / self._unit), self._highest_units)
        shift = units.bit_length() - self._sub_bits
        if shift <= 0:
            return units
        return shift * self._half + (units >> shift)

    def _bounds(self, index: int) -> tuple[float, float]:
        """The lowest and highest value (exclusive) a bucket stands for."""
        if index < 2 * self._half:
            return index * self._unit, (index + 1) * self._unit
        shift = index // self._half - 1
        low = (index - shift * self._half) << shift
        return low * self._unit, (low + (1 << shift)) * self._unit

    def record(self, value: float, count: int = 1) -> None:
        """Record ``value`` ``count`` times.

        Raises:
            ValueError: If the value is negative, infinite or NaN, or count is negative.
        """
        if not 0.0 <= value < math.inf:
            raise ValueError(f"cannot record {value!r}: values must be finite and >= 0")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if count == 0:
            return
        index = self._index(value)
        self._buckets[index] = self._buckets.get(index, 0) + count
        self._count += count
        self._sum += value * count
        self._min = min(self._min, value)
        self._max = max(self._max, value)

    def record_many(self, values: Iterable[float]) -> None:
        """Record every value of an iterable at once (vectorised; fast for millions of values).

        Raises:
            ValueError: If any value is negative, infinite or NaN.
        """
        array = np.fromiter(values, dtype=np.float64)
        if array.size == 0:
            return
        if not bool(np.all((array >= 0.0) & (array < np.inf))):
            raise ValueError("cannot record negative, infinite or NaN values")
        units = np.minimum(np.floor(array / self._unit), self._highest_units).astype(np.int64)
        _, exponent = np.frexp(units.astype(np.float64))  # bit length for integers below 2**53
        shift = np.maximum(exponent - self._sub_bits, 0).astype(np.int64)
        index = np.where(shift > 0, shift * self._half + (units >> shift), units)
        keys, counts = np.unique(index, return_counts=True)
        buckets = self._buckets
        for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
            buckets[key] = buckets.get(key, 0) + count
        self._count += int(array.size)
        self._sum += float(array.sum())
        self._min = min(self._min, float(array.min()))
        self._max = max(self._max, float(array.max()))

    def merge(self, other: Histogram) -> None:
        """Add every value recorded in ``other`` (same lowest, highest and significant figures).

        Raises:
            ValueError: If the two histograms were made with different parameters.
        """
        if self._params() != other._params():
            raise ValueError(f"cannot merge histograms with parameters {self._params()} and "
                             f"{other._params()}")
        for index, count in other._buckets.items():
            self._buckets[index] = self._buckets.get(index, 0) + count
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    def _params(self) -> tuple[float, float, int]:
        return self.lowest, self.highest, self.significant_figures

    # -- reading -----------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """How many values were recorded."""
        return self._count

    @property
    def max(self) -> float:
        """The largest value recorded, exactly (0.0 when empty)."""
        return self._max if self._count else 0.0

    @property
    def min(self) -> float:
        """The smallest value recorded, exactly (0.0 when empty)."""
        return self._min if self._count else 0.0

    @property
    def mean(self) -> float:
        """The arithmetic mean of the recorded values, exactly (0.0 when empty)."""
        return self._sum / self._count if self._count else 0.0

    def percentile(self, p: float) -> float:
        """The value at percentile ``p`` (0-100): the smallest value with at least p % at or below.

        Raises:
            ValueError: If the histogram is empty or ``p`` is outside 0-100.
        """
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile must be within 0-100, got {p!r}")
        if self._count == 0:
            raise ValueError("percentile of an empty histogram")
        rank = max(1, math.ceil(p / 100.0 * self._count - 1e-9))
        seen = 0
        indices = sorted(self._buckets)
        for index in indices[:-1]:
            seen += self._buckets[index]
            if seen >= rank:
                return min(max(self._bounds(index)[1], self._min), self._max)
        return self._max  # the top bucket holds the maximum (even a value above ``highest``)

    def summary(self, scale: float = 1.0) -> dict[str, float | int | None]:
        """The report's Summary: ``{"n", "p50", "p90", "p95", "p99", "max"}``.

        Args:
            scale: Multiplies every value (e.g. 1000 to report seconds as milliseconds).

        Returns:
            The summary; the value fields are ``None`` when nothing was recorded.
        """
        if self._count == 0:
            return {"n": 0, "p50": None, "p90": None, "p95": None, "p99": None, "max": None}
        result: dict[str, float | int | None] = {"n": self._count}
        for p in PERCENTILES:
            result[f"p{int(p)}"] = self.percentile(p) * scale
        result["max"] = self._max * scale
        return result

    # -- storage -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form that :meth:`from_dict` reads back exactly."""
        return {
            "lowest": self.lowest,
            "highest": self.highest,
            "significant_figures": self.significant_figures,
            "count": self._count,
            "sum": self._sum,
            "min": self.min,
            "max": self.max,
            "buckets": [[index, self._buckets[index]] for index in sorted(self._buckets)],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        """Rebuild a histogram written by :meth:`to_dict`.

        Raises:
            ValueError: If the data is inconsistent (bucket counts not adding up to the count).
        """
        histogram = cls(float(data["lowest"]), float(data["highest"]), int(data["significant_figures"]))
        for index, count in data["buckets"]:
            if int(count) > 0:
                histogram._buckets[int(index)] = int(count)
        histogram._count = int(data["count"])
        if sum(histogram._buckets.values()) != histogram._count:
            raise ValueError("histogram bucket counts do not add up to its count")
        histogram._sum = float(data["sum"])
        if histogram._count:
            histogram._min = float(data["min"])
            histogram._max = float(data["max"])
        return histogram

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        mine, theirs = self.to_dict(), other.to_dict()
        sums_match = math.isclose(mine.pop("sum"), theirs.pop("sum"), rel_tol=1e-9, abs_tol=1e-12)
        return sums_match and mine == theirs

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Histogram(n={self._count}, min={self.min!r}, max={self.max!r})"
