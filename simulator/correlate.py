"""Message identity across the wire: content fingerprints the fleet controls, mapped to origin ids.

With the resilience extension a message carries its ``client_msg_id``; the as-shipped dialect drops
unknown fields, so receivers identify what they got by what the sender made unique
(CHECKER.md, "Identity"): a location by its exact coordinates (7 decimals, unique per fix), a chat
line by the origin id written into its text, a new alert by its owner and first fix, a status
change by the alert and the status. Senders register the fingerprint when they originate; receivers
look it up. The correlator only measures: no actor's behaviour depends on it.
"""

from __future__ import annotations

from typing import Any

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
