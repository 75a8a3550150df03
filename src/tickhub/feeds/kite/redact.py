"""Kite's access token travels in the WebSocket URL's query; no log line may ever carry it."""

from __future__ import annotations

import logging
import re
from typing import Final

_TOKEN_IN_PATH: Final = re.compile(r"(access_token=)[^&\s]*")


class RedactAccessToken(logging.Filter):
    """websockets logs request paths at debug level: the token is replaced by ``<redacted>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message:
            record.msg = _TOKEN_IN_PATH.sub(r"\1<redacted>", message)
            record.args = ()
        return True


def websocket_logger(owner: str) -> logging.Logger:
    """The logger to hand websockets for ``owner``'s connections, redacting the token."""
    logger = logging.getLogger(f"{owner}.websockets")
    logger.addFilter(RedactAccessToken())
    return logger
