"""Where the Kite feed's access token comes from: the argument, the token file, set()."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tickhub.feeds.kite.tokens import AccessTokens
from tickhub.runtime.clock import ManualClock


def test_the_token_file_wins_whenever_its_content_changes(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    tokens = AccessTokens("from-argument", token_file, clock=ManualClock(), poll_interval=5.0)
    assert tokens.current() == "from-argument"  # no file yet
    token_file.write_text("from-file\n")
    assert tokens.current() == "from-file"
    tokens.set("from-set")
    assert tokens.current() == "from-set"  # the file has not changed since it was read
    token_file.write_text("")
    assert tokens.current() == "from-set"  # an empty file changes nothing
    token_file.write_text("renewed")
    assert tokens.current() == "renewed"


def test_a_rejected_token_is_not_usable_and_an_empty_one_is_refused() -> None:
    tokens = AccessTokens("", None, clock=ManualClock(), poll_interval=5.0)
    assert tokens.current() is None and tokens.usable() is None
    tokens.set("t1")
    tokens.rejected = "t1"
    assert tokens.usable() is None
    with pytest.raises(ValueError, match="must not be empty"):
        tokens.set("")


async def settle() -> None:
    """Let the waiting tasks run until they sleep on the manual clock."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_wait_for_new_polls_the_file_and_wakes_on_set(tmp_path: Path) -> None:
    clock = ManualClock()
    token_file = tmp_path / "token"
    token_file.write_text("old")
    tokens = AccessTokens(None, token_file, clock=clock, poll_interval=5.0)
    tokens.rejected = tokens.current()

    waiting = asyncio.create_task(tokens.wait_for_new())
    await settle()
    token_file.write_text("new")
    clock.advance(4.9)
    await settle()
    assert not waiting.done()  # read only at the next poll
    clock.advance(0.1)
    await asyncio.wait_for(waiting, 1.0)
    assert tokens.usable() == "new"

    tokens.rejected = "new"
    waiting = asyncio.create_task(tokens.wait_for_new())
    await settle()
    tokens.set("newer")  # at once, no clock advance
    await asyncio.wait_for(waiting, 1.0)
    assert tokens.usable() == "newer"
