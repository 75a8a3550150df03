"""What the browser tests of the dashboard's forms share: a page ready to use, and a request
read back by a client that is not ours (``websocket-client``)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from playwright.async_api import Page, expect
from websocket import create_connection

Msg = dict[str, Any]
_number = re.compile(r"^\d+(\.\d+)?$")


def _request(port: int, path: str, message: Msg, reply: str) -> Msg:
    """One request on a fresh connection of ``websocket-client``; its reply."""
    ws = create_connection(f"ws://127.0.0.1:{port}{path}", timeout=10)
    try:
        ws.send(json.dumps(message))
        while True:
            msg: Msg = json.loads(ws.recv())
            if msg.get("type") in (reply, "error"):
                return msg
    finally:
        ws.close()


async def request(port: int, path: str, message: Msg, reply: str) -> Msg:
    """:func:`_request` off the event loop (the page keeps running meanwhile)."""
    return await asyncio.to_thread(_request, port, path, message, reply)


async def ready(page: Page) -> None:
    """The page is connected and shows RELIANCE's price."""
    await expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    await expect(page.locator('#ticker tr[data-symbol="RELIANCE"]')).to_have_attribute(
        "data-price", _number
    )
