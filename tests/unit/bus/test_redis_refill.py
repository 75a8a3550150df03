"""What a Redis subscription hands its handlers after a lost connection (``Subscription.refill``):
the kept messages published while it was down, read from the topic's history in Redis, merged
with the live messages held until then, in ``seq`` order, each once."""

from __future__ import annotations

from tickhub.bus import BusMessage
from tickhub.bus.history import TopicHistory
from tickhub.bus.redis.subscription import Subscription

TOPIC = "stream:RELIANCE:1m"


def msg(seq: int, slot: str | None = "tick", epoch: str = "e1") -> BusMessage:
    payload = b'{"seq":%d,"epoch":"%s"}' % (seq, epoch.encode())
    return BusMessage(TOPIC, payload, slot, seq=seq, epoch=epoch)


def lost_at(seq: int) -> Subscription:
    """A subscription that received up to ``seq`` live, then lost its connection, and whose
    subscription was confirmed again (live messages are held from then on)."""
    sub = Subscription(TopicHistory())
    sub.received(msg(seq), 0)
    sub.lost(TopicHistory())
    sub.start_sync()
    return sub


def seqs(messages: list[BusMessage]) -> list[int]:
    return [m.seq for m in messages]


def test_the_missed_closes_come_before_the_held_live_messages_each_once() -> None:
    sub = lost_at(10)
    assert sub.filling == []
    assert sub.filling is not None
    sub.filling += [msg(14), msg(15, "candle:09:16")]
    stored = [msg(9, "candle:09:14"), msg(12, "candle:09:15"), msg(15, "candle:09:16")]
    out = sub.refill(stored)
    assert seqs(out) == [12, 14, 15]  # 9 came before the loss; 15 is live and stored: once
    assert sub.filling is None and sub.resume_after is None
    assert sub.fence == ("e1", 15)


def test_another_run_meanwhile_comes_after_the_old_runs_messages() -> None:
    sub = lost_at(10)
    assert sub.filling is not None
    sub.filling += [msg(1, epoch="e2"), msg(2, epoch="e2")]
    out = sub.refill([msg(11, "candle:09:15")])
    assert [(m.epoch, m.seq) for m in out] == [("e1", 11), ("e2", 1), ("e2", 2)]


def test_a_second_loss_before_the_refill_reaches_back_to_the_first() -> None:
    sub = lost_at(10)
    assert sub.filling is not None
    sub.filling.append(msg(13))  # held, never delivered
    sub.lost(TopicHistory())
    assert sub.filling is None and sub.resume_after == ("e1", 10)
    sub.start_sync()
    out = sub.refill([msg(11, "candle:09:15"), msg(13, None)])
    assert seqs(out) == [11, 13]


def test_a_topic_that_had_only_its_snapshot_resumes_from_the_snapshot() -> None:
    sub = Subscription(TopicHistory())
    sub.start_sync()
    sub.synced_at({b"tick": b"\x00" * 8 + b'{"seq":7,"epoch":"e1"}', b"x": b"\x00" * 8 + b"?"}, 0)
    sub.lost(TopicHistory())
    assert sub.resume_after == ("e1", 7)


def test_a_first_subscription_is_not_refilled() -> None:
    sub = Subscription(TopicHistory())
    sub.start_sync()
    assert sub.filling is None


# A producer whose write was cut off by the outage sends it again: messages delivered before the
# loss come once more (held, or live after the refill). They must not reach handlers twice.


def test_a_write_sent_again_and_held_is_not_delivered_twice() -> None:
    sub = lost_at(7)
    assert sub.filling is not None
    sub.filling += [msg(5), msg(6, "candle:09:16"), msg(7), msg(8)]
    assert seqs(sub.refill([msg(6, "candle:09:16")])) == [8]
    assert sub.fence == ("e1", 8)


def test_a_write_sent_again_after_an_empty_refill_is_a_repeat() -> None:
    sub = lost_at(7)
    assert sub.refill([]) == []  # a Redis that restarted empty, nothing held yet
    assert [sub.fresh(m) for m in (msg(5), msg(6), msg(7), msg(8))] == [False, False, False, True]


def test_live_repeats_are_dropped_and_a_new_run_starts_afresh() -> None:
    sub = Subscription(TopicHistory())
    live = [msg(1), msg(2), msg(1), msg(2), msg(3), msg(1, epoch="e2"), msg(1, epoch="e2")]
    live += [msg(2, epoch="e2")]
    assert [(m.epoch, m.seq) for m in live if sub.fresh(m)] == [
        ("e1", 1),
        ("e1", 2),
        ("e1", 3),
        ("e2", 1),
        ("e2", 2),
    ]
    unnumbered = BusMessage(TOPIC, b"{}", None)
    assert sub.fresh(unnumbered) and sub.fresh(unnumbered)


def test_a_second_loss_after_a_refill_does_not_deliver_the_refilled_messages_again() -> None:
    sub = lost_at(10)
    assert seqs(sub.refill([msg(12, "candle:09:15")])) == [12]
    # The history of the new connection saw only what came live: less than was delivered.
    sub.received(msg(11), 0)
    sub.lost(TopicHistory())
    assert sub.resume_after == ("e1", 11)
    sub.start_sync()
    assert seqs(sub.refill([msg(12, "candle:09:15"), msg(13, "candle:09:16")])) == [13]
