"""Settings: defaults, .env, and a bad value stopping the start with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import closed_candle
from tests.helpers import REPO_ROOT
from tickhub.app.build import build_store
from tickhub.app.config import ConfigError, load_settings
from tickhub.core.model import Interval

ROOT = REPO_ROOT
TICKHUB = [sys.executable, "-c", "from tickhub.app.cli import main; main()"]


def test_defaults_follow_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HOST", "PORT", "WS_PORT", "CORS_ORIGINS"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings(None)
    assert s.host == "0.0.0.0" and s.port == 8000 and s.listen_port == 8081
    assert s.feed == "sim"


def test_env_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(ROOT / ".env.example")
    assert s.listen_port == 8081
    assert s.sim_speed == 1 and s.log_format == "text"
    assert "http://localhost:3000" in s.cors_origins


def test_cors_origins_comma_list_and_star(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "http://a.example:3000, https://b.example/")
    s = load_settings(None)
    assert s.cors_origins == ("http://a.example:3000", "https://b.example")
    assert s.allows_origin("https://b.example") and not s.allows_origin("http://c.example")
    monkeypatch.setenv("CORS_ORIGINS", "*")
    assert load_settings(None).allows_origin("http://anything.example")


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORT", raising=False)
    env = tmp_path / ".env"
    env.write_text("PORT=9000\nSIM_SPEED=60\n")
    s = load_settings(env)
    assert s.listen_port == 9081 and s.sim_speed == 60


def _run(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("PORT", "WS_PORT", "SIM_SPEED")}
    full.update(env)
    return subprocess.run(
        [*TICKHUB, "serve"], env=full, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_bad_value_exits_2_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    for var, value in [
        ("PORT", "abc"),
        ("SIM_SPEED", "-3"),
        ("LOG_LEVEL", "LOUD"),
        ("CORS_ORIGINS", "localhost:3000"),
        ("MAX_CONNECTIONS", "0"),
    ]:
        proc = _run({var: value}, tmp_path)
        assert proc.returncode == 2, (var, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert var in lines[0] and value in lines[0]


def test_instruments_limits_are_settings_and_the_default_cannot_pass_the_maximum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tickhub.core import defaults
    from tickhub.core.errors import ConfigError

    s = load_settings(None)
    assert (s.instruments_limit, s.instruments_max_limit) == (
        defaults.INSTRUMENTS_LIMIT,
        defaults.INSTRUMENTS_MAX_LIMIT,
    )
    monkeypatch.setenv("INSTRUMENTS_LIMIT", "50")
    monkeypatch.setenv("INSTRUMENTS_MAX_LIMIT", "40")
    with pytest.raises(ConfigError, match="must not exceed INSTRUMENTS_MAX_LIMIT"):
        load_settings(None)
    monkeypatch.setenv("INSTRUMENTS_LIMIT", "0")
    with pytest.raises(ConfigError, match="INSTRUMENTS_LIMIT"):
        load_settings(None)


def test_candle_settings_have_their_defaults_and_bounds(tmp_path: Path) -> None:
    s = load_settings(None)
    assert s.sim_history_sessions == 3
    assert (s.candles_limit, s.candles_max_limit) == (500, 5000)
    assert s.candle_retention_rows == 10_000 and s.candle_queue == 200_000
    for name, bad in [
        ("sim_history_sessions", -1),
        ("sim_history_sessions", 1001),
        ("candles_max_limit", 0),
        ("candles_limit", 0),
        ("candle_retention_rows", 0),
        ("candle_queue", 0),
    ]:
        with pytest.raises(ConfigError, match=name.upper()):
            load_settings(None, **{name: bad})
    with pytest.raises(ConfigError, match=r"CANDLES_LIMIT \(600\) must not exceed"):
        load_settings(None, candles_limit=600, candles_max_limit=100)


def test_the_store_keeps_candle_retention_rows_per_series(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path, candle_retention_rows=7)
    store = build_store(settings)
    try:
        store.save_candles([closed_candle(m) for m in range(10)])
        kept = store.load_candles("RELIANCE", Interval.M1, limit=100)
        assert kept == [closed_candle(m) for m in range(3, 10)]
    finally:
        store.close()
