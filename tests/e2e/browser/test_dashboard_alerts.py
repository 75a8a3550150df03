"""The dashboard's alert form with its indicator and pattern kinds in a real browser against a
real service: what the form creates reaches the server with the right fields (read back by a
client that is not ours, ``websocket-client``), shows in the page's list with a readable
description, and an alert's firing is announced as a price alert's is."""

from __future__ import annotations

import re

from playwright.async_api import Browser, expect

from tests.e2e.browser import test_dashboard as dashboard
from tests.e2e.browser.pages import ready, request
from tests.e2e.browser.test_dashboard import (
    StartService,
    open_page,
    save_screenshot,
    start_web_service,
)

pytestmark = dashboard.pytestmark
port = dashboard.port
browser = dashboard.browser


async def test_indicator_and_pattern_alerts_from_the_form(
    service_factory: StartService, port: int, browser: Browser
) -> None:
    await start_web_service(service_factory, port)
    page, console = await open_page(browser, port)
    await ready(page)
    # The kinds open once the server's alert_data shows it has them.
    await expect(page.locator('#alert-kind option[value="indicator"]')).to_be_enabled()
    await page.select_option("#alert-symbol", "RELIANCE")

    # RSI(14) crosses above 70 on 5m candles.
    await page.select_option("#alert-kind", "indicator")
    await expect(page.locator("#alert-value")).to_be_hidden()
    await page.select_option("#alert-interval", "5m")
    await page.fill("#alert-indicator", "rsi:14")
    await page.select_option("#alert-ind-condition", "crosses_above")
    await page.fill("#alert-rhs-value", "70")
    await page.click("#alert-create")
    mine = page.locator('#my-alerts li[data-category="indicator"]')
    await expect(mine).to_have_count(1)
    await expect(mine.locator("b")).to_have_text("RELIANCE RSI(14) crosses above 70 · 5m")

    # EMA(9) crosses above EMA(21): the right side another indicator.
    await page.select_option("#alert-rhs", "other")
    await page.fill("#alert-indicator", "ema:9")
    await page.fill("#alert-other", "ema:21")
    await page.click("#alert-create")
    await expect(mine).to_have_count(2)
    await expect(mine.nth(1).locator("b")).to_have_text(
        "RELIANCE EMA(9) crosses above EMA(21) · 5m"
    )

    # A bullish engulfing on 15m candles.
    await page.select_option("#alert-kind", "pattern")
    await page.select_option("#alert-interval", "15m")
    await page.select_option("#alert-pattern", "engulfing")
    await page.select_option("#alert-direction", "bullish")
    await page.click("#alert-create")
    pattern = page.locator('#my-alerts li[data-category="pattern"]')
    await expect(pattern).to_have_count(1)
    await expect(pattern.locator("b")).to_have_text("RELIANCE bullish engulfing · 15m")
    await expect(page.locator("#alert-error")).to_be_hidden()
    await page.select_option("#alert-kind", "indicator")
    save_screenshot(await page.screenshot(full_page=True), "dashboard-alerts.png")
    # On a phone the form with its indicator fields fits the screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.wait_for_function("() => document.documentElement.scrollWidth <= window.innerWidth")
    save_screenshot(await page.screenshot(full_page=True), "dashboard-alerts-phone.png")

    # The server has them as the form asked.
    listed = await request(port, "/ws/alerts", {"type": "list_alerts"}, "alerts")
    by_kind = {(a.get("indicator"), a.get("pattern")): a for a in listed["alerts"]}
    rsi = by_kind[("rsi:14", None)]
    assert (rsi["category"], rsi["condition"], rsi["value"], rsi["interval"]) == (
        "indicator", "crosses_above", 70, "5m",
    )  # fmt: skip
    ema = by_kind[("ema:9", None)]
    assert (ema["other"], ema["condition"], ema["interval"]) == ("ema:21", "crosses_above", "5m")
    engulfing = by_kind[(None, "engulfing")]
    assert (engulfing["category"], engulfing["direction"], engulfing["interval"]) == (
        "pattern", "bullish", "15m",
    )  # fmt: skip
    assert engulfing["condition"] == "pattern"
    console.assert_clean()


async def test_an_indicator_alert_fires_in_the_page(
    service_factory: StartService, port: int, browser: Browser
) -> None:
    """``close above 1`` on 1m candles fires on the next close (about a second at SIM_SPEED=60)."""
    await start_web_service(service_factory, port)
    page, console = await open_page(browser, port)
    await ready(page)
    await expect(page.locator('#alert-kind option[value="indicator"]')).to_be_enabled()
    await page.select_option("#alert-symbol", "RELIANCE")
    await page.select_option("#alert-kind", "indicator")
    await page.select_option("#alert-interval", "1m")
    await page.fill("#alert-indicator", "close")
    await page.select_option("#alert-ind-condition", "above")
    await page.fill("#alert-rhs-value", "1")
    await page.fill("#alert-note", "closes above one")
    await page.click("#alert-create")
    mine = page.locator('#my-alerts li[data-category="indicator"]')
    await expect(mine.locator("b")).to_have_text("RELIANCE close above 1 · 1m")
    fired = page.locator("#triggered li.user")
    await expect(fired).to_have_count(1, timeout=15_000)
    await expect(fired).to_contain_text("RELIANCE")
    await expect(fired).to_have_attribute("data-category", "indicator")
    await expect(mine).to_have_attribute("data-triggered", "true")
    await expect(mine).to_contain_text(re.compile(r"triggered .*\(1,\d{3}\.\d{2} / 1\.00\)"))
    console.assert_clean()


async def test_a_pattern_alert_fires_in_the_page(
    service_factory: StartService, port: int, browser: Browser
) -> None:
    """``any`` pattern on 1m candles, with a past session for the patterns' context: one of the
    61 shows on some close within seconds, and its firing is announced."""
    await start_web_service(service_factory, port, sim_history_sessions=1)
    page, console = await open_page(browser, port)
    await ready(page)
    await expect(page.locator('#alert-kind option[value="pattern"]')).to_be_enabled()
    await page.select_option("#alert-symbol", "RELIANCE")
    await page.select_option("#alert-kind", "pattern")
    await page.select_option("#alert-interval", "1m")
    await page.select_option("#alert-pattern", "any")
    await page.click("#alert-create")
    mine = page.locator('#my-alerts li[data-category="pattern"]')
    await expect(mine.locator("b")).to_have_text("RELIANCE any pattern · 1m")
    fired = page.locator('#triggered li.user[data-category="pattern"]')
    await expect(fired).to_have_count(1, timeout=30_000)
    await expect(fired).to_contain_text("RELIANCE 1m:")
    await expect(mine).to_have_attribute("data-triggered", "true")
    console.assert_clean()
