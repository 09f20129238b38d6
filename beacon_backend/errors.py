"""Refusals the backend gives a client, with the code it sees and the HTTP status it maps to."""

from __future__ import annotations


class Refused(Exception):
    """A request the backend will not carry out; nothing of it was stored.

    ``code`` is the machine-readable error code sent as ``{"type": "error", "code": ...}`` on a
    WebSocket and as ``{"success": false, "code": ...}`` over HTTP.
    """

    http_status = 400

    def __init__(self, code: str, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if http_status is not None:
            self.http_status = http_status


def bad_field(field: str, reason: str) -> Refused:
    return Refused("invalid_field", f"{field}: {reason}", 400)


def forbidden(message: str) -> Refused:
    return Refused("forbidden", message, 403)


def not_found(message: str) -> Refused:
    return Refused("not_found", message, 404)


def conflict(code: str, message: str) -> Refused:
    return Refused(code, message, 409)
