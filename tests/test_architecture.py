"""Import rules that keep the layout honest, derived from the folders, not from a list of modules.

The folders of ``src/tickhub`` are layers, lowest first (``LAYERS``); a module may import its own
layer or one below it, never one above. ``core`` and ``engines`` are pure: no asyncio, no network,
no database, no threads. No import cycle anywhere, not even inside one folder. Only ``server``
speaks HTTP and WebSocket.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "src" / "tickhub"

LAYERS = (
    "core",  # model, clock interface, topics, instruments, protocol, errors, defaults
    "engines",  # candles, analysis, alerts, portfolio: pure computation on core types
    "runtime",  # event-loop building blocks: the clocks, supervised tasks
    "feeds",  # sim, replay, kite: where ticks come from
    "store",  # sqlite, postgres: what survives a restart
    "bus",  # memory, redis: the producer-to-fan-out channel
    "ingest",  # the producer: feed -> engines -> bus, requests -> engines
    "fanout",  # sessions, subscriptions, admission, snapshot and resume
    "server",  # HTTP and WebSocket
    "cluster",  # the links between one ingest and many gateways
    "devtools",  # checker, recorder, Kite emulator
    "app",  # settings, building, roles, CLI
)
PURE = ("core", "engines")
IO_MODULES = frozenset(
    {
        "asyncio",
        "socket",
        "ssl",
        "selectors",
        "threading",
        "subprocess",
        "http",
        "urllib",
        "picows",
        "websockets",
        "h11",
        "wsproto",
        "redis",
        "sqlite3",
        "psycopg",
        "aiohttp",
        "httpx",
        "uvloop",
        "kiteconnect",
    }
)
ROOT_MODULES = {"__init__.py"}  # the package's face: __version__ only


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(["tickhub", *parts]), path


MODULES = dict(_modules())


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of everything ``path`` imports, lazy imports inside functions included."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # ``from tickhub.x import y`` where y is a module names that module too
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    found.add(f"{base}.{alias.name}")
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer() -> None:
    stray = [
        str(path.relative_to(PKG))
        for module, path in MODULES.items()
        if _layer(module) is None and path.relative_to(PKG).as_posix() not in ROOT_MODULES
    ]
    assert not stray, f"modules outside the layer folders: {stray}"
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS), folders ^ set(LAYERS)


@pytest.mark.parametrize("layer", PURE)
def test_pure_layers_do_no_io(layer: str) -> None:
    for module, path in MODULES.items():
        if _layer(module) != layer:
            continue
        roots = {m.split(".")[0] for m in _imports(path, module)}
        assert not roots & IO_MODULES, f"{module} imports {sorted(roots & IO_MODULES)}"


def test_imports_never_run_up_the_layers() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    for module, path in MODULES.items():
        mine = _layer(module)
        for target in _imports(path, module):
            theirs = _layer(target) if target.startswith("tickhub.") else None
            if mine is None or theirs is None:
                continue
            if rank[theirs] > rank[mine]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_the_rule_would_catch_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom tickhub.server import WebSocketServer\n")
    found = _imports(bad, "tickhub.core.bad")
    assert "asyncio" in found
    assert _layer("tickhub.server") == "server"
    assert LAYERS.index("server") > LAYERS.index("core")


def test_no_import_cycles() -> None:
    graph = {
        module: {t for t in _imports(path, module) if t in MODULES and t != module}
        for module, path in MODULES.items()
    }
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_only_the_server_layer_imports_the_http_and_websocket_libraries() -> None:
    for module, path in MODULES.items():
        roots = {m.split(".")[0] for m in _imports(path, module)}
        assert "picows" not in roots, module  # the benchmark's baseline, not the server's
        if _layer(module) == "server":
            continue
        assert not roots & {"h11", "wsproto"}, module
