"""``loadtest/bench_cluster.py`` records the commit interval its nodes really ran with."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from chatd.settings import StoreSettings

SCRIPT = Path(__file__).resolve().parents[2] / "loadtest" / "bench_cluster.py"


def _bench_cluster() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cluster", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_cluster", module)
    spec.loader.exec_module(module)
    return module


def test_commit_interval_recorded_is_the_one_the_nodes_use() -> None:
    bench = _bench_cluster()
    assert bench.commit_interval(None) == StoreSettings().commit_interval  # chatd's default
    assert bench.commit_interval(0.0) == 0.0  # no gathering, not the default
    assert bench.commit_interval(0.008) == 0.008
