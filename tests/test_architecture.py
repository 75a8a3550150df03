"""Import rules that keep the layout honest: pure core, one-way imports, one WebSocket library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "src" / "tickhub"
IO_MODULES = {
    "asyncio",
    "socket",
    "picows",
    "websockets",
    "h11",
    "wsproto",
    "redis",
    "sqlite3",
    "aiohttp",
    "uvloop",
}
PURE = [
    "model.py",
    "clock.py",
    "protocol.py",
    "topics.py",
    "candles.py",
    "payloads.py",
    "publisher.py",
    "instruments.py",
    "alerts.py",
    "portfolio.py",
    "analysis",
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _files(name: str) -> list[Path]:
    target = PKG / name
    if target.is_dir():
        return sorted(target.rglob("*.py"))
    return [target] if target.exists() else []


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_do_no_io(name: str) -> None:
    # clock.py may name asyncio.sleep for its sleep() method; nothing else may.
    allowed = {"asyncio"} if name == "clock.py" else set()
    for path in _files(name):
        roots = {m.split(".")[0] for m in _imports(path)}
        assert not (roots & (IO_MODULES - allowed)), f"{path.name} imports {roots & IO_MODULES}"


def test_only_the_server_package_imports_the_http_and_websocket_libraries() -> None:
    for path in PKG.rglob("*.py"):
        roots = {m.split(".")[0] for m in _imports(path)}
        assert "picows" not in roots, path  # the benchmark's baseline, not the server's
        if "server" in path.relative_to(PKG).parts:
            continue
        assert not roots & {"h11", "wsproto"}, path


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("hub.py", {"tickhub.server", "tickhub.service", "tickhub.ingest", "tickhub.feeds"}),
        ("ingest.py", {"tickhub.server", "tickhub.hub", "tickhub.service"}),
        ("feeds", {"tickhub.server", "tickhub.hub", "tickhub.bus", "tickhub.ingest"}),
        ("bus", {"tickhub.server", "tickhub.hub", "tickhub.ingest", "tickhub.feeds"}),
        ("model.py", {"tickhub"}),
    ],
)
def test_imports_run_one_way(layer: str, forbidden: set[str]) -> None:
    for path in _files(layer):
        for module in _imports(path):
            for bad in forbidden:
                if bad == "tickhub":
                    assert not module.startswith("tickhub"), (path, module)
                else:
                    assert not (module == bad or module.startswith(bad + ".")), (path, module)
