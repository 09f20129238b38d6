"""Tokens never reach a log: every record is formatted, traceback included, then redacted.

The same configuration serves Django, Channels, Uvicorn and Daphne (whose loggers do not all
propagate to the root), so nothing a server prints can carry a token.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_TOKEN = re.compile(
    r"(?P<key>token=|[\"'](?:access|refresh|token)[\"']\s*:\s*[\"']|bearer\s+)(?P<value>[A-Za-z0-9_\-.]+)",
    re.IGNORECASE,
)
# Anything shaped like a JWT (header.payload.signature, base64url), wherever it stands.
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


def redact(text: str) -> str:
    text = _TOKEN.sub(lambda m: m.group("key") + "[redacted]", text)
    return _JWT.sub("[redacted]", text)


class RedactingFormatter(logging.Formatter):
    """Formats as usual (message, exception, stack), then blanks tokens out of the whole text."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def logging_config(level: str = "WARNING") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for every process of the backend."""
    handler = {"handlers": ["console"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "redacted": {
                "()": "beacon_backend.logs.RedactingFormatter",
                "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
            }
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "redacted",
                        "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": handler,
            "uvicorn": handler,
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "daphne": handler,
        },
    }
