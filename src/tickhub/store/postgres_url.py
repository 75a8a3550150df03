"""PostgreSQL URLs as the store takes them: the ``schema`` parameter, and passwords kept out of
every ``repr``, error and log.

URL: ``postgresql://`` or ``postgres://`` (``postgresql+psycopg://`` is accepted), anything libpq
takes, plus an optional ``schema`` query parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

__all__ = ["check_schema", "conninfo_params", "redact_url", "secrets_of", "split_url"]

_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_SECRET_KEYS = ("password", "sslpassword")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs, errors and reprs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{url.partition('://')[0]}://***"
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = parts.query
    if any(key in query for key in _SECRET_KEYS):
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if k in _SECRET_KEYS else v) for k, v in pairs], safe="*", quote_via=quote
        )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def split_url(url: str) -> tuple[str, str | None]:
    """The libpq URL (scheme normalised, ``schema`` parameter removed) and that parameter."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        # Only the scheme: the rest of a URL may hold a password.
        raise ValueError(
            f"unsupported PostgreSQL url: {scheme if sep else '(no scheme)'}:// "
            "(expected postgresql://user@host:port/database)"
        )
    base, sep, query = rest.partition("?")
    schema: str | None = None
    kept: list[str] = []
    for part in query.split("&") if sep else []:
        key, _, value = part.partition("=")
        if unquote(key) == "schema":
            schema = unquote(value)
        else:
            kept.append(part)  # as written: libpq decodes %XX but not "+"
    return "postgresql://" + base + ("?" + "&".join(kept) if kept else ""), schema


def conninfo_params(conninfo: str, redacted: str) -> dict[str, Any]:
    """libpq's parameters of ``conninfo``; ``ValueError`` naming only ``redacted`` when invalid."""
    try:
        params: dict[str, Any] | None = conninfo_to_dict(conninfo)
    except psycopg.Error:
        params = None  # libpq's message quotes the whole URL, password included
    if params is None:
        raise ValueError(f"invalid PostgreSQL url: {redacted}")
    return params


def secrets_of(url: str, params: Mapping[str, Any]) -> tuple[str, ...]:
    """Every form of a password in ``url``, longest first, to scrub from driver messages."""
    found = {str(params[k]) for k in _SECRET_KEYS if params.get(k)}
    userinfo, at, _ = url.partition("://")[2].partition("/")[0].rpartition("@")
    if at and ":" in userinfo:
        found.add(userinfo.split(":", 1)[1])
    found.update({quote(s, safe="") for s in found})
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def check_schema(schema: object) -> str:
    """``schema`` when PostgreSQL would keep it as written, else ``ValueError``."""
    if not isinstance(schema, str) or not schema or "\x00" in schema:
        raise ValueError(f"invalid schema name: {schema!r}")
    if len(schema.encode()) > 63:
        # PostgreSQL would silently truncate it, and two names could meet.
        raise ValueError(f"schema name longer than 63 bytes: {schema!r}")
    return schema
