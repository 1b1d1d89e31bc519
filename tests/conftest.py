"""Shared fixtures: uvloop for every async test, and a real chatd on an ephemeral port; the
watchdog that ends every process the run started (``procguard``); the per-test time limits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import hypothesis
import procguard
import pytest
import pytest_timeout  # type: ignore[import-untyped]
import uvloop

from chatd.app import App
from chatd.clock import Clock
from chatd.settings import Settings, load_settings

SLOW_TEST_TIMEOUT = 600
"""Seconds a test under tests/cluster/ or tests/faults/ may take (they start and kill real
processes, several times); every other test has the suite's ``timeout`` from pyproject.toml."""

_SLOW_DIRS = ("cluster", "faults")

PROPERTY_TEST_TIMEOUT = 300
"""Seconds a stateful property test (``*_properties.py``: hundreds of generated runs against a
real store, PostgreSQL included) may take."""


OPEN_CONSENT = {"add_me": "everyone", "presence": "everyone", "last_seen": "everyone"}
"""The privacy defaults of the servers tests start (SPEC.md 18.1), unless a test gives its own.

chatd's defaults are ``contacts`` (a stranger's direct conversation is a request, a stranger's
group an invitation). The tests written before consent put accounts that never met into
conversations and watch each other's presence; they test messaging, not consent, so their
servers run as an operator who sets ``[consent] add_me = "everyone"`` would. tests/security/
starts its servers with the real defaults and holds the consent rules."""


hypothesis.settings.register_profile("chatd", deadline=None)
hypothesis.settings.load_profile("chatd")
"""No per-example deadline (hypothesis's default is 200 ms): how long one example takes says how
busy the machine is, not whether the code is right, and the per-test limits above bound a hang."""


def pytest_configure(config: pytest.Config) -> None:
    procguard.start_watchdog()
    for key, value in OPEN_CONSENT.items():  # servers started as processes inherit it
        os.environ.setdefault(f"CHATD_CONSENT__{key.upper()}", value)


def pytest_unconfigure(config: pytest.Config) -> None:
    procguard.stop_watchdog()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        if item.path.parent.name in _SLOW_DIRS:
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT))
        elif item.path.name.endswith("_properties.py"):
            item.add_marker(pytest.mark.timeout(PROPERTY_TEST_TIMEOUT))


@pytest.hookimpl(trylast=True)
def pytest_exception_interact(node: pytest.Item | pytest.Collector) -> None:
    """Re-arm the test's time limit after an error is reported.

    pytest-timeout stops a test's timer in this hook (it is also where ``--pdb`` starts), so the
    teardown of a test whose setup or body failed ran without a limit: that is where
    test_bot_privacy's two-node fixture hung for good in ``asyncio.Runner.close`` after an error
    in its setup. Armed again here (the full limit), pytest-timeout's own wrapper still cancels it
    when the test's teardown ends."""
    if not isinstance(node, pytest.Item) or node.config.getoption("usepdb"):
        return
    settings = pytest_timeout._get_item_settings(node)  # the test's limit, marker included
    if settings.timeout:
        node.config.hook.pytest_timeout_set_timer(item=node, settings=settings)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every fixture has been torn down: a process of this run still alive is a leak."""
    left = procguard.leftovers()
    deadline = time.monotonic() + 5
    while left and time.monotonic() < deadline:  # one being killed right now is not a leak
        time.sleep(0.1)
        left = procguard.leftovers()
    if left:
        procguard.kill([pid for pid, _ in left])
        lines = "\n".join(f"  {pid} {cmd}" for pid, cmd in left)
        print(f"\nleftover processes after the run (a fixture did not stop them):\n{lines}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_asyncio_loop_factories(
    config: Any, item: Any
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"uvloop": uvloop.new_event_loop}


class RunningServer:
    def __init__(self, app: App) -> None:
        self.app = app

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.app.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.app.port}"


def make_settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    flags: dict[str, dict[str, Any]] = {
        "server": {"port": 0},
        "store": {"db": str(tmp_path / "chatd.db")},
        "consent": dict(OPEN_CONSENT),
    }
    for name, values in sections.items():
        flags.setdefault(name, {}).update(values)
    return load_settings(None, environ={}, flags=flags)


@contextlib.asynccontextmanager
async def run_server(
    settings: Settings, clock: Clock | None = None
) -> AsyncIterator[RunningServer]:
    app = App(settings, clock)
    task = asyncio.create_task(app.run())
    started = asyncio.create_task(app.started.wait())
    done, _ = await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        started.cancel()
        task.result()
    try:
        yield RunningServer(app)
    finally:
        app.stop()
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with run_server(make_settings(tmp_path)) as s:
        yield s


__all__ = ["RunningServer", "make_settings", "replace", "run_server"]
