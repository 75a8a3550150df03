"""The dashboard's trade form in a real browser against a real service: a trade from the form
changes the position, appears in the symbol's trades list and on the server (read back by a
client that is not ours, ``websocket-client``), a sale shows realised P&L, a deletion undoes it."""

from __future__ import annotations

import re
from datetime import datetime

from playwright.async_api import Browser, expect

from tests.e2e.browser import test_dashboard as dashboard
from tests.e2e.browser.pages import ready, request
from tests.e2e.browser.test_dashboard import (
    StartService,
    open_page,
    save_screenshot,
    start_web_service,
)
from tickhub.core.model import IST

pytestmark = dashboard.pytestmark
port = dashboard.port
browser = dashboard.browser


async def test_a_trade_from_the_form_changes_the_position_and_lists(
    service_factory: StartService, port: int, browser: Browser
) -> None:
    await start_web_service(service_factory, port)
    page, console = await open_page(browser, port)
    await ready(page)
    row = page.locator('#positions tr[data-symbol="RELIANCE"]')
    await expect(row.locator("td").nth(1)).to_have_text("100")  # the demo portfolio's
    await expect(page.locator("#trades-box")).to_be_visible()
    average = float(
        await page.evaluate(
            "() => window.tickhubDashboard.state.positions.get('RELIANCE').position.average_price"
        )
    )
    await page.select_option("#trade-symbol", "RELIANCE")
    await expect(page.locator("#trades li.empty")).to_be_visible()

    await page.select_option("#trade-side", "buy")
    await page.fill("#trade-quantity", "10")
    await page.fill("#trade-price", "1500")
    await page.click("#trade-add")
    await expect(row.locator("td").nth(1)).to_have_text("110")
    trades = page.locator("#trades li[data-id]")
    await expect(trades).to_have_count(1)
    await expect(trades).to_contain_text("10 @ 1,500.00")

    # A sale books realised P&L: shown in the totals.
    await page.select_option("#trade-side", "sell")
    await page.fill("#trade-quantity", "20")
    await page.fill("#trade-price", "1600")
    # A time the form gives as exchange time (IST): half a minute ahead of the server's clock
    # (after the carried-in position it closes, within the 60 s a trade may be ahead).
    when = await page.evaluate(
        "() => new Date(Date.now() + 30000 + 5.5 * 3600000).toISOString().slice(0, 19)"
    )
    await page.fill("#trade-time", when)
    await page.click("#trade-add")
    await expect(row.locator("td").nth(1)).to_have_text("90")
    await expect(trades).to_have_count(2)
    await expect(page.locator("#tot-realized-box")).to_be_visible()
    await expect(page.locator("#tot-realized")).to_have_text(re.compile(r"\d"))
    await expect(page.locator("#trade-error")).to_be_hidden()
    # Realised P&L, FIFO: the sale closes the carried-in lot first, at the demo's average price.
    realised = round((1600 - average) * 20, 2)
    await expect(row).to_have_attribute("data-realized", str(realised).removesuffix(".0"))
    await expect(row.locator(".realized")).to_contain_text("realised +")
    save_screenshot(await page.screenshot(full_page=True), "dashboard-trades.png")
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.wait_for_function("() => document.documentElement.scrollWidth <= window.innerWidth")
    save_screenshot(await page.screenshot(full_page=True), "dashboard-trades-phone.png")
    await page.set_viewport_size({"width": 1400, "height": 900})

    # The server has them (read by another client).
    listed = await request(
        port, "/ws/portfolio", {"type": "list_trades", "symbol": "RELIANCE"}, "trades"
    )
    sides = sorted((t["side"], t["quantity"], t["price"]) for t in listed["trades"])
    assert sides == [("buy", 10, 1500), ("sell", 20, 1600)]
    sold = next(t for t in listed["trades"] if t["side"] == "sell")
    ist = sold["time"].replace("Z", "+00:00")
    shown = datetime.fromisoformat(ist).astimezone(IST).replace(tzinfo=None).isoformat()
    assert shown == when  # the form's time was exchange time

    # Deleting one undoes it.
    await trades.filter(has_text="sell").locator("button.del").click()
    await expect(trades).to_have_count(1)
    await expect(row.locator("td").nth(1)).to_have_text("110")
    console.assert_clean()
