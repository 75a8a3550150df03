"""What the bus's answer to a resume means, and the awaiting table the fan-out reads."""

from __future__ import annotations

from datetime import UTC, datetime

from tickhub.bus import BusMessage
from tickhub.bus.memory import MemoryBus
from tickhub.core.commands import ResumePoint
from tickhub.core.topics import Endpoint
from tickhub.fanout.recovery import Awaiting, Missed, Uncovered, catchup_nowait
from tickhub.fanout.session import Session


class _Answers(MemoryBus):
    """A bus whose ``recover_nowait`` says what it is told to."""

    def __init__(self, answer: list[bytes] | bool | None) -> None:
        super().__init__()
        self.answer = answer

    def recover_nowait(self, topic: str, epoch: str, seq: int) -> list[bytes] | bool | None:
        return self.answer


class _Peer:
    def send(self, payload: bytes) -> None: ...
    def send_frame(self, frame: bytes) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def ping(self) -> None: ...


def _session(sid: str) -> Session:
    return Session(sid, Endpoint.STREAM, "127.0.0.1:1", _Peer(), datetime(2025, 1, 1, tzinfo=UTC))


def test_catchup_tells_covered_gone_and_pending_apart() -> None:
    since = ResumePoint("e1", 4)
    assert catchup_nowait(_Answers([b"a", b"b"]), "t", since) == Missed([b"a", b"b"])
    assert catchup_nowait(_Answers([]), "t", since) == Missed([])
    assert catchup_nowait(_Answers(None), "t", since) is Uncovered.GONE
    assert catchup_nowait(_Answers(False), "t", since) is Uncovered.PENDING


def test_awaiting_holds_per_client_and_forgets_empty_topics() -> None:
    awaiting = Awaiting()
    a, b = _session("a"), _session("b")
    awaiting.hold(a, "t")
    awaiting.hold(b, "t")
    message = BusMessage("t", b"{}")
    awaiting.by_topic["t"][a].append(message)
    assert awaiting.release(a, "t") == [message]
    assert awaiting.release(a, "t") == []
    assert "t" in awaiting.by_topic
    awaiting.forget(b, "t")
    assert awaiting.by_topic == {}
