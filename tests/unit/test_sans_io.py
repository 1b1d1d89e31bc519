"""chatproto is sans-I/O: importing it pulls in no event loop, network or database library."""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "protocol"
PACKAGE_DIR = PROTOCOL_DIR / "chatproto"

FORBIDDEN = (
    "asyncio",
    "websockets",
    "redis",
    "aiosqlite",
    "asyncpg",
    "uvloop",
    "socket",  # not "_socket": typing_extensions imports it to borrow a capsule type, no I/O
    "ssl",
    "selectors",
    "sqlite3",
    "aiohttp",
    "httpx",
    "requests",
    "urllib3",
    "trio",
    "anyio",
    "http.client",
    "urllib.request",
)


def _modules() -> list[str]:
    names = ["chatproto"]
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="chatproto."):
        names.append(info.name)
    return sorted(names)


MODULES = _modules()


def _is_forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def _imported_after(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        "before = set(sys.modules)\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROTOCOL_DIR), *sys.path])}
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return set(json.loads(out.stdout))


def test_the_package_has_the_modules_the_spec_names() -> None:
    for name in ("chatproto.codec", "chatproto.frames", "chatproto.kinds", "chatproto.auth"):
        assert name in MODULES
    assert "chatproto.e2e.primitives" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_importing_a_chatproto_module_imports_no_io_library(module: str) -> None:
    imported = _imported_after([module])
    assert module in imported or module == "chatproto"
    assert sorted(m for m in imported if _is_forbidden(m)) == []


def test_importing_all_of_chatproto_together_imports_no_io_library() -> None:
    imported = _imported_after(MODULES)
    assert set(MODULES) <= imported
    assert sorted(m for m in imported if _is_forbidden(m)) == []


def test_the_subprocess_check_detects_an_io_import() -> None:
    """The check above can fail: importing asyncio is seen."""
    imported = _imported_after(["asyncio"])
    assert any(_is_forbidden(m) for m in imported)


def _imports_in(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


SOURCES = sorted(PACKAGE_DIR.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_chatproto_source_does_not_import_io_libraries(path: Path) -> None:
    imports = _imports_in(path.read_text(encoding="utf-8"))
    assert sorted(i for i in imports if _is_forbidden(i)) == []


def test_only_e2e_primitives_imports_cryptography() -> None:
    users = {
        str(p.relative_to(PACKAGE_DIR))
        for p in SOURCES
        if any(i.split(".")[0] == "cryptography" for i in _imports_in(p.read_text("utf-8")))
    }
    assert users == {os.path.join("e2e", "primitives.py")}


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import os, socket",
        "from websockets.asyncio.client import connect",
        "from redis import asyncio as aioredis",
        "import importlib\nimportlib.import_module('aiosqlite')",
        "def f():\n    import uvloop",
    ],
)
def test_the_source_check_detects_io_imports(source: str) -> None:
    assert any(_is_forbidden(i) for i in _imports_in(source))
