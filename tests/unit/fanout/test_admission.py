"""The token bucket both rates share, and what admission makes of it."""

from __future__ import annotations

from tickhub.core import defaults
from tickhub.core.protocol import CloseCode, ErrorCode
from tickhub.fanout.admission import ConnectionAdmission, MessageRate, TokenBucket
from tickhub.fanout.limits import HubLimits


def test_bucket_starts_full_takes_whole_tokens_and_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3, now=10.0)
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(10.25)  # half a token back
    assert bucket.take(10.5)  # a whole one
    assert not bucket.take(10.5)


def test_bucket_never_holds_more_than_its_capacity() -> None:
    bucket = TokenBucket(rate=100.0, capacity=2, now=0.0)
    assert bucket.take(1000.0) and bucket.take(1000.0)
    assert not bucket.take(1000.0)


def test_connect_burst_is_the_rate_times_the_burst_factor() -> None:
    limits = HubLimits(connect_rate_per_ip=3.0)
    admission = ConnectionAdmission(limits)
    burst = int(3.0 * defaults.CONNECT_BURST_FACTOR)
    assert all(admission.admit("10.0.0.1", 5.0) is None for _ in range(burst))
    refusal = admission.admit("10.0.0.1", 5.0)
    assert refusal is not None
    assert refusal.code == CloseCode.RATE_LIMITED
    assert refusal.error.code == ErrorCode.RATE_LIMITED
    assert admission.admit("10.0.0.2", 5.0) is None  # per address


def test_open_connections_per_address_are_counted_until_closed() -> None:
    admission = ConnectionAdmission(HubLimits(max_connections_per_ip=1))
    assert admission.admit("10.0.0.1", 0.0) is None
    admission.opened("10.0.0.1")
    refusal = admission.admit("10.0.0.1", 0.0)
    assert refusal is not None and refusal.code == CloseCode.LIMIT_EXCEEDED
    assert refusal.error.details["current"] == 1
    admission.closed("10.0.0.1")
    assert admission.admit("10.0.0.1", 0.0) is None


def test_message_rate_answers_the_first_refusal_then_counts_the_run() -> None:
    limits = HubLimits(message_rate=1.0, message_burst=2)
    rate = MessageRate.of(limits, 0.0)
    assert rate.check(limits, 0.0).serve and rate.check(limits, 0.0).serve
    first = rate.check(limits, 0.0)
    assert not first.serve and first.error is not None and first.error.details["dropped"] == 1
    silent = rate.check(limits, 0.0)
    assert not silent.serve and silent.error is None and silent.close_reason is None
    served = rate.check(limits, 1.0)
    assert served.serve and served.error is not None and served.error.details["dropped"] == 2


def test_message_rate_closes_past_the_close_factor_of_bursts() -> None:
    limits = HubLimits(message_rate=1.0, message_burst=3)
    rate = MessageRate.of(limits, 0.0)
    verdicts = [rate.check(limits, 0.0) for _ in range(3 + defaults.RATE_CLOSE_FACTOR * 3 + 1)]
    assert [v.close_reason is not None for v in verdicts].index(True) == len(verdicts) - 1
