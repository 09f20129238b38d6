"""The checker's message half: outcomes per (message, intended recipient), latency and delays.

Input is the ledger already grouped by :func:`simulator.checks.judge` (one pass, dicts keyed by
``origin_id``); output is a :class:`MessageFigures`. The rules (CHECKER.md):

- A message may name several recipients by repeating its ``originated`` record with another
  ``recipient``; each (message, recipient) pair gets exactly one of *delivered* (received at least
  once by that recipient; for ``"operators"``, by any operator), *stored-only* (not received, but
  the backend holds it) or *lost* (neither). Receipts by anyone else (the sender's own echo, say)
  do not count.
- *Lost during reconnect*: lost, and the sender was not connected when it meant to send: its
  network was down, the app could not use it, power was off, a reconnect window was pending, or
  its channel was not open (from the attempts at the originated time when there are any, else
  from the sender's primary channel).
- *Duplicated*: one recipient received it more than once, or the backend stored it more than once
  (``stored`` counts for one id add up). *Reordered*: received with a stream seq below one that
  receiver already had on that stream; without seqs, received after a later message of the same
  sender and kind. *Late*: a network-latency sample beyond the latency target.
- *Unexpected*: an id received or stored that was never originated (a correlation bug).
- Network latency: first receipt - intended time, only when an ``attempt`` at the originated time
  went out live: over HTTP (transport ``"http"``, which needs no channel), or on a channel in state
  ``open`` (as the sender believed it); delivery delay for every delivered pair. Directions: an
  operator's messages are operator -> phone, all others phone -> operator. A connection has two
  ends: an operator's message sent while the receiving phone was not connected (its user channel
  not open, no network, the app suspended or in Doze, or reconnecting) measures the phone's
  absence, not the network, so it counts in the delivery delay only (``sent_while_recipient_away``).
  The network kind is the phone's, at sending (phone -> operator) or at receipt.
- Delivery by network: every pair counted as originated (and delivered, if it was) under the network
  kind of the phone involved at the originated time: the sender's, or for an operator's message the
  receiving phone's (``"down"`` when it had none, ``"unknown"`` before its first record).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from simulator.checks_devices import IMPAIRED, NOT_OPEN, UNKNOWN, Timeline
from simulator.ledger import OPERATORS, Record

OPERATOR_PREFIX = "operator"
ATTEMPT_SLACK_S = 1e-3  # an attempt this close after the intended time counts as "at" it

# Indices into a kind's counter list (the MessageCounts fields, plus the loss-reconnect denominator).
ORIGINATED, DELIVERED, STORED_ONLY, LOST, LOST_DURING_RECONNECT, DUPLICATED, REORDERED, LATE, \
    DROPPED, WHILE_DISCONNECTED, DUPLICATED_STORED, DUPLICATED_RECEIVED, RECIPIENT_AWAY = range(13)
COUNTERS = 13
COUNTER_NAMES = ("originated", "delivered", "stored_only", "lost", "lost_during_reconnect", "duplicated",
                 "reordered", "late", "dropped", "originated_while_disconnected", "duplicated_stored",
                 "duplicated_received", "sent_while_recipient_away")


@dataclass(slots=True)
class Originated:
    """One originated message (all its recipients)."""

    t: float
    kind: str
    actor: str
    recipients: list[str]
    order: tuple[float, int]  # (intended time, position in the ledger): origin order


@dataclass(slots=True)
class MessageFigures:
    """What the message half measured (samples in seconds)."""

    counts: dict[str, list[int]] = field(default_factory=dict)
    unexpected_ids: list[str] = field(default_factory=list)
    unexpected_receipts: int = 0
    receipts_checked: int = 0
    latency: dict[str, list[float]] = field(default_factory=dict)
    latency_by_network: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    delivery_delay: list[float] = field(default_factory=list)
    drop_reasons: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> client's reason -> n
    # (network kind of the phone involved at the originated time, message kind) -> [originated, delivered]
    delivery_by_network: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    lost_pairs: list[tuple[str, str]] = field(default_factory=list)  # (origin_id, recipient), lost
    stored_only_pairs: list[tuple[str, str]] = field(default_factory=list)  # ... stored, not received


def is_operator(actor: str) -> bool:
    """Whether an actor name is an operator's (``operator-<j>``)."""
    return actor.startswith(OPERATOR_PREFIX)


def reordered_receipts(by_receiver: Mapping[str, list[Record]],
                       originated: Mapping[str, Originated]) -> set[tuple[str, str]]:
    """The (origin_id, receiver) pairs whose first receipt came out of order.

    Args:
        by_receiver: Receiver -> its ``received`` records (any order; sorted here by time).
        originated: origin_id -> message.

    Returns:
        Pairs received below a stream seq already seen, or (without seqs) after a later message
        of the same sender and kind.
    """
    reordered: set[tuple[str, str]] = set()
    for receiver, receipts in by_receiver.items():
        receipts.sort(key=_time)
        seen: set[str] = set()
        top_seq: dict[str, int] = {}
        top_order: dict[tuple[str, str], tuple[float, int]] = {}
        for record in receipts:
            oid, stream, seq = record[2], record[4], record[5]
            if oid in seen:
                continue
            seen.add(oid)
            if seq is not None and stream is not None:
                top_in_stream = top_seq.get(stream)
                if top_in_stream is not None and seq < top_in_stream:
                    reordered.add((oid, receiver))
                else:
                    top_seq[stream] = seq
                continue
            message = originated.get(oid)
            if message is None:
                continue
            key = (message.actor, message.kind)
            top = top_order.get(key)
            if top is not None and message.order < top:
                reordered.add((oid, receiver))
            else:
                top_order[key] = message.order
    return reordered


def _time(record: Record) -> float:
    t: float = record[1]
    return t


def outcomes(originated: Mapping[str, Originated], sent_live: Mapping[str, bool],
             receipts: Mapping[str, list[Record]], stored: Mapping[str, int], dropped: set[str],
             reordered: set[tuple[str, str]], timelines: Mapping[str, Timeline],
             late_s: float) -> MessageFigures:
    """Judge every (message, intended recipient) pair.

    Args:
        originated: origin_id -> message.
        sent_live: origin_id -> whether an attempt at its originated time went out live (over
            HTTP, or on a channel the sender believed open); absent when none was made then.
        receipts: origin_id -> its ``received`` records.
        stored: origin_id -> records the backend holds for it after the drain.
        dropped: origin_ids the client discarded.
        reordered: (origin_id, receiver) pairs received out of order.
        timelines: actor -> its timeline (see :mod:`simulator.checks_devices`).
        late_s: Network latency above this is late (the latency target, in seconds).

    Returns:
        Counts per kind (and per network and kind), unexpected ids, latency samples, delivery
        delays, and the pairs that were lost or stored only (in the order of the originated records).
    """
    figures = MessageFigures()
    counts = figures.counts
    p2o: list[float] = []
    o2p: list[float] = []
    figures.latency = {"phone_to_operator": p2o, "operator_to_phone": o2p}
    by_network: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    delivery = figures.delivery_by_network
    delays = figures.delivery_delay
    reordered_ids = {oid for oid, _ in reordered}
    no_receipts: list[Record] = []
    for oid, message in originated.items():
        t, actor = message.t, message.actor
        row = counts.get(message.kind)
        if row is None:
            row = counts[message.kind] = [0] * COUNTERS
        live = sent_live.get(oid)
        on_open = live is True
        timeline = timelines.get(actor)
        code = timeline.code_at(t) if timeline is not None else 0
        if code & IMPAIRED:
            disconnected = True
        elif live is not None:
            disconnected = not live
        else:
            disconnected = bool(code & NOT_OPEN)
        from_operator = actor.startswith(OPERATOR_PREFIX)
        sender_net = UNKNOWN if from_operator or timeline is None else timeline.network_at(t)
        mine_all = receipts.get(oid, no_receipts)
        n_stored = stored.get(oid, 0)
        if oid in dropped:
            row[DROPPED] += 1
        for recipient in message.recipients:
            row[ORIGINATED] += 1
            if from_operator:
                phone_line = timelines.get(recipient)
                net_then = phone_line.network_at(t) if phone_line is not None else UNKNOWN
            else:
                net_then = sender_net
            tally = delivery.get((net_then, message.kind))
            if tally is None:
                tally = delivery[net_then, message.kind] = [0, 0]
            tally[0] += 1
            if disconnected:
                row[WHILE_DISCONNECTED] += 1
            if recipient == OPERATORS:
                mine = [r for r in mine_all if r[3].startswith(OPERATOR_PREFIX)]
            else:
                mine = [r for r in mine_all if r[3] == recipient]
            received_twice = False
            if mine:
                row[DELIVERED] += 1
                tally[1] += 1
                if len(mine) == 1:
                    first = mine[0][1]
                else:
                    first = min(r[1] for r in mine)
                    names = [r[3] for r in mine]
                    received_twice = len(set(names)) < len(names)
                delay = first - t if first > t else 0.0
                delays.append(delay)
                if on_open and from_operator:
                    if phone_line is not None and phone_line.code_at(t):
                        row[RECIPIENT_AWAY] += 1  # the phone was not connected: delivery delay only
                    else:
                        o2p.append(delay)
                        row[LATE] += delay > late_s
                        net = phone_line.network_at(first) if phone_line is not None else UNKNOWN
                        by_network[net, "operator_to_phone"].append(delay)
                elif on_open:
                    p2o.append(delay)
                    row[LATE] += delay > late_s
                    by_network[sender_net, "phone_to_operator"].append(delay)
                if oid in reordered_ids and any((oid, r[3]) in reordered for r in mine):
                    row[REORDERED] += 1
            elif n_stored:
                row[STORED_ONLY] += 1
                figures.stored_only_pairs.append((oid, recipient))
            else:
                row[LOST] += 1
                figures.lost_pairs.append((oid, recipient))
                if disconnected:
                    row[LOST_DURING_RECONNECT] += 1
            if received_twice or n_stored > 1:
                row[DUPLICATED] += 1
                row[DUPLICATED_STORED] += n_stored > 1
                row[DUPLICATED_RECEIVED] += received_twice
    for (net, direction), samples in by_network.items():
        figures.latency_by_network.setdefault(net, {})[direction] = samples
    unexpected = {oid for oid in receipts if oid not in originated}
    figures.unexpected_receipts = sum(len(receipts[oid]) for oid in unexpected)
    figures.receipts_checked = sum(len(found) for found in receipts.values())
    unexpected.update(oid for oid in stored if oid not in originated)
    figures.unexpected_ids = sorted(unexpected)
    return figures
