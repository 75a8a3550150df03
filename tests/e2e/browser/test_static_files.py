"""The dashboard's files as tickhub.server.static.static_response serves them; no browser."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tickhub.app.roles import SingleService
from tickhub.server.static import read_static, static_response, static_root

STATIC = Path(str(static_root()))
VENDOR = STATIC / "vendor"


def test_root_is_the_dashboard() -> None:
    response = static_response("/")
    assert response is not None
    assert response.status == 200
    assert response.content_type == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.body == (STATIC / "index.html").read_bytes()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/tickhub.js", "text/javascript; charset=utf-8"),
        ("/static/react.js", "text/javascript; charset=utf-8"),
        ("/static/tickhub.d.ts", "text/plain; charset=utf-8"),
        ("/static/app.css", "text/css; charset=utf-8"),
        ("/static/favicon.svg", "image/svg+xml"),
        ("/static/vendor/lightweight-charts-5.2.1/LICENSE", "text/plain; charset=utf-8"),
    ],
)
def test_static_files_have_their_content_type(path: str, content_type: str) -> None:
    response = static_response(path)
    assert response is not None
    assert response.content_type == content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_vendored_files_are_cached_for_good_and_ours_revalidated() -> None:
    vendored = static_response(
        "/static/vendor/lightweight-charts-5.2.1/lightweight-charts.standalone.production.mjs"
    )
    ours = static_response("/static/app.js")
    assert vendored is not None and ours is not None
    assert vendored.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert ours.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    [
        "/static/../webui.py",
        "/static/%2e%2e/webui.py",
        "/static/vendor/../../webui.py",
        "/static/..",
        "/static/.hidden",
        "/static/",
        "/static",
        "/static//tickhub.js",
        "/static/tickhub.js/",
        "/static/vendor",
        "/static/vendor/lightweight-charts-5.2.1",
        "/static/nope.js",
        "/static/..\\webui.py",
        "/index.html",
        "/nope",
    ],
)
def test_anything_else_is_not_found(path: str) -> None:
    assert static_response(path) is None


def test_every_vendored_package_keeps_its_licence() -> None:
    packages = [p for p in VENDOR.iterdir() if p.is_dir()]
    assert packages
    for package in packages:
        assert (package / "LICENSE").is_file(), package


def test_the_page_names_only_files_that_exist() -> None:
    html = (STATIC / "index.html").read_text()
    for ref in re.findall(r'(?:href|src)="(/static/[^"]+)"', html):
        assert static_response(ref) is not None, ref
    app = (STATIC / "app.js").read_text()
    for ref in re.findall(r"from '\./([^']+)'", app):
        assert (STATIC / ref).is_file(), ref


async def test_the_service_serves_the_dashboard_over_http(
    service_factory: Callable[..., Awaitable[SingleService]],
) -> None:
    svc = await service_factory()
    svc.server.fallback = svc.server.fallback or static_response
    base = f"http://127.0.0.1:{svc.port}"

    def get(path: str) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(base + path, timeout=10) as r:
                return r.status, r.headers["Content-Type"], r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read()

    status, content_type, body = await asyncio.to_thread(get, "/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert b"tickhub" in body
    status, content_type, _ = await asyncio.to_thread(get, "/static/tickhub.js")
    assert (status, content_type) == (200, "text/javascript; charset=utf-8")
    status, content_type, _ = await asyncio.to_thread(get, "/static/../pyproject.toml")
    assert (status, content_type) == (404, "application/json")


def test_symlinks_inside_the_static_folder_are_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "static"
    root.mkdir()
    (root / "app.css").write_text("body{}")
    secret = tmp_path / "secret.env"
    secret.write_text("API_KEYS=alice:key")
    (root / "leak.css").symlink_to(secret)
    (root / "up").symlink_to(tmp_path)
    assert read_static(root, ["app.css"]) == b"body{}"
    assert read_static(root, ["leak.css"]) is None
    assert read_static(root, ["up", "secret.env"]) is None
    assert read_static(root, ["up"]) is None  # a directory is not a file either
