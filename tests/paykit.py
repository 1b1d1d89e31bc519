"""Payment helpers for tests that speak raw frames (``testkit.Raw``): signed intents, operator
top-ups on the server's database, the ledger audit, and the receipts stored in a conversation."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from chatproto import frames as F
from chatproto import kinds, payments
from chatproto.e2e.primitives import SigningKey
from testkit import Raw

from chatd.store import ledger
from chatd.store.base import LedgerAudit
from chatd.store.sql import run_sync
from chatd.store.sqlite import SQLiteSql
from chatd.wallet_cli import mint_to

_ids = itertools.count(1)


def new_id(prefix: str = "t") -> str:
    return f"{prefix}{next(_ids)}_{time.monotonic_ns() % 10**9}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def intent(
    payer: Raw,
    payee: int,
    amount: int,
    conv: int,
    *,
    tid: str | None = None,
    currency: str = "USD",
    ttl_ms: int = 600_000,
    request_id: str = "",
    memo_hash: bytes = payments.NO_MEMO,
) -> F.TransferIntent:
    return F.TransferIntent(
        transfer_id=tid or new_id(),
        payer=payer.account,
        payee=payee,
        amount=amount,
        currency=currency,
        conv=conv,
        memo_hash=memo_hash,
        expires_at=now_ms() + ttl_ms,
        request_id=request_id,
    )


SignedFrameT = TypeVar("SignedFrameT", F.Pay, F.SendRedPacket, F.Tip, F.Subscribe)


def signed_frame(
    frame: type[SignedFrameT],
    r: Raw,
    i: Any,
    sign: Callable[[SigningKey, str, Any], bytes],
    *,
    key: SigningKey | None = None,
    device: int | None = None,
) -> SignedFrameT:
    """``frame`` carrying intent ``i`` as ``r`` sends it: signed with ``sign`` for ``r``'s server
    by ``r``'s device key, unless a test forges it with another ``key`` or ``device``."""
    return frame(
        id=r.next_id(),
        intent=i,
        device=r.device if device is None else device,
        sig=sign(key or r.key, r.challenge.server, i),
    )


def pay_frame(
    r: Raw, i: F.TransferIntent, *, key: SigningKey | None = None, device: int | None = None
) -> F.Pay:
    return signed_frame(F.Pay, r, i, payments.sign_intent, key=key, device=device)


def packet_frame(
    r: Raw,
    conv: int,
    total: int,
    shares: int,
    *,
    pid: str | None = None,
    currency: str = "USD",
    split: str = "random",
) -> F.SendRedPacket:
    i = F.RedPacketIntent(
        packet_id=pid or new_id("p"),
        payer=r.account,
        conv=conv,
        total=total,
        currency=currency,
        shares=shares,
        split="equal" if split == "equal" else "random",
        memo_hash=payments.NO_MEMO,
        expires_at=now_ms() + 600_000,
    )
    return signed_frame(F.SendRedPacket, r, i, payments.sign_intent)


async def mint(db: Path, account: int, amount: int, currency: str = "USD") -> None:
    """An operator top-up on the running server's SQLite database (``chatd wallet mint``)."""
    await asyncio.to_thread(mint_to, str(db), str(account), amount, currency, "test")


def audit(db: Path) -> LedgerAudit:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return run_sync(ledger.audit(SQLiteSql(conn)))
    finally:
        conn.close()


def balances(db: Path, account: int) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(run_sync(ledger.balances(SQLiteSql(conn), account)))
    finally:
        conn.close()


async def group(owner: Raw, *members: Raw, kind: str = "group") -> int:
    reply = await owner.request(
        F.CreateConv(
            id=owner.next_id(), kind=kind, title="pay", members=[m.account for m in members]
        ),
        F.Conv,
    )
    return int(reply.info.conv)


class Clients:
    """Raw connections a test opens; ``aclose`` closes them all (a fixture's teardown)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.open: list[Raw] = []

    async def connect(self) -> Raw:
        r = await Raw.open(self.url)
        self.open.append(r)
        return r

    async def registered(self, handle: str) -> Raw:
        r = await self.connect()
        await r.register(handle)
        return r

    async def aclose(self) -> None:
        """Drop every connection (abort: a client that stopped reading deliveries would wait for
        the closing handshake until its close timeout)."""
        for r in self.open:
            r.ws.transport.abort()
        await asyncio.gather(*(r.ws.wait_closed() for r in self.open), return_exceptions=True)


async def stored_receipts(r: Raw, conv: int) -> list[tuple[int, kinds.PaymentReceipt]]:
    """Every ``payment.receipt`` stored in ``conv`` (read with ``fetch``), with its seq."""
    out = []
    after = 0
    while True:
        page = await r.request(
            F.Fetch(id=r.next_id(), conv=conv, after=after, limit=500), F.Messages
        )
        for m in page.messages:
            if m.kind == "payment.receipt":
                content = kinds.decode_content(m.kind, m.body)
                assert isinstance(content, kinds.PaymentReceipt)
                out.append((m.seq, content))
        if not page.more:
            return out
        after = page.messages[-1].seq


SignedT = TypeVar("SignedT", F.Pay, F.Tip)


async def resend(
    url: str, payer: Raw, frames: list[SignedT], links: list[Raw]
) -> list[tuple[SignedT, F.ServerFrame]]:
    """Send ``frames`` (``payer``'s signed pays or tips) again, after a restart, on a new
    connection logged in as ``payer``'s device: the same intents and signatures under new request
    ids, all sent before any answer is read. Each frame with its answer; the connection is added
    to ``links`` for the caller to close."""
    link = await Raw.open(url)
    links.append(link)
    await link.login(payer.device, payer.key)
    again = [msgspec.structs.replace(f, id=link.next_id()) for f in frames]
    return list(zip(again, await pipelined(link, again), strict=True))


async def pipelined(r: Raw, frames: list[Any]) -> list[F.ServerFrame]:
    """Send every frame of ``frames`` (requests with an ``id``) before reading any answer, as a
    client racing itself would; their answers in the order of ``frames``."""
    for f in frames:
        await r.send_frame(f)
    return [await r._reply(f.id, timeout=30) for f in frames]


def codes(answers: list[F.ServerFrame]) -> set[int]:
    """The error codes among ``answers``, with -1 standing for any answer that is not an error."""
    return {a.code if isinstance(a, F.Error) else -1 for a in answers}


def receipt(posted: F.Posted) -> kinds.PaymentReceipt:
    content = kinds.decode_content("payment.receipt", posted.body)
    assert isinstance(content, kinds.PaymentReceipt)
    return content
