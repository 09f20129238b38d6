"""Message identity across the wire: content fingerprints the fleet controls, mapped to origin ids.

With the resilience extension a message carries its ``client_msg_id``; the as-shipped dialect drops
unknown fields, so receivers identify what they got by what the sender made unique
(CHECKER.md, "Identity"): a location by its exact coordinates (7 decimals, unique per fix), a chat
line by the origin id written into its text, a new alert by its owner and first fix, a status
change by the alert and the status. Senders register the fingerprint when they originate; receivers
look it up. The correlator only measures: no actor's behaviour depends on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.ledger import Ledger

Key = tuple[Any, ...]


def create_key(user_id: int, latitude: float, longitude: float) -> Key:
    return ("create", user_id, round(latitude, 7), round(longitude, 7))


def location_key(alert_id: str, latitude: float, longitude: float) -> Key:
    return ("location", alert_id, round(latitude, 7), round(longitude, 7))


def chat_key(text: str) -> Key:
    return ("chat", text)


def status_key(alert_id: str, status: str) -> Key:
    return ("status", alert_id, status)


def tagged(text: str, origin_id: str) -> str:
    """Chat text carrying its origin id, so a receiver can name it without ``client_msg_id``."""
    return f"{text} [{origin_id}]"


class Correlator:
    def __init__(self) -> None:
        self._origins: dict[Key, str] = {}

    def register(self, key: Key, origin_id: str) -> None:
        self._origins.setdefault(key, origin_id)

    def lookup(self, key: Key) -> str | None:
        return self._origins.get(key)

    def __len__(self) -> int:
        return len(self._origins)


def record_stored(ledger: Ledger, correlator: Correlator,
                  records: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """The drain's last step: write a ``stored`` record per origin for what the backend holds.

    ``records`` are ``(kind, record)`` pairs — kind ``create``, ``location``, ``chat`` or ``status``
    — from the modelled backend or read back over HTTP from a real one.
    """
    counts: Counter[str] = Counter()
    for kind, record in records:
        key: Key
        if kind == "create":
            key = create_key(record["user"], record["latitude"], record["longitude"])
        elif kind == "location":
            key = location_key(record["alert_id"], record["latitude"], record["longitude"])
        elif kind == "chat":
            key = chat_key(record["message"])
        else:
            key = status_key(record["alert_id"], record["status"])
        origin = correlator.lookup(key)
        counts[origin if origin is not None else f"unknown:{key!r}"] += 1
    for origin, count in sorted(counts.items()):
        ledger.stored(origin, count)
