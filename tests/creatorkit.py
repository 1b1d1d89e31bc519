"""Helpers for tests of creators' money (SPEC.md 15.12-15.14) that speak raw frames
(``testkit.Raw``): a server on either database with its clients and a wallet topped up, a public
channel with a post, signed tips and mandates, and a clock tests move forward to make
subscription periods fall due."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from chatproto import creators, kinds, posts
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey
from conftest import RunningServer, make_settings, run_server
from paykit import Clients, mint, new_id, now_ms, signed_frame
from serverkit import FAST
from testkit import Raw

from chatd.store import ledger
from chatd.store.postgres import PostgresSql


class MovableClock:
    """The server's clock (``chatd.clock.Clock``), real time plus an offset a test moves."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def monotonic(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        self.offset_ms += int(seconds * 1000)


@contextlib.asynccontextmanager
async def money_server(
    tmp_path: Path, db: str, clock: MovableClock | None = None, **sections: dict[str, Any]
) -> AsyncIterator[tuple[RunningServer, Clients]]:
    """A server on ``db`` (SQLite path or PostgreSQL DSN) with limits no test reaches and the
    payments sweep held off (tests run it by moving ``clock``), and the ``Clients`` that the test
    opens on it (closed on the way out)."""
    settings = make_settings(
        tmp_path,
        store={"db": db},
        limits=FAST,
        payments={"sweep_interval": 600.0},
        **sections,
    )
    async with run_server(settings, clock) as s:
        c = Clients(s.url)
        try:
            yield s, c
        finally:
            await c.aclose()


async def top_up(db: str, account: int, amount: int) -> None:
    """Mint ``amount`` USD cents to ``account``'s wallet, on either database."""
    if db.startswith("postgres"):
        conn = await asyncpg.connect(db)
        try:
            await ledger.mint(PostgresSql(conn), account, amount, "USD", 1, "test")
        finally:
            await conn.close()
    else:
        await mint(Path(db), account, amount)


async def usd(r: Raw) -> int:
    """``r``'s USD balance, as the account reads it."""
    got = await r.request(F.GetBalance(id=r.next_id(), currency="USD"), F.Balances)
    return sum(b.amount for b in got.balances)


async def channel(owner: Raw, handle: str) -> int:
    got = await owner.request(
        F.CreateChannel(id=owner.next_id(), handle=handle, title=handle.title()),
        F.ChannelAnswer,
    )
    return int(got.info.channel)


async def publish(
    owner: Raw, ch: int, seq: int, text: str = "hello", *, paid: bool = False, ver: int = 0
) -> F.Post:
    """Publish (signed by the owner's device) post ``seq`` of ``ch``; the post as stored."""
    body = F.Post(
        channel=ch,
        seq=seq,
        ver=ver,
        ts=now_ms(),
        author=owner.account,
        device=owner.device,
        kind="text" if text else posts.TOMBSTONE,
        content=_text(text) if text else b"",
        sig=bytes(64),
        paid=paid,
    )
    sig = posts.sign_post(owner.key, owner.challenge.server, body)
    await owner.request(
        F.Publish(
            id=owner.next_id(),
            channel=ch,
            seq=seq,
            ver=ver,
            ts=body.ts,
            kind=body.kind,
            content=body.content,
            sig=sig,
            paid=paid,
        ),
        F.Published,
    )
    return msgspec.structs.replace(body, sig=sig)


def _text(text: str) -> bytes:
    return kinds.encode_content(kinds.Text(text=text))[1]


def tip_intent(
    payer: Raw,
    owner: int,
    ch: int,
    post: int,
    amount: int,
    *,
    tid: str | None = None,
    currency: str = "USD",
    ttl_ms: int = 600_000,
    clock_ms: int | None = None,
) -> F.TipIntent:
    return F.TipIntent(
        tip_id=tid or new_id("tip"),
        payer=payer.account,
        payee=owner,
        channel=ch,
        post=post,
        amount=amount,
        currency=currency,
        expires_at=(clock_ms or now_ms()) + ttl_ms,
    )


def tip_frame(
    r: Raw, i: F.TipIntent, *, key: SigningKey | None = None, device: int | None = None
) -> F.Tip:
    return signed_frame(F.Tip, r, i, creators.sign_intent, key=key, device=device)


def mandate(
    payer: Raw,
    owner: int,
    ch: int,
    amount: int,
    period: int,
    periods: int,
    *,
    mid: str | None = None,
    currency: str = "USD",
    clock_ms: int | None = None,
) -> F.MandateIntent:
    return F.MandateIntent(
        mandate_id=mid or new_id("m"),
        payer=payer.account,
        payee=owner,
        channel=ch,
        amount=amount,
        currency=currency,
        period=period,
        periods=periods,
        expires_at=(clock_ms or now_ms()) + 600_000,
    )


def subscribe_frame(r: Raw, i: F.MandateIntent, *, key: SigningKey | None = None) -> F.Subscribe:
    return signed_frame(F.Subscribe, r, i, creators.sign_intent, key=key)


async def set_price(owner: Raw, ch: int, amount: int, period: int, currency: str = "USD") -> None:
    await owner.request(
        F.SetChannelPrice(
            id=owner.next_id(), channel=ch, amount=amount, currency=currency, period=period
        ),
        F.ChannelPrice,
    )


def charges(db: Path, mandate_id: str) -> list[int]:
    """The periods charged to ``mandate_id``, as the database holds them."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT n FROM subscription_charges WHERE mandate=? ORDER BY n", (mandate_id,)
        )
        return [int(r[0]) for r in rows]
    finally:
        conn.close()
