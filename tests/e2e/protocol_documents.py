"""The protocol documents as the schema tests use them: loaded from the installed package, with a
JSON Schema validator for each message kind of each AsyncAPI channel and for each OpenAPI
response, references between the two documents resolved."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tickhub.server.specs import read_document

BASE = "https://tickhub.invalid/"
"""Where the documents are taken to live, so that ``asyncapi.yaml#/...`` in openapi.yaml resolves
as it does when a client fetches both from a running service."""

Msg = dict[str, Any]


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(read_document(name))
    return doc


ASYNCAPI = load("asyncapi.yaml")
OPENAPI = load("openapi.yaml")
REGISTRY: Registry[Any] = Registry().with_resources(
    (BASE + name, Resource.from_contents(doc, default_specification=DRAFT202012))
    for name, doc in (("asyncapi.yaml", ASYNCAPI), ("openapi.yaml", OPENAPI))
)


def validator(document: str, pointer: str) -> Draft202012Validator:
    """A validator for the schema at ``pointer`` (``/components/...``) of ``document``."""
    return Draft202012Validator(
        {"$ref": f"{BASE}{document}#{pointer}"},
        registry=REGISTRY,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def kind_of(msg: Msg) -> str:
    """The AsyncAPI message name of a server message: its ``type``, or for ``data`` its
    ``data_type`` (an alert firing is ``alert_triggered``); ``heartbeat`` and ``auth`` replies
    are ``heartbeat_ack`` and ``auth_reply``, as their client requests have the plain names."""
    kind = str(msg.get("type"))
    if kind == "data":
        return "alert_triggered" if msg.get("event") == "triggered" else str(msg.get("data_type"))
    return {"heartbeat": "heartbeat_ack", "auth": "auth_reply"}.get(kind, kind)


def channel_of(path: str) -> str:
    for name, channel in ASYNCAPI["channels"].items():
        if channel["address"] == path:
            return str(name)
    raise AssertionError(f"no channel for {path}")


def operation_messages(channel: str, action: str) -> set[str]:
    """The names of the messages the server ``send``s or ``receive``s on a channel."""
    names: set[str] = set()
    for op in ASYNCAPI["operations"].values():
        if op["channel"]["$ref"] == f"#/channels/{channel}" and op["action"] == action:
            names.update(ref["$ref"].rsplit("/", 1)[1] for ref in op["messages"])
    return names


def message_validator(channel: str, name: str) -> Draft202012Validator:
    ref = ASYNCAPI["channels"][channel]["messages"][name]["$ref"]
    return validator("asyncapi.yaml", ref.removeprefix("#") + "/payload")


def problems(v: Draft202012Validator, instance: Any) -> list[str]:
    return [_describe(e) for e in v.iter_errors(instance)]


def _describe(error: ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    causes = "; ".join(_describe(c) for c in (error.context or [])[:3])
    return f"{where}: {error.message}" + (f" [{causes}]" if causes else "")


@dataclass
class Conformance:
    """Every message seen on every endpoint, checked against the AsyncAPI document."""

    received: dict[str, dict[str, int]] = field(default_factory=dict)
    """channel -> server message kind -> times seen (batches unpacked, their messages too)."""
    sent: dict[str, set[str]] = field(default_factory=dict)
    """channel -> client message kinds sent (and valid by the document)."""
    error_codes: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    _validators: dict[tuple[str, str], Draft202012Validator] = field(default_factory=dict)

    def _validator(self, channel: str, name: str) -> Draft202012Validator | None:
        key = (channel, name)
        if key not in self._validators:
            if name not in ASYNCAPI["channels"][channel]["messages"]:
                return None
            self._validators[key] = message_validator(channel, name)
        return self._validators[key]

    def check_received(self, path: str, messages: Iterable[Msg]) -> None:
        channel = channel_of(path)
        for msg in messages:
            self._check_one(channel, msg)
            if msg.get("type") == "batch":
                for inner in msg.get("messages", []):
                    self._check_one(channel, inner)

    def _check_one(self, channel: str, msg: Msg) -> None:
        name = kind_of(msg)
        allowed = operation_messages(channel, "send")
        v = self._validator(channel, name)
        if name not in allowed or v is None:
            self.failures.append(f"{channel}: undocumented message kind {name!r}: {msg}")
            return
        found = problems(v, msg)
        if found:
            self.failures.append(f"{channel} {name}: {found} in {msg}")
        self.received.setdefault(channel, {}).setdefault(name, 0)
        self.received[channel][name] += 1
        if name == "error":
            self.error_codes.add(str(msg.get("code")))

    def check_sent(self, path: str, msg: Msg) -> None:
        channel = channel_of(path)
        name = str(msg.get("type"))
        v = self._validator(channel, name)
        if name not in operation_messages(channel, "receive") or v is None:
            self.failures.append(f"{channel}: a client message not in the document: {msg}")
            return
        found = problems(v, msg)
        if found:
            self.failures.append(f"{channel} client {name}: {found} in {msg}")
        self.sent.setdefault(channel, set()).add(name)
