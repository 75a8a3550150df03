"""Import rules that keep the layout honest, derived from the folders, not from a list of modules.

The folders of ``src/tickhub`` are layers, lowest first (``LAYERS``); a module may import its own
layer or one below it, never one above. ``core`` and ``engines`` are pure: no asyncio, no network,
no database, no threads. No import cycle anywhere, not even inside one folder. Only ``server``
speaks HTTP and WebSocket with h11 and wsproto.

``client`` (the Python client library, ``tickhub.client``) stands apart: it is what a user's
program imports to read the streams, so it builds on ``core`` alone (the wire protocol, without
I/O), speaks WebSocket through ``websockets`` as any user program would (the client side of the
protocol, not the server's h11/wsproto), imports no other library, and nothing of the service
imports it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "src" / "tickhub"

LAYERS = (
    "core",  # model, clock interface, topics, instruments, protocol, errors, defaults
    "client",  # the Python client library: core + websockets only, imported by nothing
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
CLIENT = "client"
CLIENT_LIBRARIES = frozenset({"websockets"})
"""What the client may import beside the standard library: its one WebSocket library."""
ROOT_MODULES = {"__init__.py"}  # the package's face: __version__ only


def _modules(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root``, by its dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(["tickhub", *parts])] = path
    return found


MODULES = _modules(PKG)


def _imports(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
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
                if f"{base}.{alias.name}" in modules:
                    found.add(f"{base}.{alias.name}")
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def stray_modules(root: Path) -> list[str]:
    """Modules outside the layer folders (the package's own ``__init__`` aside)."""
    return [
        str(path.relative_to(root))
        for module, path in _modules(root).items()
        if _layer(module) is None and path.relative_to(root).as_posix() not in ROOT_MODULES
    ]


def impure_imports(root: Path) -> list[str]:
    """``module imports library`` for every I/O library a pure layer imports."""
    modules = _modules(root)
    found = []
    for module, path in modules.items():
        if _layer(module) in PURE:
            roots = {m.split(".")[0] for m in _imports(path, module, modules)}
            found += [f"{module} imports {lib}" for lib in sorted(roots & IO_MODULES)]
    return found


def upward_imports(root: Path) -> list[str]:
    """``module -> target`` for every import of a layer above the module's own."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    modules = _modules(root)
    found = []
    for module, path in modules.items():
        mine = _layer(module)
        for target in sorted(_imports(path, module, modules)):
            theirs = _layer(target) if target.startswith("tickhub.") else None
            if mine is not None and theirs is not None and rank[theirs] > rank[mine]:
                found.append(f"{module} -> {target}")
    return found


def import_cycles(root: Path) -> list[list[str]]:
    """Every cycle of imports between modules of the package (depth-first, back edges)."""
    modules = _modules(root)
    graph = {
        module: {t for t in _imports(path, module, modules) if t in modules and t != module}
        for module, path in modules.items()
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
    return cycles


def http_outside_server(root: Path) -> list[str]:
    """Modules outside ``server`` that import h11 or wsproto, and any that imports picows."""
    modules = _modules(root)
    found = []
    for module, path in modules.items():
        roots = {m.split(".")[0] for m in _imports(path, module, modules)}
        if "picows" in roots:  # the benchmark's baseline, not the server's
            found.append(f"{module} imports picows")
        if _layer(module) != "server" and roots & {"h11", "wsproto"}:
            found.append(f"{module} imports {sorted(roots & {'h11', 'wsproto'})}")
    return found


def client_apart(root: Path) -> list[str]:
    """``module -> target`` for a client module importing anything but the standard library,
    ``websockets``, ``tickhub.core`` and itself, and for any other module importing the client."""
    modules = _modules(root)
    found = []
    for module, path in modules.items():
        mine = _layer(module)
        for target in sorted(_imports(path, module, modules)):
            top = target.split(".")[0]
            if top == "tickhub":
                theirs = _layer(target)
                outside = mine == CLIENT and theirs not in (None, "core", CLIENT)
                if outside or (mine != CLIENT and theirs == CLIENT):
                    found.append(f"{module} -> {target}")
            elif mine == CLIENT and top not in sys.stdlib_module_names | CLIENT_LIBRARIES:
                found.append(f"{module} -> {target}")
    return found


# --- the rules, on the real package -----------------------------------------------------------


def test_every_module_lives_in_a_layer() -> None:
    assert not stray_modules(PKG), f"modules outside the layer folders: {stray_modules(PKG)}"
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS), folders ^ set(LAYERS)


@pytest.mark.parametrize("layer", PURE)
def test_pure_layers_do_no_io(layer: str) -> None:
    found = [f for f in impure_imports(PKG) if f.startswith(f"tickhub.{layer}.")]
    assert not found, "\n".join(found)


def test_imports_never_run_up_the_layers() -> None:
    found = upward_imports(PKG)
    assert not found, "imports that run up the layers:\n" + "\n".join(found)


def test_no_import_cycles() -> None:
    cycles = import_cycles(PKG)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_only_the_server_layer_imports_the_http_and_websocket_libraries() -> None:
    assert not http_outside_server(PKG), http_outside_server(PKG)


def test_the_client_builds_on_core_and_websockets_alone() -> None:
    assert not client_apart(PKG), client_apart(PKG)


# --- and each rule fails where it should: a planted tree ---------------------------------------


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
    return root


def test_the_rules_catch_a_planted_violation_of_each(tmp_path: Path) -> None:
    root = _plant(
        tmp_path / "tickhub",
        {
            "core/model.py": "import asyncio\nfrom tickhub.server.app import Server\n",
            "engines/math.py": "from sqlite3 import connect\nimport redis.asyncio\n",
            "fanout/a.py": "from tickhub.fanout import b\n",
            "fanout/b.py": "def f() -> None:\n    from tickhub.fanout.a import g\n",
            "ingest/relay.py": "import wsproto\n",
            "server/app.py": "import h11\nfrom . import conn\n",
            "server/conn.py": "from .app import Server\n",
            "client/ws.py": (
                "import asyncio\nimport websockets\nimport orjson\n"
                "from tickhub.core import protocol\nimport tickhub.fanout.a\n"
            ),
            "app/cli.py": "import tickhub.client.ws\n",
            "helpers.py": "",
        },
    )
    assert stray_modules(root) == ["helpers.py"]
    assert impure_imports(root) == [
        "tickhub.core.model imports asyncio",
        "tickhub.engines.math imports redis",
        "tickhub.engines.math imports sqlite3",
    ]
    assert upward_imports(root) == [
        "tickhub.client.ws -> tickhub.fanout.a",
        "tickhub.core.model -> tickhub.server.app",
    ]
    assert sorted(tuple(c) for c in import_cycles(root)) == [
        ("tickhub.fanout.a", "tickhub.fanout.b", "tickhub.fanout.a"),
        ("tickhub.server.app", "tickhub.server.conn", "tickhub.server.app"),
    ]
    assert http_outside_server(root) == ["tickhub.ingest.relay imports ['wsproto']"]
    assert client_apart(root) == [
        "tickhub.app.cli -> tickhub.client.ws",
        "tickhub.client.ws -> orjson",
        "tickhub.client.ws -> tickhub.fanout.a",
    ]
