"""The closing handshake and the frame rules of RFC 6455, over a raw socket.

In the style of Autobahn|Testsuite sections 5-7: each test sends exact frames
(tests/e2e/clients/raw.py) and checks the server's close frame, and that the server then closes the
TCP connection itself, soon, with EOF rather than a reset (§7.1.1; issue 12 items 1-3 and 10).
Close codes follow §7.4 and the IANA "WebSocket Close Code Number" registry: 1012-1014 are
registered (service restart, try again later, bad gateway) and valid (1014 is echoed or refused:
see its test); 1004 is reserved; 1005, 1006 and 1015 must never be sent in a close frame (§7.4.1);
1016-2999 are reserved for future standards; 0-999 and from 5000 up are not close codes; 3000-4999
are registered or private and valid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.clients.raw import (
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    Frame,
    RawWebSocket,
    frame,
    http_exchange,
    port_of,
    upgrade_request,
)
from tickhub.app.roles import SingleService

PING_MESSAGE = json.dumps({"type": "ping", "timestamp": 7}).encode()
ALLOWED = "http://allowed.example:3000"  # tests/conftest.py's CORS_ORIGINS

VALID_CODES = [
    pytest.param(1000, id="1000_normal"),
    pytest.param(1001, id="1001_going_away"),
    pytest.param(1002, id="1002_protocol_error"),
    pytest.param(1003, id="1003_unsupported_data"),
    pytest.param(1007, id="1007_invalid_payload"),
    pytest.param(1008, id="1008_policy_violation"),
    pytest.param(1009, id="1009_message_too_big"),
    pytest.param(1010, id="1010_mandatory_extension"),
    pytest.param(1011, id="1011_internal_error"),
    pytest.param(1012, id="1012_service_restart_iana"),
    pytest.param(1013, id="1013_try_again_later_iana"),
    pytest.param(3000, id="3000_registered_first"),
    pytest.param(3999, id="3999_registered_last"),
    pytest.param(4000, id="4000_private_first"),
    pytest.param(4999, id="4999_private_last"),
]
INVALID_CODES = [
    pytest.param(0, id="0_not_a_close_code"),
    pytest.param(999, id="999_not_a_close_code"),
    pytest.param(1004, id="1004_reserved"),
    pytest.param(1005, id="1005_no_status_never_sent"),
    pytest.param(1006, id="1006_abnormal_never_sent"),
    pytest.param(1015, id="1015_tls_never_sent"),
    pytest.param(1016, id="1016_unassigned"),
    pytest.param(1100, id="1100_unassigned"),
    pytest.param(2000, id="2000_reserved_extensions"),
    pytest.param(2999, id="2999_reserved_extensions"),
    pytest.param(5000, id="5000_out_of_range"),
    pytest.param(65535, id="65535_out_of_range"),
]


_opened: list[RawWebSocket] = []


@pytest.fixture(autouse=True)
def _drop_connections(service_factory: Any) -> Iterator[None]:
    """Drops what a test left open before the service stops (else it waits CLOSE_TIMEOUT for a
    client that will never answer its 1001)."""
    yield
    while _opened:
        _opened.pop().writer.transport.abort()


async def opened(
    service: SingleService, headers: list[tuple[str, str]] | None = None
) -> RawWebSocket:
    ws = await RawWebSocket.open(port_of(service), headers=headers)
    _opened.append(ws)
    return ws


# --- §5.5.1, §7.1.5: the client closes -----------------------------------------------------------


async def test_close_empty_payload_answered_with_empty_close_or_1000(
    service: SingleService,
) -> None:
    """The seed's React hook and browsers' ``close()`` send no status code (issue 12 item 1)."""
    ws = await opened(service)
    ws.send_close(None)
    await ws.answered_with(None, 1000)


async def test_close_1_byte_payload_answered_1002(service: SingleService) -> None:
    ws = await opened(service)
    ws.send(frame(CLOSE, b"\x03"))
    await ws.answered_with(1002)


async def test_close_code_with_reason_answered_with_the_code(service: SingleService) -> None:
    ws = await opened(service)
    ws.send_close(1000, b"Hello World!")
    await ws.answered_with(1000)


async def test_close_reason_of_123_bytes_fits_a_control_frame(service: SingleService) -> None:
    ws = await opened(service)
    ws.send_close(1000, b"*" * 123)  # 2 + 123 = 125, the control frame maximum (§5.5)
    await ws.answered_with(1000)


async def test_close_reason_of_124_bytes_control_frame_too_long_answered_1002(
    service: SingleService,
) -> None:
    ws = await opened(service)
    ws.send_close(1000, b"*" * 124)
    await ws.answered_with(1002)


@pytest.mark.parametrize("code", VALID_CODES)
async def test_close_code_from_client_valid_echoed(service: SingleService, code: int) -> None:
    ws = await opened(service)
    ws.send_close(code)
    await ws.answered_with(code)


async def test_close_code_1014_registered_later_is_echoed_or_refused_1002(
    service: SingleService,
) -> None:
    """1014 (Bad Gateway) entered the IANA registry after RFC 6455 and wsproto's code table;
    a gateway sending it is either echoed or refused with 1002, and the TCP close is clean."""
    ws = await opened(service)
    ws.send_close(1014)
    await ws.answered_with(1014, 1002)


@pytest.mark.parametrize("code", INVALID_CODES)
async def test_close_code_from_client_invalid_answered_1002(
    service: SingleService, code: int
) -> None:
    """§7.4: not a code a peer may send; issue 12 item 2 (0, 1006, 5000 and 65535 were echoed)."""
    ws = await opened(service)
    ws.send_close(code)
    await ws.answered_with(1002)


async def test_close_reason_not_utf8_answered_1007(service: SingleService) -> None:
    """§5.5.1: the reason is UTF-8; §8.1: invalid UTF-8 fails the connection with 1007."""
    ws = await opened(service)
    ws.send_close(1000, b"bad \xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80 surrogate")
    await ws.answered_with(1007)


async def test_close_after_close_answered_once(service: SingleService) -> None:
    """Autobahn 7.1.2: a second close frame gets no second answer."""
    ws = await opened(service)
    ws.send(frame(CLOSE, (1000).to_bytes(2, "big")) * 2)
    await ws.answered_with(1000)


async def test_data_after_close_ignored(service: SingleService) -> None:
    """§5.5.1: after a close frame the peer sends no more data; what comes is not processed
    (no pong message, no pong frame), and nothing follows the server's close (Autobahn 7.1.3-4)."""
    ws = await opened(service)
    ws.send(frame(CLOSE, (1000).to_bytes(2, "big")) + frame(TEXT, PING_MESSAGE) + frame(PING))
    _, before = await ws.answered_with(1000)
    assert before == [], before


async def test_close_between_fragments_ignores_the_rest_of_the_message(
    service: SingleService,
) -> None:
    """Autobahn 7.1.5: a close in the middle of a fragmented message ends the connection there."""
    ws = await opened(service)
    ws.send(
        frame(TEXT, PING_MESSAGE[:5], fin=False)
        + frame(CLOSE, (1000).to_bytes(2, "big"))
        + frame(CONT, PING_MESSAGE[5:])
    )
    _, before = await ws.answered_with(1000)
    assert before == [], before


# --- §5: frames the server must refuse (issue 12 item 10) ----------------------------------------


def pongs(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.opcode == TEXT and b'"type":"pong"' in f.payload]


@pytest.mark.parametrize(
    "rsv", [pytest.param(4, id="rsv1"), pytest.param(2, id="rsv2"), pytest.param(1, id="rsv3")]
)
async def test_rsv_bit_without_negotiated_extension_closes_1002(
    service: SingleService, rsv: int
) -> None:
    """§5.2: a nonzero RSV bit with no extension negotiated fails the connection; the frame is
    not processed (no pong)."""
    ws = await opened(service)
    ws.send(frame(TEXT, PING_MESSAGE, rsv=rsv))
    _, before = await ws.closed_by_server(1002)
    assert pongs(before) == [], before


async def test_text_frame_with_invalid_utf8_closes_1007(service: SingleService) -> None:
    """§8.1: a text message that is not UTF-8 fails the connection with 1007 (not an
    ``invalid_json`` error)."""
    ws = await opened(service)
    ws.send(frame(TEXT, b'{"type":"ping","timestamp":"\xff\xfe"}'))
    await ws.closed_by_server(1007)


async def test_text_fragments_splitting_a_utf8_character_are_one_valid_message(
    service: SingleService,
) -> None:
    """§5.4, §8.1: UTF-8 is checked on the whole message, so a character may span fragments."""
    ws = await opened(service)
    message = json.dumps({"type": "ping", "timestamp": "é"}, ensure_ascii=False).encode()
    cut = message.index(b"\xc3") + 1  # between the two bytes of é
    ws.send(frame(TEXT, message[:cut], fin=False) + frame(CONT, message[cut:]))
    reply = await ws.recv()
    assert reply.opcode == TEXT and json.loads(reply.payload)["client_timestamp"] == "é", reply


async def test_continuation_frame_with_no_message_started_closes_1002(
    service: SingleService,
) -> None:
    """§5.4: a continuation frame continues a fragmented message; without one it is an error."""
    ws = await opened(service)
    ws.send(frame(CONT, PING_MESSAGE))
    await ws.closed_by_server(1002)


async def test_new_text_frame_while_fragmented_message_pending_closes_1002(
    service: SingleService,
) -> None:
    """§5.4: the fragments of one message are not interleaved with another data frame."""
    ws = await opened(service)
    ws.send(frame(TEXT, PING_MESSAGE[:5], fin=False) + frame(TEXT, PING_MESSAGE))
    await ws.closed_by_server(1002)


async def test_fragmented_control_frame_closes_1002(service: SingleService) -> None:
    """§5.5: control frames must not be fragmented."""
    ws = await opened(service)
    ws.send(frame(PING, b"abc", fin=False))
    await ws.closed_by_server(1002)


async def test_control_frame_payload_over_125_bytes_closes_1002(service: SingleService) -> None:
    """§5.5: control frames carry at most 125 bytes."""
    ws = await opened(service)
    ws.send(frame(PING, b"x" * 126))
    await ws.closed_by_server(1002)


async def test_unmasked_client_frame_closes_1002(service: SingleService) -> None:
    """§5.1: a server must close the connection on an unmasked client frame."""
    ws = await opened(service)
    ws.send(frame(TEXT, PING_MESSAGE, mask=False))
    await ws.closed_by_server(1002)


@pytest.mark.parametrize("opcode", [0x3, 0x7, 0xB, 0xF], ids=lambda op: f"opcode_{op:#x}")
async def test_reserved_opcode_closes_1002(service: SingleService, opcode: int) -> None:
    """§5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved; receiving one fails the connection."""
    ws = await opened(service)
    ws.send(frame(opcode, b"x"))
    await ws.closed_by_server(1002)


async def test_ping_frame_answered_with_pong_of_same_payload(service: SingleService) -> None:
    """§5.5.2-3, the control case for the ones above."""
    ws = await opened(service)
    ws.send(frame(PING, b"are you there"))
    reply = await ws.recv()
    assert (reply.opcode, reply.payload) == (PONG, b"are you there")


# --- server-initiated closes while the client is still sending (issue 12 item 3) -----------------


async def test_rate_limit_close_while_client_sends_arrives_as_4003_not_reset(
    service_factory: Any,
) -> None:
    svc = await service_factory(message_rate=5, message_burst=10)
    ws = await opened(svc)
    ws.send(frame(TEXT, PING_MESSAGE) * 5000)
    close, _ = await ws.closed_by_server(4003)
    assert close.reason.startswith(b"rate limit exceeded repeatedly"), close


async def test_oversized_frame_close_1009_arrives_not_reset(service_factory: Any) -> None:
    """One frame over max(16 x MAX_MESSAGE_BYTES, 1 MiB) closes with 1009 (docs/protocol.md
    §12); the rest of that frame is still on its way when the server closes."""
    svc = await service_factory(max_message_bytes=256)
    ws = await opened(svc)
    ws.send(frame(TEXT, b" " * (4 * 1024 * 1024)))
    await ws.closed_by_server(1009)


# --- §4: the opening handshake -------------------------------------------------------------------


async def test_websocket_version_8_answered_426_with_version_13(service: SingleService) -> None:
    """§4.4: an unsupported version gets 426 Upgrade Required naming the supported one."""
    request = upgrade_request(
        port_of(service),
        "/ws/stream",
        b"dGhlIHNhbXBsZSBub25jZQ==",
        [("Sec-WebSocket-Version", "8")],
    )
    answer = await http_exchange(port_of(service), request)
    assert answer.status == 426, answer
    assert answer.header("Sec-WebSocket-Version") == "13", answer.headers


@pytest.mark.parametrize(
    "origins",
    [
        pytest.param([ALLOWED, "http://evil.example"], id="allowed_first"),
        pytest.param(["http://evil.example", ALLOWED], id="allowed_second"),
        pytest.param([ALLOWED, ALLOWED], id="same_twice"),
    ],
)
async def test_several_origin_headers_refuse_the_handshake(
    service: SingleService, origins: list[str]
) -> None:
    """RFC 6454 §7.3: a user agent sends at most one Origin; several cannot be checked (issue 12
    item 11: only the first was)."""
    headers = [("Origin", origin) for origin in origins]
    request = upgrade_request(port_of(service), "/ws/stream", b"dGhlIHNhbXBsZSBub25jZQ==", headers)
    answer = await http_exchange(port_of(service), request)
    assert 400 <= answer.status < 500, answer


async def test_single_allowed_origin_is_upgraded(service: SingleService) -> None:
    """The control case for the test above."""
    ws = await opened(service, headers=[("Origin", ALLOWED)])
    ws.send_close(1000)
    await ws.answered_with(1000)
