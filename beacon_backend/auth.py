"""Who is on the other end: JWT from ``?token=`` or ``Authorization: Bearer``, for HTTP and WebSocket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from beacon_backend.tokens import TokenRejected, verify


@dataclass(frozen=True)
class Identity:
    """The result of checking a socket's credentials: a user, or the reason there is none."""

    user: User | None
    error: str | None
    expires_at: float | None


def bearer(header_value: str | None) -> str | None:
    if not header_value:
        return None
    scheme, _, token = header_value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def query_params(scope: dict[str, Any]) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {key: values[-1] for key, values in parse_qs(raw).items()}


def token_from_scope(scope: dict[str, Any]) -> str | None:
    token = query_params(scope).get("token")
    if token:
        return token
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            return bearer(value.decode("latin-1"))
    return None


def identify(token: str | None) -> Identity:
    if not token:
        return Identity(None, "no token", None)
    try:
        claims = verify(token, "access")
    except TokenRejected as rejected:
        return Identity(None, rejected.reason, None)
    user = User.objects.filter(pk=claims.user_id, is_active=True).first()
    if user is None:
        return Identity(None, "unknown or inactive user", None)
    return Identity(user, None, claims.exp)


class TokenAuthMiddleware:
    """Puts ``identity`` (and ``user`` when known) in every WebSocket scope."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            identity = await database_sync_to_async(identify)(token_from_scope(scope))
            scope = {**scope, "identity": identity, "user": identity.user}
        return await self.app(scope, receive, send)
