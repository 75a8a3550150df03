"""The dashboard's indicator picker ("My indicators", from ``GET /indicators``) in a real browser
against a real service: a set chosen in the form reaches the server as a ``/ws/analysis``
subscription, its values appear for every member and its price-scale members are drawn on the
chart, the form checks the catalog's ranges before the server sees them, the server's refusals
are shown, and the choice survives a reload."""

from __future__ import annotations

import re

from playwright.async_api import Browser, Page, expect

from tests.e2e.browser import test_dashboard as dashboard
from tests.e2e.browser.test_dashboard import (
    CHART_BARS,
    StartService,
    open_page,
    save_screenshot,
    start_web_service,
    wait_above,
)
from tickhub.app.roles import SingleService

# The dashboard tests' skips (no Playwright, no Chromium) and fixtures (a free port, Chromium).
pytestmark = dashboard.pytestmark
port = dashboard.port
browser = dashboard.browser

_value = re.compile(r"\d|^(up|down)$")  # a number, or supertrend's direction
SET_POINTS = "document.getElementById('chart').dataset.setPoints"


async def add_indicator(page: Page, name: str, *params: str) -> None:
    await page.select_option("#picker-kind", name)
    for i, value in enumerate(params):
        await page.fill(f"#picker-param-{i}", value)
    await page.click("#picker-add")


def analysis_sets(svc: SingleService) -> set[str]:
    """The indicator-set topics the server holds (``analysis:...`` with a set)."""
    return {t for t in svc.hub.topics() if t.startswith("analysis:") and "ema:5" in t}


async def test_picker_set_values_lines_and_reload(
    service_factory: StartService, port: int, browser: Browser
) -> None:
    web = await start_web_service(service_factory, port, sim_history_sessions=1)
    page, console = await open_page(browser, port)
    await expect(page.locator("#picker")).to_be_visible()
    await expect(page.locator("#picker-kind option")).to_have_count(14)
    await expect(page.locator("#picker-count")).to_have_text("0 of 10")
    await wait_above(page, CHART_BARS, 0)

    await add_indicator(page, "ema", "5")
    await add_indicator(page, "bollinger", "10", "2.5")
    await add_indicator(page, "supertrend", "7", "3")
    await add_indicator(page, "macd", "5", "10", "3")
    await add_indicator(page, "pivots")
    chosen = ["ema:5", "bollinger:10,2.5", "supertrend:7,3", "macd:5,10,3", "pivots"]
    chips = page.locator("#picker-chosen li")
    await expect(chips).to_have_count(5)
    assert [await c.get_attribute("data-entry") for c in await chips.all()] == chosen
    await expect(chips.nth(1)).to_contain_text("Bollinger(10, 2.5)")
    await expect(page.locator("#picker-count")).to_have_text("5 of 10")

    # A row per indicator, each member with its value once the set's topic sends one.
    keys = [
        "ema:5",
        *(f"bollinger:10,2.5.{m}" for m in ("upper", "middle", "lower")),
        "supertrend:7,3.value",
        "supertrend:7,3.direction",
        *(f"macd:5,10,3.{m}" for m in ("macd", "signal", "histogram")),
        *(f"pivots.{m}" for m in ("pivot", "r1", "r2", "r3", "s1", "s2", "s3")),
    ]
    rows = page.locator("#set-values tbody tr")
    await expect(rows).to_have_count(len(chosen))
    members = page.locator("#set-values .member")
    assert [await m.get_attribute("data-key") for m in await members.all()] == keys
    for key in keys:
        cell = page.locator(f'#set-values [data-key="{key}"] .val')
        await expect(cell).to_have_text(_value, timeout=20_000)

    # The server holds the set's topic for the chart's symbol and interval.
    [topic] = analysis_sets(web)
    assert "RELIANCE" in topic and "supertrend:7,3" in topic

    # Lines for the price-scale members: EMA, three bands, Supertrend, seven pivots.
    chart = page.locator("#chart")
    await expect(chart).to_have_attribute("data-set-lines", "12")
    await wait_above(page, SET_POINTS, 12)

    # The lines' past (computed in the page) and present (the server's) against a reference
    # written here: Bollinger(10, 2.5) over the chart's closes, population deviation.
    drawn = await page.evaluate(
        """() => {
          const d = window.tickhubDashboard;
          const closes = [...d.bars.values()]
            .sort((a, b) => a.time - b.time)
            .map((b) => [b.time, b.close]);
          const line = (m) => [...d.setLines.get(`bollinger:10,2.5|${m}`).points.values()]
            .map((p) => [p.time, p.value]);
          return { closes, upper: line('upper'), lower: line('lower') };
        }"""
    )
    closes = drawn["closes"]
    reference: dict[int, tuple[float, float]] = {}
    for i in range(9, len(closes) - 2):  # closed candles only (the last may still be forming)
        window = [c for _, c in closes[i - 9 : i + 1]]
        mean = sum(window) / 10
        sd = (sum((c - mean) ** 2 for c in window) / 10) ** 0.5
        reference[closes[i][0]] = (mean + 2.5 * sd, mean - 2.5 * sd)
    upper, lower = dict(drawn["upper"]), dict(drawn["lower"])
    checked = [t for t in reference if t in upper and t in lower]
    assert len(checked) > 50, len(checked)  # the past from /candles, not only the live points
    for t in checked:
        assert abs(upper[t] - reference[t][0]) < 1e-3, (t, upper[t], reference[t])
        assert abs(lower[t] - reference[t][1]) < 1e-3, (t, lower[t], reference[t])

    save_screenshot(await page.screenshot(full_page=True), "dashboard-indicators.png")
    # On a phone the picker and its table fit the screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.wait_for_function("() => document.documentElement.scrollWidth <= window.innerWidth")
    save_screenshot(await page.screenshot(full_page=True), "dashboard-indicators-phone.png")
    await page.set_viewport_size({"width": 1400, "height": 900})

    # The form checks the catalog's ranges and constraints before asking the server.
    await add_indicator(page, "ema", "500")
    await expect(page.locator("#picker-error")).to_have_text(
        "EMA period: a whole number from 2 to 200"
    )
    await add_indicator(page, "macd", "30", "10", "9")
    await expect(page.locator("#picker-error")).to_have_text("MACD: fast must be below slow")
    # The message stays while the set's values go on arriving.
    points = int(await page.evaluate(f"() => {SET_POINTS}"))
    await wait_above(page, SET_POINTS, points + 2)
    await expect(page.locator("#picker-error")).to_have_text("MACD: fast must be below slow")
    await add_indicator(page, "ema", "5")
    await expect(page.locator("#picker-error")).to_contain_text("EMA(5) is in the set already")
    await expect(chips).to_have_count(5)

    # Removing one resubscribes with the rest.
    await page.click('#picker-chosen li[data-entry="pivots"] button')
    await expect(chips).to_have_count(4)
    await expect(chart).to_have_attribute("data-set-lines", "5")
    await expect(rows).to_have_count(4)
    await expect(members).to_have_count(len(keys) - 7)
    await expect(page.locator('#set-values [data-key="ema:5"] .val')).to_have_text(_value)

    # The choice survives a reload: the same set, its values again.
    await page.reload()
    await expect(chips).to_have_count(4)
    assert [await c.get_attribute("data-entry") for c in await chips.all()] == chosen[:4]
    for key in keys[:-7]:
        cell = page.locator(f'#set-values [data-key="{key}"] .val')
        await expect(cell).to_have_text(_value, timeout=20_000)
    await wait_above(page, SET_POINTS, 0)
    console.assert_clean()


async def test_a_set_the_server_refuses_is_shown_in_the_picker(
    service_factory: StartService, port: int, browser: Browser
) -> None:
    """With MAX_INDICATOR_SETS=0 every set is refused (``limit_exceeded``): the page says so."""
    await start_web_service(service_factory, port, max_indicator_sets=0)
    page, console = await open_page(browser, port)
    await expect(page.locator("#picker")).to_be_visible()
    await add_indicator(page, "rsi", "7")
    error = page.locator("#picker-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("server:")
    await expect(error).to_contain_text("MAX_INDICATOR_SETS")
    # The default analysis goes on: the page is still usable.
    await expect(page.locator("#ind-trend")).not_to_have_text("–", timeout=20_000)
    console.assert_clean()


async def test_picker_limit_comes_from_the_server(
    service_factory: StartService, port: int, browser: Browser
) -> None:
    await start_web_service(service_factory, port, max_indicators_per_subscription=2)
    page, console = await open_page(browser, port)
    await expect(page.locator("#picker-count")).to_have_text("0 of 2")
    await add_indicator(page, "sma", "5")
    await add_indicator(page, "obv")
    await expect(page.locator("#picker-chosen li")).to_have_count(2)
    await expect(page.locator("#picker-add")).to_be_disabled()
    console.assert_clean()
