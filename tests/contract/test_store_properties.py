"""Random sequences of appends, resends, conflicting resends and membership changes, checked
against a plain Python model after every step: seqs stay gapless and equal to the model's, and a
resend returns what the first send got.

Each example gets a fresh store on a fresh file, driven by its own uvloop event loop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import uvloop
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chatd.errors import ChatdError, Conflict, Forbidden, Invalid, NotFound
from chatd.store.base import Appended, DeviceRow, NewMessage
from chatd.store.sqlite import SQLiteStore

from .conftest import device_key

T = TypeVar("T")
NOW = 1_700_000_000_000
CMIDS = [f"m{i}" for i in range(6)]
BODIES = [b"a", b"b"]
CONVS = [0, 1, 2]  # two groups and a channel, all owned by account A
PEOPLE = ["A", "B", "C"]


@dataclass
class ModelConv:
    kind: str
    roles: dict[str, str]
    """Role of each member, by person."""
    log: list[tuple[int, str | None]] = field(default_factory=list)
    """``(device, cmid)`` of every message in seq order (seq = index + 1); system: (0, None)."""
    sent: dict[tuple[int, str], tuple[int, str, bytes]] = field(default_factory=dict)
    """``(device, cmid) -> (seq, kind, body)`` of every stored client message."""

    def system(self) -> int:
        self.log.append((0, None))
        return len(self.log)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.mkdtemp(prefix="chatd-prop-")
        self._runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        # NORMAL: no fsync per commit, which only matters for power loss, not for these properties
        self.store = SQLiteStore(
            str(Path(self._dir) / "prop.db"), synchronous="NORMAL", max_batch=64
        )
        self._run(self.store.open())
        self._writer = self._runner.get_loop().create_task(self.store.run())
        self.accounts: dict[str, int] = {}
        self.devices: list[tuple[str, DeviceRow]] = []
        for person in PEOPLE:
            account, device = self._run(
                self.store.create_account(person.lower(), person, "user", device_key(), "d", NOW)
            )
            self.accounts[person] = account.id
            self.devices.append((person, device))
        second = self._run(
            self.store.add_device(
                self.accounts["A"], device_key(), "d2", self.devices[0][1].id, NOW
            )
        )
        self.devices.append(("A", second))
        self.conv_ids: list[int] = []
        self.model: list[ModelConv] = []
        for kind in ("group", "group", "channel"):
            created = self._run(
                self.store.create_conversation(
                    kind, kind, self.accounts["A"], [self.accounts["B"]], NOW
                )
            )
            self.conv_ids.append(created.conv.id)
            m = ModelConv(kind, {"A": "owner", "B": "member"})
            m.system()
            self.model.append(m)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def teardown(self) -> None:
        async def close() -> None:
            await self.store.aclose()
            await self._writer

        try:
            self._run(close())
        finally:
            self._runner.close()
            shutil.rmtree(self._dir, ignore_errors=True)

    # ------------------------------------------------------------------ model of append

    def _expect_append(
        self, c: int, person: str, device: DeviceRow, cmid: str, body: bytes, kind: str
    ) -> tuple[type[ChatdError] | None, int, bool]:
        """What the store must answer: (error, seq, duplicate); applies it to the model."""
        m = self.model[c]
        role = m.roles.get(person)
        if role is None:
            return NotFound, 0, False
        if m.kind == "channel" and role == "member":
            return Forbidden, 0, False
        prior = m.sent.get((device.id, cmid))
        if prior is not None:
            seq, prior_kind, prior_body = prior
            if (prior_kind, prior_body) != (kind, body):
                return Conflict, 0, False
            return None, seq, True
        m.log.append((device.id, cmid))
        seq = len(m.log)
        m.sent[(device.id, cmid)] = (seq, kind, body)
        return None, seq, False

    def _check_append(
        self, outcome: Appended | BaseException, expected: tuple[type[ChatdError] | None, int, bool]
    ) -> None:
        error, seq, duplicate = expected
        if error is not None:
            assert isinstance(outcome, error), f"expected {error.__name__}, got {outcome!r}"
            return
        assert isinstance(outcome, Appended), f"expected a stored message, got {outcome!r}"
        assert (outcome.message.seq, outcome.duplicate) == (seq, duplicate)
        if duplicate:
            assert outcome.message.ts == NOW  # the first send's ts, not the resend's

    # ------------------------------------------------------------------ rules

    @rule(
        sends=st.lists(
            st.tuples(
                st.sampled_from(CONVS),
                st.integers(0, 3),
                st.sampled_from(CMIDS),
                st.sampled_from(BODIES),
                st.sampled_from(["text", "reaction"]),
            ),
            min_size=1,
            max_size=12,
        )
    )
    def append_batch(self, sends: list[tuple[int, int, str, bytes, str]]) -> None:
        """Appends, resends and conflicting resends queued together (one or more batches)."""
        expected = []
        messages = []
        for c, d, cmid, body, kind in sends:
            person, device = self.devices[d]
            # a resend carries a later ts; the store must keep the first one
            ts = NOW if (device.id, cmid) not in self.model[c].sent else NOW + 1
            expected.append(self._expect_append(c, person, device, cmid, body, kind))
            messages.append(
                NewMessage(self.conv_ids[c], device.account, device.id, cmid, kind, body, ts)
            )

        async def go() -> list[Appended | BaseException]:
            futures = [self.store.append(msg) for msg in messages]
            return await asyncio.gather(*futures, return_exceptions=True)

        for outcome, exp in zip(self._run(go()), expected, strict=True):
            self._check_append(outcome, exp)

    @rule(c=st.sampled_from(CONVS), person=st.sampled_from(["B", "C"]))
    def invite(self, c: int, person: str) -> None:
        m = self.model[c]
        call = self.store.invite(self.conv_ids[c], self.accounts["A"], self.accounts[person], NOW)
        if person in m.roles:
            self._expect_refused(call, Conflict)
            return
        change = self._run(call)
        m.roles[person] = "member"
        assert change.message.seq == m.system()

    @rule(c=st.sampled_from(CONVS), person=st.sampled_from(PEOPLE))
    def remove(self, c: int, person: str) -> None:
        m = self.model[c]
        call = self.store.remove(self.conv_ids[c], self.accounts["A"], self.accounts[person], NOW)
        if person == "A":
            self._expect_refused(call, Invalid)
        elif person not in m.roles:
            self._expect_refused(call, NotFound)
        else:
            change = self._run(call)
            del m.roles[person]
            assert change.message.seq == m.system()

    @rule(c=st.sampled_from(CONVS), person=st.sampled_from(["B", "C"]))
    def leave(self, c: int, person: str) -> None:
        m = self.model[c]
        call = self.store.leave(self.conv_ids[c], self.accounts[person], NOW)
        if person not in m.roles:
            self._expect_refused(call, NotFound)
            return
        change = self._run(call)
        del m.roles[person]
        assert change.message.seq == m.system()

    @rule(
        c=st.sampled_from(CONVS),
        actor=st.sampled_from(PEOPLE),
        person=st.sampled_from(["B", "C"]),
        role=st.sampled_from(["admin", "member"]),
    )
    def set_role(self, c: int, actor: str, person: str, role: str) -> None:
        m = self.model[c]
        call = self.store.set_role(
            self.conv_ids[c], self.accounts[actor], self.accounts[person], role, NOW
        )
        if actor not in m.roles or person not in m.roles:
            self._expect_refused(call, NotFound)
        elif m.roles[actor] != "owner":
            self._expect_refused(call, Forbidden)
        else:
            change = self._run(call)
            m.roles[person] = role
            assert change.message.seq == m.system()

    @rule(c=st.sampled_from(CONVS), actor=st.sampled_from(PEOPLE))
    def rename(self, c: int, actor: str) -> None:
        m = self.model[c]
        call = self.store.rename(self.conv_ids[c], self.accounts[actor], "t", NOW)
        role = m.roles.get(actor)
        if role is None:
            self._expect_refused(call, NotFound)
        elif role == "member":
            self._expect_refused(call, Forbidden)
        else:
            assert self._run(call).message.seq == m.system()

    def _expect_refused(self, call: Coroutine[Any, Any, Any], error: type[ChatdError]) -> None:
        try:
            result = self._run(call)
        except ChatdError as exc:
            assert isinstance(exc, error), f"expected {error.__name__}, got {exc!r}"
        else:
            raise AssertionError(f"expected {error.__name__}, got {result!r}")

    # ------------------------------------------------------------------ invariants

    @invariant()
    def seqs_are_gapless_and_match_the_model(self) -> None:
        for c, conv in enumerate(self.conv_ids):
            stored = self._run(self.store.messages(conv, 0, None, 10_000))
            expected = self.model[c].log
            assert [s.seq for s in stored] == list(range(1, len(expected) + 1))
            assert [(s.device, s.cmid) for s in stored] == expected
            for s in stored:
                if s.cmid is not None:
                    seq, kind, body = self.model[c].sent[(s.device, s.cmid)]
                    assert (s.seq, s.kind, s.body, s.ts) == (seq, kind, body, NOW)

    @invariant()
    def membership_matches_the_model(self) -> None:
        for c, conv in enumerate(self.conv_ids):
            for person, account in self.accounts.items():
                found = self._run(self.store.member_kind(conv, account))
                role = self.model[c].roles.get(person)
                assert found == (None if role is None else (self.model[c].kind, role))


StoreMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("STORE_PROP_EXAMPLES", "30")),
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreAgainstModel = StoreMachine.TestCase
