"""The dashboard against a server (and client) from before indicator sets, analysis alerts and
trades: no ``GET /indicators`` (404), ``alert_data`` without ``indicator_alerts`` /
``pattern_alerts``, ``position_data`` without the trade fields, a JavaScript client without
``addTrade`` / ``listTrades``. The page offers none of the new parts, works as it did (charts,
price alerts firing) and fails no script.

The older server is the real one seen through Playwright: the route answers 404, the alerts
and portfolio sockets' messages lose the new fields on their way to the page, tickhub.js loses
the trade methods."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.async_api import Browser, Route, WebSocketRoute, expect

from tests.e2e.browser import test_dashboard as dashboard
from tests.e2e.browser.test_dashboard import (
    CHART_BARS,
    Console,
    StartService,
    start_web_service,
    wait_above,
)

pytestmark = dashboard.pytestmark
port = dashboard.port
browser = dashboard.browser

_number = re.compile(r"^\d+(\.\d+)?$")
_digit = re.compile(r"\d")


TRADE_FIELDS = {
    "position": ("buy_quantity", "sell_quantity", "day_buy_quantity", "day_sell_quantity",
                 "day_buy_price", "day_sell_price", "trades"),
    "pnl": ("realized", "day_realized"),
    "portfolio": ("realized_pnl", "day_realized_pnl"),
}  # fmt: skip
"""What ``position_data`` gained with trades."""


def older(text: str | bytes, seen: list[str]) -> str | bytes:
    """A message as a server without analysis alerts and trades sends it (batches included): no
    ``indicator_alerts`` / ``pattern_alerts`` in ``alert_data``, none of the trade fields in
    ``position_data``. The data types of the messages changed go to ``seen``."""
    if isinstance(text, bytes):
        return text
    msg: Any = json.loads(text)

    def strip(m: Any) -> None:
        if not isinstance(m, dict):
            return
        if m.get("data_type") == "alert_data":
            seen.append(m["data_type"])
            m["data"].pop("indicator_alerts", None)
            m["data"].pop("pattern_alerts", None)
        if m.get("data_type") == "position_data":
            seen.append(m["data_type"])
            for part, fields in TRADE_FIELDS.items():
                for name in fields:
                    m["data"].get(part, {}).pop(name, None)

    strip(msg)
    for inner in msg.get("messages", []) if isinstance(msg, dict) else []:
        strip(inner)
    return json.dumps(msg)


async def test_dashboard_against_an_older_server_offers_nothing_new(
    service_factory: StartService, port: int, browser: Browser
) -> None:
    await start_web_service(service_factory, port)
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    console = Console(page)

    async def no_catalog(route: Route) -> None:
        await route.fulfill(status=404, json={"status": "error", "code": "not_found"})

    async def older_client(route: Route) -> None:
        response = await route.fetch()
        source = (await response.text()).replace("addTrade(", "unknownA(")
        await route.fulfill(response=response, body=source.replace("listTrades(", "unknownL("))

    seen: list[str] = []

    def older_server(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        server.on_message(lambda m: ws.send(older(m, seen)))
        ws.on_message(lambda m: server.send(m))

    await page.route("**/indicators", no_catalog)
    await page.route("**/static/tickhub.js", older_client)
    await page.route_web_socket(re.compile(r"/ws/(alerts|portfolio)"), older_server)
    await page.goto(f"http://127.0.0.1:{port}/")

    await expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    await expect(page.locator('#ticker tr[data-symbol="RELIANCE"]')).to_have_attribute(
        "data-price", _number
    )
    await wait_above(page, CHART_BARS, 0)
    await expect(page.locator("#ind-vwap")).to_have_text(_digit)
    await expect(page.locator("#positions tbody tr[data-symbol]")).to_have_count(7)
    assert await page.evaluate("() => window.tickhubDashboard.state.catalog === null")
    clients = "window.tickhubDashboard.clients"
    assert await page.evaluate(f"() => typeof {clients}.portfolio.addTrade") == "undefined"

    # Nothing new offered.
    await expect(page.locator("#picker")).to_be_hidden()
    await expect(page.locator("#trades-box")).to_be_hidden()
    await expect(page.locator("#tot-realized-box")).to_be_hidden()
    await expect(page.locator("#positions .realized")).to_have_count(0)
    for kind in ("indicator", "pattern"):
        await expect(page.locator(f'#alert-kind option[value="{kind}"]')).to_be_disabled()

    # A price alert works as before, and fires.
    await page.select_option("#alert-symbol", "RELIANCE")
    await page.select_option("#alert-condition", "below")
    await page.fill("#alert-value", "99999")
    await page.click("#alert-create")
    mine = page.locator("#my-alerts li[data-id]")
    await expect(mine).to_have_count(1)
    await expect(mine).to_have_attribute("data-category", "price")
    await expect(page.locator("#triggered li.user")).to_have_count(1, timeout=10_000)
    # The sockets went through the older server's shape.
    assert {"alert_data", "position_data"} <= set(seen)

    # The only console error is the browser's own line for the 404 the page expected.
    assert console.exceptions == []
    unexpected = [e for e in console.errors if "404" not in e]
    assert unexpected == [], unexpected
