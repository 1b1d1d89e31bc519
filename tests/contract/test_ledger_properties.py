"""The ledger against a plain Python model, on every store backend: random mints, transfers
(fresh, retried, conflicting, overdrawn, expired, to and from non-members), red packets, claims,
time passing and sweeps. After every step the store must agree with the model, and its own
audit must hold: per currency all balances (issuance included) sum to zero, no non-issuance
balance is below zero, every posting has two entries that cancel out, escrow equals what open
packets have left, and each id was applied at most once (the receipts in the conversation are
exactly the model's postings, gapless).

Each example gets a fresh database (SQLite file, or a PostgreSQL database copied from the
migrated template), driven by its own uvloop event loop.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from chatproto import kinds
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

from chatd.core import ledger
from chatd.errors import ChatdError, Conflict, NotFound
from chatd.store.base import Posting

from .conftest import PostgresServer, device_key
from .storemachine import StoreMachine, postgres_opener, sqlite_opener
from .test_ledger import HOUR, NOW, packet, receipt_of, sign, transfer

T = TypeVar("T")
PEOPLE = ["A", "B", "C", "D"]  # D is not in the conversation
MEMBERS = {"A", "B", "C"}
CURRENCIES = ["USD", "JPY"]
IDS = [f"id{i}" for i in range(8)]  # few ids: reuse (retries and conflicts) is common


@dataclass
class ModelPacket:
    sender: str
    currency: str
    shares: list[int]
    expires_at: int
    claims: dict[str, int] = field(default_factory=dict)
    state: str = "open"

    @property
    def left(self) -> int:
        return sum(self.shares[len(self.claims) :])


class LedgerMachine(StoreMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = NOW
        self.ids: dict[str, int] = {}
        for person in PEOPLE:
            row, _ = self._run(
                self.store.create_account(
                    person.lower() * 3, person, "user", device_key(), "d", NOW
                )
            )
            self.ids[person] = row.id
        created = self._run(
            self.store.create_conversation(
                "group", "g", self.ids["A"], [self.ids["B"], self.ids["C"]], NOW
            )
        )
        self.conv = created.conv.id
        self.balances: dict[tuple[str, str], int] = {}
        self.issued: dict[str, int] = {}
        self.postings: dict[str, tuple[Any, ...]] = {}
        """id -> what it was first used for (the content a replay must match)."""
        self.first: dict[str, int] = {}
        """id -> seq of its receipt."""
        self.packets: dict[str, ModelPacket] = {}
        self.receipts = 0

    def _post(self, make: Callable[[], Awaitable[Posting]]) -> Posting | ChatdError:
        async def go() -> Posting | ChatdError:
            try:
                return await make()
            except ChatdError as exc:
                return exc

        return self._run(go())

    def _bal(self, person: str, currency: str) -> int:
        return self.balances.get((person, currency), 0)

    def _move(self, frm: str | None, to: str | None, amount: int, currency: str) -> None:
        if frm is not None:
            self.balances[(frm, currency)] = self._bal(frm, currency) - amount
        if to is not None:
            self.balances[(to, currency)] = self._bal(to, currency) + amount

    def _expect_new(self, result: Posting | ChatdError, key: str) -> None:
        assert isinstance(result, Posting) and not result.replay, result
        self.receipts += 1
        assert result.message.seq == self.receipts + 1  # gapless after "created"
        self.first[key] = result.message.seq

    # ------------------------------------------------------------------ rules

    @rule(
        person=st.sampled_from(PEOPLE),
        amount=st.integers(1, 1_000),
        cur=st.sampled_from(CURRENCIES),
    )
    def mint(self, person: str, amount: int, cur: str) -> None:
        self._run(self.store.mint(self.ids[person], amount, cur, self.now, "model"))
        self._move(None, person, amount, cur)
        self.issued[cur] = self.issued.get(cur, 0) + amount

    @rule(
        tid=st.sampled_from(IDS),
        payer=st.sampled_from(PEOPLE),
        payee=st.sampled_from(PEOPLE),
        amount=st.integers(1, 600),
        cur=st.sampled_from(CURRENCIES),
        ttl=st.sampled_from([0, HOUR]),
    )
    def pay(self, tid: str, payer: str, payee: str, amount: int, cur: str, ttl: int) -> None:
        if payer == payee:
            return  # refused before the store (INVALID)
        expires = self.now + ttl
        content = ("transfer", payer, payee, amount, cur, expires)
        t = transfer(
            tid,
            self.ids[payer],
            self.ids[payee],
            amount,
            self.conv,
            currency=cur,
            now=self.now,
            expires_at=expires,
        )
        result = self._post(lambda: self.store.post_transfer(t, sign))
        prior = self.postings.get(tid)
        if prior is not None and prior[1] == payer:  # the payer's own id: a retry, or a misuse
            if prior == content:
                assert isinstance(result, Posting) and result.replay, result
                assert result.message.seq == self.first[tid]
            else:
                assert isinstance(result, Conflict), result
            return
        if payer not in MEMBERS:  # SPEC 15.4: whether someone else used the id is not told
            assert isinstance(result, NotFound), result
        elif prior is not None:
            assert isinstance(result, Conflict), result
        elif payee not in MEMBERS:
            assert isinstance(result, ledger.NotMember), result
        elif self.now >= expires:
            assert isinstance(result, ledger.Expired), result
        elif self._bal(payer, cur) < amount:
            assert isinstance(result, ledger.InsufficientFunds), result
        else:
            self._expect_new(result, tid)
            r = receipt_of(result)  # type: ignore[arg-type]
            assert (r.ref, r.amount, r.currency) == (tid, amount, cur)
            self.postings[tid] = content
            self._move(payer, payee, amount, cur)

    @rule(
        pid=st.sampled_from(IDS),
        sender=st.sampled_from(PEOPLE),
        n=st.integers(1, 5),
        extra=st.integers(0, 300),
        cur=st.sampled_from(CURRENCIES),
        seed=st.integers(0, 2**32),
    )
    def red_packet(self, pid: str, sender: str, n: int, extra: int, cur: str, seed: int) -> None:
        total = n + extra
        shares = ledger.split_random(total, n, random.Random(seed).randrange)
        assert sum(shares) == total and min(shares) >= 1
        p = packet(pid, self.ids[sender], self.conv, tuple(shares), currency=cur, now=self.now)
        result = self._post(lambda: self.store.create_red_packet(p, sign))
        content = ("red_packet", sender, tuple(shares), cur, self.now)
        prior = self.postings.get(pid)
        if prior is not None and prior[1] == sender:  # the sender's own id
            if prior == content:
                assert isinstance(result, Posting) and result.replay, result
            else:
                assert isinstance(result, Conflict), result
            return
        if sender not in MEMBERS:  # whether someone else used the id is not told
            assert isinstance(result, NotFound), result
        elif prior is not None:
            assert isinstance(result, Conflict), result
        elif self._bal(sender, cur) < total:
            assert isinstance(result, ledger.InsufficientFunds), result
        else:
            self._expect_new(result, pid)
            self.postings[pid] = content
            self.packets[pid] = ModelPacket(sender, cur, shares, p.expires_at)
            self._move(sender, None, total, cur)

    @rule(pid=st.sampled_from(IDS), person=st.sampled_from(PEOPLE))
    def claim(self, pid: str, person: str) -> None:
        result = self._post(
            lambda: self.store.claim_red_packet(pid, self.ids[person], self.now, sign)
        )
        p = self.packets.get(pid)
        if p is None or person not in MEMBERS:
            assert isinstance(result, NotFound), result
        elif person in p.claims:
            assert isinstance(result, Posting) and result.replay, result
            assert receipt_of(result).amount == p.claims[person]
        elif p.state == "refunded" or self.now >= p.expires_at:
            assert isinstance(result, ledger.Expired), result
        elif len(p.claims) == len(p.shares):
            assert isinstance(result, ledger.Closed), result
        else:
            amount = p.shares[len(p.claims)]
            self._expect_new(result, f"claim:{pid}:{person}")
            assert receipt_of(result).amount == amount  # type: ignore[arg-type]
            p.claims[person] = amount
            self._move(None, person, amount, p.currency)

    @rule(ms=st.sampled_from([1, 60_000, HOUR // 2, HOUR, 2 * HOUR]))
    def tick(self, ms: int) -> None:
        self.now += ms

    @rule()
    def sweep(self) -> None:
        swept = self._run(self.store.sweep_payments(self.now, sign, 100))
        refunded = {receipt_of(s).ref: receipt_of(s).amount for s in swept}
        expected = {
            pid: p.left
            for pid, p in self.packets.items()
            if p.state == "open" and p.expires_at <= self.now and len(p.claims) < len(p.shares)
        }
        assert refunded == expected
        for s in swept:
            self._expect_new(s, f"refund:{receipt_of(s).ref}")
        for pid, amount in expected.items():
            p = self.packets[pid]
            p.state = "refunded"
            self._move(None, p.sender, amount, p.currency)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def ledger_agrees_with_the_model(self) -> None:
        audit = self._run(self.store.ledger_audit())
        assert audit.ok, audit
        for person in PEOPLE:
            held = dict(self._run(self.store.balances(self.ids[person])))
            for cur in CURRENCIES:
                assert held.get(cur, 0) == self._bal(person, cur), (person, cur)
                assert held.get(cur, 0) >= 0
        issuance = dict(self._run(self.store.balances(ledger.ISSUANCE)))
        escrow = dict(self._run(self.store.balances(ledger.ESCROW)))
        for cur in CURRENCIES:
            assert issuance.get(cur, 0) == -self.issued.get(cur, 0)
            assert escrow.get(cur, 0) == sum(
                p.left for p in self.packets.values() if p.state == "open" and p.currency == cur
            )
        stored = self._run(self.store.messages(self.conv, 0, None, 100_000))
        assert [m.seq for m in stored] == list(range(1, self.receipts + 2))
        assert all(m.kind == "payment.receipt" for m in stored[1:])
        refs = [
            (r.type, r.ref if r.type != "claim" else f"{r.ref}:{r.payee}")
            for r in (kinds.decode_content(m.kind, m.body) for m in stored[1:])
            if isinstance(r, kinds.PaymentReceipt)
        ]
        assert len(refs) == len(set(refs)) == self.receipts  # each id applied at most once


PROPERTY_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_the_sqlite_ledger_agrees_with_the_model() -> None:
    LedgerMachine.open_store = sqlite_opener("chatd-ledger-", "l.db")
    run_state_machine_as_test(LedgerMachine, settings=PROPERTY_SETTINGS)


def test_the_postgres_ledger_agrees_with_the_model(postgres_server: PostgresServer) -> None:
    LedgerMachine.open_store = postgres_opener(postgres_server)
    run_state_machine_as_test(LedgerMachine, settings=settings(PROPERTY_SETTINGS, max_examples=25))


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_random_splits_are_uniform_positive_and_exact(n: int) -> None:
    rng = random.Random(n)
    for total in (n, n + 1, 1_000, 10**12):
        shares = ledger.split_random(total, n, rng.randrange)
        assert len(shares) == n and sum(shares) == total and min(shares) >= 1
