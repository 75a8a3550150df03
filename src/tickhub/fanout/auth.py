"""Who a connection is: static API keys and signed tokens (JWT HS256 / RS256).

Authentication is off unless configured (the seed ships without it). When on, a client proves
itself with ``{"type": "auth", "token": ...}`` as its first message, within a deadline, or in the
``Sec-WebSocket-Protocol`` header (``tickhub, token.<token>``) so that browsers can pass it at
connect time; never only in the URL, which ends up in logs. The identity's ``user`` owns that
client's alerts and positions. With both API keys and a JWT key configured, a token's user is its
``sub`` with a prefix (``JWT_USER_PREFIX``, ``jwt:`` by default), so that the issuer of tokens
cannot mint a token that reads an API-key user's alerts.

API keys are kept as SHA-256 digests only (configured in clear as ``user:key`` or already hashed
as ``user:sha256:<hex>``), compared in constant time. Nothing here logs or returns a secret.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import jwt


class AuthFailure(str, Enum):
    INVALID = "auth_failed"
    EXPIRED = "auth_expired"


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    method: str  # "api_key" or "jwt"
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: AuthFailure
    message: str


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_api_keys(entries: tuple[str, ...]) -> dict[bytes, str]:
    """``user:key`` or ``user:sha256:<hex>`` entries -> {sha256(key): user}."""
    out: dict[bytes, str] = {}
    for entry in entries:
        user, sep, secret = entry.partition(":")
        if not sep or not user or not secret:
            raise ValueError("each API_KEYS entry must be user:key or user:sha256:<hex>")
        if secret.startswith("sha256:"):
            try:
                digest = bytes.fromhex(secret.removeprefix("sha256:"))
            except ValueError:
                raise ValueError(f"API_KEYS entry for {user!r}: bad sha256 hex") from None
            if len(digest) != 32:
                raise ValueError(f"API_KEYS entry for {user!r}: sha256 needs 64 hex digits")
        else:
            digest = _digest(secret)
        out[digest] = user
    return out


class Authenticator:
    """Checks a presented token against the configured API keys and JWT key."""

    def __init__(
        self,
        *,
        api_keys: dict[bytes, str] | None = None,
        jwt_key: str | None = None,
        jwt_algorithm: str = "HS256",
        jwt_audience: str | None = None,
        jwt_user_prefix: str = "",
        leeway: float = 0.0,
    ) -> None:
        self._keys = api_keys or {}
        self._jwt_prefix = jwt_user_prefix
        self._jwt_key = jwt_key
        self._algorithm = jwt_algorithm
        self._audience = jwt_audience
        self._leeway = leeway

    @property
    def enabled(self) -> bool:
        return bool(self._keys) or self._jwt_key is not None

    def verify(self, token: object, now: datetime) -> Identity | Rejection:
        if not isinstance(token, str) or not token:
            return Rejection(AuthFailure.INVALID, "field 'token' must be a non-empty string")
        digest = _digest(token)
        for known, user in self._keys.items():
            if hmac.compare_digest(known, digest):
                return Identity(user, "api_key")
        if self._jwt_key is None or token.count(".") != 2:
            return Rejection(AuthFailure.INVALID, "invalid credentials")
        return self._verify_jwt(token, now)

    def _verify_jwt(self, token: str, now: datetime) -> Identity | Rejection:
        assert self._jwt_key is not None
        options: Any = {"require": ["exp", "sub"], "verify_exp": False}
        try:
            claims = jwt.decode(
                token,
                self._jwt_key,
                algorithms=[self._algorithm],
                audience=self._audience,
                options=options,
            )
        except jwt.PyJWTError as exc:
            return Rejection(AuthFailure.INVALID, f"invalid token: {_reason(exc)}")
        # exp is checked against the injected clock, not the host's (PyJWT's check is off).
        exp = claims["exp"]
        if (
            isinstance(exp, bool)
            or not isinstance(exp, int | float)
            or not 0 <= exp <= _LAST_EXP  # NaN fails this too
        ):
            return Rejection(
                AuthFailure.INVALID, "invalid token: 'exp' must be a number of seconds since 1970"
            )
        expires = datetime.fromtimestamp(float(exp), UTC)
        if expires.timestamp() + self._leeway <= now.timestamp():
            return Rejection(AuthFailure.EXPIRED, "token expired")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            return Rejection(AuthFailure.INVALID, "invalid token: 'sub' must be a string")
        return Identity(self._jwt_prefix + sub, "jwt", expires)


_LAST_EXP = 253_402_300_799
"""9999-12-31T23:59:59Z, the last second a datetime holds."""

JWT_USER_PREFIX = "jwt:"
"""Default prefix of a JWT's ``sub`` when API keys are configured too: an API key's user
``alice`` and a token's ``sub`` ``alice`` are two users unless configured otherwise."""


def _reason(exc: Exception) -> str:
    # PyJWT's messages name claims, never the token or key.
    return str(exc).rstrip(".").lower() or type(exc).__name__
