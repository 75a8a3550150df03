"""Where the Kite feed's access token comes from, and when a rejected one has been replaced.

Kite's access token expires every morning and is renewed outside this service (a login flow
writes it to a file, or an operator calls ``set_access_token``). How the token is found is a
reason to change of its own, apart from the sockets that present it.

Authentication
    The access token is the ``access_token`` argument or the content of ``token_file``; the file
    is re-read before every connection attempt and wins whenever its content changes, and
    ``set_access_token`` replaces the token at once. An HTTP 401/403 answer to the handshake
    stops all retries: status ``AUTH_FAILED`` (the detail says the token was rejected; the token
    itself is never logged, nor shown in a repr) and every ``token_poll_interval`` seconds the
    file is read again; connecting resumes as soon as the token differs from the rejected one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from tickhub.core.clock import Clock

__all__ = ["AccessTokens"]


class AccessTokens:
    """The access token to connect with, and the one the server last rejected.

    ``current()`` re-reads ``token_file`` (if any; a missing or empty file changes nothing) and
    returns the token to present, ``None`` when there is none yet; a file content that differs
    from the one last read replaces the token in use. ``set`` replaces it at once and wakes
    ``wait_for_new``. ``rejected`` is the token the server refused (``None`` once a handshake
    succeeds), kept by the session. ``wait_for_new`` returns once ``current()`` is a token other
    than ``rejected``, checking every ``poll_interval`` seconds of ``clock`` and on each ``set``.
    Tokens are secrets: nothing here logs them or shows them in a repr.
    """

    def __init__(
        self, token: str | None, token_file: Path | None, *, clock: Clock, poll_interval: float
    ) -> None:
        self._token = token or None
        self.token_file = token_file
        self._file_token: str | None = None  # the file content last seen
        self.rejected: str | None = None
        self._changed = asyncio.Event()
        self._clock = clock
        self._poll_interval = poll_interval

    def current(self) -> str | None:
        """The token to present now (the file re-read first), ``None`` if there is none."""
        if self.token_file is not None:
            try:
                content = self.token_file.read_text(encoding="utf-8").strip()
            except OSError:
                content = ""
            if content and content != self._file_token:
                self._file_token = content
                self._token = content
        return self._token

    def usable(self) -> str | None:
        """The current token unless there is none or the server rejected it."""
        token = self.current()
        return None if token is None or token == self.rejected else token

    def set(self, token: str) -> None:
        """Use ``token`` from the next connection attempt on; wakes ``wait_for_new``."""
        if not token:
            raise ValueError("access token must not be empty")
        self._token = token
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_for_new(self) -> None:
        """Return once a usable token is there, looking again every poll and on each ``set``."""
        while True:
            await self._sleep_or(self._poll_interval, self._changed)
            if self.usable() is not None:
                return

    async def _sleep_or(self, seconds: float, event: asyncio.Event) -> None:
        sleep: Coroutine[Any, Any, None] = self._clock.sleep(seconds)
        tasks = [
            asyncio.create_task(sleep, name="kite-token-poll"),
            asyncio.create_task(event.wait(), name="kite-token-changed"),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
