"""``run_checks``: the whole run of ``tickhub check``, every endpoint at once, then HTTP.

This is what the CLI and the backend wrapper scripts call; it decides which checks run and in
what order the report lists them (endpoints in ``ENDPOINTS`` order, then the HTTP routes).
"""

from __future__ import annotations

import asyncio

from tickhub.devtools.checker.endpoint import EndpointCheck
from tickhub.devtools.checker.report import CheckResult, print_report
from tickhub.devtools.checker.routes import check_http
from tickhub.devtools.checker.target import parse_target, reachable

__all__ = ["ENDPOINTS", "run_checks"]

ENDPOINTS = ("stream", "analysis", "alerts", "portfolio")


async def run_checks(url: str, *, multi: bool, symbol: str, timeout: float) -> bool:
    """Check the service at ``url`` (``ws://host:port``); print a report; True if all passed.

    ``multi`` checks the four endpoints, else ``/ws/stream`` only. ``timeout`` bounds each wait on
    its own (a reply, the first data message), not the whole run.
    """
    target = parse_target(url)
    if isinstance(target, str):
        print_report([CheckResult("service", "url", False, target)])
        return False
    endpoints = ENDPOINTS if multi else ENDPOINTS[:1]
    print(
        f"tickhub check {target.ws_base} (symbol {symbol}, timeout {timeout:g}s): "
        + ", ".join(f"/ws/{e}" for e in endpoints),
        flush=True,
    )
    unreachable = await reachable(target, timeout)
    if unreachable is not None:
        print_report([CheckResult("service", "connect", False, unreachable)])
        return False
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(
                EndpointCheck(target, name, symbol, timeout).run(), name=f"check /ws/{name}"
            )
            for name in endpoints
        ]
    results = [r for task in tasks for r in task.result()]
    results.extend(await check_http(target, timeout))
    return print_report(results)
