"""Authentication (API keys, JWT HS256/RS256), per-user data, admin key, secrets kept out."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.helpers import Client, ahttp_get, closed_with, is_type
from tickhub.app.roles import SingleService
from tickhub.core.protocol import CloseCode

SECRET = "test-secret-that-is-long-enough-for-hs256"


async def _connect(svc: SingleService, path: str = "/ws/stream", **kw: Any) -> Client:
    c = await Client.connect(f"ws://127.0.0.1:{svc.port}{path}", **kw)
    assert (await c.recv())["type"] == "connection"
    return c


def _hs256(sub: str, exp_in: float = 300) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time() + exp_in)}, SECRET, algorithm="HS256")


@pytest.fixture
async def secured(service_factory: Any) -> SingleService:
    svc: SingleService = await service_factory(
        api_keys="alice:alice-key,bob:sha256:"
        + __import__("hashlib").sha256(b"bob-key").hexdigest(),
        jwt_secret=SECRET,
        auth_timeout=1.0,
        admin_key="admin-secret",
        demo_portfolio=False,
    )
    return svc


async def test_auth_off_by_default_and_auth_message_says_so(connect: Any) -> None:
    c: Client = await connect()
    await c.recv()
    reply = await c.request({"type": "auth", "token": "anything"}, "auth")
    assert reply["status"] == "not_required"


async def test_unauthenticated_gets_only_welcome_and_errors(secured: SingleService) -> None:
    c = await _connect(secured)
    err = await c.request({"type": "subscribe", "symbol": "RELIANCE"}, "error")
    assert err["code"] == "auth_required"
    assert (await c.request({"type": "ping"}, "pong"))["type"] == "pong"  # still usable
    assert not [m for m in c.seen if m.get("type") == "data"]


async def test_no_auth_within_deadline_closes_with_4502(secured: SingleService) -> None:
    c = await _connect(secured)
    assert await closed_with(c) == CloseCode.AUTH_TIMEOUT


@pytest.mark.parametrize("token", ["alice-key", "bob-key"])
async def test_api_key_in_first_message(secured: SingleService, token: str) -> None:
    c = await _connect(secured)
    reply = await c.request({"type": "auth", "token": token}, "auth")
    assert reply["status"] == "authenticated" and reply["user"] == token.split("-")[0]
    ack = await c.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
    assert ack["status"] == "subscribed"
    await c.close()


async def test_wrong_key_closes_with_4500_and_never_echoes_it(secured: SingleService) -> None:
    c = await _connect(secured)
    err = await c.request({"type": "auth", "token": "stolen-guess"}, "error")
    assert err["code"] == "auth_failed" and "stolen-guess" not in json.dumps(err)
    assert await closed_with(c) == CloseCode.AUTH_FAILED


async def test_token_in_subprotocol_header(secured: SingleService) -> None:
    c = await _connect(secured, subprotocols=["tickhub", f"token.{_hs256('carol')}"])
    assert c.ws.subprotocol == "tickhub"
    auth = await c.wait_for(is_type("auth"))
    assert auth["user"] == "jwt:carol"  # API keys are configured too: JWT users are prefixed
    ack = await c.request({"type": "subscribe", "symbol": "INFY"}, "subscription")
    assert ack["status"] == "subscribed"
    await c.close()


async def test_jwt_expired_is_refused_with_4501(secured: SingleService) -> None:
    c = await _connect(secured)
    err = await c.request({"type": "auth", "token": _hs256("dave", exp_in=-5)}, "error")
    assert err["code"] == "auth_expired"
    assert await closed_with(c) == CloseCode.AUTH_EXPIRED


async def test_connection_closed_when_its_token_expires(secured: SingleService) -> None:
    c = await _connect(secured)
    reply = await c.request({"type": "auth", "token": _hs256("erin", exp_in=2)}, "auth")
    assert reply["expires_at"].endswith("Z")
    assert await closed_with(c) == CloseCode.AUTH_EXPIRED


async def test_jwt_with_bad_signature_is_refused(secured: SingleService) -> None:
    forged = jwt.encode({"sub": "mallory", "exp": int(time.time()) + 60}, "x" * 40, "HS256")
    c = await _connect(secured)
    err = await c.request({"type": "auth", "token": forged}, "error")
    assert err["code"] == "auth_failed"


async def test_rs256_tokens(service_factory: Any, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    svc: SingleService = await service_factory(
        jwt_public_key_file=tmp_path / "pub.pem", jwt_algorithm="RS256"
    )
    token = jwt.encode({"sub": "frank", "exp": int(time.time()) + 60}, key, algorithm="RS256")
    c = await _connect(svc)
    assert (await c.request({"type": "auth", "token": token}, "auth"))["user"] == "frank"
    hs = jwt.encode({"sub": "frank", "exp": int(time.time()) + 60}, "k" * 40, algorithm="HS256")
    d = await _connect(svc)
    assert (await d.request({"type": "auth", "token": hs}, "error"))["code"] == "auth_failed"
    await c.close()


async def test_users_never_see_or_change_each_others_alerts_and_positions(
    secured: SingleService,
) -> None:
    alice = await _connect(secured, "/ws/alerts")
    bob = await _connect(secured, "/ws/alerts")
    await alice.request({"type": "auth", "token": "alice-key"}, "auth")
    await bob.request({"type": "auth", "token": "bob-key"}, "auth")
    created = await alice.request(
        {"type": "create_alert", "symbol": "RELIANCE", "condition": "above", "value": 99999},
        "alert",
    )
    alert_id = created["alert"]["id"]
    assert (await bob.request({"type": "list_alerts"}, "alerts"))["alerts"] == []
    err = await bob.request({"type": "delete_alert", "id": alert_id}, "error")
    assert err["code"] == "not_found"
    await bob.send({"type": "subscribe", "symbol": "RELIANCE"})
    state = await bob.wait_for(lambda m: m.get("data_type") == "alert_data")
    assert alert_id not in {a["id"] for a in state["data"]["price_alerts"]}
    await alice.send({"type": "subscribe", "symbol": "RELIANCE"})
    mine = await alice.wait_for(lambda m: m.get("data_type") == "alert_data")
    assert alert_id in {a["id"] for a in mine["data"]["price_alerts"]}

    pa = await _connect(secured, "/ws/portfolio")
    pb = await _connect(secured, "/ws/portfolio")
    await pa.request({"type": "auth", "token": "alice-key"}, "auth")
    await pb.request({"type": "auth", "token": "bob-key"}, "auth")
    await pa.request(
        {"type": "set_position", "symbol": "TCS", "quantity": 7, "average_price": 3000},
        "position",
    )
    assert (await pb.request({"type": "list_positions"}, "positions"))["positions"] == []
    await pb.send({"type": "subscribe", "symbol": "TCS"})
    seen = await pb.wait_for(lambda m: m.get("type") == "data")
    assert seen["data"]["position"]["quantity"] == 0
    for c in (alice, bob, pa, pb):
        await c.close()


async def test_admin_routes_need_the_admin_key(secured: SingleService) -> None:
    assert secured.port is not None
    for path in ("/connections", "/metrics"):
        status, _, body = await ahttp_get(secured.port, path)
        assert status == 401 and body["code"] == "auth_required"
    status, _, _ = await ahttp_get(
        secured.port, "/connections", {"Authorization": "Bearer admin-secret"}
    )
    assert status == 200
    status, _, _ = await ahttp_get(secured.port, "/health")
    assert status in (200, 503)  # health stays public


async def test_secrets_never_appear_in_health_connections_or_config_repr(
    secured: SingleService,
) -> None:
    c = await _connect(secured)
    await c.request({"type": "auth", "token": "alice-key"}, "auth")
    assert secured.port is not None
    _, _, health = await ahttp_get(secured.port, "/health")
    _, _, conns = await ahttp_get(
        secured.port, "/connections", {"Authorization": "Bearer admin-secret"}
    )
    text = json.dumps(health) + json.dumps(conns) + repr(secured.settings)
    for secret in ("alice-key", "bob-key", SECRET, "admin-secret"):
        assert secret not in text
    assert conns["connections"][0]["user"] == "alice"
    await c.close()


async def test_admin_key_needs_the_bearer_scheme_in_any_case(secured: SingleService) -> None:
    assert secured.port is not None
    ok = await ahttp_get(secured.port, "/connections", {"Authorization": "bearer admin-secret"})
    assert ok[0] == 200
    bare = await ahttp_get(secured.port, "/connections", {"Authorization": "admin-secret"})
    assert bare[0] == 401


def test_public_key_file_needs_rs256(tmp_path: Path) -> None:
    from tickhub.app.config import load_settings
    from tickhub.core.errors import ConfigError

    (tmp_path / "k.pem").write_text("x")
    with pytest.raises(ConfigError, match="RS256"):
        load_settings(None, jwt_public_key_file=tmp_path / "k.pem")


async def test_token_offered_without_tickhub_is_never_echoed(secured: SingleService) -> None:
    token = _hs256("gina")
    c = await Client.connect(
        f"ws://127.0.0.1:{secured.port}/ws/stream", subprotocols=["v1", f"token.{token}"]
    )
    assert c.ws.subprotocol == "v1"
    assert c.ws.response is not None
    assert token not in str(c.ws.response.headers)
    await c.close()
