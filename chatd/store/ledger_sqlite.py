"""The ledger in SQLite: every posting as one savepoint inside the writer's batch transaction.

Each function runs on the store's single writer (``SQLiteStore._apply``), inside the batch's
``BEGIN IMMEDIATE`` transaction, so nothing else writes in between: the idempotency look-up,
the checks, the money movement and the receipt message all see and make one consistent state.
Each posting's writes sit inside its own SAVEPOINT: a refusal (including the database's own
``CHECK`` refusing an overdraft) rolls back exactly that posting and the rest of the batch
commits. The receipt's seq comes from the writer's allocator and is given back if the posting
does not complete, so seqs stay gapless.

The operator commands (``chatd wallet``) call ``mint`` and the read functions on their own
connection: a mint touches only ledger tables, never messages, so it is safe next to a running
server (SQLite serialises the two writers; the server's seq cache is not involved).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

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


class SeqTx(Protocol):
    """What the ledger needs from the writer's open batch (``sqlite._Tx``)."""

    @property
    def db(self) -> sqlite3.Connection: ...
    def take_seq(self, conv: int) -> int: ...
    def undo_seq(self, conv: int, seq: int) -> None: ...
    def insert_message(self, m: StoredMessage, *, if_new: bool = False) -> bool: ...


@contextlib.contextmanager
def _savepoint(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("SAVEPOINT posting")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK TO posting")
        db.execute("RELEASE posting")
        raise
    db.execute("RELEASE posting")


def _role(db: sqlite3.Connection, conv: int, account: int) -> tuple[str, str] | None:
    row = db.execute(
        "SELECT c.kind, m.role FROM members m JOIN conversations c ON c.id = m.conv_id"
        " WHERE m.conv_id=? AND m.account_id=?",
        (conv, account),
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def _poster(db: sqlite3.Connection, conv: int, account: int) -> None:
    """``account`` may post in ``conv``: a member (else ``NotFound``, as for no conversation)
    who may send there (channels: owner and admins)."""
    found = _role(db, conv, account)
    if found is None:
        raise NotFound("no such conversation")
    rules.check_send(*found)


def _message(db: sqlite3.Connection, conv: int, seq: int) -> StoredMessage:
    row = db.execute(
        "SELECT ts, sender, device, cmid, kind, body FROM messages WHERE conv_id=? AND seq=?",
        (conv, seq),
    ).fetchone()
    return StoredMessage(conv, seq, int(row[0]), int(row[1]), int(row[2]), row[3], row[4], row[5])


def _append_receipt(tx: SeqTx, conv: int, now: int, body: bytes) -> StoredMessage:
    m = StoredMessage(conv, tx.take_seq(conv), now, 0, 0, None, "payment.receipt", body)
    try:
        tx.insert_message(m)
    except BaseException:
        tx.undo_seq(conv, m.seq)
        raise
    return m


def _debit(db: sqlite3.Connection, account: int, amount: int, currency: str) -> int:
    """Take ``amount`` from a wallet; its balance after. The database refuses an overdraft (its
    CHECK): that refusal is ``InsufficientFunds``."""
    try:
        row = db.execute(
            "UPDATE wallets SET balance = balance - ? WHERE account=? AND currency=?"
            " RETURNING balance",
            (amount, account, currency),
        ).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO wallets (account, currency, balance) VALUES (?,?,?)",
                (account, currency, -amount),
            )
            return -amount
    except sqlite3.IntegrityError as exc:
        if "CHECK" in str(exc):
            raise ledger.InsufficientFunds(f"not enough {currency} for this payment") from None
        raise ledger.InvalidAmount(f"the wallet cannot hold this: {exc}") from None
    return int(row[0])


def _credit(db: sqlite3.Connection, account: int, amount: int, currency: str) -> int:
    try:
        row = db.execute(
            "INSERT INTO wallets (account, currency, balance) VALUES (?,?,?)"
            " ON CONFLICT (account, currency) DO UPDATE SET balance = balance + excluded.balance"
            " RETURNING balance",
            (account, currency, amount),
        ).fetchone()
    except sqlite3.IntegrityError as exc:  # the balance would overflow 64 bits
        raise ledger.InvalidAmount(f"the payee's wallet cannot hold this: {exc}") from None
    return int(row[0])


def _record(
    db: sqlite3.Connection,
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
    """Move the money and write the posting with its two entries (running balances)."""
    debit_after = _debit(db, debit, amount, currency)
    credit_after = _credit(db, credit, amount, currency)
    db.execute(
        "INSERT INTO transfers (id, type, debit, credit, amount, currency, conv, seq,"
        " intent_hash, request_id, posted_at, note) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
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
        ),
    )
    db.execute(
        "INSERT INTO entries (transfer_id, account, currency, amount, balance, posted_at)"
        " VALUES (?,?,?,?,?,?), (?,?,?,?,?,?)",
        (
            *(transfer_id, debit, currency, -amount, debit_after, now),
            *(transfer_id, credit, currency, amount, credit_after, now),
        ),
    )


def _count_daily(
    db: sqlite3.Connection, account: int, currency: str, amount: int, now: int, limit: int | None
) -> None:
    """Add ``amount`` to what ``account`` sent today; ``OverLimit`` (rolled back with the posting's
    savepoint) when that passes ``limit``."""
    row = db.execute(
        "INSERT INTO daily_sent (account, currency, day, sent) VALUES (?,?,?,?)"
        " ON CONFLICT (account, currency, day) DO UPDATE SET sent = sent + excluded.sent"
        " RETURNING sent",
        (account, currency, ledger.day_start(now), amount),
    ).fetchone()
    ledger.check_daily(int(row[0]) - amount, amount, currency, limit)


def _replay(
    db: sqlite3.Connection, transfer_id: str, type: str, fingerprint: bytes, owner: int
) -> Posting | None:
    """The first posting of ``transfer_id`` by ``owner`` when it has the same content;
    ``Conflict`` when ``owner`` used the id for something else; None when ``owner`` never used
    it (``_unused`` then tells, after the membership check, whether someone else did)."""
    prior = db.execute(
        "SELECT type, intent_hash, conv, seq FROM transfers WHERE id=? AND debit=?",
        (transfer_id, owner),
    ).fetchone()
    if prior is None:
        return None
    if prior[0] != type or bytes(prior[1]) != fingerprint:
        raise Conflict(f"the id {transfer_id!r} was already used for another intent")
    return Posting(_message(db, int(prior[2]), int(prior[3])), replay=True)


def _unused(db: sqlite3.Connection, transfer_id: str) -> None:
    """``Conflict`` when another account used ``transfer_id``. Asked only after the caller's
    membership was checked: a stranger gets ``NotFound`` whether the id exists or not."""
    if db.execute("SELECT 1 FROM transfers WHERE id=?", (transfer_id,)).fetchone():
        raise Conflict(f"the id {transfer_id!r} was already used for another intent")


def _request(
    db: sqlite3.Connection, request_id: str
) -> tuple[ledger.RequestState, int, int | None, int | None] | None:
    """A stored request, its opening seq, and who closed it with which receipt."""
    row = db.execute(
        "SELECT conv, payee, payer, amount, currency, expires_at, state, seq, closed_by,"
        " closed_seq FROM pay_requests WHERE id=?",
        (request_id,),
    ).fetchone()
    if row is None:
        return None
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


def _packet(db: sqlite3.Connection, packet_id: str) -> ledger.PacketState | None:
    row = db.execute(
        "SELECT conv, sender, currency, shares, claimed, expires_at, state FROM red_packets"
        " WHERE id=?",
        (packet_id,),
    ).fetchone()
    if row is None:
        return None
    return common.packet_state(packet_id, *row)


# --------------------------------------------------------------------------- postings


def post_transfer(tx: SeqTx, t: NewTransfer, sign: ReceiptSigner) -> Posting:
    db = tx.db
    replay = _replay(db, t.transfer_id, "transfer", t.intent_hash, t.payer)
    if replay is not None:
        return replay
    _poster(db, t.conv, t.payer)
    _unused(db, t.transfer_id)
    if _role(db, t.conv, t.payee) is None:
        raise ledger.NotMember("the payee is not a member of this conversation")
    ledger.check_not_expired(t.intent_expires_at, t.now, "the intent")
    if t.request_id:
        found = _request(db, t.request_id)
        ledger.check_pays_request(
            None if found is None else found[0],
            t.conv,
            t.payer,
            t.payee,
            t.amount,
            t.currency,
            t.now,
        )
    with _savepoint(db):
        _count_daily(db, t.payer, t.currency, t.amount, t.now, t.day_limit)
        m = _append_receipt(tx, t.conv, t.now, sign(common.transfer_receipt(t)))
        try:
            _record(
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
                db.execute(
                    "UPDATE pay_requests SET state='paid', transfer_id=?, closed_by=?,"
                    " closed_at=?, closed_seq=? WHERE id=? AND state='open'",
                    (t.transfer_id, t.payer, t.now, m.seq, t.request_id),
                )
        except BaseException:
            tx.undo_seq(t.conv, m.seq)
            raise
    return Posting(m)


def create_red_packet(tx: SeqTx, p: NewRedPacket, sign: ReceiptSigner) -> Posting:
    db = tx.db
    replay = _replay(db, p.packet_id, "red_packet", p.intent_hash, p.sender)
    if replay is not None:
        return replay
    _poster(db, p.conv, p.sender)
    _unused(db, p.packet_id)
    ledger.check_not_expired(p.intent_expires_at, p.now, "the intent")
    total = sum(p.shares)
    with _savepoint(db):
        _count_daily(db, p.sender, p.currency, total, p.now, p.day_limit)
        m = _append_receipt(tx, p.conv, p.now, sign(common.red_packet_receipt(p)))
        try:
            _record(
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
            db.execute(
                "INSERT INTO red_packets (id, conv, sender, currency, total, shares, share_count,"
                " split, remaining, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
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
                ),
            )
        except BaseException:
            tx.undo_seq(p.conv, m.seq)
            raise
    return Posting(m)


def claim_red_packet(
    tx: SeqTx, packet_id: str, account: int, now: int, sign: ReceiptSigner
) -> Posting:
    db = tx.db
    p = _packet(db, packet_id)
    if p is None or _role(db, p.conv, account) is None:
        raise NotFound("no such red packet")
    prior = db.execute(
        "SELECT t.conv, t.seq FROM red_packet_claims c JOIN transfers t ON t.id = c.transfer_id"
        " WHERE c.packet=? AND c.account=?",
        (packet_id, account),
    ).fetchone()
    if prior is not None:
        return Posting(_message(db, int(prior[0]), int(prior[1])), replay=True)
    amount = ledger.next_share(p, now)
    n = p.claimed + 1
    with _savepoint(db):
        m = _append_receipt(tx, p.conv, now, sign(common.claim_receipt(p, account, amount, now)))
        try:
            tid = common.claim_id(packet_id, account)
            _record(
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
            db.execute(
                "INSERT INTO red_packet_claims (packet, account, n, amount, transfer_id)"
                " VALUES (?,?,?,?,?)",
                (packet_id, account, n, amount, tid),
            )
            cur = db.execute(
                "UPDATE red_packets SET claimed=?, remaining=remaining-?,"
                " state=CASE WHEN ?=share_count THEN 'emptied' ELSE 'open' END"
                " WHERE id=? AND claimed=? AND state='open'",
                (n, amount, n, packet_id, p.claimed),
            )
            assert cur.rowcount == 1, "the packet changed under its own writer"
        except BaseException:
            tx.undo_seq(p.conv, m.seq)
            raise
    return Posting(m)


def open_request(tx: SeqTx, r: NewRequest, sign: ReceiptSigner) -> Posting:
    db = tx.db
    found = _request(db, r.request_id)
    if found is not None and found[0].payee == r.payee:  # the caller's own: replay or CONFLICT
        prior, seq, _, _ = found
        same = (prior.conv, prior.payee, prior.payer, prior.amount, prior.currency) == (
            r.conv,
            r.payee,
            r.payer,
            r.amount,
            r.currency,
        ) and prior.expires_at == r.expires_at
        if not same:
            raise Conflict(f"the request id {r.request_id!r} was already used")
        return Posting(_message(db, prior.conv, seq), replay=True)
    _poster(db, r.conv, r.payee)
    if found is not None:  # another account's id: told only to a member (no oracle)
        raise Conflict(f"the request id {r.request_id!r} was already used")
    if r.payer and _role(db, r.conv, r.payer) is None:
        raise ledger.NotMember("the payer is not a member of this conversation")
    with _savepoint(db):
        m = _append_receipt(
            tx, r.conv, r.now, sign(common.request_receipt("request", r, r.payee, r.now))
        )
        try:
            db.execute(
                "INSERT INTO pay_requests (id, conv, payee, payer, amount, currency, expires_at,"
                " created_at, seq) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    r.request_id,
                    r.conv,
                    r.payee,
                    r.payer,
                    r.amount,
                    r.currency,
                    r.expires_at,
                    r.now,
                    m.seq,
                ),
            )
        except BaseException:
            tx.undo_seq(r.conv, m.seq)
            raise
    return Posting(m)


def close_request(
    tx: SeqTx, request_id: str, actor: int, state: str, now: int, sign: ReceiptSigner
) -> Posting:
    db = tx.db
    found = _request(db, request_id)
    if found is None or _role(db, found[0].conv, actor) is None:
        raise NotFound("no such request")
    r, _, closed_by, closed_seq = found
    if r.state == state and closed_by == actor and closed_seq is not None:
        return Posting(_message(db, r.conv, int(closed_seq)), replay=True)
    ledger.check_close_request(r, actor, state, now)
    return _close(tx, r, state, actor, now, sign)


def _close(
    tx: SeqTx, r: ledger.RequestState, state: str, actor: int, now: int, sign: ReceiptSigner
) -> Posting:
    type = common.closing_type(state)
    with _savepoint(tx.db):
        m = _append_receipt(tx, r.conv, now, sign(common.request_receipt(type, r, actor, now)))
        try:
            cur = tx.db.execute(
                "UPDATE pay_requests SET state=?, closed_by=?, closed_at=?, closed_seq=?"
                " WHERE id=? AND state='open'",
                (state, actor, now, m.seq, r.request_id),
            )
            assert cur.rowcount == 1, "the request changed under its own writer"
        except BaseException:
            tx.undo_seq(r.conv, m.seq)
            raise
    return Posting(m)


def sweep(tx: SeqTx, now: int, sign: ReceiptSigner, limit: int) -> list[Posting]:
    """Refund expired red packets and expire requests, at most ``limit`` of each."""
    db = tx.db
    out = []
    for (packet_id,) in db.execute(
        "SELECT id FROM red_packets WHERE state='open' AND expires_at<=? ORDER BY expires_at"
        " LIMIT ?",
        (now, limit),
    ).fetchall():
        p = _packet(db, packet_id)
        assert p is not None
        out.append(_refund(tx, p, now, sign))
    for (request_id,) in db.execute(
        "SELECT id FROM pay_requests WHERE state='open' AND expires_at<=? ORDER BY expires_at"
        " LIMIT ?",
        (now, limit),
    ).fetchall():
        found = _request(db, request_id)
        assert found is not None
        out.append(_close(tx, found[0], "expired", 0, now, sign))
    return out


def _refund(tx: SeqTx, p: ledger.PacketState, now: int, sign: ReceiptSigner) -> Posting:
    db = tx.db
    rest = sum(p.shares[p.claimed :])
    with _savepoint(db):
        m = _append_receipt(tx, p.conv, now, sign(common.refund_receipt(p, rest, now)))
        try:
            _record(
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
            cur = db.execute(
                "UPDATE red_packets SET state='refunded', remaining=0 WHERE id=? AND state='open'",
                (p.packet_id,),
            )
            assert cur.rowcount == 1
        except BaseException:
            tx.undo_seq(p.conv, m.seq)
            raise
    return Posting(m)


def mint(
    db: sqlite3.Connection, account: int, amount: int, currency: str, now: int, note: str
) -> str:
    """Issuance -> ``account``: an operator top-up, with no receipt message (no conversation).
    Runs inside the caller's transaction."""
    if not db.execute("SELECT 1 FROM accounts WHERE id=?", (account,)).fetchone():
        raise NotFound(f"no account {account}")
    transfer_id = f"mint:{uuid.uuid4().hex}"
    with _savepoint(db):
        _record(
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


def balances(db: sqlite3.Connection, account: int) -> list[tuple[str, int]]:
    return [
        (str(c), int(b))
        for c, b in db.execute(
            "SELECT currency, balance FROM wallets WHERE account=? ORDER BY currency", (account,)
        )
    ]


def wallet_entries(
    db: sqlite3.Connection, account: int, currency: str, before: int | None, limit: int
) -> list[EntryRow]:
    rows = db.execute(
        "SELECT e.id, e.transfer_id, t.type, e.currency, e.amount, e.balance,"
        " CASE WHEN e.amount < 0 THEN t.credit ELSE t.debit END, coalesce(t.conv, 0), e.posted_at"
        " FROM entries e JOIN transfers t ON t.id = e.transfer_id"
        " WHERE e.account=? AND (?='' OR e.currency=?) AND e.id<?"
        " ORDER BY e.id DESC LIMIT ?",
        (account, currency, currency, 2**62 if before is None else before, limit),
    ).fetchall()
    return [EntryRow(*(r[0], str(r[1]), str(r[2]), str(r[3]), *r[4:])) for r in rows]


def payment_key(db: sqlite3.Connection, seed: bytes) -> bytes:
    """Inside the caller's transaction: the stored seed, storing ``seed`` if there is none."""
    db.execute("INSERT OR IGNORE INTO server_keys (name, seed) VALUES ('payments', ?)", (seed,))
    row = db.execute("SELECT seed FROM server_keys WHERE name='payments'").fetchone()
    return bytes(row[0])


def audit(db: sqlite3.Connection) -> LedgerAudit:
    sums = {
        str(c): int(s)
        for c, s in db.execute("SELECT currency, sum(balance) FROM wallets GROUP BY currency")
    }
    negative = [
        (int(a), str(c), int(b))
        for a, c, b in db.execute(
            "SELECT account, currency, balance FROM wallets WHERE balance < 0 AND account != ?",
            (ledger.ISSUANCE,),
        )
    ]
    unbalanced = [
        str(r[0])
        for r in db.execute(
            "SELECT t.id FROM transfers t LEFT JOIN entries e ON e.transfer_id = t.id"
            " GROUP BY t.id HAVING count(e.id) != 2 OR coalesce(sum(e.amount), 1) != 0"
            " OR min(e.amount) != -t.amount OR max(e.amount) != t.amount"
        )
    ]
    drift = [
        (int(a), str(c))
        for a, c in db.execute(
            "SELECT w.account, w.currency FROM wallets w WHERE w.balance != (SELECT"
            " coalesce(sum(e.amount), 0) FROM entries e WHERE e.account = w.account"
            " AND e.currency = w.currency)"
        )
    ]
    escrow_drift = [
        str(r[0])
        for r in db.execute(
            "SELECT c FROM (SELECT currency AS c FROM wallets WHERE account=?"
            " UNION SELECT currency FROM red_packets WHERE state='open')"
            " WHERE coalesce((SELECT balance FROM wallets WHERE account=? AND currency=c), 0)"
            " != (SELECT coalesce(sum(remaining), 0) FROM red_packets WHERE state='open'"
            " AND currency=c)",
            (ledger.ESCROW, ledger.ESCROW),
        )
    ]
    count = int(db.execute("SELECT count(*) FROM transfers").fetchone()[0])
    return LedgerAudit(sums, negative, unbalanced, drift, escrow_drift, count)


# --------------------------------------------------------------------------- the store's part


class SQLiteLedger:
    """``LedgerStore`` for ``SQLiteStore`` (a base class of it): each posting is one op of the
    group-commit writer, each read runs on the read connection."""

    def _submit(self, fn: Callable[[Any], T]) -> asyncio.Future[T]:
        raise NotImplementedError

    async def _write(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    async def _read_raw(self, fn: Callable[[sqlite3.Connection], T]) -> T:
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
