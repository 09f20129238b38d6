"""Deployment settings read from the environment, and the data directory they live in.

``BEACON_DATA_DIR``          where the SQLite database and the token secret live (default ``./beacon-data``)
``BEACON_DATABASE_URL``      ``postgresql://user:pass@host:port/name`` selects PostgreSQL
``BEACON_REDIS_URL``         ``redis://host:port/db`` selects the ``channels_redis`` layer
``BEACON_SECRET_KEY``        overrides the secret kept in the data directory
``BEACON_ACCESS_TTL``        access token lifetime in seconds (default 3600)
``BEACON_REFRESH_TTL``       refresh token lifetime in seconds (default 7 days)
``BEACON_REPLAY_LIMIT``      most events replayed on resume before ``resync_required`` (default 1000)
``BEACON_ALLOWED_ORIGINS``   comma-separated; when set, WebSocket handshakes must carry one of them
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit


class ConfigError(ValueError):
    """A deployment setting is missing or malformed (the user's mistake, not a bug)."""


@dataclass(frozen=True)
class DatabaseUrl:
    engine: str
    name: str
    user: str
    password: str
    host: str
    port: str


def parse_database_url(url: str) -> DatabaseUrl:
    """Parse ``postgresql://user:pass@host:port/name`` (also ``postgres://``)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("BEACON_DATABASE_URL: the port is not a number from 0 to 65535") from None
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError(
            f"BEACON_DATABASE_URL: unsupported scheme {parts.scheme!r} "
            "(expected postgresql://user:pass@host:port/name)"
        )
    name = parts.path.lstrip("/")
    if not name:
        raise ConfigError("BEACON_DATABASE_URL: no database name after the host")
    return DatabaseUrl(
        engine="django.db.backends.postgresql",
        name=unquote(name),
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        host=parts.hostname or "",
        port=str(port or ""),
    )


def data_dir() -> Path:
    return Path(os.environ.get("BEACON_DATA_DIR", "beacon-data")).resolve()


def secret_key(directory: Path, create: bool = False) -> str:
    """The token-signing secret: from the environment, or kept in the data directory.

    Every process of a deployment reads the same file, so a token minted by one worker is
    accepted by the others. Only :func:`beacon_backend.deployment.configure` creates it
    (``create=True``); merely loading the settings (a type checker, an import) never writes a
    file, and gets a throwaway key when there is none.
    """
    explicit = os.environ.get("BEACON_SECRET_KEY")
    if explicit:
        return explicit
    path = directory / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        if not create:
            return secrets.token_urlsafe(48)
    directory.mkdir(parents=True, exist_ok=True)
    candidate = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(candidate)
    return candidate


def int_setting(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value
