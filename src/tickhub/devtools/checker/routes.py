"""The HTTP routes the checker asks after the WebSocket endpoints: ``/health``, ``/connections``,
``/test``. Each must answer 200 with a JSON object, and the two that report a status ``"ok"``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

from tickhub.devtools.checker.report import CheckResult
from tickhub.devtools.checker.target import Target
from tickhub.devtools.checker.values import MISSING, clip, compact, show

__all__ = ["check_http"]


async def check_http(target: Target, limit: float) -> list[CheckResult]:
    """One result per route, each request bounded by ``limit`` seconds."""
    results = []
    for path, needs_status in (("/health", True), ("/connections", False), ("/test", True)):
        name = f"GET {path}"
        url = f"{target.http_base}{path}"
        expected = "HTTP 200 with a JSON object" + (' whose status is "ok"' if needs_status else "")
        try:
            status, body = await asyncio.to_thread(_http_get, url, limit)
        except (OSError, urllib.error.URLError) as exc:
            results.append(CheckResult("http", name, False, f"expected {expected}, got {exc}"))
            continue
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        problem = None
        if status != 200 or not isinstance(doc, dict):
            problem = f"HTTP {status} {clip(body.decode('utf-8', 'replace'))}"
        elif needs_status and doc.get("status") != "ok":
            problem = f"status {show(doc.get('status', MISSING))} in {clip(compact(doc))}"
        if problem is not None:
            results.append(CheckResult("http", name, False, f"expected {expected}, got {problem}"))
            continue
        detail = f"status {doc['status']}" if "status" in doc else f"{len(doc)} fields"
        if isinstance(doc.get("total"), int):
            detail = f"{doc['total']} connections"
        results.append(CheckResult("http", name, True, detail))
    return results


def _http_get(url: str, timeout: float) -> tuple[int, bytes]:
    # No proxy: the checker talks to the service it names, whatever HTTP_PROXY says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
