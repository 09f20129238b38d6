"""The Jepsen-style checker: judge a finished ledger against the claims, after the run.

:func:`judge` reads the history once, grouping records by ``origin_id`` and by actor in dicts, then
hands the two halves to :mod:`simulator.checks_messages` (outcomes per message and recipient,
latency, delivery delay) and :mod:`simulator.checks_devices` (connection windows, uptime,
heartbeats, battery), and turns the figures into one :class:`~simulator.result.Verdict` per claim
(CLAIMS.md). Every claim ends ``pass``, ``fail`` or ``not_measured`` with its reason; a failure's
note says in one line what went wrong and under which client policy. Timing claims compare a p99
strictly below the target; outages a client never recovered from (and devices that never
connected) count as unbounded samples, so enough of them make the p99 unbounded (measured ``null``).

An extra verdict, ``unexpected``, fails the run when any receipt or stored record matches no
originated message: that is a correlation bug in the fleet, and figures built on it are not to be
trusted.
"""

from __future__ import annotations

import gc
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from operator import itemgetter
from typing import Any

from simulator import checks_messages as msgs
from simulator import views
from simulator.checks_devices import ActorFigures, Timeline, sweep
from simulator.checks_messages import Originated, is_operator
from simulator.hdr import Histogram
from simulator.ledger import (
    ATTEMPT,
    CONNECTION,
    DROPPED,
    FIX,
    HEARTBEAT,
    ORIGINATED,
    RECEIVED,
    STATE,
    STORED,
    Ledger,
    Record,
)
from simulator.result import (
    FAIL,
    NOT_MEASURED,
    PASS,
    GeneratorStats,
    MessageCounts,
    RunInfo,
    RunResult,
    Targets,
    Verdict,
    exit_code_of,
    stable_float,
)

CLAIMS = {
    "connect": "initial connection",
    "reconnect": "reconnection time",
    "latency": "message latency",
    "heartbeat": "heartbeat interval",
    "delivery": "message delivery",
    "loss-reconnect": "data loss during reconnection",
    "uptime": "connection uptime",
    "reconnect-success": "reconnection success after network restoration",
    "duplicates": "no duplicates (implied by \"no data loss\")",
    "battery": "battery impact \"minimal\"",
    "memory": "memory stable over time",
    "unexpected": "every receipt matches an originated message (the checker's own integrity)",
}

LAG_WARNING_MS = 100.0


def judge(ledger: Ledger, run: RunInfo, targets: Targets, generator: GeneratorStats,
          strict: bool = False) -> RunResult:
    """Judge a finished run's ledger (after the drain) against the targets.

    Args:
        ledger: The run's history.
        run: What was run (the policy and profile name every verdict's population).
        targets: The claims' targets.
        generator: The load generator's own figures (loop lag, CPU, peak RSS).
        strict: Whether a claim not measured fails the run (CI).

    Returns:
        The frozen result every report renders.
    """
    collecting = gc.isenabled()
    gc.disable()  # millions of small containers and no cycles: the collector would only slow us down
    try:
        return _judge(ledger, run, targets, generator, strict)
    finally:
        if collecting:
            gc.enable()


def _judge(ledger: Ledger, run: RunInfo, targets: Targets, generator: GeneratorStats,
           strict: bool) -> RunResult:
    parts: defaultdict[str, list[Record]] = defaultdict(list)
    for r in ledger.records:
        parts[r[0]].append(r)
    originated: dict[str, Originated] = {}
    for r in parts[ORIGINATED]:
        message = originated.get(r[2])
        if message is None:
            originated[r[2]] = Originated(r[1], r[3], r[4], [r[5]], (r[1], len(originated)))
        elif r[5] not in message.recipients:
            message.recipients.append(r[5])
    sent_live: dict[str, bool] = {}  # attempted at the originated time: on a live channel or not
    slack = msgs.ATTEMPT_SLACK_S
    for r in parts[ATTEMPT]:
        message = originated.get(r[2])
        if message is None or r[1] > message.t + slack:
            continue
        if r[3] == "http" or r[5] == "open":
            sent_live[r[2]] = True
        elif r[2] not in sent_live:
            sent_live[r[2]] = False
    receipts: defaultdict[str, list[Record]] = defaultdict(list)
    by_receiver: defaultdict[str, list[Record]] = defaultdict(list)
    for r in parts[RECEIVED]:
        receipts[r[2]].append(r)
        by_receiver[r[3]].append(r)
    stored: dict[str, int] = {}
    for r in parts[STORED]:
        stored[r[1]] = stored.get(r[1], 0) + int(r[2])
    dropped = {r[2] for r in parts[DROPPED]}
    drop_reasons: defaultdict[str, dict[str, int]] = defaultdict(dict)
    for r in parts[DROPPED]:
        message = originated.get(r[2])
        if message is not None:
            reasons = drop_reasons[message.kind]
            reasons[str(r[3])] = reasons.get(str(r[3]), 0) + 1
    actor_events: defaultdict[str, list[Record]] = defaultdict(list)
    for r in parts[STATE]:
        actor_events[r[2]].append(r)
    for r in parts[CONNECTION]:
        actor_events[r[2]].append(r)
    heartbeats: defaultdict[str, list[float]] = defaultdict(list)
    for r in parts[HEARTBEAT]:
        heartbeats[r[2]].append(r[1])
    fixes = parts[FIX]  # for the report's map only: no verdict rests on a fix
    del parts

    devices: dict[str, ActorFigures] = {}
    timelines: dict[str, Timeline] = {}
    by_time = itemgetter(1)
    for actor in sorted(actor_events.keys() | heartbeats.keys()):
        events = actor_events.get(actor, [])
        events.sort(key=by_time)
        device = not is_operator(actor)
        figures = sweep(events, run.duration_s, device, sorted(heartbeats.get(actor, ())))
        timelines[actor] = figures.timeline
        if device:
            devices[actor] = figures

    reordered = msgs.reordered_receipts(by_receiver, originated)
    found = msgs.outcomes(originated, sent_live, receipts, stored, dropped, reordered, timelines,
                          targets.latency_p99_ms / 1000.0)
    found.drop_reasons = dict(drop_reasons)
    plots = views.build(actor_events, timelines, devices, originated, found, fixes, targets)
    return _result(run, targets, generator, strict, found, devices, plots)


def exit_code(result: RunResult, strict: bool) -> int:
    """The process exit status for a judged run (REPORT.md).

    Args:
        result: The judged run.
        strict: Whether a claim not measured fails (CI).

    Returns:
        0 when every verdict passes; 1 when one failed (or, in strict mode, was not measured).
    """
    return exit_code_of(result.verdicts, strict)


# -- figures -> result -----------------------------------------------------------------------------

def _result(run: RunInfo, targets: Targets, generator: GeneratorStats, strict: bool,
            found: msgs.MessageFigures, devices: Mapping[str, ActorFigures],
            plots: Mapping[str, Any]) -> RunResult:
    latency = {name: _histogram(found.latency[name]) for name in ("phone_to_operator",
                                                                  "operator_to_phone")}
    latency["delivery_delay"] = _histogram(found.delivery_delay)
    by_network = {net: {d: _histogram(v) for d, v in sorted(dirs.items())}
                  for net, dirs in sorted(found.latency_by_network.items())}
    connect = _histogram(f.connect_s for f in devices.values() if f.connect_s is not None)
    attempted = sum(f.connect_attempted for f in devices.values())
    reconnect = _histogram(s for f in devices.values() for s in f.reconnect_s)
    reconnect_failed = sum(f.reconnect_failed for f in devices.values())
    heartbeat = _histogram(s for f in devices.values() for s in f.heartbeat_spacings)
    eligible = sum(f.eligible_s for f in devices.values())
    uptime = stable_float(sum(f.up_s for f in devices.values()) / eligible) if eligible > 0 else None
    battery = Histogram(lowest=0.001, highest=1000.0)
    battery_by_network: dict[str, Histogram] = {}
    os_counts: dict[str, int] = {}
    network_counts: dict[str, int] = {}
    for figures in devices.values():
        os_counts[figures.os] = os_counts.get(figures.os, 0) + 1
        net = figures.majority_network
        network_counts[net] = network_counts.get(net, 0) + 1
        if figures.battery_pct_per_hour is not None:
            battery.record(figures.battery_pct_per_hour)
            battery_by_network.setdefault(net, Histogram(lowest=0.001, highest=1000.0)).record(
                figures.battery_pct_per_hour)
    messages = {kind: MessageCounts(*row[:9]) for kind, row in sorted(found.counts.items())}
    totals = [sum(row[i] for row in found.counts.values()) for i in range(msgs.COUNTERS)]
    outcomes = dict(zip(msgs.COUNTER_NAMES, totals, strict=True))
    outcomes["unexpected"] = len(found.unexpected_ids)
    outcomes["unexpected_receipts"] = found.unexpected_receipts
    connect_counts = {"attempted": attempted, "succeeded": connect.count,
                      "failed": attempted - connect.count,
                      "skipped": sum(f.connect_skipped for f in devices.values())}
    reconnect_counts = {"restorations": reconnect.count + reconnect_failed,
                        "succeeded": reconnect.count, "failed": reconnect_failed,
                        "skipped": sum(f.reconnect_skipped for f in devices.values())}
    population = {"os": dict(sorted(os_counts.items())), "network": dict(sorted(network_counts.items()))}
    base = {"profile": run.profile, "policy": run.policy,
            "os": "+".join(sorted(os_counts)) or "none",
            "network": "+".join(sorted(network_counts)) or "none"}
    judge_ = _Judge(run, targets, base)
    verdicts = (
        judge_.connect(connect, connect_counts["failed"]),
        judge_.reconnect(reconnect, reconnect_failed),
        judge_.latency(latency, by_network),
        judge_.heartbeat(heartbeat, [s for f in devices.values() for s in f.heartbeat_spacings]),
        judge_.delivery(messages, found.drop_reasons),
        judge_.loss_reconnect(found.counts, totals),
        judge_.uptime(uptime, sum(f.eligible_s > 0 for f in devices.values()), eligible),
        judge_.reconnect_success(reconnect.count, reconnect_failed),
        judge_.duplicates(messages, totals),
        judge_.battery(battery, battery_by_network),
        judge_.memory(generator.peak_rss_mb),
        judge_.unexpected(found),
    )
    warnings = []
    if run.mode == "run" and run.speed != 1.0:
        warnings.append(f"timing targets hold only at speed 1; this run ran at speed {run.speed:g}, so "
                        "connect, reconnect, latency and heartbeat figures are not comparable to them")
    lag = generator.loop_lag_ms
    if lag is not None and lag.count and lag.percentile(99) > LAG_WARNING_MS:
        warnings.append(f"generator loop lag p99 {_fmt(lag.percentile(99))} ms: latency figures "
                        "include the generator's own delay")
    return RunResult(run=run, targets=targets, verdicts=verdicts, messages=messages, outcomes=outcomes,
                     latency=latency, latency_by_network=by_network, connect=connect,
                     connect_counts=connect_counts, reconnect=reconnect,
                     reconnect_counts=reconnect_counts, heartbeat=heartbeat, uptime=uptime,
                     battery=battery, battery_by_network=dict(sorted(battery_by_network.items())),
                     population=population, generator=generator, strict=strict,
                     warnings=tuple(warnings), views=plots)


class _Judge:
    """Builds each claim's verdict; every failure note ends with the client policy."""

    def __init__(self, run: RunInfo, targets: Targets, population: Mapping[str, str]) -> None:
        self.run = run
        self.targets = targets
        self.population = population

    def _verdict(self, claim_id: str, target: str, measured: float | None, passed: bool | None,
                 n: int, of: str, unit: str, note: str) -> Verdict:
        verdict = NOT_MEASURED if passed is None else PASS if passed else FAIL
        if verdict == FAIL:
            note = f"{note}; policy {self.run.policy}"
        population: dict[str, str | int] = {**self.population, "n": n, "of": of}
        if measured is not None:
            measured = stable_float(measured)
        return Verdict(id=claim_id, claim=CLAIMS[claim_id], target=target, measured=measured,
                       verdict=verdict, n=n, note=note, population=population, unit=unit)

    def _window(self, claim_id: str, hist: Histogram, failed: int, limit: float, what: str,
                failed_what: str, none_note: str) -> Verdict:
        target = f"p99 < {limit:g} s"
        total = hist.count + failed
        if total == 0:
            return self._verdict(claim_id, target, None, None, 0, what, "s", none_note)
        p99 = _p99_with_failures(hist, failed)
        tail = f"{failed} of {total} {failed_what}" if failed else ""
        if p99 is None:
            return self._verdict(claim_id, target, None, False, total, what, "s",
                                 f"p99 unbounded: {tail}")
        passed = p99 < limit
        note = f"p99 {_fmt(p99)} s, p50 {_fmt(hist.percentile(50))} s over {total} {what}"
        if not passed:
            note = f"p99 {_fmt(p99)} s >= {limit:g} s over {total} {what}"
        if tail:
            note += f" ({tail})"
        return self._verdict(claim_id, target, p99, passed, total, what, "s", note)

    def connect(self, hist: Histogram, failed: int) -> Verdict:
        return self._window("connect", hist, failed, self.targets.connect_p99_s, "devices",
                            "devices never connected",
                            "no device opened its user channel (no 'connecting' record)")

    def reconnect(self, hist: Histogram, failed: int) -> Verdict:
        return self._window("reconnect", hist, failed, self.targets.reconnect_p99_s, "restorations",
                            "restorations never reconnected before the next drop or the end",
                            "no reconnection happened (the network never came back while the app "
                            "could run)")

    def latency(self, latency: Mapping[str, Histogram],
                by_network: Mapping[str, Mapping[str, Histogram]]) -> Verdict:
        limit = self.targets.latency_p99_ms
        target = f"p99 < {limit:g} ms"
        p99s = {d: latency[d].percentile(99) * 1000.0 for d in ("phone_to_operator", "operator_to_phone")
                if latency[d].count}
        n = sum(latency[d].count for d in p99s)
        if not p99s:
            return self._verdict("latency", target, None, None, 0, "messages", "ms",
                                 "no message sent on an open channel was received")
        worst = max(p99s.values())
        parts = [f"{d.replace('_', ' ')} p99 {_fmt(v)} ms (n={latency[d].count})" for d, v in p99s.items()]
        slow = sorted(f"{net} {d.replace('_', ' ')} {_fmt(h.percentile(99) * 1000.0)} ms"
                      for net, dirs in by_network.items() for d, h in dirs.items()
                      if h.count and h.percentile(99) * 1000.0 >= limit)
        note = "; ".join(parts)
        if worst >= limit and slow:
            note += f"; slowest networks: {', '.join(slow[:4])}"
        return self._verdict("latency", target, worst, worst < limit, n, "messages", "ms", note)

    def heartbeat(self, hist: Histogram, spacings: list[float]) -> Verdict:
        interval, tolerance = self.targets.heartbeat_interval_s, self.targets.heartbeat_tolerance
        target = f"{interval:g} s +- {tolerance * 100:g}%"
        if not spacings:
            return self._verdict("heartbeat", target, None, None, 0, "spacings", "s",
                                 "no two consecutive heartbeats on an unbroken foreground connection")
        low, high = interval * (1 - tolerance), interval * (1 + tolerance)
        within = sum(low <= s <= high for s in spacings) / len(spacings)
        needed = self.targets.heartbeat_within_share
        passed = within >= needed
        median = hist.percentile(50)
        note = (f"median {_fmt(median)} s; {_pct(within)} of {len(spacings)} spacings within "
                f"{low:g}-{high:g} s (p1 {_fmt(hist.percentile(1))} s, p99 {_fmt(hist.percentile(99))} s)")
        if not passed:
            note += f"; needs {_pct(needed)}"
        return self._verdict("heartbeat", target, median, passed, len(spacings), "spacings", "s", note)

    def delivery(self, messages: Mapping[str, MessageCounts],
                 drop_reasons: Mapping[str, Mapping[str, int]] | None = None) -> Verdict:
        minimum = self.targets.delivery_min
        target = f">= {_pct(minimum)} per kind"
        n = sum(c.originated for c in messages.values())
        rows = {kind: c for kind, c in messages.items() if c.originated}
        if not rows:
            return self._verdict("delivery", target, None, None, 0, "messages", "ratio",
                                 "no message was originated")
        ratios = {kind: c.delivered / c.originated for kind, c in rows.items()}
        worst_kind = min(ratios, key=lambda k: (ratios[k], k))
        failing = [k for k in sorted(ratios) if ratios[k] < minimum]
        if failing:
            note = ", ".join(f"{k} {_pct(ratios[k])} ({rows[k].lost} lost, {rows[k].stored_only} stored "
                             f"only, of {rows[k].originated}{_drops(rows[k], (drop_reasons or {}).get(k))})"
                             for k in failing)
            note += f" below {_pct(minimum)}"
        else:
            note = f"all {len(rows)} kinds delivered; lowest {worst_kind} {_pct(ratios[worst_kind])}"
        return self._verdict("delivery", target, ratios[worst_kind], not failing, n, "messages",
                             "ratio", note)

    def loss_reconnect(self, counts: Mapping[str, list[int]], totals: list[int]) -> Verdict:
        maximum = self.targets.loss_reconnect_max
        target = f"<= {_pct(maximum)} lost"
        n, lost = totals[msgs.WHILE_DISCONNECTED], totals[msgs.LOST_DURING_RECONNECT]
        if n == 0:
            return self._verdict("loss-reconnect", target, None, None, 0, "messages", "ratio",
                                 "no message was originated while its sender was disconnected or "
                                 "reconnecting")
        share = lost / n
        passed = share <= maximum
        if lost:
            by_kind = ", ".join(f"{row[msgs.LOST_DURING_RECONNECT]} {kind}"
                                for kind, row in sorted(counts.items()) if row[msgs.LOST_DURING_RECONNECT])
            note = (f"{by_kind} messages were lost while the sender's channel was not open or "
                    f"reconnecting ({lost} of {n}, {_pct(share)})")
        else:
            note = f"none of {n} messages originated while disconnected or reconnecting was lost"
        return self._verdict("loss-reconnect", target, share, passed, n, "messages", "ratio", note)

    def uptime(self, uptime: float | None, n: int, eligible_s: float) -> Verdict:
        minimum = self.targets.uptime_min
        target = f">= {_pct(minimum)}"
        if uptime is None:
            return self._verdict("uptime", target, None, None, 0, "devices", "ratio",
                                 "no device had network while the app was allowed to use it")
        passed = uptime >= minimum
        note = (f"user channel open {_pct(uptime)} of the {_fmt(eligible_s / 3600.0)} device-hours the "
                f"app could be connected")
        return self._verdict("uptime", target, uptime, passed, n, "devices", "ratio", note)

    def reconnect_success(self, succeeded: int, failed: int) -> Verdict:
        minimum = self.targets.reconnect_success_min
        target = f">= {_pct(minimum)}"
        total = succeeded + failed
        if total == 0:
            return self._verdict("reconnect-success", target, None, None, 0, "restorations", "ratio",
                                 "no reconnection happened (the network never came back while the app "
                                 "could run)")
        share = succeeded / total
        note = f"{succeeded} of {total} network restorations were followed by a reconnection"
        if failed:
            note += f"; {failed} never reconnected before the next drop or the end of the run"
        return self._verdict("reconnect-success", target, share, share >= minimum, total,
                             "restorations", "ratio", note)

    def duplicates(self, messages: Mapping[str, MessageCounts], totals: list[int]) -> Verdict:
        maximum = self.targets.duplicates_max
        n = sum(c.originated for c in messages.values())
        if n == 0:
            return self._verdict("duplicates", f"<= {maximum}", None, None, 0, "messages", "count",
                                 "no message was originated")
        duplicated = totals[msgs.DUPLICATED]
        if duplicated:
            by_kind = ", ".join(f"{c.duplicated} {k}" for k, c in messages.items() if c.duplicated)
            note = (f"{by_kind} duplicated ({totals[msgs.DUPLICATED_STORED]} stored more than once by the "
                    f"backend, {totals[msgs.DUPLICATED_RECEIVED]} received twice by one recipient)")
        else:
            note = f"no duplicate among {n} messages"
        return self._verdict("duplicates", f"<= {maximum}", float(duplicated), duplicated <= maximum, n,
                             "messages", "count", note)

    def battery(self, hist: Histogram, by_network: Mapping[str, Histogram]) -> Verdict:
        limit = self.targets.battery_pct_per_hour
        target = "reported" if limit is None else f"median <= {limit:g} %/h"
        if hist.count == 0:
            return self._verdict("battery", target, None, None, 0, "devices", "%/h",
                                 "no device recorded two battery levels")
        median = hist.percentile(50)
        nets = ", ".join(f"{net} {_fmt(h.percentile(50))}" for net, h in by_network.items())
        note = f"median {_fmt(median)} %/h, p90 {_fmt(hist.percentile(90))} %/h; by network: {nets}"
        if limit is None:
            return self._verdict("battery", target, median, True, hist.count, "devices", "%/h",
                                 f"reported only (the profile sets no battery target): {note}")
        return self._verdict("battery", target, median, median <= limit, hist.count, "devices", "%/h",
                             note)

    def memory(self, peak_rss_mb: float | None) -> Verdict:
        if peak_rss_mb is None:
            return self._verdict("memory", "reported", None, None, 0, "processes", "MB",
                                 "the fleet's peak RSS was not measured")
        return self._verdict("memory", "reported", peak_rss_mb, True, 1, "processes", "MB",
                             f"fleet process peak RSS {_fmt(peak_rss_mb)} MB (reported, no target)")

    def unexpected(self, found: msgs.MessageFigures) -> Verdict:
        ids = found.unexpected_ids
        if not ids:
            return self._verdict("unexpected", "0", 0.0, True, found.receipts_checked, "receipts",
                                 "count", "every receipt and stored record matches an originated message")
        examples = ", ".join(repr(i) for i in ids[:3])
        note = (f"{len(ids)} ids received or stored were never originated ({found.unexpected_receipts} "
                f"receipts; e.g. {examples}): a correlation bug in the fleet, not the backend")
        return self._verdict("unexpected", "0", float(len(ids)), False, len(ids), "ids", "count", note)


def _drops(counts: MessageCounts, reasons: Mapping[str, int] | None) -> str:
    """``; 4 dropped by the client: location channel never opened`` (with several reasons, each
    with its count), or nothing if the client dropped none."""
    if not counts.dropped:
        return ""
    ranked = sorted((reasons or {}).items(), key=lambda item: (-item[1], item[0]))
    if len(ranked) == 1:
        return f"; {counts.dropped} dropped by the client: {ranked[0][0]}"
    why = ", ".join(f"{n} {reason}" for reason, n in ranked)
    return f"; {counts.dropped} dropped by the client" + (f" ({why})" if why else "")


def _histogram(values: Iterable[float]) -> Histogram:
    histogram = Histogram()
    histogram.record_many(values)
    return histogram


def _p99_with_failures(hist: Histogram, failed: int) -> float | None:
    """The p99 when ``failed`` more samples are unbounded; ``None`` if the p99 is one of them."""
    rank = max(1, math.ceil(0.99 * (hist.count + failed) - 1e-9))
    if rank > hist.count:
        return None
    return hist.percentile(100.0 * rank / hist.count)


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.2f}".rstrip("0").rstrip(".") + "%"
