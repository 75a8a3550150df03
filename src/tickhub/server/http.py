"""HTTP requests and responses as the routes see them, and the headers every answer carries.

The routes are plain functions from :class:`HttpRequest` to :class:`HttpResponse`; the connection
turns them into HTTP/1.1 (h11) and applies what RFC 9110 asks of every answer: ``HEAD`` is ``GET``
without the body, ``OPTIONS`` is answered (CORS preflights included), any other method gets 405
with ``Allow``. Every response gets ``X-Content-Type-Options: nosniff`` and ``Date``; HTML gets a
Content-Security-Policy that forbids framing, so the dashboard cannot be clickjacked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate

from tickhub.core import protocol

ALLOWED_METHODS = "GET, HEAD, OPTIONS"

CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
"""For HTML: scripts and connections from the service itself only, never in a frame. Inline
styles are allowed: the chart library sets them on the elements it draws."""

PREFLIGHT_MAX_AGE = "600"
"""Seconds a browser may cache a preflight answer."""

PREFLIGHT_HEADERS = "Authorization, Content-Type"
"""Request headers a page on an allowed origin may send (the admin key goes in Authorization)."""


class Headers(Mapping[str, str]):
    """Request headers, looked up case-insensitively; a repeated header keeps its first value
    here, and :meth:`get_all` gives every value (a repeated ``Origin`` must be refused)."""

    __slots__ = ("_all",)

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._all: dict[str, list[str]] = {}
        for name, value in pairs:
            self._all.setdefault(name.lower(), []).append(value)

    def __getitem__(self, name: str) -> str:
        return self._all[name.lower()][0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._all

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def get_all(self, name: str) -> list[str]:
        return list(self._all.get(name.lower(), ()))

    def tokens(self, name: str) -> set[str]:
        """A comma-separated header (``Connection``, ``Upgrade``) as lowercase tokens."""
        return {
            t.strip().lower() for value in self.get_all(name) for t in value.split(",") if t.strip()
        }


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class HttpRequest:
    path: str
    query: str
    headers: Mapping[str, str]
    method: str = "GET"


Routes = dict[str, Callable[[HttpRequest], HttpResponse]]


def error_response(
    status: int, code: protocol.ErrorCode, message: str, headers: dict[str, str] | None = None
) -> HttpResponse:
    """The error every route answers with: ``{"status": "error", "code", "message"}``."""
    body = protocol.encode({"status": "error", "code": code.value, "message": message})
    return HttpResponse(status, body, headers=headers or {})


def response_headers(response: HttpResponse, cors: Mapping[str, str]) -> list[tuple[str, str]]:
    """The header list of an answer: the route's own, then what every answer carries."""
    headers = {"Content-Type": response.content_type}
    if response.status != 204:  # RFC 9110 §8.6: never on a 204
        headers["Content-Length"] = str(len(response.body))
    headers |= {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Date": http_date(),
    }
    if response.content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = CSP
        headers["X-Frame-Options"] = "DENY"
        headers["Referrer-Policy"] = "no-referrer"
    headers.update(response.headers)
    headers.update(cors)
    return list(headers.items())


def preflight(origin_allowed: bool, origin: str | None, headers: Headers) -> HttpResponse:
    """An ``OPTIONS`` request: 204 with ``Allow``; a CORS preflight from an allowed origin also
    gets the ``Access-Control-*`` answers, one from another origin gets none (the browser then
    refuses the page's request)."""
    answer = {"Allow": ALLOWED_METHODS}
    if origin_allowed and origin is not None and "access-control-request-method" in headers:
        answer.update(
            {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": PREFLIGHT_HEADERS,
                "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                "Vary": "Origin",
            }
        )
    return HttpResponse(204, b"", content_type="text/plain; charset=utf-8", headers=answer)


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """``Date`` in the IMF-fixdate form of RFC 9110 §5.6.7, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]
