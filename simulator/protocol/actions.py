"""What the sans-I/O client asks its driver to do, and what it tells the ledger.

Frozen, slotted records: the driver (a SimPy phone in virtual time, or the asyncio transport in run
mode) executes ``Open``/``Send``/``Close``/``HttpRequest``/``WantFix`` and records the notes
(``Dropped``, ``Acked``, ``Received``, ``GaveUp``) in the ledger. None of them performs I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

USER, ALERT, LOCATION, CHAT = "user", "alert", "location", "chat"
CHANNELS = (USER, ALERT, LOCATION, CHAT)


@dataclass(frozen=True, slots=True)
class Open:
    channel: str
    path: str
    since: int | None = None


@dataclass(frozen=True, slots=True)
class Send:
    channel: str
    message: dict[str, Any]
    origin_id: str | None = None


@dataclass(frozen=True, slots=True)
class Close:
    channel: str
    code: int = 1000
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    request_id: int
    method: str
    path: str
    body: dict[str, Any] | None = None
    origin_id: str | None = None


@dataclass(frozen=True, slots=True)
class WantFix:
    """The client wants a location fix now; answer with ``location_fix``."""


@dataclass(frozen=True, slots=True)
class Dropped:
    origin_id: str
    reason: str
    channel: str | None = None  # the channel it was meant for, when a closed channel dropped it


@dataclass(frozen=True, slots=True)
class Acked:
    origin_id: str


@dataclass(frozen=True, slots=True)
class Received:
    """An application message reached this client (a status update, chat, operator message)."""

    channel: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GaveUp:
    channel: str
    attempts: int


Action = Open | Send | Close | HttpRequest | WantFix | Dropped | Acked | Received | GaveUp
