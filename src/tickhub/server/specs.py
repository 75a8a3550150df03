"""The machine-readable protocol: ``/asyncapi.yaml`` (the four WebSocket endpoints) and
``/openapi.yaml`` (the HTTP routes), served from the package's ``data`` directory.

The documents are package data, so an installed wheel serves the same bytes as a checkout;
``docs/asyncapi.yaml`` and ``docs/openapi.yaml`` are symlinks to these files, so there is one copy
to edit. They are read once, when the routes are built: a release changes them, a running
service does not.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from tickhub.server.http import HttpResponse

DOCUMENTS: Final = ("asyncapi.yaml", "openapi.yaml")
"""The documents, by file name; each is served at ``/<name>``."""

CONTENT_TYPE: Final = "application/yaml"
"""RFC 9512's media type for YAML."""


def read_document(name: str) -> bytes:
    """One document's bytes, from the installed package."""
    if name not in DOCUMENTS:
        raise ValueError(f"not a protocol document: {name!r}")
    return (files("tickhub") / "data" / name).read_bytes()


def document_responses() -> dict[str, HttpResponse]:
    """Path -> the answer for each document (the same response object for every request)."""
    return {
        f"/{name}": HttpResponse(
            200,
            read_document(name),
            content_type=CONTENT_TYPE,
            # Clients and generators may keep a copy, but must check it is still current.
            headers={"Cache-Control": "no-cache"},
        )
        for name in DOCUMENTS
    }
