"""The throttle's contract, key by key: what is sent at once, what is held, when a held update is
flushed, what is dropped as superseded. A manual clock stands for time; nothing sleeps."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tickhub.core import defaults
from tickhub.ingest.throttle import Key, Throttle
from tickhub.runtime.clock import ManualClock

INTERVAL = defaults.UPDATE_INTERVAL
MARKET: Key = ("market", "RELIANCE", "")
CANDLE: Key = ("candle", "RELIANCE", "1m")


class Sent:
    """Records which update ran, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, name: str) -> Callable[[], None]:
        return lambda: self.names.append(name)


def make() -> tuple[Throttle, ManualClock, Sent]:
    clock = ManualClock()
    return Throttle(clock, INTERVAL), clock, Sent()


def test_the_first_update_of_a_key_is_sent_at_once() -> None:
    throttle, _, sent = make()
    throttle.offer(MARKET, sent("a"))
    assert sent.names == ["a"]


def test_an_update_within_the_interval_is_held_until_a_flush_after_the_interval() -> None:
    throttle, clock, sent = make()
    throttle.offer(MARKET, sent("a"))
    clock.advance(INTERVAL / 2)
    throttle.offer(MARKET, sent("b"))
    throttle.flush()
    assert sent.names == ["a"]  # held: its interval has not passed
    clock.advance(INTERVAL / 2)
    throttle.flush()
    assert sent.names == ["a", "b"]
    clock.advance(INTERVAL)
    throttle.flush()
    assert sent.names == ["a", "b"]  # sent once, never repeated


def test_a_held_update_is_superseded_by_a_later_one_of_the_same_key() -> None:
    throttle, clock, sent = make()
    throttle.offer(MARKET, sent("a"))
    for name in ("b", "c", "d"):
        clock.advance(INTERVAL / 4)
        throttle.offer(MARKET, sent(name))
    clock.advance(INTERVAL / 4)
    throttle.flush()
    assert sent.names == ["a", "d"]  # only the latest state goes out


def test_an_update_once_the_interval_passed_is_sent_at_once_and_drops_the_held_one() -> None:
    throttle, clock, sent = make()
    throttle.offer(MARKET, sent("a"))
    clock.advance(INTERVAL / 2)
    throttle.offer(MARKET, sent("b"))
    clock.advance(INTERVAL / 2)
    throttle.offer(MARKET, sent("c"))  # no flush in between: c is the newer state
    clock.advance(INTERVAL)
    throttle.flush()
    assert sent.names == ["a", "c"]


def test_a_flushed_update_restarts_the_interval() -> None:
    throttle, clock, sent = make()
    throttle.offer(MARKET, sent("a"))
    clock.advance(INTERVAL / 2)
    throttle.offer(MARKET, sent("b"))
    clock.advance(INTERVAL)
    throttle.flush()  # b goes out at 1.5 intervals
    clock.advance(INTERVAL / 2)
    throttle.offer(MARKET, sent("c"))
    assert sent.names == ["a", "b"]  # c is only one half interval after b
    clock.advance(INTERVAL / 2)
    throttle.flush()
    assert sent.names == ["a", "b", "c"]


def test_keys_are_paced_independently() -> None:
    throttle, clock, sent = make()
    throttle.offer(MARKET, sent("market 1"))
    clock.advance(INTERVAL / 2)
    throttle.offer(CANDLE, sent("candle 1"))  # its own first update: at once
    throttle.offer(MARKET, sent("market 2"))  # held
    clock.advance(INTERVAL / 2)
    throttle.flush()  # the market's interval has passed, the candle's has not
    assert sent.names == ["market 1", "candle 1", "market 2"]
    throttle.offer(CANDLE, sent("candle 2"))
    clock.advance(INTERVAL / 2)
    throttle.flush()
    assert sent.names == ["market 1", "candle 1", "market 2", "candle 2"]


def test_a_discarded_update_is_never_sent_and_the_pace_goes_on() -> None:
    throttle, clock, sent = make()
    throttle.offer(CANDLE, sent("forming"))
    clock.advance(INTERVAL / 2)
    throttle.offer(CANDLE, sent("stale"))
    throttle.discard(CANDLE)  # a closed candle went out unthrottled
    clock.advance(INTERVAL)
    throttle.flush()
    assert sent.names == ["forming"]
    throttle.discard(CANDLE)  # nothing held: no effect
    throttle.offer(CANDLE, sent("next"))
    assert sent.names == ["forming", "next"]


def test_an_update_sent_elsewhere_restarts_the_interval_and_keeps_the_held_one() -> None:
    throttle, clock, sent = make()
    throttle.offer(CANDLE, sent("a"))
    clock.advance(INTERVAL / 2)
    throttle.offer(CANDLE, sent("b"))  # held
    clock.advance(INTERVAL / 4)
    throttle.sent(CANDLE)  # a new candle's first update went out at 0.75 intervals
    clock.advance(INTERVAL / 2)
    throttle.flush()
    assert sent.names == ["a"]  # 1.25 intervals: only half an interval since the last send
    clock.advance(INTERVAL / 2)
    throttle.flush()
    assert sent.names == ["a", "b"]


def test_a_key_first_sent_elsewhere_holds_its_next_update() -> None:
    throttle, clock, sent = make()
    throttle.sent(CANDLE)
    throttle.offer(CANDLE, sent("a"))
    assert sent.names == []
    clock.advance(INTERVAL)
    throttle.flush()
    assert sent.names == ["a"]


def test_a_failing_update_sent_at_once_reaches_the_caller() -> None:
    throttle, _, _ = make()

    def fail() -> None:
        raise RuntimeError("engine failed")

    with pytest.raises(RuntimeError, match="engine failed"):
        throttle.offer(MARKET, fail)


def test_a_failing_held_update_is_logged_and_dropped_and_the_others_still_go_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    throttle, clock, sent = make()
    calls = 0

    def fail() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("engine failed")

    throttle.offer(MARKET, sent("market"))
    throttle.offer(CANDLE, sent("candle"))
    throttle.offer(MARKET, fail)
    throttle.offer(CANDLE, sent("candle 2"))
    clock.advance(INTERVAL)
    with caplog.at_level(logging.ERROR, logger="tickhub.ingest.throttle"):
        throttle.flush()
    assert calls == 1
    assert sent.names == ["market", "candle", "candle 2"]
    assert "throttled publish failed" in caplog.text
    clock.advance(INTERVAL)
    throttle.flush()
    assert calls == 1  # not retried


def test_an_update_discarded_by_one_flushed_before_it_is_not_sent() -> None:
    throttle, clock, sent = make()
    throttle.offer(MARKET, sent("market"))
    throttle.offer(CANDLE, sent("candle"))
    throttle.offer(MARKET, lambda: throttle.discard(CANDLE))
    throttle.offer(CANDLE, sent("stale candle"))
    clock.advance(INTERVAL)
    throttle.flush()
    assert sent.names == ["market", "candle"]


def test_a_new_candle_start_is_told_once_per_key() -> None:
    throttle, _, _ = make()
    first = datetime(2025, 1, 27, 4, 30, tzinfo=UTC)
    second = datetime(2025, 1, 27, 4, 31, tzinfo=UTC)
    assert throttle.starts_bucket(CANDLE, first)
    assert not throttle.starts_bucket(CANDLE, first)
    assert throttle.starts_bucket(CANDLE, second)
    assert not throttle.starts_bucket(CANDLE, second)
    assert throttle.starts_bucket(("candle", "RELIANCE", "5m"), first)  # keys apart
