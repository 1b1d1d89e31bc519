"""The hub and the metrics ask the broker and store interfaces (``statistics()``), never the
concrete backends: importing them loads neither redis nor asyncpg, and neither health nor
metrics imports a backend module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import chatd

CHATD = Path(chatd.__file__).parent
BACKENDS = (
    "chatd.broker.redis",
    "chatd.store.postgres",
    "chatd.store.sqlite",
    "chatd.store.writer",
)


def test_importing_the_hub_and_metrics_loads_no_database_or_redis_driver() -> None:
    code = (
        "import sys, chatd.hub, chatd.metrics, chatd.health, chatd.services.deps\n"
        "print(sorted(m for m in ('redis', 'asyncpg') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["health.py", "metrics.py"])
def test_health_and_metrics_import_no_backend(name: str) -> None:
    tree = ast.parse((CHATD / name).read_text("utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not imported & set(BACKENDS)
