"""Checks on client-supplied fields: types, ranges, sizes. Each failure names the field."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from beacon_backend.errors import Refused, bad_field

SEVEN_PLACES = Decimal("0.0000001")
MAX_CHAT_CHARS = 4000
MAX_CLIENT_MSG_ID = 100


def number(data: dict[str, Any], field: str, *, required: bool = False,
           low: float | None = None, high: float | None = None) -> float | None:
    value = data.get(field)
    if value is None:
        if required:
            raise bad_field(field, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad_field(field, f"must be a number, got {type(value).__name__}")
    try:
        result = float(value)
    except (ValueError, OverflowError):
        raise bad_field(field, "must be a finite number") from None
    if not math.isfinite(result):
        raise bad_field(field, "must be finite")
    if low is not None and result < low:
        raise bad_field(field, f"must be at least {low:g}")
    if high is not None and result > high:
        raise bad_field(field, f"must be at most {high:g}")
    return result


def coordinate(data: dict[str, Any], field: str, limit: float) -> Decimal:
    value = number(data, field, required=True, low=-limit, high=limit)
    assert value is not None
    try:
        return Decimal(repr(value)).quantize(SEVEN_PLACES, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:  # pragma: no cover - finite floats always quantize
        raise bad_field(field, "is not a decimal") from None


def text(data: dict[str, Any], field: str, *, max_len: int, required: bool = False,
         default: str = "") -> str:
    value = data.get(field)
    if value is None:
        if required:
            raise bad_field(field, "is required")
        return default
    if not isinstance(value, str):
        raise bad_field(field, f"must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise bad_field(field, f"longer than {max_len} characters")
    return storable(field, value)


def storable(field: str, value: str) -> str:
    """Refuse text no database stores: NUL (PostgreSQL) and lone surrogates (not UTF-8)."""
    if "\x00" in value:
        raise bad_field(field, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_field(field, "is not valid Unicode (a lone surrogate)") from None
    return value


def _storable_json(field: str, value: Any, depth: int = 0) -> None:
    if depth > 20:
        raise bad_field(field, "is nested too deeply")
    if isinstance(value, str):
        storable(field, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(field, str(key))
            _storable_json(field, item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _storable_json(field, item, depth + 1)


def boolean(data: dict[str, Any], field: str, default: bool = False) -> bool:
    value = data.get(field, default)
    if not isinstance(value, bool):
        raise bad_field(field, "must be true or false")
    return value


def mapping(data: dict[str, Any], field: str) -> dict[str, Any]:
    value = data.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_field(field, "must be an object")
    _storable_json(field, value)
    return value


def client_msg_id(data: dict[str, Any]) -> str | None:
    value = data.get("client_msg_id")
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_CLIENT_MSG_ID:
        raise bad_field("client_msg_id", f"must be a string of 1 to {MAX_CLIENT_MSG_ID} characters")
    return storable("client_msg_id", value)


def timestamp(data: dict[str, Any], field: str = "timestamp") -> str:
    value = data.get(field)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise bad_field(field, "must be a string or a number")
    result = str(value)
    if len(result) > 40:
        raise bad_field(field, "longer than 40 characters")
    return storable(field, result)


@dataclass(frozen=True)
class Fix:
    """A validated position report."""

    latitude: Decimal
    longitude: Decimal
    accuracy: float | None
    altitude: float | None = None
    speed: float | None = None
    heading: float | None = None
    provider: str = ""
    battery_level: float | None = None
    timestamp: str = ""


def fix(data: dict[str, Any], *, accuracy_required: bool = False) -> Fix:
    return Fix(
        latitude=coordinate(data, "latitude", 90),
        longitude=coordinate(data, "longitude", 180),
        accuracy=number(data, "accuracy", required=accuracy_required, low=0),
        altitude=number(data, "altitude"),
        speed=number(data, "speed", low=0),
        heading=number(data, "heading", low=0, high=360),
        provider=text(data, "provider", max_len=32),
        battery_level=number(data, "battery_level", low=0, high=100),
        timestamp=timestamp(data),
    )


def chat_text(data: dict[str, Any]) -> str:
    message = text(data, "message", max_len=MAX_CHAT_CHARS, required=True)
    if not message.strip():
        raise bad_field("message", "is empty")
    return message


def json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Refused("invalid_message", "a message must be a JSON object")
    return value
