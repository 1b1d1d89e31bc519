"""The ledger in PostgreSQL, safe when several nodes post at once.

Same postings and refusals as ``ledger_sqlite``; what differs is how several writers stay
correct:

* Every posting runs inside the node's batch transaction, in its own savepoint (a nested
  ``transaction()``): a refusal, including the database's CHECK refusing an overdraft, rolls back
  that posting only.
* Locks are taken in one order everywhere: the conversation row first (it also orders the
  receipt's seq), then the request or red packet row, then the wallets in (account, currency)
  order. The idempotency look-up runs after the conversation lock, so a retry arriving through
  another node sees the first posting once it commits (READ COMMITTED: each statement sees what
  was committed before it started) and answers it as a replay.
* What the order cannot prevent (two batches on two nodes touching the same rows in different
  orders, two nodes inserting the same new id) ends in a deadlock, serialization or unique
  violation error: ``PostgresStore`` rolls the whole batch back and runs it again, and the re-run
  finds the winner's rows. Every function here may therefore run more than once; it keeps no
  state outside the database (receipts are signed deterministically from their fields).
* The sweeper reads the expired packets and requests, then takes each one's locks in the order
  above and re-checks its state: nodes sweeping together refund each packet once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import asyncpg

from chatd.core import ledger, rules
from chatd.errors import Conflict, NotFound
from chatd.store import ledger_common as common
from chatd.store.base import (
    EntryRow,
    LedgerAudit,
    NewRedPacket,
    NewRequest,
    NewTransfer,
    Posting,
    ReceiptSigner,
    StoredMessage,
)

T = TypeVar("T")
Conn = Any  # asyncpg.Connection


class PgTx(Protocol):
    """What the ledger needs from the writer's open batch (``postgres._Tx``)."""

    @property
    def db(self) -> Conn: ...
    async def lock_conv(self, conv: int) -> str | None: ...
    async def next_seq(self, conv: int) -> int: ...
    async def server_message(
        self, conv: int, now: int, kind: str, body: bytes
    ) -> StoredMessage: ...


async def _role(db: Conn, conv: int, account: int) -> str | None:
    role = await db.fetchval(
        "SELECT role FROM members WHERE conv_id=$1 AND account_id=$2", conv, account
    )
    return None if role is None else str(role)


async def _lock_poster(tx: PgTx, conv: int, account: int) -> None:
    """Lock ``conv``; ``account`` must be a member who may post there."""
    kind = await tx.lock_conv(conv)
    role = None if kind is None else await _role(tx.db, conv, account)
    if kind is None or role is None:
        raise NotFound("no such conversation")
    rules.check_send(kind, role)


async def _message(db: Conn, conv: int, seq: int) -> StoredMessage:
    r = await db.fetchrow(
        "SELECT ts, sender, device, cmid, kind, body FROM messages WHERE conv_id=$1 AND seq=$2",
        conv,
        seq,
    )
    return StoredMessage(conv, seq, int(r[0]), int(r[1]), int(r[2]), r[3], str(r[4]), bytes(r[5]))


async def _append_receipt(tx: PgTx, conv: int, now: int, body: bytes) -> StoredMessage:
    return await tx.server_message(conv, now, "payment.receipt", body)


async def _lock_wallets(db: Conn, currency: str, *accounts: int) -> None:
    """Make sure the wallets exist, then lock them in (account, currency) order."""
    ordered = sorted(set(accounts))
    await db.execute(
        "INSERT INTO wallets (account, currency) SELECT a, $2 FROM unnest($1::bigint[]) AS a"
        " ORDER BY a ON CONFLICT DO NOTHING",
        ordered,
        currency,
    )
    await db.execute(
        "SELECT 1 FROM wallets WHERE currency=$2 AND account = ANY($1::bigint[])"
        " ORDER BY account FOR UPDATE",
        ordered,
        currency,
    )


async def _record(
    db: Conn,
    transfer_id: str,
    type: str,
    debit: int,
    credit: int,
    amount: int,
    currency: str,
    *,
    conv: int | None,
    seq: int | None,
    intent_hash: bytes,
    now: int,
    request_id: str = "",
    note: str = "",
) -> None:
    """Move the money (wallets already locked) and write the posting and its two entries."""
    try:
        async with db.transaction():  # the CHECK's refusal must not abort the whole batch
            debit_after = await db.fetchval(
                "UPDATE wallets SET balance = balance - $1 WHERE account=$2 AND currency=$3"
                " RETURNING balance",
                amount,
                debit,
                currency,
            )
    except asyncpg.exceptions.CheckViolationError:
        raise ledger.InsufficientFunds(f"not enough {currency} for this payment") from None
    try:
        async with db.transaction():
            credit_after = await db.fetchval(
                "UPDATE wallets SET balance = balance + $1 WHERE account=$2 AND currency=$3"
                " RETURNING balance",
                amount,
                credit,
                currency,
            )
    except asyncpg.exceptions.NumericValueOutOfRangeError:
        raise ledger.InvalidAmount("the payee's wallet cannot hold this") from None
    await db.execute(
        "INSERT INTO transfers (id, type, debit, credit, amount, currency, conv, seq,"
        " intent_hash, request_id, posted_at, note) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
        transfer_id,
        type,
        debit,
        credit,
        amount,
        currency,
        conv,
        seq,
        intent_hash,
        request_id or None,
        now,
        note,
    )
    await db.executemany(
        "INSERT INTO entries (transfer_id, account, currency, amount, balance, posted_at)"
        " VALUES ($1,$2,$3,$4,$5,$6)",
        [
            (transfer_id, debit, currency, -amount, int(debit_after), now),
            (transfer_id, credit, currency, amount, int(credit_after), now),
        ],
    )


async def _count_daily(
    db: Conn, account: int, currency: str, amount: int, now: int, limit: int | None
) -> None:
    """Add ``amount`` to what ``account`` sent today and refuse it over ``limit``: one counter
    row (``daily_sent``), updated under the payer's wallet lock in the posting's savepoint, so
    a refusal rolls it back; O(1) where summing the day's entries grows with every payment."""
    sent = await db.fetchval(
        "INSERT INTO daily_sent (account, currency, day, sent) VALUES ($1,$2,$3,$4)"
        " ON CONFLICT (account, currency, day) DO UPDATE SET sent = daily_sent.sent + excluded.sent"
        " RETURNING sent",
        account,
        currency,
        ledger.day_start(now),
        amount,
    )
    ledger.check_daily(int(sent) - amount, amount, currency, limit)


async def _replay(
    db: Conn, transfer_id: str, type: str, fingerprint: bytes, owner: int
) -> Posting | None:
    """As in ``ledger_sqlite._replay``: ``owner``'s own use of the id only."""
    prior = await db.fetchrow(
        "SELECT type, intent_hash, conv, seq FROM transfers WHERE id=$1 AND debit=$2",
        transfer_id,
        owner,
    )
    if prior is None:
        return None
    if prior[0] != type or bytes(prior[1]) != fingerprint:
        raise Conflict(f"the id {transfer_id!r} was already used for another intent")
    return Posting(await _message(db, int(prior[2]), int(prior[3])), replay=True)


async def _unused(db: Conn, transfer_id: str) -> None:
    """``Conflict`` when another account used ``transfer_id`` (asked after membership)."""
    if await db.fetchval("SELECT 1 FROM transfers WHERE id=$1", transfer_id):
        raise Conflict(f"the id {transfer_id!r} was already used for another intent")


_REQUEST_COLS = (
    "conv, payee, payer, amount, currency, expires_at, state, seq, closed_by, closed_seq"
)


def _request_row(
    request_id: str, row: Any
) -> tuple[ledger.RequestState, int, int | None, int | None]:
    state = ledger.RequestState(
        request_id,
        int(row[0]),
        int(row[1]),
        int(row[2]),
        int(row[3]),
        str(row[4]),
        int(row[5]),
        str(row[6]),
    )
    return state, int(row[7]), row[8], row[9]


async def _packet(db: Conn, packet_id: str, *, lock: bool) -> ledger.PacketState | None:
    row = await db.fetchrow(
        "SELECT conv, sender, currency, shares, claimed, expires_at, state FROM red_packets"
        " WHERE id=$1" + (" FOR UPDATE" if lock else ""),
        packet_id,
    )
    if row is None:
        return None
    return common.packet_state(
        packet_id,
        int(row[0]),
        int(row[1]),
        str(row[2]),
        str(row[3]),
        int(row[4]),
        int(row[5]),
        str(row[6]),
    )


# --------------------------------------------------------------------------- postings


async def post_transfer(tx: PgTx, t: NewTransfer, sign: ReceiptSigner) -> Posting:
    db = tx.db
    async with db.transaction():
        await tx.lock_conv(t.conv)
        replay = await _replay(db, t.transfer_id, "transfer", t.intent_hash, t.payer)
        if replay is not None:
            return replay
        await _lock_poster(tx, t.conv, t.payer)
        await _unused(db, t.transfer_id)
        if await _role(db, t.conv, t.payee) is None:
            raise ledger.NotMember("the payee is not a member of this conversation")
        ledger.check_not_expired(t.intent_expires_at, t.now, "the intent")
        if t.request_id:
            row = await db.fetchrow(
                f"SELECT {_REQUEST_COLS} FROM pay_requests WHERE id=$1 FOR UPDATE", t.request_id
            )
            ledger.check_pays_request(
                None if row is None else _request_row(t.request_id, row)[0],
                t.conv,
                t.payer,
                t.payee,
                t.amount,
                t.currency,
                t.now,
            )
        await _lock_wallets(db, t.currency, t.payer, t.payee)
        await _count_daily(db, t.payer, t.currency, t.amount, t.now, t.day_limit)
        m = await _append_receipt(tx, t.conv, t.now, sign(common.transfer_receipt(t)))
        await _record(
            db,
            t.transfer_id,
            "transfer",
            t.payer,
            t.payee,
            t.amount,
            t.currency,
            conv=t.conv,
            seq=m.seq,
            intent_hash=t.intent_hash,
            now=t.now,
            request_id=t.request_id,
        )
        if t.request_id:
            await db.execute(
                "UPDATE pay_requests SET state='paid', transfer_id=$1, closed_by=$2,"
                " closed_at=$3, closed_seq=$4 WHERE id=$5 AND state='open'",
                t.transfer_id,
                t.payer,
                t.now,
                m.seq,
                t.request_id,
            )
        return Posting(m)


async def create_red_packet(tx: PgTx, p: NewRedPacket, sign: ReceiptSigner) -> Posting:
    db = tx.db
    async with db.transaction():
        await tx.lock_conv(p.conv)
        replay = await _replay(db, p.packet_id, "red_packet", p.intent_hash, p.sender)
        if replay is not None:
            return replay
        await _lock_poster(tx, p.conv, p.sender)
        await _unused(db, p.packet_id)
        ledger.check_not_expired(p.intent_expires_at, p.now, "the intent")
        total = sum(p.shares)
        await _lock_wallets(db, p.currency, p.sender, ledger.ESCROW)
        await _count_daily(db, p.sender, p.currency, total, p.now, p.day_limit)
        m = await _append_receipt(tx, p.conv, p.now, sign(common.red_packet_receipt(p)))
        await _record(
            db,
            p.packet_id,
            "red_packet",
            p.sender,
            ledger.ESCROW,
            total,
            p.currency,
            conv=p.conv,
            seq=m.seq,
            intent_hash=p.intent_hash,
            now=p.now,
        )
        await db.execute(
            "INSERT INTO red_packets (id, conv, sender, currency, total, shares, share_count,"
            " split, remaining, expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
            p.packet_id,
            p.conv,
            p.sender,
            p.currency,
            total,
            common.shares_text(p.shares),
            len(p.shares),
            p.split,
            total,
            p.expires_at,
        )
        return Posting(m)


async def claim_red_packet(
    tx: PgTx, packet_id: str, account: int, now: int, sign: ReceiptSigner
) -> Posting:
    db = tx.db
    async with db.transaction():
        conv = await db.fetchval("SELECT conv FROM red_packets WHERE id=$1", packet_id)
        if conv is None or await tx.lock_conv(int(conv)) is None:
            raise NotFound("no such red packet")
        if await _role(db, int(conv), account) is None:
            raise NotFound("no such red packet")
        p = await _packet(db, packet_id, lock=True)
        assert p is not None
        prior = await db.fetchrow(
            "SELECT t.conv, t.seq FROM red_packet_claims c JOIN transfers t"
            " ON t.id = c.transfer_id WHERE c.packet=$1 AND c.account=$2",
            packet_id,
            account,
        )
        if prior is not None:
            return Posting(await _message(db, int(prior[0]), int(prior[1])), replay=True)
        amount = ledger.next_share(p, now)
        n = p.claimed + 1
        await _lock_wallets(db, p.currency, ledger.ESCROW, account)
        m = await _append_receipt(
            tx, p.conv, now, sign(common.claim_receipt(p, account, amount, now))
        )
        tid = common.claim_id(packet_id, account)
        await _record(
            db,
            tid,
            "claim",
            ledger.ESCROW,
            account,
            amount,
            p.currency,
            conv=p.conv,
            seq=m.seq,
            intent_hash=b"",
            now=now,
        )
        await db.execute(
            "INSERT INTO red_packet_claims (packet, account, n, amount, transfer_id)"
            " VALUES ($1,$2,$3,$4,$5)",
            packet_id,
            account,
            n,
            amount,
            tid,
        )
        await db.execute(
            "UPDATE red_packets SET claimed=$1, remaining=remaining-$2,"
            " state=CASE WHEN $1=share_count THEN 'emptied' ELSE 'open' END WHERE id=$3",
            n,
            amount,
            packet_id,
        )
        return Posting(m)


async def open_request(tx: PgTx, r: NewRequest, sign: ReceiptSigner) -> Posting:
    db = tx.db
    async with db.transaction():
        await tx.lock_conv(r.conv)
        row = await db.fetchrow(
            f"SELECT {_REQUEST_COLS} FROM pay_requests WHERE id=$1", r.request_id
        )
        found = None if row is None else _request_row(r.request_id, row)
        if found is not None and found[0].payee == r.payee:  # the caller's own
            prior, seq, _, _ = found
            same = (
                prior.conv,
                prior.payee,
                prior.payer,
                prior.amount,
                prior.currency,
                prior.expires_at,
            ) == (r.conv, r.payee, r.payer, r.amount, r.currency, r.expires_at)
            if not same:
                raise Conflict(f"the request id {r.request_id!r} was already used")
            return Posting(await _message(db, prior.conv, seq), replay=True)
        await _lock_poster(tx, r.conv, r.payee)
        if found is not None:  # another account's id: told only to a member (no oracle)
            raise Conflict(f"the request id {r.request_id!r} was already used")
        if r.payer and await _role(db, r.conv, r.payer) is None:
            raise ledger.NotMember("the payer is not a member of this conversation")
        m = await _append_receipt(
            tx, r.conv, r.now, sign(common.request_receipt("request", r, r.payee, r.now))
        )
        await db.execute(
            "INSERT INTO pay_requests (id, conv, payee, payer, amount, currency, expires_at,"
            " created_at, seq) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
            r.request_id,
            r.conv,
            r.payee,
            r.payer,
            r.amount,
            r.currency,
            r.expires_at,
            r.now,
            m.seq,
        )
        return Posting(m)


async def close_request(
    tx: PgTx, request_id: str, actor: int, state: str, now: int, sign: ReceiptSigner
) -> Posting:
    db = tx.db
    async with db.transaction():
        conv = await db.fetchval("SELECT conv FROM pay_requests WHERE id=$1", request_id)
        if conv is None or await tx.lock_conv(int(conv)) is None:
            raise NotFound("no such request")
        if await _role(db, int(conv), actor) is None:
            raise NotFound("no such request")
        row = await db.fetchrow(
            f"SELECT {_REQUEST_COLS} FROM pay_requests WHERE id=$1 FOR UPDATE", request_id
        )
        r, _, closed_by, closed_seq = _request_row(request_id, row)
        if r.state == state and closed_by == actor and closed_seq is not None:
            return Posting(await _message(db, r.conv, int(closed_seq)), replay=True)
        ledger.check_close_request(r, actor, state, now)
        return await _close(tx, r, state, actor, now, sign)


async def _close(
    tx: PgTx, r: ledger.RequestState, state: str, actor: int, now: int, sign: ReceiptSigner
) -> Posting:
    type = common.closing_type(state)
    m = await _append_receipt(tx, r.conv, now, sign(common.request_receipt(type, r, actor, now)))
    await tx.db.execute(
        "UPDATE pay_requests SET state=$1, closed_by=$2, closed_at=$3, closed_seq=$4"
        " WHERE id=$5 AND state='open'",
        state,
        actor,
        now,
        m.seq,
        r.request_id,
    )
    return Posting(m)


async def sweep(tx: PgTx, now: int, sign: ReceiptSigner, limit: int) -> list[Posting]:
    """Refund expired red packets and expire requests, at most ``limit`` of each, each re-checked
    under its locks (another node may have swept it first)."""
    db = tx.db
    out = []
    for row in await db.fetch(
        "SELECT id, conv FROM red_packets WHERE state='open' AND expires_at<=$1"
        " ORDER BY expires_at LIMIT $2",
        now,
        limit,
    ):
        async with db.transaction():
            await tx.lock_conv(int(row[1]))
            p = await _packet(db, str(row[0]), lock=True)
            if p is None or p.state != "open":
                continue
            rest = sum(p.shares[p.claimed :])
            await _lock_wallets(db, p.currency, ledger.ESCROW, p.sender)
            m = await _append_receipt(tx, p.conv, now, sign(common.refund_receipt(p, rest, now)))
            await _record(
                db,
                common.refund_id(p.packet_id),
                "refund",
                ledger.ESCROW,
                p.sender,
                rest,
                p.currency,
                conv=p.conv,
                seq=m.seq,
                intent_hash=b"",
                now=now,
            )
            await db.execute(
                "UPDATE red_packets SET state='refunded', remaining=0 WHERE id=$1", p.packet_id
            )
            out.append(Posting(m))
    for row in await db.fetch(
        "SELECT id, conv FROM pay_requests WHERE state='open' AND expires_at<=$1"
        " ORDER BY expires_at LIMIT $2",
        now,
        limit,
    ):
        async with db.transaction():
            await tx.lock_conv(int(row[1]))
            found = await db.fetchrow(
                f"SELECT {_REQUEST_COLS} FROM pay_requests WHERE id=$1 FOR UPDATE", str(row[0])
            )
            r = _request_row(str(row[0]), found)[0]
            if r.state != "open":
                continue
            out.append(await _close(tx, r, "expired", 0, now, sign))
    return out


async def mint(db: Conn, account: int, amount: int, currency: str, now: int, note: str) -> str:
    """Issuance -> ``account`` inside the caller's transaction; no receipt message."""
    if not await db.fetchval("SELECT 1 FROM accounts WHERE id=$1", account):
        raise NotFound(f"no account {account}")
    transfer_id = f"mint:{uuid.uuid4().hex}"
    async with db.transaction():
        await _lock_wallets(db, currency, ledger.ISSUANCE, account)
        await _record(
            db,
            transfer_id,
            "mint",
            ledger.ISSUANCE,
            account,
            amount,
            currency,
            conv=None,
            seq=None,
            intent_hash=b"",
            now=now,
            note=note,
        )
    return transfer_id


# --------------------------------------------------------------------------- reads


async def balances(db: Conn, account: int) -> list[tuple[str, int]]:
    rows = await db.fetch(
        "SELECT currency, balance FROM wallets WHERE account=$1 ORDER BY currency", account
    )
    return [(str(c), int(b)) for c, b in rows]


async def wallet_entries(
    db: Conn, account: int, currency: str, before: int | None, limit: int
) -> list[EntryRow]:
    rows = await db.fetch(
        "SELECT e.id, e.transfer_id, t.type, e.currency, e.amount, e.balance,"
        " CASE WHEN e.amount < 0 THEN t.credit ELSE t.debit END, coalesce(t.conv, 0), e.posted_at"
        " FROM entries e JOIN transfers t ON t.id = e.transfer_id"
        " WHERE e.account=$1 AND ($2='' OR e.currency=$2) AND e.id<$3"
        " ORDER BY e.id DESC LIMIT $4",
        account,
        currency,
        2**62 if before is None else before,
        limit,
    )
    return [
        EntryRow(
            int(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            int(r[4]),
            int(r[5]),
            int(r[6]),
            int(r[7]),
            int(r[8]),
        )
        for r in rows
    ]


async def payment_key(db: Conn, seed: bytes) -> bytes:
    await db.execute(
        "INSERT INTO server_keys (name, seed) VALUES ('payments', $1) ON CONFLICT DO NOTHING",
        seed,
    )
    return bytes(await db.fetchval("SELECT seed FROM server_keys WHERE name='payments'"))


async def audit(db: Conn) -> LedgerAudit:
    async with db.transaction(isolation="repeatable_read", readonly=True):  # one snapshot
        sums = {
            str(c): int(s)
            for c, s in await db.fetch("SELECT currency, sum(balance) FROM wallets GROUP BY 1")
        }
        negative = [
            (int(a), str(c), int(b))
            for a, c, b in await db.fetch(
                "SELECT account, currency, balance FROM wallets WHERE balance < 0"
                " AND account <> $1",
                ledger.ISSUANCE,
            )
        ]
        unbalanced = [
            str(r[0])
            for r in await db.fetch(
                "SELECT t.id FROM transfers t LEFT JOIN entries e ON e.transfer_id = t.id"
                " GROUP BY t.id, t.amount HAVING count(e.id) <> 2"
                " OR coalesce(sum(e.amount), 1) <> 0"
                " OR min(e.amount) <> -t.amount OR max(e.amount) <> t.amount"
            )
        ]
        drift = [
            (int(a), str(c))
            for a, c in await db.fetch(
                "SELECT w.account, w.currency FROM wallets w WHERE w.balance <> (SELECT"
                " coalesce(sum(e.amount), 0) FROM entries e WHERE e.account = w.account"
                " AND e.currency = w.currency)"
            )
        ]
        escrow_drift = [
            str(r[0])
            for r in await db.fetch(
                "SELECT c FROM (SELECT currency AS c FROM wallets WHERE account=$1"
                " UNION SELECT currency FROM red_packets WHERE state='open') AS cs"
                " WHERE coalesce((SELECT balance FROM wallets WHERE account=$1 AND currency=c), 0)"
                " <> (SELECT coalesce(sum(remaining), 0) FROM red_packets WHERE state='open'"
                " AND currency=c)",
                ledger.ESCROW,
            )
        ]
        count = int(await db.fetchval("SELECT count(*) FROM transfers"))
    return LedgerAudit(sums, negative, unbalanced, drift, escrow_drift, count)


# --------------------------------------------------------------------------- the store's part


class PostgresLedger:
    """``LedgerStore`` for ``PostgresStore`` (a base class of it): each posting is one op of the
    node's group-commit writer; reads use the read pool."""

    def _submit(self, fn: Callable[[Any], Awaitable[T]]) -> asyncio.Future[T]:
        raise NotImplementedError

    async def _write(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _read_raw(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        raise NotImplementedError

    def post_transfer(self, t: NewTransfer, sign: ReceiptSigner) -> asyncio.Future[Posting]:
        return self._submit(lambda tx: post_transfer(tx, t, sign))

    def create_red_packet(self, p: NewRedPacket, sign: ReceiptSigner) -> asyncio.Future[Posting]:
        return self._submit(lambda tx: create_red_packet(tx, p, sign))

    def claim_red_packet(
        self, packet_id: str, account: int, now: int, sign: ReceiptSigner
    ) -> asyncio.Future[Posting]:
        return self._submit(lambda tx: claim_red_packet(tx, packet_id, account, now, sign))

    def open_request(self, r: NewRequest, sign: ReceiptSigner) -> asyncio.Future[Posting]:
        return self._submit(lambda tx: open_request(tx, r, sign))

    def close_request(
        self, request_id: str, actor: int, state: str, now: int, sign: ReceiptSigner
    ) -> asyncio.Future[Posting]:
        return self._submit(lambda tx: close_request(tx, request_id, actor, state, now, sign))

    async def sweep_payments(self, now: int, sign: ReceiptSigner, limit: int) -> list[Posting]:
        return await self._write(lambda tx: sweep(tx, now, sign, limit))

    async def mint(self, account: int, amount: int, currency: str, now: int, note: str) -> str:
        return await self._write(lambda tx: mint(tx.db, account, amount, currency, now, note))

    async def balances(self, account: int) -> list[tuple[str, int]]:
        return await self._read_raw(lambda db: balances(db, account))

    async def wallet_entries(
        self, account: int, currency: str, before: int | None, limit: int
    ) -> list[EntryRow]:
        return await self._read_raw(lambda db: wallet_entries(db, account, currency, before, limit))

    async def payment_key(self, seed: bytes) -> bytes:
        return await self._write(lambda tx: payment_key(tx.db, seed))

    async def ledger_audit(self) -> LedgerAudit:
        return await self._read_raw(audit)
