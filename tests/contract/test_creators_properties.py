"""Creators' money against a plain Python model, on every store backend: random top-ups, tips
(fresh, retried, conflicting, overdrawn, on a deleted post), mandates (fresh, retried,
conflicting, a second live one, unaffordable), cancels, time passing and renewal sweeps in any
order with any balances. After every step the store agrees with the model and its audit holds:
balances sum to zero with issuance, none below zero, every tip and charge has exactly its
receipt, each tip id is applied once, each mandate's charges are periods 1 .. charged that never
overlap, a renewal is refused only when the wallet is short (never charged in part), and nothing
is charged after a cancel.

Each example gets a fresh database, driven by its own uvloop event loop (as
``test_ledger_properties``)."""

from __future__ import annotations

import itertools
from collections.abc import Coroutine
from typing import Any, TypeVar

from chatproto import frames as F
from chatproto import posts
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

from chatd.core import creators as rules
from chatd.core import ledger
from chatd.errors import ChatdError, Conflict, NotFound

from .conftest import PostgresServer, device_key
from .storemachine import StoreMachine, postgres_opener, sqlite_opener
from .test_creators import DAY, NOW, mandate, sign, tip

T = TypeVar("T")
FANS = ["A", "B"]
PRICE = 300
TIP_IDS = [f"t{i}" for i in range(6)]
MANDATE_IDS = [f"m{i}" for i in range(4)]
RENEWAL = rules.Renewal(grace_ms=2 * DAY, retry_ms=DAY // 2)
FAR = NOW + 10_000 * DAY
"""Intents signed to last: a retry after any number of ticks is the same intent."""


class CreatorMachine(StoreMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = NOW
        self.ids: dict[str, int] = {}
        for person in ["O", *FANS]:
            row, _ = self._run(
                self.store.create_account(
                    person.lower() * 3, person, "user", device_key(), "d", NOW
                )
            )
            self.ids[person] = row.id
        owner = self.ids["O"]
        self.channel = self._run(self.store.create_channel(owner, "news", "News", "", NOW)).id
        for seq in (1, 2):
            self._run(self.store.put_post(self._post(seq, 0, "text", b"\x81\xa4text\xa1x"), NOW))
        self._run(self.store.put_post(self._post(2, 1, posts.TOMBSTONE, b""), NOW))
        self._run(
            self.store.set_channel_price(
                self.channel, owner, rules.Price(PRICE, "USD", 86_400), NOW
            )
        )
        self.balances = {p: 0 for p in ["O", *FANS]}
        self.tips: dict[str, tuple[str, int, int]] = {}
        self.mandates: dict[str, tuple[str, int]] = {}
        self.cancelled: dict[str, int] = {}
        """mandate -> its number of charges when it was cancelled."""

    def _post(self, seq: int, ver: int, kind: str, content: bytes) -> F.Post:
        return F.Post(
            channel=self.channel if hasattr(self, "channel") else 1,
            seq=seq,
            ver=ver,
            ts=NOW,
            author=self.ids["O"],
            device=1,
            kind=kind,
            content=content,
            sig=bytes(64),
        )

    def _try(self, coro: Coroutine[Any, Any, T]) -> T | ChatdError:
        async def go() -> T | ChatdError:
            try:
                return await coro
            except ChatdError as exc:
                return exc

        return self._run(go())

    def _live(self, person: str) -> bool:
        mine = self._run(self.store.subscriptions(self.ids[person], 0, "", 100))
        return any(s.state in rules.LIVE for s in mine)

    # ------------------------------------------------------------------ rules

    @rule(person=st.sampled_from(FANS), amount=st.integers(1, 2_000))
    def top_up(self, person: str, amount: int) -> None:
        self._run(self.store.mint(self.ids[person], amount, "USD", self.now, "t"))
        self.balances[person] += amount

    @rule(
        person=st.sampled_from(FANS),
        tid=st.sampled_from(TIP_IDS),
        amount=st.integers(1, 500),
        post=st.sampled_from([1, 1, 1, 2]),
    )
    def tip(self, person: str, tid: str, amount: int, post: int) -> None:
        t = tip(
            tid,
            *(self.ids[person], self.ids["O"], self.channel, post, amount),
            now=self.now,
            expires_at=FAR,
        )
        got = self._try(self.store.post_tip(t, sign))
        first = self.tips.get(tid)
        if first is not None:
            if first == (person, amount, post):
                assert not isinstance(got, ChatdError) and got[1], got  # a replay: nothing moved
            else:
                assert isinstance(got, Conflict), got
            return
        if post == 2:
            assert isinstance(got, NotFound), got
        elif self.balances[person] < amount:
            assert isinstance(got, ledger.InsufficientFunds), got
        else:
            assert not isinstance(got, ChatdError) and not got[1], got
            self.tips[tid] = (person, amount, post)
            self.balances[person] -= amount
            self.balances["O"] += amount

    @rule(person=st.sampled_from(FANS), mid=st.sampled_from(MANDATE_IDS), periods=st.integers(1, 4))
    def subscribe(self, person: str, mid: str, periods: int) -> None:
        live = self._live(person)
        m = mandate(
            mid,
            *(self.ids[person], self.ids["O"], self.channel, PRICE, periods, self.now),
            expires_at=FAR,
        )
        got = self._try(self.store.subscribe(m, sign))
        first = self.mandates.get(mid)
        if first is not None:
            if first == (person, periods):
                assert not isinstance(got, ChatdError) and got.replay, got
            else:
                assert isinstance(got, Conflict), got
            return
        if live:
            assert isinstance(got, Conflict), got
        elif self.balances[person] < PRICE:
            assert isinstance(got, ledger.InsufficientFunds), got
        else:
            assert not isinstance(got, ChatdError) and not got.replay, got
            self.mandates[mid] = (person, periods)
            self.balances[person] -= PRICE
            self.balances["O"] += PRICE

    @rule(mid=st.sampled_from(MANDATE_IDS))
    def cancel(self, mid: str) -> None:
        first = self.mandates.get(mid)
        who = self.ids[first[0]] if first is not None else self.ids["A"]
        got = self._try(self.store.unsubscribe(mid, who, self.now))
        if first is None:
            assert isinstance(got, NotFound), got
        elif not isinstance(got, ChatdError):
            self.cancelled.setdefault(mid, got[0].charged)

    @rule(ms=st.sampled_from([1, 3_600_000, DAY // 2, DAY, 2 * DAY]))
    def tick(self, ms: int) -> None:
        self.now += ms

    @rule()
    def sweep(self) -> None:
        before = dict(self.balances)
        changed = self._run(self.store.charge_due(self.now, sign, RENEWAL, 100))
        for c in changed:
            s = c.subscription
            person = next(p for p in FANS if self.ids[p] == s.subscriber)
            if c.receipt is not None:
                assert c.receipt.amount == PRICE and c.receipt.n == s.charged
                self.balances[person] -= PRICE
                self.balances["O"] += PRICE
            elif s.state in ("past_due", "lapsed"):
                assert before[person] < PRICE  # refused only when short; nothing moved
            else:
                assert s.state == "completed" and s.charged == s.periods
        for person in FANS:
            assert self.balances[person] >= 0

    # ------------------------------------------------------------------ invariants

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        audit = self._run(self.store.ledger_audit())
        assert audit.ok, audit
        for person, expected in self.balances.items():
            held = dict(self._run(self.store.balances(self.ids[person]))).get("USD", 0)
            assert held == expected, (person, held, expected)
        owner = self.ids["O"]
        for mid, (_, periods) in self.mandates.items():
            got = self._run(self.store.creator_receipts(mid, owner, 0, 100))
            assert [r.n for r in got] == list(range(1, len(got) + 1)) and len(got) <= periods
            for a, b in itertools.pairwise(got):
                assert b.starts >= a.ends
            if mid in self.cancelled:
                assert len(got) == self.cancelled[mid]  # nothing charged after the cancel
        for tid in self.tips:
            assert len(self._run(self.store.creator_receipts(tid, owner, 0, 10))) == 1


PROPERTY_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_the_sqlite_creators_ledger_agrees_with_the_model() -> None:
    CreatorMachine.open_store = sqlite_opener("chatd-creators-", "c.db")
    run_state_machine_as_test(CreatorMachine, settings=PROPERTY_SETTINGS)


def test_the_postgres_creators_ledger_agrees_with_the_model(
    postgres_server: PostgresServer,
) -> None:
    CreatorMachine.open_store = postgres_opener(postgres_server)
    run_state_machine_as_test(CreatorMachine, settings=settings(PROPERTY_SETTINGS, max_examples=12))
