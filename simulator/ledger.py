"""The ledger: an append-only history of what every actor tried and observed.

Judged after the run (:mod:`simulator.checks`), never during it. Each record is a plain tuple whose
first element names its kind, so a 10,000-phone hour stays compact in memory and streams to a
gzipped JSON-lines file unchanged. Times are model seconds from the start of the run; in run mode a
wall-clock time can be added by the transport as an extra field later.

======================  ==================================================================
record                  fields
======================  ==================================================================
``originated``          t, origin_id, kind, actor, recipient
``attempt``             t, origin_id, transport ("ws"|"http"), channel, connection state
``dropped``             t, origin_id, reason (the client discarded it, e.g. closed channel)
``acked``               t, origin_id
``received``            t, origin_id, receiver, stream, seq
``stored``              origin_id, count (records the backend holds for it, after the drain)
``connection``          t, actor, channel, state, cause
``state``               t, actor, dimension ("network"|"lifecycle"|"battery"|"power"), value
``heartbeat``           t, actor (a ping sent while the user channel was open and foreground)
``fix``                 t, actor, latitude, longitude (a location fix the phone found: at a panic
                        and at each location update; for the report's map, never judged)
======================  ==================================================================

``recipient`` is an actor name (``"phone-17"``) or ``"operators"`` (any operator will do).
Connection states: ``connecting``, ``open``, ``closed``, ``refused``, ``half_open``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

Record = tuple[Any, ...]

ORIGINATED = "originated"
ATTEMPT = "attempt"
DROPPED = "dropped"
ACKED = "acked"
RECEIVED = "received"
STORED = "stored"
CONNECTION = "connection"
STATE = "state"
HEARTBEAT = "heartbeat"
FIX = "fix"

OPERATORS = "operators"  # a recipient meaning "any operator"

KINDS = ("create", "location", "chat_from_phone", "chat_from_operator", "status_update", "cancel")


class Ledger:
    """Append-only; every method adds exactly one record."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def __len__(self) -> int:
        return len(self.records)

    def originated(self, t: float, origin_id: str, kind: str, actor: str, recipient: str) -> None:
        self.records.append((ORIGINATED, t, origin_id, kind, actor, recipient))

    def attempt(self, t: float, origin_id: str, transport: str, channel: str, state: str) -> None:
        self.records.append((ATTEMPT, t, origin_id, transport, channel, state))

    def dropped(self, t: float, origin_id: str, reason: str) -> None:
        self.records.append((DROPPED, t, origin_id, reason))

    def acked(self, t: float, origin_id: str) -> None:
        self.records.append((ACKED, t, origin_id))

    def received(self, t: float, origin_id: str, receiver: str, stream: str | None,
                 seq: int | None) -> None:
        self.records.append((RECEIVED, t, origin_id, receiver, stream, seq))

    def stored(self, origin_id: str, count: int) -> None:
        self.records.append((STORED, origin_id, count))

    def connection(self, t: float, actor: str, channel: str, state: str, cause: str = "") -> None:
        self.records.append((CONNECTION, t, actor, channel, state, cause))

    def state(self, t: float, actor: str, dimension: str, value: Any) -> None:
        self.records.append((STATE, t, actor, dimension, value))

    def heartbeat(self, t: float, actor: str) -> None:
        self.records.append((HEARTBEAT, t, actor))

    def fix(self, t: float, actor: str, lat: float, lon: float) -> None:
        self.records.append((FIX, t, actor, lat, lon))

    def of_kind(self, kind: str) -> Iterator[Record]:
        return (r for r in self.records if r[0] == kind)

    # -- storage ---------------------------------------------------------------------------------

    def write(self, path: Path) -> None:
        """Write as gzipped JSON lines (one record per line, a JSON array)."""
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as out:
            for record in self.records:
                out.write(json.dumps(record, separators=(",", ":")))
                out.write("\n")

    @classmethod
    def read(cls, path: Path) -> Ledger:
        ledger = cls()
        with gzip.open(path, "rt", encoding="utf-8") as source:
            ledger.extend(tuple(json.loads(line)) for line in source if line.strip())
        return ledger

    def extend(self, records: Iterable[Record]) -> None:
        self.records.extend(records)
