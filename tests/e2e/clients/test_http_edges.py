"""HTTP on the service's port as curl and a raw socket see it (issue 12 items 4 and 11).

RFC 9110 §9.3.2 (HEAD), the Fetch standard's CORS preflight, RFC 6585 §5 (431), RFC 9112 §2.2
(line endings), and the headers that keep browsers from sniffing JSON or framing the dashboard.
curl runs as a subprocess (skipped when it is missing); exact bytes go through
tests/e2e/clients/raw.py.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

import tickhub.server.static
from tests.e2e.clients.raw import HttpAnswer, http_exchange, http_request, parse_head, port_of
from tickhub.app.roles import SingleService

CURL = shutil.which("curl")
ALLOWED = "http://allowed.example:3000"  # tests/conftest.py's CORS_ORIGINS
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


async def curl(port: int, path: str, *args: str) -> HttpAnswer:
    """``curl -i`` with ``args``; the last response it printed."""
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL,
        "-s",
        "-i",
        "--max-time",
        "5",
        *args,
        f"http://127.0.0.1:{port}{path}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"curl exited {proc.returncode}: {err.decode()}"
    head, _, body = out.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    return HttpAnswer(status, headers, body)


def cors_headers(answer: HttpAnswer) -> dict[str, list[str]]:
    return {k: v for k, v in answer.headers.items() if k.startswith("access-control-")}


def listed(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


# --- CORS preflight (issue 12 item 4) ------------------------------------------------------------

PREFLIGHT = [
    "-X",
    "OPTIONS",
    "-H",
    "Access-Control-Request-Method: GET",
    "-H",
    "Access-Control-Request-Headers: authorization",
]


@needs_curl
async def test_preflight_from_allowed_origin_answered_204_with_cors_headers(
    service_factory: Any,
) -> None:
    """A page on an allowed origin fetching /connections with the admin key: the browser first
    sends this preflight, without credentials, and needs Authorization allowed."""
    svc: SingleService = await service_factory(admin_key="admin-secret")
    answer = await curl(port_of(svc), "/connections", *PREFLIGHT, "-H", f"Origin: {ALLOWED}")
    assert answer.status == 204, answer
    assert answer.header("Access-Control-Allow-Origin") == ALLOWED, answer.headers
    assert "get" in listed(answer.header("Access-Control-Allow-Methods")), answer.headers
    assert "authorization" in listed(answer.header("Access-Control-Allow-Headers")), answer.headers
    assert answer.body == b""


@needs_curl
async def test_preflight_from_other_origin_gets_no_cors_headers(service_factory: Any) -> None:
    svc: SingleService = await service_factory(admin_key="admin-secret")
    answer = await curl(
        port_of(svc), "/connections", *PREFLIGHT, "-H", "Origin: http://evil.example"
    )
    assert answer.status < 500, answer
    assert cors_headers(answer) == {}, answer.headers


# --- HEAD (RFC 9110 §9.3.2) ----------------------------------------------------------------------


async def _live(port: int) -> HttpAnswer:
    """GET /health once the feed is live, so that GET and HEAD see the same state."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (answer := await http_exchange(port, http_request("GET", "/health", port))).status != 200:
        assert loop.time() < deadline, answer
        await asyncio.sleep(0.05)
    return answer


async def test_head_health_same_status_and_headers_as_get_without_body(
    service: SingleService,
) -> None:
    """Uptime checkers send HEAD; the answer is GET's without the body."""
    get = await _live(port_of(service))
    head = await http_exchange(port_of(service), http_request("HEAD", "/health", port_of(service)))
    assert head.status == get.status == 200, head
    assert head.body == b"", head.body[:100]
    # RFC 9110 §9.3.2: the same fields, though Content-Length (whose value only the body
    # determines) may be left out.
    optional = {"date", "content-length"}
    assert set(head.headers) - optional == set(get.headers) - optional, (head.headers, get.headers)
    for name in ("content-type", "cache-control", "x-content-type-options"):
        assert head.headers.get(name) == get.headers.get(name), name


# --- limits and malformed requests (issue 12 item 11) --------------------------------------------


async def test_request_headers_of_16kb_or_more_answered_431(service: SingleService) -> None:
    """RFC 6585 §5: Request Header Fields Too Large, not a dropped connection."""
    request = http_request("GET", "/health", port_of(service), ("X-Padding", "a" * 16_384))
    answer = await http_exchange(port_of(service), request)
    assert answer.status == 431, answer


async def test_request_headers_under_16kb_served(service: SingleService) -> None:
    """The control case: 12 KB of headers are a normal request."""
    request = http_request("GET", "/health", port_of(service), ("X-Padding", "a" * 12_000))
    answer = await http_exchange(port_of(service), request)
    assert answer.status in (200, 503), answer


async def test_bare_lf_request_answered_400_promptly(service: SingleService) -> None:
    """A request with bare LF line ends is refused at once (issue 12 item 11), not left to hang
    until the handshake timeout (10 s): the answer must come within 2 s."""
    request = f"GET /health HTTP/1.1\nHost: 127.0.0.1:{port_of(service)}\nConnection: close\n\n"
    answer = await http_exchange(port_of(service), request.encode(), timeout=2.0)
    assert answer.status == 400, answer


# --- headers for browsers (issue 12 item 11) -----------------------------------------------------


@needs_curl
@pytest.mark.parametrize(
    "path", ["/health", "/test", "/connections", "/no-such-route"], ids=lambda p: p.strip("/")
)
async def test_json_route_has_nosniff(service: SingleService, path: str) -> None:
    answer = await curl(port_of(service), path)
    assert answer.header("Content-Type") == "application/json", answer
    assert answer.header("X-Content-Type-Options") == "nosniff", answer.headers


@needs_curl
async def test_dashboard_has_csp_with_frame_ancestors_and_x_frame_options(
    service: SingleService,
) -> None:
    """The dashboard must not be framed by another site (clickjacking)."""
    answer = await curl(port_of(service), "/")
    assert answer.status == 200, answer
    csp = answer.header("Content-Security-Policy") or ""
    directives = {d.strip().split(" ")[0].lower() for d in csp.split(";") if d.strip()}
    assert "frame-ancestors" in directives, csp
    assert (answer.header("X-Frame-Options") or "").upper() in ("DENY", "SAMEORIGIN"), (
        answer.headers
    )


# --- static files (issue 12 item 11) -------------------------------------------------------------


@pytest.fixture
def static_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The package's static folder, copied, with links pointing outside it; the service reads
    this copy (``tickhub.server.static.static_root`` is where it looks)."""
    if not hasattr(tickhub.server.static, "static_root"):
        pytest.skip(
            "tickhub.server.static.static_root is gone: no way to point the static folder elsewhere"
        )
    root = tmp_path / "static"
    shutil.copytree(Path(str(tickhub.server.static.static_root())), root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the static folder\n")
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "leakdir").symlink_to(outside, target_is_directory=True)
    monkeypatch.setattr(tickhub.server.static, "static_root", lambda: root)
    return root


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/static/leak.txt", id="file_link"),
        pytest.param("/static/leakdir/secret.txt", id="directory_link"),
    ],
)
async def test_symlink_in_static_folder_pointing_outside_not_served(
    static_copy: Path, service: SingleService, path: str
) -> None:
    answer = await http_exchange(port_of(service), http_request("GET", path, port_of(service)))
    assert answer.status == 404, answer
    assert b"outside the static folder" not in answer.body


async def test_static_copy_serves_its_regular_files(
    static_copy: Path, service: SingleService
) -> None:
    """The control case: the copy is what the service serves."""
    answer = await http_exchange(
        port_of(service), http_request("GET", "/static/app.js", port_of(service))
    )
    assert answer.status == 200, answer
    assert answer.body == (static_copy / "app.js").read_bytes()
