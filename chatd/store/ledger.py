"""The ledger (``Ledger``): wallets, postings, red packets and pay requests, written once
for both databases. The money rules are ``core.ledger``; here they run inside the posting's
own transaction.

* Every posting runs inside the writer's batch transaction, in its own savepoint: a refusal
  (including the database's CHECK refusing an overdraft) undoes that posting only, and the rest
  of the batch commits. Its receipt's seq is given back with it.
* Locks are taken in one order everywhere (PostgreSQL, several nodes): the conversation row
  first (it also orders the receipt's seq), then the request or red packet row, then the
  wallets in (account, currency) order. The idempotency look-up runs after the conversation
  lock, so a retry arriving through another node sees the first posting and answers it as a
  replay. What the order cannot prevent (two nodes inserting one new id) fails the batch with
  a unique violation; it runs again and finds the winner's rows. So every script may run more
  than once, and keeps no state outside the database (receipts are signed deterministically).
* The sweeper re-checks each expired packet or request under its locks: however many nodes
  sweep, each is refunded or expired once.

``mint`` and the reads also serve the operator's ``chatd wallet`` (``chatd.wallet_cli``) on its
own connection, inside its transaction: ``SQLiteSql`` (driven by ``sql.run_sync``) or
``PostgresSql`` over it.
"""

from __future__ import annotations

import uuid
from typing import Any

from chatproto import kinds

from chatd.core import ledger, rules
from chatd.errors import Conflict, NotFound
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
from chatd.store.conversations import lock_conv, member_role, role_in
from chatd.store.messages import message_at, server_message
from chatd.store.sql import (
    CheckViolation,
    OutOfRange,
    Row,
    Scripts,
    Sql,
    Tx,
    queues,
    reads,
    server_key,
    writes,
)

# --------------------------------------------------------------------------- receipts


def claim_id(packet_id: str, account: int) -> str:
    """The transfer id of ``account``'s claim of a packet (one per account: the id says so)."""
    return f"claim:{packet_id}:{account}"


def refund_id(packet_id: str) -> str:
    return f"refund:{packet_id}"


_HEAD = ("type", "ref", "payer", "payee", "amount", "currency", "conv")


def _receipt_of(*head: Any, **more: Any) -> kinds.PaymentReceipt:
    """An unsigned receipt (signed once its fields are final); ``head``: the ``_HEAD`` fields."""
    return kinds.PaymentReceipt(**dict(zip(_HEAD, head, strict=True)), sig=b"", **more)


def transfer_receipt(t: NewTransfer) -> kinds.PaymentReceipt:
    return _receipt_of(
        *("transfer", t.transfer_id, t.payer, t.payee, t.amount, t.currency, t.conv),
        request_id=t.request_id,
        intent_hash=t.intent_hash,
        posted_at=t.now,
        actor=t.payer,
        memo_hash=t.memo_hash,
        intent_expires_at=t.intent_expires_at,
        device=t.device,
        payer_sig=t.payer_sig,
    )


def red_packet_receipt(p: NewRedPacket) -> kinds.PaymentReceipt:
    escrow = ledger.wire_account(ledger.ESCROW)
    return _receipt_of(
        *("red_packet", p.packet_id, p.sender, escrow, sum(p.shares), p.currency, p.conv),
        intent_hash=p.intent_hash,
        posted_at=p.now,
        expires_at=p.expires_at,
        shares=len(p.shares),
        actor=p.sender,
        memo_hash=p.memo_hash,
        intent_expires_at=p.intent_expires_at,
        split=p.split,
        device=p.device,
        payer_sig=p.payer_sig,
    )


def claim_receipt(
    p: ledger.PacketState, account: int, amount: int, now: int
) -> kinds.PaymentReceipt:
    escrow = ledger.wire_account(ledger.ESCROW)
    return _receipt_of(
        *("claim", p.packet_id, escrow, account, amount, p.currency, p.conv),
        posted_at=now,
        shares=p.claimed + 1,
        actor=account,
    )


def refund_receipt(p: ledger.PacketState, amount: int, now: int) -> kinds.PaymentReceipt:
    escrow = ledger.wire_account(ledger.ESCROW)
    return _receipt_of(
        *("refund", p.packet_id, escrow, p.sender, amount, p.currency, p.conv),
        posted_at=now,
        shares=len(p.shares) - p.claimed,
    )


def request_receipt(
    type: kinds.ReceiptType, r: NewRequest | ledger.RequestState, actor: int, now: int
) -> kinds.PaymentReceipt:
    """``request`` (opened), ``declined``, ``cancelled`` or ``expired``."""
    return _receipt_of(
        *(type, r.request_id, r.payer, r.payee, r.amount, r.currency, r.conv),
        posted_at=now,
        expires_at=r.expires_at,
        actor=actor,
    )


# --------------------------------------------------------------------------- steps


async def _lock_poster(db: Sql, conv: int, account: int) -> None:
    """Lock ``conv``; ``account`` must be a member (else ``NotFound``, as for no conversation)
    who may post there (channels: owner and admins)."""
    rules.check_send(*await role_in(db, conv, account))


async def lock_wallets(db: Sql, currency: str, *accounts: int) -> None:
    """Make sure the wallets exist, then lock them in (account, currency) order."""
    ordered = sorted(set(accounts))
    await db.executemany(
        "INSERT INTO wallets (account, currency) VALUES (?,?) ON CONFLICT DO NOTHING",
        [(a, currency) for a in ordered],
    )
    await db.execute(
        "SELECT 1 FROM wallets WHERE currency=? AND account = ANY(?) ORDER BY account FOR UPDATE",
        *(currency, ordered),
    )


async def _receipt(tx: Tx, r: kinds.PaymentReceipt, sign: ReceiptSigner) -> StoredMessage:
    return await server_message(tx, r.conv, r.posted_at, "payment.receipt", sign(r))


async def _posting(
    tx: Tx,
    transfer_id: str,
    r: kinds.PaymentReceipt,
    sign: ReceiptSigner,
    debit: int,
    credit: int,
    *,
    daily: bool = False,
    limit: int | None = None,
    request_id: str = "",
) -> StoredMessage:
    """Lock the two wallets, count the debit in the payer's ``daily`` sum (under ``limit``),
    append the signed receipt ``r`` and record the posting it describes under its seq."""
    await lock_wallets(tx.sql, r.currency, debit, credit)
    if daily:
        await count_daily(tx.sql, debit, r.currency, r.amount, r.posted_at, limit)
    m = await _receipt(tx, r, sign)
    posting = (transfer_id, r.type, debit, credit, r.amount, r.currency, r.conv, m.seq)
    await record_posting(tx.sql, posting, r.posted_at, r.intent_hash, r.request_id)
    return m


async def record_posting(
    db: Sql, posting: tuple[Any, ...], now: int, intent_hash: bytes, request_id: str, note: str = ""
) -> None:
    """Move the money (wallets locked) and write ``posting`` (``transfer_id, type, debit,
    credit, amount, currency, conv, seq``) and its two entries, with their balances."""
    transfer_id, _, debit, credit, amount, currency, _, _ = posting
    move = (
        "UPDATE wallets SET balance = balance + ? WHERE account=? AND currency=? RETURNING balance"
    )
    try:
        debit_after = int(await db.fetchval(move, -amount, debit, currency))
    except CheckViolation:  # the database refuses an overdraft
        raise ledger.InsufficientFunds(f"not enough {currency} for this payment") from None
    except OutOfRange:
        raise ledger.InvalidAmount("the wallet cannot hold this") from None
    try:
        credit_after = int(await db.fetchval(move, amount, credit, currency))
    except (CheckViolation, OutOfRange):
        raise ledger.InvalidAmount("the payee's wallet cannot hold this") from None
    await db.execute(
        "INSERT INTO transfers (id, type, debit, credit, amount, currency, conv, seq,"
        " intent_hash, request_id, posted_at, note) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        *posting,
        *(intent_hash, request_id or None, now, note),
    )
    await db.executemany(
        "INSERT INTO entries (transfer_id, account, currency, amount, balance, posted_at)"
        " VALUES (?,?,?,?,?,?)",
        [
            (transfer_id, debit, currency, -amount, debit_after, now),
            (transfer_id, credit, currency, amount, credit_after, now),
        ],
    )


async def count_daily(
    db: Sql, account: int, currency: str, amount: int, now: int, limit: int | None
) -> None:
    """Add ``amount`` to what ``account`` sent today (one counter row, under the payer's wallet
    lock, undone with the posting) and refuse it over ``limit`` (``OverLimit``)."""
    sent = await db.fetchval(
        "INSERT INTO daily_sent (account, currency, day, sent) VALUES (?,?,?,?)"
        " ON CONFLICT (account, currency, day) DO UPDATE SET sent = daily_sent.sent + excluded.sent"
        " RETURNING sent",
        *(account, currency, ledger.day_start(now), amount),
    )
    ledger.check_daily(int(sent) - amount, amount, currency, limit)


async def _replay(
    db: Sql, transfer_id: str, type: str, fingerprint: bytes, owner: int
) -> Posting | None:
    """The first posting of ``transfer_id`` by ``owner`` when it has the same content;
    ``Conflict`` when ``owner`` used the id for something else; None when ``owner`` never used
    it (``_claim_id`` then tells, after the membership check, whether someone else did)."""
    prior = await db.fetchrow(
        "SELECT type, intent_hash, conv, seq FROM transfers WHERE id=? AND debit=?",
        *(transfer_id, owner),
    )
    if prior is None:
        return None
    if prior[0] != type or bytes(prior[1]) != fingerprint:
        raise Conflict(f"the id {transfer_id!r} was already used for another intent")
    return Posting(await message_at(db, int(prior[2]), int(prior[3])), replay=True)


async def _claim_id(
    db: Sql, conv: int, transfer_id: str, type: str, fingerprint: bytes, poster: int
) -> Posting | None:
    """The opening steps of every new posting by ``poster`` in ``conv``: lock the conversation;
    the first posting when this is the poster's own retry (``_replay``); then ``NotFound`` unless
    the poster may post there, and ``Conflict`` when another account used the id. The id is
    looked up only after the membership check: a stranger gets ``NotFound`` whether it exists
    or not. None: go on and post."""
    await lock_conv(db, conv)
    replay = await _replay(db, transfer_id, type, fingerprint, poster)
    if replay is not None:
        return replay
    await _lock_poster(db, conv, poster)
    if await db.fetchval("SELECT 1 FROM transfers WHERE id=?", transfer_id):
        raise Conflict(f"the id {transfer_id!r} was already used for another intent")
    return None


async def _lock_member(db: Sql, table: str, id: str, account: int, what: str) -> None:
    """Lock the conversation of ``table``'s row ``id``, of which ``account`` must be a member:
    ``NotFound`` alike for no such row and for a stranger (an id is no oracle)."""
    conv = await db.fetchval(f"SELECT conv FROM {table} WHERE id=?", id)
    if conv is None or await lock_conv(db, int(conv)) is None:
        raise NotFound(f"no such {what}")
    if await member_role(db, int(conv), account) is None:
        raise NotFound(f"no such {what}")


Request = tuple[ledger.RequestState, int, int | None, int | None]
"""A stored request, its opening seq, and who closed it with which receipt's seq."""


async def _request(db: Sql, request_id: str, lock: str = "") -> Request | None:
    row = await db.fetchrow(
        "SELECT conv, payee, payer, amount, currency, expires_at, state, seq, closed_by,"
        " closed_seq FROM pay_requests WHERE id=?" + lock,
        request_id,
    )
    if row is None:
        return None
    state = ledger.RequestState(
        request_id,
        *(int(row[0]), int(row[1]), int(row[2]), int(row[3])),
        str(row[4]),
        int(row[5]),
        str(row[6]),
    )
    return state, int(row[7]), row[8], row[9]


async def _packet(db: Sql, packet_id: str) -> ledger.PacketState | None:
    """The red packet, locked."""
    r = await db.fetchrow(
        "SELECT conv, sender, currency, shares, claimed, expires_at, state FROM red_packets"
        " WHERE id=? FOR UPDATE",
        packet_id,
    )
    if r is None:
        return None
    shares = tuple(int(x) for x in str(r[3]).split(","))
    return ledger.PacketState(
        packet_id, int(r[0]), int(r[1]), str(r[2]), shares, int(r[4]), int(r[5]), str(r[6])
    )


def _row(r: Row) -> EntryRow:
    return EntryRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), *(int(x) for x in r[4:]))


# --------------------------------------------------------------------------- postings


async def post_transfer(tx: Tx, t: NewTransfer, sign: ReceiptSigner) -> Posting:
    """Payer -> payee (both members of ``conv``); pays ``t.request_id`` if set. Refusals:
    ``NotFound`` (payer not a member), ``NotMember`` (payee), ``Expired``, ``OverLimit``
    (daily), ``InsufficientFunds`` (the database's CHECK), ``Conflict``, request rules."""
    db = tx.sql
    async with db.savepoint():
        replay = await _claim_id(db, t.conv, t.transfer_id, "transfer", t.intent_hash, t.payer)
        if replay is not None:
            return replay
        if await member_role(db, t.conv, t.payee) is None:
            raise ledger.NotMember("the payee is not a member of this conversation")
        ledger.check_not_expired(t.intent_expires_at, t.now, "the intent")
        if t.request_id:
            found = await _request(db, t.request_id, " FOR UPDATE")
            ledger.check_pays_request(
                None if found is None else found[0],
                *(t.conv, t.payer, t.payee, t.amount, t.currency, t.now),
            )
        receipt = transfer_receipt(t)
        m = await _posting(
            *(tx, t.transfer_id, receipt, sign, t.payer, t.payee), daily=True, limit=t.day_limit
        )
        if t.request_id:
            await db.execute(
                "UPDATE pay_requests SET state='paid', transfer_id=?, closed_by=?,"
                " closed_at=?, closed_seq=? WHERE id=? AND state='open'",
                *(t.transfer_id, t.payer, t.now, m.seq, t.request_id),
            )
        return Posting(m)


async def create_red_packet(tx: Tx, p: NewRedPacket, sign: ReceiptSigner) -> Posting:
    """Sender -> escrow, and the packet opens with its precomputed shares. Refusals:
    ``NotFound`` (sender not a member), ``Expired``, ``OverLimit``, ``InsufficientFunds``,
    ``Conflict``."""
    db = tx.sql
    async with db.savepoint():
        replay = await _claim_id(db, p.conv, p.packet_id, "red_packet", p.intent_hash, p.sender)
        if replay is not None:
            return replay
        ledger.check_not_expired(p.intent_expires_at, p.now, "the intent")
        total = sum(p.shares)
        receipt = red_packet_receipt(p)
        m = await _posting(
            *(tx, p.packet_id, receipt, sign, p.sender, ledger.ESCROW),
            daily=True,
            limit=p.day_limit,
        )
        await db.execute(
            "INSERT INTO red_packets (id, conv, sender, currency, total, shares, share_count,"
            " split, remaining, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            *(p.packet_id, p.conv, p.sender, p.currency, total),
            *(",".join(str(x) for x in p.shares), len(p.shares), p.split, total, p.expires_at),
        )
        return Posting(m)


async def claim_red_packet(
    tx: Tx, packet_id: str, account: int, now: int, sign: ReceiptSigner
) -> Posting:
    """Escrow -> ``account``: the next share, once per account (again: the same claim).
    ``NotFound`` (no such packet, or ``account`` not a member), the packet rules
    (``core.ledger.next_share``: emptied, expired)."""
    db = tx.sql
    async with db.savepoint():
        await _lock_member(db, "red_packets", packet_id, account, "red packet")
        p = await _packet(db, packet_id)
        assert p is not None
        prior = await db.fetchrow(
            "SELECT t.conv, t.seq FROM red_packet_claims c JOIN transfers t"
            " ON t.id = c.transfer_id WHERE c.packet=? AND c.account=?",
            *(packet_id, account),
        )
        if prior is not None:
            return Posting(await message_at(db, int(prior[0]), int(prior[1])), replay=True)
        amount = ledger.next_share(p, now)
        n = p.claimed + 1
        tid = claim_id(packet_id, account)
        receipt = claim_receipt(p, account, amount, now)
        m = await _posting(tx, tid, receipt, sign, ledger.ESCROW, account)
        await db.execute(
            "INSERT INTO red_packet_claims (packet, account, n, amount, transfer_id)"
            " VALUES (?,?,?,?,?)",
            *(packet_id, account, n, amount, tid),
        )
        claimed = await db.execute(
            "UPDATE red_packets SET claimed=?, remaining=remaining-?,"
            " state=CASE WHEN ?=share_count THEN 'emptied' ELSE 'open' END"
            " WHERE id=? AND claimed=? AND state='open'",
            *(n, amount, n, packet_id, p.claimed),
        )
        assert claimed == 1, "the packet changed under its lock"
        return Posting(m)


async def open_request(tx: Tx, r: NewRequest, sign: ReceiptSigner) -> Posting:
    """Payee ``r.payee`` asks to be paid. Refusals: ``NotFound`` (payee not a member),
    ``NotMember`` (a named payer), ``Forbidden`` (may not post there), ``Conflict``."""
    db = tx.sql
    async with db.savepoint():
        await lock_conv(db, r.conv)
        found = await _request(db, r.request_id)
        if found is not None and found[0].payee == r.payee:  # the caller's own: replay or CONFLICT
            prior, seq, _, _ = found
            same = (prior.conv, prior.payee, prior.payer, prior.amount, prior.currency) == (
                *(r.conv, r.payee, r.payer, r.amount, r.currency),
            ) and prior.expires_at == r.expires_at
            if not same:
                raise Conflict(f"the request id {r.request_id!r} was already used")
            return Posting(await message_at(db, prior.conv, seq), replay=True)
        await _lock_poster(db, r.conv, r.payee)
        if found is not None:  # another account's id: told only to a member (no oracle)
            raise Conflict(f"the request id {r.request_id!r} was already used")
        if r.payer and await member_role(db, r.conv, r.payer) is None:
            raise ledger.NotMember("the payer is not a member of this conversation")
        m = await _receipt(tx, request_receipt("request", r, r.payee, r.now), sign)
        await db.execute(
            "INSERT INTO pay_requests (id, conv, payee, payer, amount, currency, expires_at,"
            " created_at, seq) VALUES (?,?,?,?,?,?,?,?,?)",
            *(r.request_id, r.conv, r.payee, r.payer, r.amount, r.currency, r.expires_at),
            *(r.now, m.seq),
        )
        return Posting(m)


async def close_request(
    tx: Tx, request_id: str, actor: int, state: str, now: int, sign: ReceiptSigner
) -> Posting:
    """``state``: ``declined`` (by the payer) or ``cancelled`` (by the payee); settled once
    (again by the same actor: the same posting). ``NotFound`` (no such request, or
    ``actor`` not a member), the request rules (``core.ledger.check_close_request``)."""
    db = tx.sql
    async with db.savepoint():
        await _lock_member(db, "pay_requests", request_id, actor, "request")
        found = await _request(db, request_id, " FOR UPDATE")
        assert found is not None
        r, _, closed_by, closed_seq = found
        if r.state == state and closed_by == actor and closed_seq is not None:
            return Posting(await message_at(db, r.conv, int(closed_seq)), replay=True)
        ledger.check_close_request(r, actor, state, now)
        return await _close(tx, r, state, actor, now, sign)


async def _close(
    tx: Tx, r: ledger.RequestState, state: str, actor: int, now: int, sign: ReceiptSigner
) -> Posting:
    m = await _receipt(tx, request_receipt(ledger.closing_type(state), r, actor, now), sign)
    closed = await tx.sql.execute(
        "UPDATE pay_requests SET state=?, closed_by=?, closed_at=?, closed_seq=?"
        " WHERE id=? AND state='open'",
        *(state, actor, now, m.seq, r.request_id),
    )
    assert closed == 1, "the request changed under its lock"
    return Posting(m)


async def sweep(tx: Tx, now: int, sign: ReceiptSigner, limit: int) -> list[Posting]:
    """Refund the unclaimed rest of red packets expired by ``now`` to their senders and mark
    expired requests, at most ``limit`` of each, each with its receipt. Each is re-checked
    under its locks (another node may have swept it first), so a packet is refunded once
    however many sweepers (nodes) run."""
    db = tx.sql
    out = []
    for packet_id, conv in await db.fetch(
        "SELECT id, conv FROM red_packets WHERE state='open' AND expires_at<=?"
        " ORDER BY expires_at LIMIT ?",
        *(now, limit),
    ):
        async with db.savepoint():
            await lock_conv(db, int(conv))
            p = await _packet(db, str(packet_id))
            if p is None or p.state != "open":
                continue
            rest = sum(p.shares[p.claimed :])
            receipt = refund_receipt(p, rest, now)
            m = await _posting(tx, refund_id(p.packet_id), receipt, sign, ledger.ESCROW, p.sender)
            await db.execute(
                "UPDATE red_packets SET state='refunded', remaining=0 WHERE id=?", p.packet_id
            )
            out.append(Posting(m))
    for request_id, conv in await db.fetch(
        "SELECT id, conv FROM pay_requests WHERE state='open' AND expires_at<=?"
        " ORDER BY expires_at LIMIT ?",
        *(now, limit),
    ):
        async with db.savepoint():
            await lock_conv(db, int(conv))
            found = await _request(db, str(request_id), " FOR UPDATE")
            if found is not None and found[0].state == "open":
                out.append(await _close(tx, found[0], "expired", 0, now, sign))
    return out


async def mint(db: Sql, account: int, amount: int, currency: str, now: int, note: str) -> str:
    """Issuance -> ``account`` (an operator top-up, no receipt message) inside the caller's
    transaction; the new transfer's id. ``NotFound`` for no such account."""
    if not await db.fetchval("SELECT 1 FROM accounts WHERE id=?", account):
        raise NotFound(f"no account {account}")
    transfer_id = f"mint:{uuid.uuid4().hex}"
    async with db.savepoint():
        await lock_wallets(db, currency, ledger.ISSUANCE, account)
        posting = (transfer_id, "mint", ledger.ISSUANCE, account, amount, currency, None, None)
        await record_posting(db, posting, now, b"", "", note)
    return transfer_id


# --------------------------------------------------------------------------- reads


async def balances(db: Sql, account: int) -> list[tuple[str, int]]:
    """``(currency, balance)`` of the account's wallets, ascending by currency."""
    rows = await db.fetch(
        "SELECT currency, balance FROM wallets WHERE account=? ORDER BY currency", account
    )
    return [(str(c), int(b)) for c, b in rows]


async def wallet_entries(
    db: Sql, account: int, currency: str, before: int | None, limit: int
) -> list[EntryRow]:
    """Entries of ``account`` (one currency, or all with ""), newest first, below entry
    ``before``, at most ``limit``."""
    rows = await db.fetch(
        "SELECT e.id, e.transfer_id, t.type, e.currency, e.amount, e.balance,"
        " CASE WHEN e.amount < 0 THEN t.credit ELSE t.debit END, coalesce(t.conv, 0), e.posted_at"
        " FROM entries e JOIN transfers t ON t.id = e.transfer_id"
        " WHERE e.account=? AND (?='' OR e.currency=?) AND e.id<?"
        " ORDER BY e.id DESC LIMIT ?",
        *(account, currency, currency, 2**62 if before is None else before, limit),
    )
    return [_row(r) for r in rows]


async def audit(db: Sql) -> LedgerAudit:
    """The ledger's invariants, read in one snapshot (``LedgerAudit.ok`` when they hold)."""
    async with db.snapshot():
        sums = {
            str(c): int(s)
            for c, s in await db.fetch(
                "SELECT currency, sum(balance) FROM wallets GROUP BY currency"
            )
        }
        negative = [
            (int(a), str(c), int(b))
            for a, c, b in await db.fetch(
                "SELECT account, currency, balance FROM wallets WHERE balance < 0 AND account <> ?",
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
                "SELECT c FROM (SELECT currency AS c FROM wallets WHERE account=?"
                " UNION SELECT currency FROM red_packets WHERE state='open') AS cs"
                " WHERE coalesce((SELECT balance FROM wallets WHERE account=? AND currency=c), 0)"
                " <> (SELECT coalesce(sum(remaining), 0) FROM red_packets WHERE state='open'"
                " AND currency=c)",
                *(ledger.ESCROW, ledger.ESCROW),
            )
        ]
        count = int(await db.fetchval("SELECT count(*) FROM transfers"))
        unreceipted, charge_drift = await _creators_audit(db)
    return LedgerAudit(
        sums, negative, unbalanced, drift, escrow_drift, count, unreceipted, charge_drift
    )


async def _creators_audit(db: Sql) -> tuple[list[str], list[str]]:
    """The creators' part of the ledger audit (inside its snapshot): postings without their
    matching receipt (or the reverse), and mandates whose charges are not exactly periods
    1 .. ``charged`` (never more than ``periods``)."""
    unreceipted = [
        str(r[0])
        for r in await db.fetch(
            "SELECT t.id FROM transfers t LEFT JOIN creator_receipts c ON c.transfer_id = t.id"
            " WHERE t.type IN ('tip', 'charge') AND (c.transfer_id IS NULL OR c.type <> t.type"
            " OR c.payer <> t.debit OR c.payee <> t.credit OR c.amount <> t.amount"
            " OR c.currency <> t.currency)"
            " UNION ALL SELECT c.transfer_id FROM creator_receipts c LEFT JOIN transfers t"
            " ON t.id = c.transfer_id WHERE t.id IS NULL"
        )
    ]
    drift = [
        str(r[0])
        for r in await db.fetch(
            "SELECT s.mandate_id FROM subscriptions s LEFT JOIN subscription_charges c"
            " ON c.mandate = s.mandate_id GROUP BY s.mandate_id, s.charged, s.periods"
            " HAVING count(c.n) <> s.charged OR coalesce(max(c.n), 0) <> s.charged"
            " OR s.charged > s.periods"
        )
    ]
    return unreceipted, drift


# --------------------------------------------------------------------------- the store's part


async def _mint(tx: Tx, account: int, amount: int, currency: str, now: int, note: str) -> str:
    """Issuance -> ``account`` (an operator top-up); the new transfer's id. ``NotFound``
    for no account, ``InvalidAmount`` when the wallet cannot hold it."""
    return await mint(tx.sql, account, amount, currency, now, note)


async def payment_key(tx: Tx, seed: bytes) -> bytes:
    """The server's payment signing seed, stored once: the first caller's ``seed`` wins and
    every node (and restart) gets it back."""
    return await server_key(tx, "payments", seed)


class Ledger(Scripts):
    """Wallets, a double-entry ledger, red packets and pay requests.

    Every posting debits one account and credits another by the same amount, writes its two
    append-only entries, and appends its signed receipt to the conversation's sequence, all in
    ONE transaction (the group-commit batch): a posting is never half applied, and no receipt
    exists without its money movement or the reverse. Each returns a future like ``append``;
    refusals are the ``chatd.core.ledger`` errors (and ``NotFound``, ``Conflict``, ...), and a
    refused posting changes nothing. Ids are idempotency keys: the same id with the same content
    resolves to the first ``Posting`` (``replay``); with other content, ``Conflict``. Reads use
    a read connection."""

    post_transfer = queues(post_transfer)
    create_red_packet = queues(create_red_packet)
    claim_red_packet = queues(claim_red_packet)
    open_request = queues(open_request)
    close_request = queues(close_request)
    sweep_payments = writes(sweep)
    mint = writes(_mint)
    balances = reads(balances)
    wallet_entries = reads(wallet_entries)
    payment_key = writes(payment_key)
    ledger_audit = reads(audit)
