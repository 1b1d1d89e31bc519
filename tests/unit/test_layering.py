"""The whiteboard as tests: the arrows that must never be, checked in the source.

``/work/shared/whiteboard.json`` draws the parts of the tree and the imports between them; its
"never" arrows are copied here (``NEVER``), with the paths each part is (``PARTS``). A part
imports another when any of its files names one of the other's modules in an import statement
(``TYPE_CHECKING`` ones included: a type is a dependency too). Three more rules in words:
``chatclient`` never imports ``chatd``; ``chatd.core`` does no I/O (no I/O library, in its
source or in what importing it pulls in); ``chatproto`` imports no asyncio, which
``test_sans_io.py`` checks (its helpers are reused here). Every check is shown to fail on a
violating snippet.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from unit.test_sans_io import _imported_after, _imports_in, _is_forbidden

ROOT = Path(__file__).resolve().parents[2]

PARTS: dict[str, tuple[str, ...]] = {
    "Protocol": ("protocol/chatproto/",),
    "Transport": ("chatd/transport/", "chatd/session.py"),
    "Services": ("chatd/services/",),
    "Hub": ("chatd/hub.py", "chatd/envelope.py"),
    "Core": ("chatd/core/",),
    "Broker": ("chatd/broker/",),
    "Store": ("chatd/store/",),
    "SDK": ("clients/chatclient/",),
    "Load": ("loadtest/",),
    "App": ("chatd/app.py", "chatd/cli.py", "chatd/wallet_cli.py"),
    "Settings": ("chatd/settings.py", "chatd/logs.py", "chatd/clock.py", "chatd/errors.py"),
}

NEVER: list[tuple[str, str, str]] = [
    ("Protocol", "Transport", "the protocol core is sans-I/O"),
    ("Protocol", "Services", "the protocol core knows no server"),
    ("Protocol", "SDK", "the protocol core knows no client"),
    ("Core", "Transport", "domain rules know no socket"),
    ("Core", "Store", "domain rules do no I/O"),
    ("Store", "Services", "storage does not call up into use cases"),
    ("Broker", "Services", "the broker hands envelopes to the hub, not to use cases"),
    ("SDK", "Services", "the client never imports the server"),
    ("SDK", "Store", "the client never imports the server"),
    ("Load", "Services", "the load tester speaks only the wire"),
    ("Load", "Store", "the load tester audits through the wire or the CLI"),
    ("Transport", "Store", "a session reaches storage only through services"),
    ("Load", "App", "the load tester runs chatd's commands as processes"),
]

_IMPORT_ROOTS = ("protocol/", "clients/", "")
"""Where packages sit in the tree: ``protocol/chatproto`` is imported as ``chatproto``."""


def _module_of(path: str) -> str | None:
    """The module name a part's path is imported as (None: not importable, e.g. ``loadtest/``
    scripts, which nothing imports)."""
    for root in _IMPORT_ROOTS:
        if root and path.startswith(root):
            path = path[len(root) :]
            break
    if path.startswith("loadtest/"):
        return None
    return path.removesuffix("/").removesuffix(".py").replace("/", ".")


def _part_of_module(module: str) -> str | None:
    for part, paths in PARTS.items():
        for path in paths:
            name = _module_of(path)
            if name is not None and (module == name or module.startswith(name + ".")):
                return part
    return None


def _files_of(part: str) -> list[Path]:
    files: list[Path] = []
    for path in PARTS[part]:
        full = ROOT / path
        files += sorted(full.rglob("*.py")) if path.endswith("/") else [full]
    return files


def _package_of(path: Path) -> str:
    """The package a source file's relative imports start from."""
    rel = path.relative_to(ROOT).as_posix()
    for root in _IMPORT_ROOTS:
        if root and rel.startswith(root):
            rel = rel[len(root) :]
            break
    if rel.startswith("loadtest/"):
        rel = rel[len("loadtest/") :]
    return rel.rpartition("/")[0].replace("/", ".")


def imports(source: str, package: str = "") -> set[str]:
    """Every module ``source`` names in an import: ``test_sans_io``'s absolute ones, and the
    relative ones resolved against ``package``."""
    names = _imports_in(source)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package.split(".") if package else []
            base = base[: len(base) - (node.level - 1)]
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def violations(part: str, source: str, package: str = "") -> list[str]:
    """The never-arrows from ``part`` that ``source`` (a file of it) draws."""
    found = []
    for name in sorted(imports(source, package)):
        target = _part_of_module(name)
        for frm, to, why in NEVER:
            if frm == part and to == target:
                found.append(f"{part} -> {to} ({why}): {name}")
    return found


def _sources(parts: list[str]) -> list[Path]:
    return [f for p in parts for f in _files_of(p)]


FROM_PARTS = sorted({frm for frm, _, _ in NEVER})


@pytest.mark.parametrize("part", FROM_PARTS)
def test_no_part_draws_an_arrow_the_whiteboard_forbids(part: str) -> None:
    files = _files_of(part)
    assert files, f"{part}: no files at {PARTS[part]}"
    found = [
        f"{f.relative_to(ROOT)}: {v}"
        for f in files
        for v in violations(part, f.read_text("utf-8"), _package_of(f))
    ]
    assert found == []


@pytest.mark.parametrize(
    ("part", "source", "package"),
    [
        ("Transport", "from chatd.store.base import AccountRow", "chatd"),
        ("Transport", "from chatd.store import ledger", "chatd.transport"),
        ("Transport", "from ..store.base import DeviceRow", "chatd.transport"),
        ("Core", "from chatd.transport import ws", "chatd.core"),
        ("Core", "from . import rules\nfrom ..store import base", "chatd.core"),
        ("Store", "from chatd.services.messaging import MessagingService", "chatd.store"),
        ("Broker", "import chatd.services.fanout", "chatd.broker"),
        ("SDK", "from chatd.services import auth", "chatclient"),
        ("SDK", "from chatd.store.sqlite import SQLiteStore", "chatclient"),
        ("Load", "from chatd.store import ledger", ""),
        ("Load", "from chatd.wallet_cli import mint_to", ""),
        ("Load", "from chatd.services.keys import KeyService", "chatload"),
        ("Protocol", "from chatclient import Client", "chatproto"),
        ("Protocol", "from chatd.session import Session", "chatproto"),
        ("Protocol", "import chatd.services", "chatproto"),
    ],
)
def test_the_arrow_check_detects_a_forbidden_import(part: str, source: str, package: str) -> None:
    assert violations(part, source, package) != []


def test_the_arrow_check_allows_the_arrows_drawn() -> None:
    assert violations("Services", "from chatd.store.base import AccountRow", "chatd.services") == []
    assert violations("Transport", "from chatd.services.auth import AccountRow", "chatd") == []
    assert violations("Load", "from chatproto import frames", "chatload") == []


# ------------------------------------------------------------------ the client never imports chatd


def chatd_imports(source: str) -> list[str]:
    return sorted(i for i in _imports_in(source) if i == "chatd" or i.startswith("chatd."))


@pytest.mark.parametrize(
    "path", _files_of("SDK"), ids=lambda p: str(p.relative_to(ROOT / "clients"))
)
def test_chatclient_does_not_import_chatd(path: Path) -> None:
    assert chatd_imports(path.read_text("utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "import chatd",
        "from chatd.errors import ChatdError",
        "def f():\n    from chatd import cli",
        "import importlib\nimportlib.import_module('chatd.store.sqlite')",
    ],
)
def test_the_chatd_check_detects_an_import_of_the_server(source: str) -> None:
    assert chatd_imports(source) != []


# ------------------------------------------------------------------ chatd.core does no I/O

CORE_PARTS_ALLOWED = ("chatd.core", "chatd.errors", "chatd.clock")
"""What ``chatd.core`` may import of chatd: itself and leaves that do no I/O."""


def core_io_imports(source: str) -> list[str]:
    """The I/O libraries (``test_sans_io.FORBIDDEN``) and the chatd modules but the allowed
    leaves that a ``chatd.core`` source imports."""

    def allowed(name: str) -> bool:
        return any(name == a or name.startswith(a + ".") for a in CORE_PARTS_ALLOWED)

    return [
        name
        for name in sorted(_imports_in(source))
        if _is_forbidden(name) or (name.split(".")[0] == "chatd" and not allowed(name))
    ]


@pytest.mark.parametrize("path", _files_of("Core"), ids=lambda p: p.name)
def test_chatd_core_source_imports_nothing_that_does_io(path: Path) -> None:
    assert core_io_imports(path.read_text("utf-8")) == []


def test_importing_chatd_core_pulls_in_no_io_library() -> None:
    modules = [f"chatd.core.{p.stem}" for p in _files_of("Core") if p.stem != "__init__"]
    imported = _imported_after(modules)
    assert set(modules) <= imported
    assert sorted(m for m in imported if _is_forbidden(m)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "from websockets.asyncio.server import serve",
        "import sqlite3",
        "import asyncpg",
        "from redis import asyncio as aioredis",
        "import socket",
        "from chatd.store.base import AccountRow",
        "from chatd.hub import Hub",
    ],
)
def test_the_core_check_detects_io(source: str) -> None:
    assert core_io_imports(source) != []


# ------------------------------------------------------------------ the client core is sans-I/O


def test_the_client_core_is_among_the_modules_checked_for_io() -> None:
    """``test_sans_io`` walks every chatproto module: the client core (``chatproto.client``),
    which the SDK, chatload and the benchmarks drive, imports no asyncio, socket or clock."""
    from unit.test_sans_io import MODULES

    assert {"chatproto.client.protocol", "chatproto.client.outbox"} <= set(MODULES)
    imported = _imported_after(["chatproto.client"])
    assert sorted(m for m in imported if _is_forbidden(m)) == []


# ------------------------------------------------------------------ the SDK: no cycle, no reach

SDK_DIR = ROOT / "clients" / "chatclient"


def _sdk_module(path: Path) -> str:
    rel = path.relative_to(ROOT / "clients").with_suffix("").as_posix().replace("/", ".")
    return rel.removesuffix(".__init__")


SDK_MODULES = {_sdk_module(p): p for p in sorted(SDK_DIR.rglob("*.py"))}


def sdk_import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """module -> the SDK modules it imports (``TYPE_CHECKING`` imports included: a type is a
    dependency too), from ``sources`` (module -> its text)."""
    graph: dict[str, set[str]] = {}
    for module, source in sources.items():
        is_package = module in {m.rpartition(".")[0] for m in sources}
        package = module if is_package else module.rpartition(".")[0]
        targets = set()
        for name in imports(source, package):
            while name and name not in sources:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (empty: none), as the modules along it."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_sdk_modules_import_each_other_without_a_cycle() -> None:
    sources = {m: p.read_text("utf-8") for m, p in SDK_MODULES.items()}
    graph = sdk_import_graph(sources)
    assert graph["chatclient.client"] >= {"chatclient.connection", "chatclient.sending"}
    assert find_cycle(graph) == []


def test_the_cycle_check_finds_a_cycle_through_a_type_checking_import() -> None:
    sources = {
        "chatclient": "",
        "chatclient.client": "from chatclient.payments import Payments",
        "chatclient.payments": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from chatclient.client import Client"
        ),
    }
    assert find_cycle(sdk_import_graph(sources)) == [
        "chatclient.client",
        "chatclient.payments",
        "chatclient.client",
    ]


NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_make"})


def private_reach(source: str) -> list[str]:
    """The private names (``_x``, not dunders) that ``source`` reads off another object than
    ``self``/``cls`` and that it does not define itself: a call into another module's
    internals. (A private name a module defines may be used on other instances of its own
    classes.)"""
    tree = ast.parse(source)
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") or node.attr in NAMEDTUPLE_API or node.attr in defined:
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("module", sorted(SDK_MODULES))
def test_no_sdk_module_reaches_into_another_modules_private_names(module: str) -> None:
    assert private_reach(SDK_MODULES[module].read_text("utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "class Payments:\n    def f(self):\n        return self._c._tasks",
        "def f(client):\n    return client._call(1)",
        "async def f(c):\n    await c._emit(None)",
    ],
)
def test_the_private_reach_check_detects_a_call_into_another_module(source: str) -> None:
    assert private_reach(source) != []


def test_the_private_reach_check_allows_a_modules_own_private_names() -> None:
    source = "class Store:\n    def _load(self): ...\n    @classmethod\n    def open(cls):\n        s = cls()\n        s._load()"
    assert private_reach(source) == []
