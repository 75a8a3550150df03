"""The only package that imports the WebSocket/HTTP library (picows).

picows was chosen by measurement: on this machine, 1,000 clients and a ~200-byte message, it
delivered ~370-395k sends per server CPU-second against ~275k for aiohttp and ~225k for
``websockets.broadcast`` (figures in the README and bench/). Swapping the library means rewriting
this package only: the hub sees a :class:`tickhub.hub.Peer`.
"""

from tickhub.server.ws import HttpRequest, HttpResponse, Routes, WebSocketServer, text_frame

__all__ = ["HttpRequest", "HttpResponse", "Routes", "WebSocketServer", "text_frame"]
