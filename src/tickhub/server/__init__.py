"""The only package that speaks HTTP and WebSocket: the rest of tickhub sees a
:class:`tickhub.fanout.Peer` per client and plain route functions.

The protocols are parsed by sans-I/O libraries made for them, h11 (HTTP/1.1) and wsproto
(RFC 6455), on a plain asyncio protocol; frames to clients are built once per message and written
as bytes to every subscriber (:func:`text_frame`), which is where a fan-out server spends its time.
"""

from tickhub.server.app import WebSocketServer
from tickhub.server.frames import text_frame
from tickhub.server.host import ServerLimits
from tickhub.server.http import HttpRequest, HttpResponse, Routes

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "Routes",
    "ServerLimits",
    "WebSocketServer",
    "text_frame",
]
