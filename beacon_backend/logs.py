"""Tokens never reach a log: a filter that blanks them out of any record."""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(
    r"(?P<key>token=|[\"'](?:access|refresh|token)[\"']\s*:\s*[\"']|bearer\s+)(?P<value>[A-Za-z0-9_\-.]+)",
    re.IGNORECASE,
)
# Anything shaped like a JWT (header.payload.signature, base64url), wherever it stands.
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


def redact(text: str) -> str:
    text = _TOKEN.sub(lambda m: m.group("key") + "[redacted]", text)
    return _JWT.sub("[redacted]", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
