"""The dashboard and the JavaScript client, served from the package's ``static`` directory.

``static_response`` is the server's fallback for paths outside the fixed routes: ``/`` is the
dashboard (``index.html``) and ``/static/<path>`` any file below ``static``. Every path segment
must be a plain file name (letters, digits, ``.``, ``_``, ``-``; no leading dot), so nothing
outside the directory can be named, and only regular files are served, never through a symlink;
anything else, and any missing file, is ``None`` (the server's 404).

Caching: files under ``static/vendor`` carry their version in their name and never change, so
they may be cached for a year; the dashboard and the client must be revalidated on every use
(``no-cache``) so that a new release is picked up at once.
"""

from __future__ import annotations

import re
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from tickhub.server import HttpResponse

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".ts": "text/plain; charset=utf-8",  # type declarations, for reading
    ".md": "text/plain; charset=utf-8",
}
PLAIN = "text/plain; charset=utf-8"  # LICENSE, NOTICE: files without a suffix
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def static_root() -> Traversable:
    return files("tickhub") / "static"


def static_response(path: str) -> HttpResponse | None:
    """``/`` and ``/static/<file>`` from the package's static directory; ``None`` for a 404."""
    if path == "/":
        parts = ["index.html"]
    elif path.startswith("/static/"):
        parts = path[len("/static/") :].split("/")
    else:
        return None
    if not all(_SEGMENT.fullmatch(p) for p in parts):
        return None
    body = read_static(static_root(), parts)
    if body is None:
        return None
    return HttpResponse(
        200,
        body,
        content_type=content_type(parts[-1]),
        headers={
            "Cache-Control": IMMUTABLE if parts[0] == "vendor" else REVALIDATE,
            "X-Content-Type-Options": "nosniff",
        },
    )


def read_static(root: Traversable, parts: list[str]) -> bytes | None:
    """A regular file below ``root``, never through a symlink: a link inside ``static`` to a file
    elsewhere (put there by a package build or a careless deploy) must not be served."""
    node = root
    for part in parts:
        node = node / part
    if isinstance(node, Path) and isinstance(root, Path):
        base = root.resolve()
        if any((base / Path(*parts[: i + 1])).is_symlink() for i in range(len(parts))):
            return None
        if not node.resolve().is_relative_to(base) or not node.is_file():
            return None
        return node.read_bytes()
    return node.read_bytes() if node.is_file() else None


def content_type(name: str) -> str:
    dot = name.rfind(".")
    if dot < 0:
        return PLAIN
    return CONTENT_TYPES.get(name[dot:].lower(), "application/octet-stream")
