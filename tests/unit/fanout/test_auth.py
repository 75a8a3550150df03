"""Who a connection is: API keys (kept as digests) and JWTs whose expiry is judged by the
injected clock, not the host's; every refusal is a value with a reason and a safe message."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tickhub.fanout.auth import (
    JWT_USER_PREFIX,
    Authenticator,
    AuthFailure,
    Identity,
    Rejection,
    parse_api_keys,
)

SECRET = "s3cret-signing-key-of-at-least-32-bytes!"
# Long past on the host's clock: a token that expires then is valid only by the injected clock.
NOW = datetime(2001, 5, 1, 12, 0, tzinfo=UTC)


def token(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def exp_in(seconds: float) -> float:
    return (NOW + timedelta(seconds=seconds)).timestamp()


def rejected(result: Identity | Rejection) -> Rejection:
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


# --- API keys -----------------------------------------------------------------------------------


def test_parse_api_keys_keeps_digests_only() -> None:
    hashed = hashlib.sha256(b"key-b").hexdigest()
    keys = parse_api_keys(("alice:key-a", f"bob:sha256:{hashed}", "carol:with:colons"))
    assert keys == {
        hashlib.sha256(b"key-a").digest(): "alice",
        hashlib.sha256(b"key-b").digest(): "bob",
        hashlib.sha256(b"with:colons").digest(): "carol",
    }


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("nocolon", "each API_KEYS entry must be user:key or user:sha256:<hex>"),
        (":key", "each API_KEYS entry must be user:key or user:sha256:<hex>"),
        ("user:", "each API_KEYS entry must be user:key or user:sha256:<hex>"),
        ("u:sha256:zz", "API_KEYS entry for 'u': bad sha256 hex"),
        ("u:sha256:" + "ab" * 31, "API_KEYS entry for 'u': sha256 needs 64 hex digits"),
    ],
)
def test_parse_api_keys_refuses_malformed_entries(entry: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_api_keys((entry,))
    assert str(info.value) == message


def test_api_key_identifies_its_user_and_a_wrong_one_is_refused() -> None:
    auth = Authenticator(api_keys=parse_api_keys(("alice:key-a", "bob:key-b")))
    assert auth.enabled
    assert auth.verify("key-b", NOW) == Identity("bob", "api_key")
    refusal = rejected(auth.verify("key-c", NOW))
    assert refusal == Rejection(AuthFailure.INVALID, "invalid credentials")


@pytest.mark.parametrize("value", [None, "", 42, ["key-a"]])
def test_a_token_must_be_a_non_empty_string(value: object) -> None:
    auth = Authenticator(api_keys=parse_api_keys(("alice:key-a",)))
    assert rejected(auth.verify(value, NOW)) == Rejection(
        AuthFailure.INVALID, "field 'token' must be a non-empty string"
    )


def test_without_configuration_authentication_is_off_and_nothing_passes() -> None:
    auth = Authenticator()
    assert not auth.enabled
    assert rejected(auth.verify("a.b.c", NOW)).reason is AuthFailure.INVALID


# --- JWT ----------------------------------------------------------------------------------------


def test_a_valid_jwt_names_its_subject_and_expiry() -> None:
    auth = Authenticator(jwt_key=SECRET)
    assert auth.enabled
    exp = exp_in(60)
    identity = auth.verify(token({"sub": "dave", "exp": exp}), NOW)
    assert identity == Identity("dave", "jwt", datetime.fromtimestamp(exp, UTC))


def test_the_user_prefix_separates_token_users_from_api_key_users() -> None:
    auth = Authenticator(
        api_keys=parse_api_keys(("alice:key-a",)),
        jwt_key=SECRET,
        jwt_user_prefix=JWT_USER_PREFIX,
    )
    identity = auth.verify(token({"sub": "alice", "exp": exp_in(60)}), NOW)
    assert isinstance(identity, Identity)
    assert identity.user == "jwt:alice"
    assert auth.verify("key-a", NOW) == Identity("alice", "api_key")


def test_expiry_boundary_by_the_injected_clock() -> None:
    auth = Authenticator(jwt_key=SECRET)
    assert rejected(auth.verify(token({"sub": "d", "exp": exp_in(0)}), NOW)) == Rejection(
        AuthFailure.EXPIRED, "token expired"
    )
    assert isinstance(auth.verify(token({"sub": "d", "exp": exp_in(1)}), NOW), Identity)
    later = NOW + timedelta(seconds=1)
    assert rejected(auth.verify(token({"sub": "d", "exp": exp_in(1)}), later)).reason is (
        AuthFailure.EXPIRED
    )


def test_leeway_extends_the_expiry_exactly() -> None:
    auth = Authenticator(jwt_key=SECRET, leeway=30.0)
    t = token({"sub": "d", "exp": exp_in(0)})
    assert isinstance(auth.verify(t, NOW + timedelta(seconds=29)), Identity)
    assert rejected(auth.verify(t, NOW + timedelta(seconds=30))).reason is AuthFailure.EXPIRED


@pytest.mark.parametrize(
    ("claims", "start"),
    [
        ({"sub": "d"}, "invalid token: "),  # no exp
        ({"exp": 0}, "invalid token: "),  # no sub
        ({"sub": "d", "exp": "soon"}, "invalid token: 'exp' must be a number"),
        ({"sub": "d", "exp": True}, "invalid token: 'exp' must be a number"),
        ({"sub": "d", "exp": -1}, "invalid token: 'exp' must be a number"),
        ({"sub": "d", "exp": 253_402_300_800}, "invalid token: 'exp' must be a number"),
        ({"sub": "", "exp": 253_402_300_799}, "invalid token: 'sub' must be a string"),
    ],
)
def test_malformed_claims_are_invalid_not_expired(claims: dict[str, Any], start: str) -> None:
    refusal = rejected(Authenticator(jwt_key=SECRET).verify(token(claims), NOW))
    assert refusal.reason is AuthFailure.INVALID
    assert refusal.message.startswith(start)


def test_a_wrong_signature_audience_or_algorithm_is_refused_without_echoing_secrets() -> None:
    auth = Authenticator(jwt_key=SECRET, jwt_audience="tickhub")
    claims = {"sub": "d", "exp": exp_in(60), "aud": "tickhub"}
    assert isinstance(auth.verify(token(claims), NOW), Identity)
    forged = token(claims, key="another-key-that-is-also-32-bytes-long")
    other_audience = token({**claims, "aud": "elsewhere"})
    header, _, signature = token(claims).split(".")
    payload = token({**claims, "sub": "mallory"}).split(".")[1]
    tampered = f"{header}.{payload}.{signature}"
    for bad in (forged, other_audience, tampered):
        refusal = rejected(auth.verify(bad, NOW))
        assert refusal.reason is AuthFailure.INVALID
        assert refusal.message.startswith("invalid token: ")
        assert SECRET not in refusal.message and bad not in refusal.message


def test_a_token_with_two_dots_but_no_jwt_key_is_just_wrong_credentials() -> None:
    auth = Authenticator(api_keys=parse_api_keys(("alice:key-a",)))
    assert rejected(auth.verify("x.y.z", NOW)).message == "invalid credentials"


def test_rs256_verifies_with_the_public_key_only() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    auth = Authenticator(jwt_key=public, jwt_algorithm="RS256")
    claims = {"sub": "erin", "exp": exp_in(60)}
    identity = auth.verify(token(claims, key=pem, algorithm="RS256"), NOW)
    assert isinstance(identity, Identity) and identity.user == "erin"
    # Only the configured algorithm is accepted: an HS256 token is refused, whatever its key.
    assert rejected(auth.verify(token(claims, key="x" * 32), NOW)).reason is AuthFailure.INVALID
