"""What the checker accepts as the service's URL."""

from __future__ import annotations

import pytest

from tickhub.devtools.checker.target import Target, parse_target


@pytest.mark.parametrize(
    ("url", "target"),
    [
        (
            "ws://localhost:8081",
            Target("ws://localhost:8081", "http://localhost:8081", "localhost", 8081),
        ),
        (
            "localhost:8081/ws/stream",
            Target("ws://localhost:8081", "http://localhost:8081", "localhost", 8081),
        ),
        (
            "https://example.com/tick/ws/",
            Target("wss://example.com/tick", "https://example.com/tick", "example.com", 443),
        ),
    ],
)
def test_a_url_of_the_service_or_of_one_endpoint_names_the_service(
    url: str, target: Target
) -> None:
    assert parse_target(url) == target


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ftp://x", "expected a URL like ws://localhost:8081, got 'ftp://x'"),
        ("ws://127.0.0.1:99999", "expected a URL with a valid port, got 'ws://127.0.0.1:99999'"),
    ],
)
def test_a_url_that_names_no_service_is_explained(url: str, said: str) -> None:
    assert parse_target(url) == said
