"""No log line carries Kite's access token, whatever logs the WebSocket URL."""

from __future__ import annotations

import logging

import pytest

from tickhub.feeds.kite.redact import websocket_logger

TOKEN = "s3cr3tT0k3n"


def test_a_logged_url_has_its_token_redacted(caplog: pytest.LogCaptureFixture) -> None:
    log = websocket_logger("tests.kite")
    with caplog.at_level(logging.DEBUG, logger="tests.kite.websockets"):
        log.debug("> GET %s HTTP/1.1", f"/?api_key=k&access_token={TOKEN}&v=3")
        log.debug("connection closed")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "> GET /?api_key=k&access_token=<redacted>&v=3 HTTP/1.1",
        "connection closed",
    ]
    assert TOKEN not in caplog.text


def test_the_token_is_redacted_at_the_end_of_a_line_too(caplog: pytest.LogCaptureFixture) -> None:
    log = websocket_logger("tests.kite.end")
    with caplog.at_level(logging.DEBUG, logger="tests.kite.end.websockets"):
        log.warning("rejected wss://ws.kite.trade/?access_token=%s", TOKEN)
    assert caplog.records[0].getMessage() == "rejected wss://ws.kite.trade/?access_token=<redacted>"


def test_the_feed_and_the_emulator_log_websockets_through_the_filter() -> None:
    from tickhub.devtools import kite_emulator
    from tickhub.feeds.kite import client

    for module in (client, kite_emulator):
        logger = logging.getLogger(f"{module.__name__}.websockets")
        assert any(type(f).__name__ == "RedactAccessToken" for f in logger.filters), module


def test_every_module_of_the_feed_logs_under_the_feed_s_one_name() -> None:
    from tickhub.feeds.kite import client, frames, session

    assert frames.log is session.log is client.log
