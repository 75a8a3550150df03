"""Gap detection from seq and epoch (docs/protocol.md §7-8), on messages as the server sends."""

from __future__ import annotations

from typing import Any

from tickhub.client.tracking import Gap, SeqTracker, topic_of


def data(seq: int, epoch: str = "e1", symbol: str = "RELIANCE", **extra: Any) -> dict[str, Any]:
    return {"type": "data", "symbol": symbol, "seq": seq, "epoch": epoch, **extra}


def ack(symbol: str = "RELIANCE", **extra: Any) -> dict[str, Any]:
    return {"type": "subscription", "status": "subscribed", "symbol": symbol, **extra}


def test_topics_are_symbol_interval_symbol_or_star() -> None:
    assert topic_of(data(1, interval="5m")) == "RELIANCE@5m"
    assert topic_of(data(1)) == "RELIANCE"
    assert topic_of(data(1, subscription="*")) == "*"
    assert topic_of(ack("*")) == "*"


def test_consecutive_seqs_make_no_gap_and_a_skip_reports_how_many() -> None:
    t = SeqTracker()
    assert [t.observe(data(s, interval="1m")).gap for s in (1, 2, 3)] == [None, None, None]
    seen = t.observe(data(7, interval="1m"))
    assert seen.gap == Gap("RELIANCE@1m", "RELIANCE", "1m", "skipped", "e1", 3, 7, 3)
    assert not seen.reset and not seen.stale
    assert t.position("RELIANCE@1m") == ("e1", 7)


def test_snapshots_carry_old_numbers_and_never_make_a_gap() -> None:
    t = SeqTracker()
    for s in (48, 51, 52):
        assert t.observe(data(s, snapshot=True)).gap is None
    assert t.observe(data(53)).gap is None
    assert t.observe(data(60, snapshot=True)).gap is None  # a snapshot again: no gap either


def test_a_seq_not_above_the_last_is_stale() -> None:
    t = SeqTracker()
    t.observe(data(5))
    assert t.observe(data(5)).stale
    assert t.observe(data(3)).stale
    assert t.position("RELIANCE") == ("e1", 5)


def test_topics_are_counted_apart() -> None:
    t = SeqTracker()
    t.observe(data(1, interval="1m"))
    t.observe(data(1, interval="5m"))
    assert t.observe(data(2, interval="1m")).gap is None
    assert t.observe(data(2, interval="5m")).gap is None
    assert t.observe(data(1, symbol="INFY")).gap is None


def test_a_new_epoch_without_a_refused_resume_is_a_gap_and_a_reset() -> None:
    t = SeqTracker()
    t.observe(data(40))
    seen = t.observe(data(1, epoch="e2"))
    assert seen.reset
    assert seen.gap == Gap("RELIANCE", "RELIANCE", None, "epoch_changed", "e1", 40, 1, None)
    assert t.observe(data(2, epoch="e2")).gap is None


def test_a_refused_resume_reports_the_gap_once_and_the_snapshot_resets() -> None:
    t = SeqTracker()
    t.observe(data(40, interval="1m"))
    gap = t.refused(ack(interval="1m", recovered=False))
    assert gap == Gap("RELIANCE@1m", "RELIANCE", "1m", "not_recovered", "e1", 40, None, None)
    # the snapshot that follows, of another epoch: reset, and no second gap
    seen = t.observe(data(12, epoch="e2", interval="1m", snapshot=True))
    assert seen.reset and seen.gap is None
    assert t.observe(data(13, epoch="e2", interval="1m")).gap is None


def test_a_refused_resume_in_the_same_epoch_resets_even_an_older_seq() -> None:
    t = SeqTracker()
    t.observe(data(40))
    assert t.refused(ack(recovered=False)) is not None
    seen = t.observe(data(30, snapshot=True))  # too far back: the snapshot's numbers are older
    assert seen.reset and not seen.stale


def test_a_refused_resume_of_a_topic_never_seen_is_no_gap() -> None:
    assert SeqTracker().refused(ack(recovered=False)) is None


def test_forget_one_interval_or_all() -> None:
    t = SeqTracker()
    for iv in ("1m", "5m"):
        t.observe(data(1, interval=iv))
    t.observe(data(1, symbol="RELIANCE2"))
    t.forget("RELIANCE", "5m")
    assert set(t.topics()) == {"RELIANCE@1m", "RELIANCE2"}
    t.forget("RELIANCE")
    assert set(t.topics()) == {"RELIANCE2"}


def test_messages_without_numbers_are_passed_through() -> None:
    t = SeqTracker()
    seen = t.observe({"type": "data", "symbol": "X", "seq": "7", "epoch": "e"})
    assert seen.gap is None and not seen.stale and t.topics() == {}


def test_each_indicator_set_is_its_own_topic_with_its_own_seq() -> None:
    t = SeqTracker()
    fast: dict[str, Any] = {"indicators": ["ema:9", "rsi:14"]}
    assert topic_of(ack(interval="5m", **fast)) == "RELIANCE@5m[ema:9,rsi:14]"
    assert topic_of(data(1, interval="5m", data=fast)) == "RELIANCE@5m[ema:9,rsi:14]"
    for seq in (1, 2, 3):
        assert t.observe(data(seq, interval="5m")).gap is None
    # The set's numbering starts on its own: seq 1 after the default topic's 3 is no gap.
    assert t.observe(data(1, interval="5m", data=fast)).gap is None
    seen = t.observe(data(4, interval="5m", data=fast))
    assert seen.gap == Gap(
        "RELIANCE@5m[ema:9,rsi:14]",
        "RELIANCE",
        "5m",
        "skipped",
        "e1",
        1,
        4,
        2,
        ("ema:9", "rsi:14"),
    )
    assert t.position("RELIANCE@5m") == ("e1", 3)
    assert t.position("RELIANCE@5m[ema:9,rsi:14]") == ("e1", 4)
    gap = t.refused(ack(interval="5m", recovered=False, **fast))
    assert gap is not None and gap.topic == "RELIANCE@5m[ema:9,rsi:14]" and gap.last == 4


def test_forgetting_an_interval_forgets_its_sets_too() -> None:
    t = SeqTracker()
    t.observe(data(1, interval="5m"))
    t.observe(data(1, interval="5m", data={"indicators": ["ema:9"]}))
    t.observe(data(1, interval="15m", data={"indicators": ["ema:9"]}))
    t.forget("RELIANCE", "5m")
    assert list(t.topics()) == ["RELIANCE@15m[ema:9]"]
