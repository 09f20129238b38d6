"""JWT access and refresh tokens (HS256, claims ``token_type``, ``exp``, ``iat``, ``jti``, ``user_id``)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Literal

import jwt
from django.conf import settings

TokenType = Literal["access", "refresh"]


class TokenRejected(Exception):
    """The token cannot be used; ``reason`` is safe to show (it never contains the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    token_type: TokenType
    exp: float
    jti: str


def issue(user_id: int, token_type: TokenType, now: float | None = None) -> str:
    issued = time.time() if now is None else now
    ttl = settings.BEACON_ACCESS_TTL if token_type == "access" else settings.BEACON_REFRESH_TTL
    claims = {
        "token_type": token_type,
        "exp": int(issued + ttl),
        "iat": int(issued),
        "jti": uuid.uuid4().hex,
        "user_id": user_id,
    }
    return jwt.encode(claims, settings.SECRET_KEY, algorithm="HS256")


def issue_pair(user_id: int) -> dict[str, str]:
    return {"access": issue(user_id, "access"), "refresh": issue(user_id, "refresh")}


def verify(token: str, expected: TokenType) -> TokenClaims:
    """Decode and check a token; raise :class:`TokenRejected` with a reason otherwise."""
    try:
        claims = jwt.decode(
            token, settings.SECRET_KEY, algorithms=["HS256"],
            options={"require": ["exp", "iat", "user_id", "token_type"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRejected("token expired") from None
    except jwt.InvalidTokenError:
        raise TokenRejected("token invalid") from None
    if claims.get("token_type") != expected:
        raise TokenRejected(f"not an {expected} token" if expected == "access" else f"not a {expected} token")
    user_id = claims.get("user_id")
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise TokenRejected("token invalid")
    return TokenClaims(user_id=user_id, token_type=expected, exp=float(claims["exp"]),
                       jti=str(claims.get("jti", "")))
