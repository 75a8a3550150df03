"""Reconnect policy: the backoff's bounds (with an injected randomness) and the close codes."""

from __future__ import annotations

import pytest

from tickhub.client import ClientOptions, backoff_delay, should_reconnect

BOUNDS = {"min_delay": 0.5, "max_delay": 30.0, "factor": 2.0, "jitter": 0.5}


@pytest.mark.parametrize("attempt", range(12))
def test_each_delay_lies_in_its_jitter_window(attempt: int) -> None:
    d = min(30.0, 0.5 * 2**attempt)
    low = backoff_delay(attempt, lambda: 0.0, **BOUNDS)
    high = backoff_delay(attempt, lambda: 1.0, **BOUNDS)
    mid = backoff_delay(attempt, lambda: 0.5, **BOUNDS)
    assert low == pytest.approx(d / 2)
    assert high == pytest.approx(d)
    assert low < mid < high


def test_delays_grow_then_stay_at_the_cap() -> None:
    delays = [backoff_delay(a, lambda: 1.0, **BOUNDS) for a in range(10)]
    assert delays[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert set(delays[6:]) == {30.0}
    assert backoff_delay(10**6, lambda: 1.0, **BOUNDS) == 30.0  # no overflow


def test_no_jitter_is_exact_and_full_jitter_reaches_zero() -> None:
    assert backoff_delay(3, lambda: 0.123, min_delay=1, max_delay=60, jitter=0) == 8.0
    assert backoff_delay(3, lambda: 0.0, min_delay=1, max_delay=60, jitter=1) == 0.0


def test_a_randomness_out_of_range_is_clamped() -> None:
    assert backoff_delay(0, lambda: 7.0, **BOUNDS) == 0.5
    assert backoff_delay(0, lambda: -1.0, **BOUNDS) == 0.25


@pytest.mark.parametrize(
    ("code", "refreshes", "expected"),
    [
        (1000, False, True),
        (1001, False, True),
        (1006, False, True),
        (None, False, True),
        (1011, False, True),
        (1012, False, True),
        (4001, False, True),
        (4002, False, True),
        (4003, False, True),
        (4499, False, True),
        (4500, True, False),
        (4501, False, False),
        (4501, True, True),
        (4502, False, False),
        (4503, False, False),
        (4999, False, False),
    ],
)
def test_close_codes_4500_to_4999_stop_the_rest_reconnect(
    code: int | None, refreshes: bool, expected: bool
) -> None:
    assert should_reconnect(code, token_refreshes=refreshes) is expected


def test_bad_options_are_refused_with_their_names() -> None:
    with pytest.raises(ValueError, match=r"jitter=2.*max_queue=0"):
        ClientOptions(jitter=2, max_queue=0)
    with pytest.raises(ValueError, match="max_delay"):
        ClientOptions(min_delay=5, max_delay=1)
