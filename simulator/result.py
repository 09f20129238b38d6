"""The finished result of a run: what every report renders, and the ``report.json`` contract.

A :class:`RunResult` is built once by :func:`simulator.checks.judge` and never changes; reports are
pure functions of it. :meth:`RunResult.to_json` produces the ``beacon-fleet/report@1`` document of
REPORT.md plus a few fields of our own (``outcomes``, ``latency_ms_by_network``, ``connect``,
``reconnect``, ``heartbeat_s``, ``population``, ``targets``, ``strict``, ``exit_code``, ``warnings``,
``views``, the sampled data behind report.html's plots (:mod:`simulator.views`), and ``histograms``,
the full HDR histograms, so a report can be re-rendered or merged across shards from its JSON
alone). :meth:`RunResult.from_json` reads it back; rendering the result read back gives
the same document, byte for byte.

Units: latencies, delays and windows are kept in seconds (histograms) and reported in the unit the
field name says (``latency_ms``: milliseconds, ``connect_s``: seconds). Floats outside
``histograms`` are written with 6 significant digits, so re-rendering is stable.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.hdr import Histogram

SCHEMA = "beacon-fleet/report@1"

PASS = "pass"
FAIL = "fail"
NOT_MEASURED = "not_measured"
VERDICTS = (PASS, FAIL, NOT_MEASURED)

DIRECTIONS = ("phone_to_operator", "operator_to_phone")

Summary = dict[str, float | int | None]


@dataclass(frozen=True, slots=True)
class Targets:
    """The claims' targets (CLAIMS.md defaults); a profile may override any of them.

    Attributes:
        connect_p99_s: Initial connection, p99 strictly below this many seconds.
        reconnect_p99_s: Reconnection after network restoration, p99 strictly below (s).
        latency_p99_ms: One-way latency on an open connection, p99 strictly below (ms), each
            direction.
        heartbeat_interval_s: The nominal heartbeat interval (s).
        heartbeat_tolerance: Allowed relative deviation of one spacing (0.10 = +-10 %).
        heartbeat_within_share: Share of observed spacings that must fall within the tolerance.
        delivery_min: Delivered / originated, per kind, at least this.
        loss_reconnect_max: Share of messages originated while disconnected that may be lost.
        uptime_min: Open time / time the app could be connected, at least this.
        reconnect_success_min: Share of network restorations followed by a reconnection.
        duplicates_max: Duplicated messages allowed.
        battery_pct_per_hour: Median battery drain (%/h) allowed; ``None`` reports without judging.
    """

    connect_p99_s: float = 3.0
    reconnect_p99_s: float = 5.0
    latency_p99_ms: float = 500.0
    heartbeat_interval_s: float = 30.0
    heartbeat_tolerance: float = 0.10
    heartbeat_within_share: float = 0.99
    delivery_min: float = 0.99
    loss_reconnect_max: float = 0.0
    uptime_min: float = 0.99
    reconnect_success_min: float = 0.99
    duplicates_max: int = 0
    battery_pct_per_hour: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The targets as a plain dict (field name -> value)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Targets:
        """Targets from a mapping of field names; missing fields keep their defaults.

        Raises:
            ValueError: If a key is not a target's name.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown target(s): {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        return cls(**dict(data))


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The report's ``run`` block: what was run, how, and against what."""

    mode: str
    profile: str
    seed: int
    devices: int
    operators: int
    duration_s: float
    policy: str
    speed: float = 1.0
    backend_url: str = ""
    backend_embedded: bool = False
    started_at: str = ""
    wall_s: float = 0.0
    shards: int = 1

    def to_json(self) -> dict[str, Any]:
        """The ``run`` block of report.json."""
        return {
            "mode": self.mode, "profile": self.profile, "seed": self.seed, "devices": self.devices,
            "operators": self.operators, "duration_s": stable_float(self.duration_s),
            "speed": stable_float(self.speed),
            "policy": self.policy, "backend": {"url": self.backend_url, "embedded": self.backend_embedded},
            "started_at": self.started_at, "wall_s": stable_float(self.wall_s), "shards": self.shards,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunInfo:
        """Read a ``run`` block back."""
        backend = data.get("backend") or {}
        return cls(mode=str(data["mode"]), profile=str(data["profile"]), seed=int(data["seed"]),
                   devices=int(data["devices"]), operators=int(data["operators"]),
                   duration_s=float(data["duration_s"]), policy=str(data["policy"]),
                   speed=float(data.get("speed", 1.0)), backend_url=str(backend.get("url", "")),
                   backend_embedded=bool(backend.get("embedded", False)),
                   started_at=str(data.get("started_at", "")), wall_s=float(data.get("wall_s", 0.0)),
                   shards=int(data.get("shards", 1)))


@dataclass(frozen=True, slots=True)
class GeneratorStats:
    """How the load generator itself fared (a lagging generator shows as latency, never hidden).

    Attributes:
        loop_lag_ms: Event-loop lag samples in milliseconds, or ``None`` (simulate mode).
        cpu_s: CPU seconds the fleet used.
        peak_rss_mb: The fleet process's peak resident memory (MB), or ``None`` if not measured.
    """

    loop_lag_ms: Histogram | None = None
    cpu_s: float = 0.0
    peak_rss_mb: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One claim's verdict.

    Attributes:
        id: The claim's id (``connect``, ``latency``, ...).
        claim: What the claim says, in words.
        target: The target, as people read it (``"p99 < 3 s"``).
        measured: The measured figure in ``unit``, or ``None`` when there is none.
        verdict: ``"pass"``, ``"fail"`` or ``"not_measured"``.
        n: The sample size the verdict rests on.
        note: One line: why it failed, why it was not measured, or what it covers.
        population: What the verdict covers: profile, policy, network, OS, ``n`` and its unit.
        unit: The unit of ``measured`` (``s``, ``ms``, ``ratio``, ``count``, ``%/h``, ``MB``).
    """

    id: str
    claim: str
    target: str
    measured: float | None
    verdict: str
    n: int
    note: str = ""
    population: Mapping[str, str | int] = field(default_factory=dict)
    unit: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.measured is not None and not math.isfinite(self.measured):
            raise ValueError(f"measured must be finite or None, got {self.measured!r}")

    def to_json(self) -> dict[str, Any]:
        """One entry of report.json's ``verdicts``."""
        return {"id": self.id, "claim": self.claim, "target": self.target,
                "measured": None if self.measured is None else stable_float(self.measured),
                "verdict": self.verdict, "n": self.n, "note": self.note,
                "population": dict(self.population), "unit": self.unit}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verdict:
        """Read one verdict back."""
        measured = data.get("measured")
        return cls(id=str(data["id"]), claim=str(data["claim"]), target=str(data["target"]),
                   measured=None if measured is None else float(measured), verdict=str(data["verdict"]),
                   n=int(data["n"]), note=str(data.get("note", "")),
                   population=dict(data.get("population", {})), unit=str(data.get("unit", "")))


@dataclass(frozen=True, slots=True)
class MessageCounts:
    """Outcomes of one message kind, counted per (message, intended recipient) after the drain.

    ``delivered + stored_only + lost == originated``; the other counts are subsets or flags:
    ``lost_during_reconnect`` of ``lost``; ``duplicated``, ``reordered`` and ``late`` of any.
    ``dropped`` counts messages the client itself discarded (a ``dropped`` ledger record).
    """

    originated: int = 0
    delivered: int = 0
    stored_only: int = 0
    lost: int = 0
    lost_during_reconnect: int = 0
    duplicated: int = 0
    reordered: int = 0
    late: int = 0
    dropped: int = 0

    @property
    def delivery(self) -> float | None:
        """Delivered / originated, or ``None`` if nothing was originated."""
        return self.delivered / self.originated if self.originated else None

    def to_json(self) -> dict[str, Any]:
        """One kind's row of report.json's ``messages``."""
        row: dict[str, Any] = dataclasses.asdict(self)
        row["delivery"] = None if self.delivery is None else stable_float(self.delivery)
        return row

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MessageCounts:
        """Read one kind's row back."""
        return cls(**{f.name: int(data.get(f.name, 0)) for f in dataclasses.fields(cls)})


@dataclass(frozen=True, slots=True)
class RunResult:
    """Everything a report needs, judged and final.

    Attributes:
        run: What was run.
        targets: The targets the verdicts were judged against.
        verdicts: One per claim, in CLAIMS.md order (plus ``unexpected``, the checker's own).
        messages: Per kind outcome counts.
        outcomes: Totals over all kinds (the :class:`MessageCounts` fields plus ``unexpected``).
        latency: Seconds; ``phone_to_operator`` and ``operator_to_phone`` (network latency, sent on
            an open channel) and ``delivery_delay`` (every delivered message).
        latency_by_network: Network kind of the phone -> direction -> network latency (s).
        connect: Initial connection windows that ended open (s).
        connect_counts: ``attempted``, ``succeeded``, ``failed``.
        reconnect: Reconnection windows that ended open (s).
        reconnect_counts: ``restorations``, ``succeeded``, ``failed``, ``skipped`` (the app could
            not run at all before the next drop or the end).
        heartbeat: Observed heartbeat spacings (s).
        uptime: Time open / time the app could be connected, over all devices; ``None`` if none.
        battery: Per device battery drain (%/h).
        battery_by_network: The device's majority network kind -> drain (%/h).
        population: ``os`` and ``network`` -> value -> number of devices.
        generator: The load generator's own figures.
        strict: Whether not-measured claims count as failures.
        warnings: Caveats that hold for the whole run (e.g. a compressed clock).
        views: The data behind report.html's plots, JSON-ready (fleet timeline, delivery by
            network, battery sample, map, worst phones; see :mod:`simulator.views`); empty for a
            report.json written before they existed.
    """

    run: RunInfo
    targets: Targets
    verdicts: tuple[Verdict, ...]
    messages: Mapping[str, MessageCounts]
    outcomes: Mapping[str, int]
    latency: Mapping[str, Histogram]
    latency_by_network: Mapping[str, Mapping[str, Histogram]]
    connect: Histogram
    connect_counts: Mapping[str, int]
    reconnect: Histogram
    reconnect_counts: Mapping[str, int]
    heartbeat: Histogram
    uptime: float | None
    battery: Histogram
    battery_by_network: Mapping[str, Histogram]
    population: Mapping[str, Mapping[str, int]]
    generator: GeneratorStats
    strict: bool = False
    warnings: tuple[str, ...] = ()
    views: Mapping[str, Any] = field(default_factory=dict)

    def verdict(self, claim_id: str) -> Verdict:
        """The verdict for one claim.

        Raises:
            KeyError: If there is no verdict with that id.
        """
        for verdict in self.verdicts:
            if verdict.id == claim_id:
                return verdict
        raise KeyError(claim_id)

    @property
    def exit_code(self) -> int:
        """0 when every verdict passes; 1 on a failure (or, in strict mode, a claim not measured)."""
        return exit_code_of(self.verdicts, self.strict)

    def to_json(self) -> dict[str, Any]:
        """The ``beacon-fleet/report@1`` document (a JSON-ready dict)."""
        lag = self.generator.loop_lag_ms
        document: dict[str, Any] = {
            "schema": SCHEMA,
            "run": self.run.to_json(),
            "verdicts": [verdict.to_json() for verdict in self.verdicts],
            "messages": {kind: counts.to_json() for kind, counts in self.messages.items()},
            "outcomes": dict(self.outcomes),
            "latency_ms": {name: hist.summary(1000.0) for name, hist in self.latency.items()},
            "latency_ms_by_network": {net: {d: h.summary(1000.0) for d, h in by_dir.items()}
                                      for net, by_dir in self.latency_by_network.items()},
            "connect_s": self.connect.summary(), "connect": dict(self.connect_counts),
            "reconnect_s": self.reconnect.summary(), "reconnect": dict(self.reconnect_counts),
            "heartbeat_s": self.heartbeat.summary(),
            "uptime": None if self.uptime is None else stable_float(self.uptime),
            "battery": {"pct_per_hour": self.battery.summary(),
                        "by_network": {net: h.summary() for net, h in self.battery_by_network.items()}},
            "generator": {"loop_lag_ms": None if lag is None else lag.summary(),
                          "cpu_s": stable_float(self.generator.cpu_s),
                          "peak_rss_mb": None if self.generator.peak_rss_mb is None
                          else stable_float(self.generator.peak_rss_mb)},
            "population": {k: dict(v) for k, v in self.population.items()},
            "targets": self.targets.to_dict(),
            "strict": self.strict,
            "exit_code": self.exit_code,
            "warnings": list(self.warnings),
            "views": dict(self.views),
        }
        document = _rounded(document)
        document["histograms"] = {
            "latency_s": {name: hist.to_dict() for name, hist in self.latency.items()},
            "latency_by_network_s": {net: {d: h.to_dict() for d, h in by_dir.items()}
                                     for net, by_dir in self.latency_by_network.items()},
            "connect_s": self.connect.to_dict(),
            "reconnect_s": self.reconnect.to_dict(),
            "heartbeat_s": self.heartbeat.to_dict(),
            "battery_pct_per_hour": self.battery.to_dict(),
            "battery_by_network": {net: h.to_dict() for net, h in self.battery_by_network.items()},
            "loop_lag_ms": None if lag is None else lag.to_dict(),
        }
        return document

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunResult:
        """Read a report.json document (as written by :meth:`to_json`) back.

        Raises:
            ValueError: If the schema is not ``beacon-fleet/report@1`` or the histograms are missing.
        """
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document (schema {data.get('schema')!r})")
        hists = data.get("histograms")
        if not isinstance(hists, Mapping):
            raise ValueError("the report has no 'histograms' block, so it cannot be re-rendered")
        generator = data.get("generator") or {}
        lag = hists.get("loop_lag_ms")
        rss = generator.get("peak_rss_mb")
        return cls(
            run=RunInfo.from_json(data["run"]),
            targets=Targets.from_dict(data.get("targets", {})),
            verdicts=tuple(Verdict.from_json(v) for v in data["verdicts"]),
            messages={kind: MessageCounts.from_json(row) for kind, row in data["messages"].items()},
            outcomes={k: int(v) for k, v in data.get("outcomes", {}).items()},
            latency={name: Histogram.from_dict(h) for name, h in hists["latency_s"].items()},
            latency_by_network={net: {d: Histogram.from_dict(h) for d, h in by_dir.items()}
                                for net, by_dir in hists["latency_by_network_s"].items()},
            connect=Histogram.from_dict(hists["connect_s"]),
            connect_counts={k: int(v) for k, v in data.get("connect", {}).items()},
            reconnect=Histogram.from_dict(hists["reconnect_s"]),
            reconnect_counts={k: int(v) for k, v in data.get("reconnect", {}).items()},
            heartbeat=Histogram.from_dict(hists["heartbeat_s"]),
            uptime=None if data.get("uptime") is None else float(data["uptime"]),
            battery=Histogram.from_dict(hists["battery_pct_per_hour"]),
            battery_by_network={net: Histogram.from_dict(h)
                                for net, h in hists["battery_by_network"].items()},
            population={k: {kk: int(vv) for kk, vv in v.items()}
                        for k, v in data.get("population", {}).items()},
            generator=GeneratorStats(loop_lag_ms=None if lag is None else Histogram.from_dict(lag),
                                     cpu_s=float(generator.get("cpu_s", 0.0)),
                                     peak_rss_mb=None if rss is None else float(rss)),
            strict=bool(data.get("strict", False)),
            warnings=tuple(str(w) for w in data.get("warnings", ())),
            views=dict(data.get("views") or {}),
        )


def exit_code_of(verdicts: tuple[Verdict, ...] | list[Verdict], strict: bool) -> int:
    """0 when every verdict passes; 1 on a failure, or, in strict mode, a claim not measured."""
    failing = {FAIL, NOT_MEASURED} if strict else {FAIL}
    return 1 if any(v.verdict in failing for v in verdicts) else 0


def stable_float(value: float) -> float:
    """A float rounded to 6 significant digits: stable to print, and unchanged when rounded again.

    Raises:
        ValueError: If the value is infinite or NaN (they have no place in a report).
    """
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} to a report")
    return float(f"{value:.6g}")


def _rounded(value: Any) -> Any:
    """Every float in a JSON-ready structure rounded with :func:`stable_float` (ints untouched)."""
    if isinstance(value, float):
        return stable_float(value)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value
