"""Resume history: a client that last saw ``(epoch, seq)`` gets exactly what it missed, in order,
or ``None`` once the history no longer covers it; eviction by count and by age on the time the
caller passes in (no clock is read here)."""

from __future__ import annotations

import pytest

from tickhub.bus.history import TopicHistory, recoverable

E = "epoch-1"


def p(seq: int) -> bytes:
    return f"m{seq}".encode()


def test_events_and_candles_are_recoverable_the_rest_is_state() -> None:
    assert recoverable(None)
    assert recoverable("candle:2025-01-27T09:15")
    assert not recoverable("tick")
    assert not recoverable("market")
    assert not recoverable("analysis")


def test_since_returns_what_was_missed_in_seq_order() -> None:
    h = TopicHistory()
    h.record(E, 1, None, None, p(1), at=0.0)
    h.record(E, 2, "candle:a", "candle", p(2), at=0.0)
    h.record(E, 3, "tick", "tick", p(3), at=0.0)
    h.record(E, 4, None, None, p(4), at=0.0)
    assert h.since(E, 0, now=0.0) == [p(1), p(2), p(3), p(4)]
    assert h.since(E, 2, now=0.0) == [p(3), p(4)]
    assert h.since(E, 4, now=0.0) == []  # up to date


def test_a_newer_update_of_a_candle_replaces_the_older_one() -> None:
    h = TopicHistory()
    h.record(E, 1, "candle:a", None, p(1), at=0.0)
    h.record(E, 2, "candle:b", None, p(2), at=0.0)
    h.record(E, 3, "candle:a", None, p(3), at=0.0)
    assert h.since(E, 0, now=0.0) == [p(2), p(3)]


def test_state_is_sent_once_as_its_latest_value_and_never_twice() -> None:
    h = TopicHistory()
    h.record(E, 1, "tick", "tick", p(1), at=0.0)
    h.record(E, 2, "tick", "tick", p(2), at=0.0)
    h.record(E, 3, "candle:a", "candle", p(3), at=0.0)  # both an entry and retained state
    assert h.since(E, 0, now=0.0) == [p(2), p(3)]
    h.drop_state("tick")
    assert h.since(E, 0, now=0.0) == [p(3)]


def test_count_eviction_raises_the_floor_to_the_last_evicted_seq() -> None:
    h = TopicHistory(max_entries=3)
    for seq in range(1, 6):
        h.record(E, seq, None, None, p(seq), at=0.0)
    assert h.floor == 2
    assert h.since(E, 1, now=0.0) is None  # message 2 is gone: not exactly recoverable
    assert h.since(E, 2, now=0.0) == [p(3), p(4), p(5)]


def test_age_eviction_by_the_time_passed_in_boundary_included() -> None:
    h = TopicHistory(max_age=10.0)
    h.record(E, 1, None, None, p(1), at=100.0)
    h.record(E, 2, None, None, p(2), at=105.0)
    assert h.since(E, 0, now=110.0) == [p(1), p(2)]  # exactly max_age old: still kept
    assert h.since(E, 0, now=110.5) is None
    assert h.floor == 1
    assert h.since(E, 1, now=110.5) == [p(2)]
    assert h.since(E, 1, now=116.0) is None  # message 2 aged out too
    assert h.floor == 2
    assert h.since(E, 2, now=116.0) == []  # nothing after 2 was lost


def test_state_survives_the_eviction_of_entries() -> None:
    h = TopicHistory(max_entries=1)
    h.record(E, 1, "tick", "tick", p(1), at=0.0)
    h.record(E, 2, None, None, p(2), at=0.0)
    h.record(E, 3, None, None, p(3), at=0.0)
    assert h.floor == 2
    assert h.since(E, 2, now=0.0) == [p(3)]
    assert h.since(E, 1, now=0.0) is None


@pytest.mark.parametrize(("epoch", "seq"), [("other", 1), (E, 9)])
def test_other_epoch_or_future_seq_is_not_covered(epoch: str, seq: int) -> None:
    h = TopicHistory()
    h.record(E, 1, None, None, p(1), at=0.0)
    h.record(E, 2, None, None, p(2), at=0.0)
    assert h.since(epoch, seq, now=0.0) is None


def test_a_new_epoch_restarts_the_numbering_and_forgets_the_old_run() -> None:
    h = TopicHistory()
    h.record(E, 7, None, None, p(7), at=0.0)
    h.record(E, 8, "tick", "tick", p(8), at=0.0)
    h.record("epoch-2", 1, None, None, b"new1", at=1.0)
    assert (h.epoch, h.floor) == ("epoch-2", 0)
    assert h.state == {}
    assert h.since(E, 7, now=1.0) is None
    assert h.since("epoch-2", 0, now=1.0) == [b"new1"]


def test_a_new_epoch_that_starts_late_is_covered_only_from_its_first_seq() -> None:
    h = TopicHistory()
    h.record("e2", 5, None, None, p(5), at=0.0)
    assert h.floor == 4
    assert h.since("e2", 4, now=0.0) == [p(5)]
    assert h.since("e2", 3, now=0.0) is None
