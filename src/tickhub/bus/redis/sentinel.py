"""``redis+sentinel://`` URLs: a Redis found through its Sentinels, followed across failovers.

Grammar (one URL, so it fits ``BUS_URL``)::

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]

``host:port`` are the Sentinels (port 26379 when left out; IPv6 in brackets), ``service`` the
name they monitor the primary under (``sentinel monitor <service> ...``), ``db`` the database
number (0). The userinfo's password (and user, for an ACL user) authenticates to the primary;
the Sentinels are asked without one. No query string. A malformed URL is refused with the
grammar in its message.

redis-py's ``SentinelConnectionPool`` asks the Sentinels for the primary whenever it opens a
connection, so a connection lost in a failover reopens on the promoted replica; the bus's
reader and writer already reconnect on any connection error, which is all following needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379

_HOST = re.compile(
    r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<name>[^\s:\[\]/,@]+))(?::(?P<port>\d{1,5}))?"
)
_SERVICE = re.compile(r"[A-Za-z0-9_.-]{1,128}")


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() == SCHEME


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The Sentinels, service and database of ``url``; ``ValueError`` saying what is wrong
    (with the grammar) for a malformed one. The message never holds the password."""
    parts = urlsplit(url)
    if parts.scheme.lower() != SCHEME:
        raise ValueError(f"not a {SCHEME}:// URL")
    if parts.query or parts.fragment:
        raise ValueError(_grammar("it takes no query string or fragment"))
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None  # as redis-py reads redis:// URLs
    if not hostlist:
        raise ValueError(_grammar("no Sentinel host"))
    sentinels = []
    for item in hostlist.split(","):
        found = _HOST.fullmatch(item)
        if found is None:
            raise ValueError(_grammar(f"bad Sentinel address {item!r}"))
        port = int(found["port"] or DEFAULT_SENTINEL_PORT)
        if not 1 <= port <= 65535:
            raise ValueError(_grammar(f"bad Sentinel port in {item!r}"))
        sentinels.append((found["v6"] or found["name"], port))
    path = parts.path.split("/")[1:]
    if not path or not path[0]:
        raise ValueError(_grammar("no service name (the primary's name the Sentinels monitor)"))
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(_grammar(f"bad path {parts.path!r}: /service or /service/db"))
    service = unquote(path[0])
    if not _SERVICE.fullmatch(service):
        raise ValueError(_grammar(f"bad service name {service!r}"))
    db = int(path[1]) if len(path) == 2 else 0
    return SentinelTarget(tuple(sentinels), service, db, username, password)


def _grammar(problem: str) -> str:
    return f"{problem}; expected {SCHEME}://[[user]:password@]host[:port][,host[:port]...]/service[/db]"
