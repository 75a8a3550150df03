"""``GET /indicators`` over real HTTP (httpx, curl), checked against what a real ``/ws/analysis``
subscription (the ``websockets`` library directly, not our client) accepts, refuses and sends:
every default entry is acknowledged as the catalog spells it, every bound is the last value
taken, each object's members are the keys of its value, and the limits are the settings."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import talib
import websockets

from tests.e2e.protocol_documents import problems
from tests.e2e.test_indicator_sets import _start, push_minutes
from tests.e2e.test_schemas import response_validator
from tickhub.app.roles import SingleService
from tickhub.core import defaults

CURL = shutil.which("curl")
Msg = dict[str, Any]

# The fact a chart needs to place a line: written out here, not read from the server's module.
PRICE_SCALE = {"sma", "ema", "bollinger", "vwap", "supertrend", "sar", "donchian", "pivots"}


async def catalog(port: int) -> Msg:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        answer = await http.get("/indicators", params={"ignored": "1"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body: Msg = answer.json()
    return body


@asynccontextmanager
async def analysis(port: int) -> AsyncIterator[Any]:
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/analysis") as ws:
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "connection"
        yield ws


async def reply(ws: Any, message: Msg) -> Msg:
    """The ack or error answering ``message`` (data messages in between are skipped)."""
    await ws.send(json.dumps(message))
    while True:
        msg: Msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg["type"] in ("subscription", "error"):
            return msg


def entry(name: str, values: list[float]) -> str:
    return f"{name}:{','.join(repr(v) if v % 1 else str(int(v)) for v in values)}"


async def test_catalog_matches_the_openapi_document_and_the_settings(tmp_path: Any) -> None:
    svc, _ = await _start(
        tmp_path, max_indicators_per_subscription=14, max_indicator_period=50, max_indicator_sets=7
    )
    try:
        assert svc.port is not None
        body = await catalog(svc.port)
        assert not problems(response_validator("/indicators", 200), body)
        assert body["limits"] == {
            "max_indicators_per_subscription": 14,
            "max_indicator_period": 50,
            "max_indicator_sets": 7,
        }
        kinds = {k["name"]: k for k in body["indicators"]}
        assert list(kinds) == [
            "sma", "ema", "rsi", "macd", "bollinger", "atr", "vwap", "supertrend", "stoch",
            "adx", "obv", "sar", "donchian", "pivots",
        ]  # fmt: skip
        assert kinds["ema"]["entry"] == "ema:20"
        assert kinds["ema"]["params"] == [
            {"name": "period", "default": 20, "min": 2, "max": 50, "integer": True,
             "max_setting": "MAX_INDICATOR_PERIOD"},
        ]  # fmt: skip
        assert kinds["bollinger"]["params"][1] == {
            "name": "deviations", "default": 2, "min": 0.1, "max": 10, "integer": False,
        }  # fmt: skip
        assert kinds["macd"]["members"] == ["macd", "signal", "histogram"]
        assert kinds["macd"]["constraints"] == [{"param": "fast", "op": "<", "other": "slow"}]
        assert kinds["vwap"] == {
            "name": "vwap", "entry": "vwap", "params": [], "constraints": [], "output": "number",
            "members": [], "price_scale": True,
        }  # fmt: skip
        assert {k for k, v in kinds.items() if v["price_scale"]} == PRICE_SCALE
        # The patterns are TA-Lib's pattern recognition group, one name each.
        names = [p["name"] for p in body["patterns"]]
        talib_patterns = talib.get_function_groups()["Pattern Recognition"]  # type: ignore[no-untyped-call]
        assert len(names) == len(set(names)) == len(talib_patterns)
        fixed = {p["name"]: p["direction"] for p in body["patterns"]}
        assert fixed["doji"] == "neutral" and fixed["engulfing"] is None
    finally:
        await svc.stop()


async def test_defaults_members_and_the_limit_are_what_a_subscription_gets(tmp_path: Any) -> None:
    svc, feed = await _start(tmp_path, max_indicators_per_subscription=14)
    try:
        assert svc.port is not None
        kinds = (await catalog(svc.port))["indicators"]
        entries = [k["entry"] for k in kinds]
        async with analysis(svc.port) as ws:
            ack = await reply(
                ws, {"type": "subscribe", "symbol": "RELIANCE", "indicators": entries}
            )
            assert ack["status"] == "subscribed", ack
            assert ack["indicators"] == sorted(entries)  # the catalog's entries are canonical
            push_minutes(feed, 0, 3)
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg.get("data_type") == "technical_analysis" and msg["data"].get("indicators"):
                    break
            values = msg["data"]["technical_indicators"]
            assert set(values) == {*entries, "warmup"}
            for kind in kinds:
                value = values[kind["entry"]]
                if kind["output"] == "object":
                    assert list(value) == kind["members"], kind["name"]
                else:
                    assert value is None or isinstance(value, (int, float)), kind["name"]
            # One over the limit is refused, naming the limit the catalog gives.
            more = [*entries, "ema:9"]
            error = await reply(ws, {"type": "subscribe", "symbol": "RELIANCE", "indicators": more})
            assert error["code"] == "too_many_indicators"
            assert error["details"]["limit"] == 14
    finally:
        await svc.stop()


async def test_every_bound_is_the_last_value_a_subscription_takes(tmp_path: Any) -> None:
    # Some 150 requests in a row: the message rate limit is not what this test is about.
    svc, _ = await _start(tmp_path, message_rate=10_000, message_burst=10_000)
    try:
        await _bounds(svc)
    finally:
        await svc.stop()


async def _bounds(svc: SingleService) -> None:
    assert svc.port is not None
    kinds = (await catalog(svc.port))["indicators"]
    async with analysis(svc.port) as ws:
        for kind in kinds:
            defaults_ = [float(p["default"]) for p in kind["params"]]
            for i, param in enumerate(kind["params"]):
                step = 1.0 if param["integer"] else 0.001
                for bound, outside in ((param["min"], -step), (param["max"], step)):
                    values = list(defaults_)
                    values[i] = float(bound)
                    if kind["name"] == "macd" and i < 2:
                        # fast < slow: the other one at a value that keeps the rule.
                        values[1 - i] = float(bound) + 1 if i == 0 else float(bound) - 1
                        if not 2 <= values[1 - i] <= param["max"]:
                            continue
                    if kind["name"] == "sar":
                        values[1 - i] = float(bound)  # acceleration == maximum is allowed
                    taken = await reply(
                        ws,
                        {"type": "subscribe", "symbol": "RELIANCE",
                         "indicators": [entry(kind["name"], values)]},
                    )  # fmt: skip
                    assert taken["type"] == "subscription", (kind["name"], values, taken)
                    await reply(ws, {"type": "unsubscribe", "symbol": "RELIANCE"})
                    values[i] = round(float(bound) + outside, 3)
                    if values[i] < 0:
                        continue  # no sign in the grammar: a negative is not a range error
                    refused = await reply(
                        ws,
                        {"type": "subscribe", "symbol": "RELIANCE",
                         "indicators": [entry(kind["name"], values)]},
                    )  # fmt: skip
                    assert refused["code"] == "invalid_indicator_parameter", (values, refused)
                    assert refused["details"]["parameter"] == param["name"]
                    assert refused["details"]["maximum"] == param["max"]
    assert kinds[0]["params"][0]["max"] == defaults.MAX_INDICATOR_PERIOD


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
async def test_curl_gets_the_catalog(service: SingleService) -> None:
    assert CURL is not None and service.port is not None
    proc = await asyncio.create_subprocess_exec(
        CURL, "-s", "-w", "\n%{http_code} %{content_type}",
        f"http://127.0.0.1:{service.port}/indicators",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    text, _, tail = out.decode().rpartition("\n")
    assert tail == "200 application/json"
    body = json.loads(text)
    limit = body["limits"]["max_indicators_per_subscription"]
    assert limit == defaults.MAX_INDICATORS_PER_SUBSCRIPTION
    assert len(body["patterns"]) == 61
