"""The publish script's arguments: what each kind of message asks of Redis (no Redis needed).

``tests/test_bus_redis.py`` checks what the script then does in Redis; these pin the layout of
``KEYS``/``ARGV`` that ``script.lua`` documents in its header.
"""

from __future__ import annotations

import struct
from importlib import resources

import pytest

from tickhub.bus import BusMessage
from tickhub.bus.redis import encode_envelope
from tickhub.bus.redis.keys import Keys
from tickhub.bus.redis.script import SOURCE, HistoryOp, RetainedOp, arguments

KEYS = Keys("p")
R, S, H = "p:r:t", "p:s:t", "p:h:t"


@pytest.mark.parametrize(
    ("message", "op", "hop", "keys"),
    [
        (BusMessage("t", b"x"), RetainedOp.NONE, HistoryOp.NONE, ()),
        (BusMessage("t", b"x", "tick", "tick"), RetainedOp.SET, HistoryOp.NONE, (R,)),
        (
            BusMessage("t", b"", None, "position:A", deliver=False, drop=True),
            RetainedOp.DROP,
            HistoryOp.FORGET_STATE,
            (R, S),
        ),
        (
            BusMessage("t", b"x", "tick", seq=3, epoch="e"),
            RetainedOp.NONE,
            HistoryOp.RECORD,
            (S, H),
        ),
        (
            BusMessage("t", b"x", "tick", "tick", seq=3, epoch="e"),
            RetainedOp.SET,
            HistoryOp.RECORD_STATE,
            (R, S, H),
        ),
        (
            BusMessage("t", b"x", None, seq=3, epoch="e"),
            RetainedOp.NONE,
            HistoryOp.RECORD_ENTRY,
            (S, H),
        ),
        (
            BusMessage("t", b"x", "candle:1", "candle", seq=3, epoch="e"),
            RetainedOp.SET,
            HistoryOp.RECORD_STATE_AND_ENTRY,
            (R, S, H),
        ),
        (  # a snapshot-only copy was never sent live: nothing to recover from it
            BusMessage("t", b"x", "candle:1", "candle", deliver=False, seq=3, epoch="e"),
            RetainedOp.SET,
            HistoryOp.RECORD,
            (R, S, H),
        ),
    ],
)
def test_arguments_follow_the_layout_the_script_documents(
    message: BusMessage, op: RetainedOp, hop: HistoryOp, keys: tuple[str, ...]
) -> None:
    found = arguments(KEYS, message)
    assert found is not None
    key_list, argv = found
    assert key_list == keys
    assert len(argv) == 10
    assert (argv[0], argv[1], argv[4], argv[6]) == (op.value, b"p:t:t", message.payload, hop)
    head, field = argv[2], argv[3]
    assert isinstance(head, bytes) and isinstance(field, bytes)
    if message.retain is None:
        assert (field, argv[5]) == (b"", "")
        assert head + message.payload == encode_envelope(message)
    else:
        assert argv[5] == message.retain
        version = struct.pack(">Q", 77)
        assert head + version + field + message.payload == encode_envelope(message, 77)
    numbered = (message.epoch, "3", "2") if message.seq else ("", "", "")
    assert argv[7:] == numbered


def test_a_message_neither_retained_nor_delivered_asks_nothing() -> None:
    assert arguments(KEYS, BusMessage("t", b"x", deliver=False)) is None


def test_the_script_ships_with_the_package_and_documents_every_operation() -> None:
    assert resources.files("tickhub.bus.redis").joinpath("script.lua").is_file()
    header = SOURCE[: SOURCE.index("\nlocal ")]
    for op in RetainedOp:
        assert f"'{op.value}'" in header
    assert f"'{HistoryOp.FORGET_STATE.value}'" in header
