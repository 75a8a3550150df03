"""``WORKERS`` and ``ADMIN_PORT``: bounds, and the admin port of each worker."""

from __future__ import annotations

import pytest

from tickhub.app.config import ConfigError, load_settings


def test_one_worker_is_the_default_and_admin_ports_follow_the_listen_port() -> None:
    s = load_settings(None, ws_port=9000)
    assert s.workers == 1 and s.worker_index == 0
    assert [s.worker_admin_port(n) for n in (1, 2, 3)] == [9100, 9101, 9102]
    s = load_settings(None, ws_port=9000, admin_port=7000)
    assert s.worker_admin_port(4) == 7003


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"workers": 0},
            "invalid value for WORKERS: 0 (Input should be greater than or equal to 1)",
        ),
        (
            {"workers": 65},
            "invalid value for WORKERS: 65 (Input should be less than or equal to 64)",
        ),
        (
            {"admin_port": 0},
            "invalid value for ADMIN_PORT: 0 (Input should be greater than or equal to 1)",
        ),
        (
            {"workers": 4, "admin_port": 65534},
            "invalid settings: WORKERS=4 needs admin ports 65534 to 65537: past 65535 (set "
            "ADMIN_PORT lower)",
        ),
    ],
)
def test_bad_worker_settings_are_refused_naming_the_variable(
    overrides: dict[str, int], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, **overrides)
    assert str(caught.value) == message
