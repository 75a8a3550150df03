"""``GET /instruments?q=&limit=`` over real HTTP, with curl and httpx: search on symbol and name,
prefix matches first, bounded by INSTRUMENTS_LIMIT / INSTRUMENTS_MAX_LIMIT, clear 400s."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import httpx
import pytest

from tickhub.app.roles import SingleService
from tickhub.core import defaults

CURL = shutil.which("curl")


async def curl(port: int, path: str) -> tuple[int, Any]:
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL, "-s", "-g", "-w", "\n%{http_code}", f"http://127.0.0.1:{port}{path}",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    body, _, status = out.decode().rpartition("\n")
    return int(status), json.loads(body)


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
async def test_curl_rel_finds_reliance_first(service: SingleService) -> None:
    assert service.port is not None
    status, body = await curl(service.port, "/instruments?q=REL")
    assert status == 200
    assert body[0] == {
        "symbol": "RELIANCE",
        "name": "RELIANCE INDUSTRIES",
        "exchange": "NSE",
        "token": 738561,
        "tradable": True,
    }
    status, body = await curl(service.port, "/instruments?q=nifty%20b")
    assert (status, [i["symbol"] for i in body]) == (200, ["NIFTY BANK"])


async def test_httpx_search_ranks_and_bounds_the_answer(service: SingleService) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http:
        everything = (await http.get("/instruments")).json()
        assert len(everything) == 52  # no q: the whole universe, as before
        banks = (await http.get("/instruments", params={"q": "Bank"})).json()
        names = [i["symbol"] for i in banks]
        assert names[-1] == "SBIN"  # only its name holds BANK: after the symbol matches
        assert all("BANK" in i["symbol"] or "BANK" in i["name"] for i in banks)
        many = (await http.get("/instruments", params={"q": "a"})).json()
        assert len(many) == defaults.INSTRUMENTS_LIMIT  # the default limit with q
        five = (await http.get("/instruments", params={"q": "a", "limit": 5})).json()
        assert five == many[:5]
        assert len((await http.get("/instruments", params={"limit": 3})).json()) == 3
        assert (await http.get("/instruments", params={"q": "zzzz"})).json() == []


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"limit": str(defaults.INSTRUMENTS_MAX_LIMIT + 1)}, "parameter 'limit' must be"),
        ({"limit": "0"}, "parameter 'limit' must be an integer from 1 to"),
        ({"limit": "ten"}, "got 'ten'"),
        ({"limit": "-1"}, "parameter 'limit'"),
        ({"limit": "9" * 5000}, "got '99999"),  # past int()'s digit limit: still a 400
        ({"q": "X" * 65}, "parameter 'q' is at most 64 characters"),
    ],
)
async def test_bad_parameters_are_a_400_naming_them(
    service: SingleService, query: dict[str, str], says: str
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http:
        answer = await http.get("/instruments", params=query)
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "error" and body["code"] == "invalid_parameter"
    assert says in body["message"] and "\n" not in body["message"]


async def test_a_repeated_or_undecodable_parameter_is_refused(service: SingleService) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http:
        twice = await http.get("/instruments?q=REL&q=INF")
        assert twice.status_code == 400
        assert twice.json()["message"] == "parameter 'q' is given more than once"
        garbled = await http.get("/instruments?q=%ff")
        assert garbled.status_code == 400 and "not UTF-8" in garbled.json()["message"]


async def test_the_limits_are_settings(service_factory: Any) -> None:
    svc: SingleService = await service_factory(instruments_limit=2, instruments_max_limit=4)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.port}") as http:
        assert len((await http.get("/instruments", params={"q": "a"})).json()) == 2
        assert len((await http.get("/instruments", params={"q": "a", "limit": 4})).json()) == 4
        over = await http.get("/instruments", params={"q": "a", "limit": 5})
        assert over.status_code == 400
        assert "from 1 to 4 (INSTRUMENTS_MAX_LIMIT)" in over.json()["message"]
