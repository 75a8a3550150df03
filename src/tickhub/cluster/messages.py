"""What crosses the bus between the ingest and its gateways: topic names and message shapes.

``tickhub ingest`` runs the feed and the engines once; each ``tickhub gateway`` serves clients.
Besides the data topics, four kinds of internal messages travel on the same bus (topic names
start with ``_``, which no client topic does):

- ``_cmd`` / ``_reply:<gateway>``: a client's alert or position request, executed by the ingest
  (which owns the store and the engines), and the replies carried back to that client;
- ``_demand``: which topics a gateway's clients want (changes at once, and the full set every
  ``DEMAND_REFRESH`` seconds so a gateway that died is forgotten after ``DEMAND_EXPIRY``), so the
  ingest streams upstream only what is used and publishes per-user alerts and portfolios;
  ``_demand?``: a starting ingest asks every gateway for its full set at once;
- ``_ready:<gateway>``: the ingest's answer to a topic becoming wanted, published after the
  topic's current state, so a gateway's first subscriber waits for that state (at most
  ``READY_TIMEOUT`` seconds) and gets the snapshot a single process gives;
- ``_ingest``: the ingest's heartbeat; a gateway that stops hearing it tells its clients the
  feed is ``stale`` and says so in ``/health``, and recovers when the heartbeat returns. A new
  ingest that hears one from another live ingest on the same bus refuses to start.

All of it is plain JSON on the ``Bus`` interface, so the memory bus runs the same code in one
process (which is how most of it is tested) and Redis runs it across machines. The shapes are
written here once, as ``TypedDict`` s, and built only by the functions below, so both sides agree
on them; what comes off the bus is untrusted and each reader checks what it uses (``decode``
gives it back as parsed, without checking). The periods and timeouts are in
``tickhub.core.defaults``; ``gateway`` and ``ingest`` hold the two sides.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from typing import Any, Final, NotRequired, TypedDict

import orjson

from tickhub.bus import BusMessage

CMD_TOPIC: Final = "_cmd"
DEMAND_TOPIC: Final = "_demand"
DEMAND_QUERY_TOPIC: Final = "_demand?"
INGEST_TOPIC: Final = "_ingest"
READY_PREFIX: Final = "_ready:"
REPLY_PREFIX: Final = "_reply:"


class Command(TypedDict):
    """``_cmd``: request ``id`` of ``gateway`` (its own numbering), from ``user``'s session."""

    id: int
    gateway: str
    user: str
    kind: str
    msg: dict[str, Any]


class Reply(TypedDict):
    """``_reply:<gateway>``: the messages the request ``id`` answers its client with, encoded."""

    id: object
    replies: list[str]


class DemandChange(TypedDict):
    """``_demand``: ``topic`` became wanted (``id`` numbers the demand) or unwanted here."""

    gateway: str
    topic: str
    wanted: bool
    id: NotRequired[int]


class DemandSet(TypedDict):
    """``_demand``: every topic ``gateway`` wants, replacing what it said before."""

    gateway: str
    topics: list[str]


class Ready(TypedDict):
    """``_ready:<gateway>``: the state of ``topic`` is published, answering demand ``id``."""

    topic: str
    id: object


class Heartbeat(TypedDict):
    """``_ingest``: the ingest is alive at ``ts`` (ISO 8601) and its feed is in state ``feed``."""

    ts: str
    feed: str
    pid: int
    host: str


def new_gateway_id() -> str:
    """A name for this gateway process, unique on the bus (its reply and ready topics)."""
    return f"gw-{os.getpid():x}-{secrets.token_hex(3)}"


def reply_topic(gateway: str) -> str:
    """Where the ingest answers the requests of ``gateway``."""
    return REPLY_PREFIX + gateway


def ready_topic(gateway: str) -> str:
    """Where the ingest tells ``gateway`` that a topic it wants has its state published."""
    return READY_PREFIX + gateway


def decode(payload: bytes) -> Any:
    """A message's JSON as parsed, unchecked; raises ``orjson.JSONDecodeError`` (a
    ``ValueError``) for a payload that is not JSON."""
    return orjson.loads(payload)


def command(rid: int, gateway: str, user: str, kind: str, msg: dict[str, Any]) -> BusMessage:
    """A gateway's request ``kind`` with the client's message ``msg``, for the ingest."""
    body: Command = {"id": rid, "gateway": gateway, "user": user, "kind": kind, "msg": msg}
    return BusMessage(CMD_TOPIC, orjson.dumps(body))


def reply(gateway: str, rid: object, replies: list[str]) -> BusMessage:
    """The ingest's answer to request ``rid``: what ``gateway`` sends its client, in order."""
    body: Reply = {"id": rid, "replies": replies}
    return BusMessage(reply_topic(gateway), orjson.dumps(body))


def demand_change(gateway: str, topic: str, wanted: bool, rid: int | None = None) -> BusMessage:
    """``topic`` became wanted (``rid``: answer me on my ready topic) or unwanted here."""
    body: DemandChange = {"gateway": gateway, "topic": topic, "wanted": wanted}
    if rid is not None:
        body["id"] = rid
    return BusMessage(DEMAND_TOPIC, orjson.dumps(body))


def demand_set(gateway: str, topics: Iterable[str]) -> BusMessage:
    """Every topic ``gateway`` wants (sorted), replacing what the ingest knew of it."""
    body: DemandSet = {"gateway": gateway, "topics": sorted(topics)}
    return BusMessage(DEMAND_TOPIC, orjson.dumps(body))


def demand_query() -> BusMessage:
    """A starting ingest's question: every gateway answers with its ``demand_set``."""
    return BusMessage(DEMAND_QUERY_TOPIC, b"{}")


def ready(gateway: str, topic: str, rid: object) -> BusMessage:
    """The ingest's answer to demand ``rid``: ``topic``'s state is on the bus before this."""
    body: Ready = {"topic": topic, "id": rid}
    return BusMessage(ready_topic(gateway), orjson.dumps(body))


def heartbeat(ts: str, feed: str, pid: int, host: str) -> BusMessage:
    """The ingest is alive; retained, so that a new listener learns of the last one at once."""
    body: Heartbeat = {"ts": ts, "feed": feed, "pid": pid, "host": host}
    return BusMessage(INGEST_TOPIC, orjson.dumps(body), retain="heartbeat")
