"""Creators paid through the ledger (``Creators``, SPEC.md 15.12-15.14), written once for
both databases: tips on public posts, channel prices, subscription mandates and their period
charges. The rules are ``core.creators``; here they run inside the posting's transaction.

* A tip or a charge is ONE posting (two entries, ``store.ledger.record_posting``) and ONE
  signed receipt row (``creator_receipts``), in the same savepoint as everything it changes
  (the post's tip totals; the mandate's state): all of it commits or none of it.
* A charge's transfer id is ``charge:MANDATE:N`` and ``subscription_charges`` has the primary
  key (mandate, n): a second charge of a period is impossible in the database itself, however
  many nodes sweep. The sweep also locks the mandate's row and re-checks it is due, so a
  second node finds it charged and moves on (and a cancel waits for, or wins over, a charge).
* Locks are taken in one order: the mandate's row, then the wallets in (account, currency)
  order (``store.ledger.lock_wallets``).
"""

from __future__ import annotations

import msgspec
from chatproto import frames as F

from chatd.core import creators, ledger
from chatd.core.creators import Charge, Price, Renewal, Sub
from chatd.errors import Conflict, Forbidden, NotFound
from chatd.store.base import CreatorSigner, NewMandate, NewTip, Renewed, Subscribed
from chatd.store.channels import check_live_post, check_post
from chatd.store.ledger import count_daily, lock_wallets, record_posting
from chatd.store.sql import Row, Scripts, Sql, Tx, reads, writes

_receipt_decoder = msgspec.msgpack.Decoder(F.CreatorReceipt)
_encoder = msgspec.msgpack.Encoder()

_SUB = (
    "mandate_id, subscriber, owner, channel, amount, currency, period, periods, state,"
    " charged, paid_through, next_charge_at, created_at, intent_hash, intent_expires, device,"
    " sig, due_since"
)


def charge_id(mandate_id: str, n: int) -> str:
    """The transfer id of period ``n``'s charge: one per period, by construction."""
    return f"charge:{mandate_id}:{n}"


def _info(r: Row) -> F.SubscriptionInfo:
    return F.SubscriptionInfo(
        mandate_id=str(r[0]),
        subscriber=int(r[1]),
        owner=int(r[2]),
        channel=int(r[3]),
        amount=int(r[4]),
        currency=str(r[5]),
        period=int(r[6]),
        periods=int(r[7]),
        state=r[8],
        charged=int(r[9]),
        paid_through=int(r[10]),
        next_charge_at=int(r[11]),
        created_at=int(r[12]),
    )


def _sub(r: Row) -> Sub:
    return Sub(
        mandate_id=str(r[0]),
        state=str(r[8]),
        charged=int(r[9]),
        periods=int(r[7]),
        period_ms=int(r[6]) * 1000,
        paid_through=int(r[10]),
        next_charge_at=int(r[11]),
        due_since=int(r[17]),
    )


async def _mandate(db: Sql, mandate_id: str, lock: str = "") -> Row | None:
    return await db.fetchrow(
        f"SELECT {_SUB} FROM subscriptions WHERE mandate_id=?{lock}", mandate_id
    )


async def _store_receipt(db: Sql, transfer_id: str, r: F.CreatorReceipt) -> None:
    await db.execute(
        "INSERT INTO creator_receipts (transfer_id, type, ref, n, payer, payee, amount,"
        " currency, channel, post, body) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        *(transfer_id, r.type, r.ref, r.n, r.payer, r.payee, r.amount, r.currency),
        *(r.channel, r.post, _encoder.encode(r)),
    )


async def _receipt(db: Sql, ref: str, n: int) -> F.CreatorReceipt:
    body = await db.fetchval("SELECT body FROM creator_receipts WHERE ref=? AND n=?", ref, n)
    assert body is not None, "a posting without its receipt"
    return _receipt_decoder.decode(bytes(body))


async def _post_money(
    tx: Tx,
    transfer_id: str,
    r: F.CreatorReceipt,
    *,
    daily: bool,
    limit: int | None,
) -> None:
    """Move ``r.amount`` from payer to payee (wallets locked in order), counted in the payer's
    daily total when ``daily``, and store the signed receipt beside the posting."""
    db = tx.sql
    await lock_wallets(db, r.currency, r.payer, r.payee)
    if daily:
        await count_daily(db, r.payer, r.currency, r.amount, r.posted_at, limit)
    posting = (transfer_id, r.type, r.payer, r.payee, r.amount, r.currency, None, None)
    await record_posting(db, posting, r.posted_at, r.intent_hash, "")
    await _store_receipt(db, transfer_id, r)


async def _owner(db: Sql, channel: int) -> int:
    owner = await db.fetchval("SELECT owner FROM pub_channels WHERE id=?", channel)
    if owner is None:
        raise NotFound("no such channel")
    return int(owner)


# --------------------------------------------------------------------------- tips


async def post_tip(tx: Tx, t: NewTip, sign: CreatorSigner) -> tuple[F.CreatorReceipt, bool]:
    """Tipper -> the channel's owner, the post's totals counted; ``(receipt, replay)``.
    ``NotFound`` (no channel, or no live post), ``Invalid`` (``to`` is not the owner),
    ``Conflict`` (the id was used for another intent), ``Expired``, ``OverLimit``,
    ``InsufficientFunds``."""
    db = tx.sql
    i = t.intent
    async with db.savepoint():
        prior = await db.fetchrow(
            "SELECT type, debit, intent_hash FROM transfers WHERE id=?", i.tip_id
        )
        if prior is not None:
            if (str(prior[0]), int(prior[1]), bytes(prior[2])) != ("tip", i.payer, t.intent_hash):
                raise Conflict(f"the id {i.tip_id!r} was already used for another intent")
            return await _receipt(db, i.tip_id, 0), True
        owner = await _owner(db, i.channel)
        await check_live_post(db, i.channel, i.post)
        if owner != i.payee:
            raise ledger.NotMember("the tip's payee is not the channel's owner")
        ledger.check_not_expired(i.expires_at, t.now, "the intent")
        receipt = sign(
            F.CreatorReceipt(
                type="tip",
                ref=i.tip_id,
                payer=i.payer,
                payee=i.payee,
                amount=i.amount,
                currency=i.currency,
                channel=i.channel,
                post=i.post,
                intent_hash=t.intent_hash,
                posted_at=t.now,
                sig=bytes(64),
                intent_expires_at=i.expires_at,
                device=t.device,
                payer_sig=t.payer_sig,
            )
        )
        await _post_money(tx, i.tip_id, receipt, daily=True, limit=t.day_limit)
        await db.execute(
            "INSERT INTO pub_tip_totals (channel, seq, currency, count, total) VALUES (?,?,?,1,?)"
            " ON CONFLICT (channel, seq, currency) DO UPDATE SET"
            " count = pub_tip_totals.count + 1, total = pub_tip_totals.total + excluded.total",
            *(i.channel, i.post, i.currency, i.amount),
        )
        return receipt, False


async def post_tips(db: Sql, channel: int, seq: int) -> list[F.TipTotal]:
    """``NotFound`` without the post."""
    await check_post(db, channel, seq)
    rows = await db.fetch(
        "SELECT currency, count, total FROM pub_tip_totals WHERE channel=? AND seq=?"
        " ORDER BY currency",
        channel,
        seq,
    )
    return [F.TipTotal(currency=str(c), count=int(n), amount=int(t)) for c, n, t in rows]


# --------------------------------------------------------------------------- prices


async def set_channel_price(
    tx: Tx, channel: int, owner: int, price: Price | None, now: int
) -> None:
    """``Forbidden`` unless ``owner`` owns it; ``NotFound`` without the channel."""
    db = tx.sql
    if await _owner(db, channel) != owner:
        raise Forbidden("only the channel's owner sets its price")
    if price is None:
        await db.execute("DELETE FROM channel_prices WHERE channel=?", channel)
        return
    await db.execute(
        "INSERT INTO channel_prices (channel, amount, currency, period, updated_at)"
        " VALUES (?,?,?,?,?) ON CONFLICT (channel) DO UPDATE SET amount=excluded.amount,"
        " currency=excluded.currency, period=excluded.period, updated_at=excluded.updated_at",
        *(channel, price.amount, price.currency, price.period, now),
    )


async def _price(db: Sql, channel: int) -> Price | None:
    row = await db.fetchrow(
        "SELECT amount, currency, period FROM channel_prices WHERE channel=?", channel
    )
    return None if row is None else Price(int(row[0]), str(row[1]), int(row[2]))


async def channel_price(db: Sql, channel: int) -> tuple[int, Price | None]:
    """``(owner, price)``; ``NotFound`` without the channel."""
    return await _owner(db, channel), await _price(db, channel)


# --------------------------------------------------------------------------- subscriptions


async def _charge(
    tx: Tx, row: Row, c: Charge, now: int, sign: CreatorSigner, *, daily: bool, limit: int | None
) -> F.CreatorReceipt:
    """Charge period ``c`` of the mandate ``row``: the posting, its receipt and the
    (mandate, n) row that makes it the only charge of that period."""
    info = _info(row)
    receipt = sign(
        F.CreatorReceipt(
            type="charge",
            ref=info.mandate_id,
            payer=info.subscriber,
            payee=info.owner,
            amount=info.amount,
            currency=info.currency,
            channel=info.channel,
            n=c.n,
            starts=c.starts,
            ends=c.ends,
            intent_hash=bytes(row[13]),
            posted_at=now,
            sig=bytes(64),
            intent_expires_at=int(row[14]),
            period=info.period,
            periods=info.periods,
            device=int(row[15]),
            payer_sig=bytes(row[16]),
        )
    )
    tid = charge_id(info.mandate_id, c.n)
    await _post_money(tx, tid, receipt, daily=daily, limit=limit)
    await tx.sql.execute(
        "INSERT INTO subscription_charges (mandate, n, transfer_id, starts, ends)"
        " VALUES (?,?,?,?,?)",
        *(info.mandate_id, c.n, tid, c.starts, c.ends),
    )
    return receipt


async def _save(db: Sql, row: Row, s: Sub, now: int) -> F.SubscriptionInfo:
    """Write ``s`` over the mandate ``row`` (read under its lock); the mandate as it now stands,
    ``row`` with what was written (no second read of the row just updated)."""
    await db.execute(
        "UPDATE subscriptions SET state=?, charged=?, paid_through=?, next_charge_at=?,"
        " due_since=?, updated_at=? WHERE mandate_id=?",
        *(s.state, s.charged, s.paid_through, s.next_charge_at, s.due_since, now, s.mandate_id),
    )
    return msgspec.structs.replace(
        _info(row),
        state=s.state,
        charged=s.charged,
        paid_through=s.paid_through,
        next_charge_at=s.next_charge_at,
    )


async def subscribe(tx: Tx, m: NewMandate, sign: CreatorSigner) -> Subscribed:
    """Store the mandate and charge its first period, in one transaction. Refusals as a
    tip's, plus ``PriceChanged`` and ``Conflict`` (a live mandate for the channel)."""
    db = tx.sql
    i = m.intent
    async with db.savepoint():
        prior = await _mandate(db, i.mandate_id)
        if prior is not None:
            if (int(prior[1]), bytes(prior[13])) != (i.payer, m.intent_hash):
                raise Conflict(f"the id {i.mandate_id!r} was already used for another mandate")
            return Subscribed(_info(prior), await _receipt(db, i.mandate_id, 1), replay=True)
        owner = await _owner(db, i.channel)
        creators.check_terms(i, owner, await _price(db, i.channel))
        ledger.check_not_expired(i.expires_at, m.now, "the mandate")
        live = await db.fetchval(
            "SELECT mandate_id FROM subscriptions WHERE subscriber=? AND channel=?"
            " AND state IN ('active', 'past_due')",
            i.payer,
            i.channel,
        )
        if live is not None:
            raise Conflict(f"already subscribed to this channel (mandate {live})")
        c = creators.first_charge(m.now, i.period * 1000)
        await db.execute(
            "INSERT INTO subscriptions (mandate_id, subscriber, owner, channel, amount, currency,"
            " period, periods, intent_hash, intent_expires, device, sig, state, charged,"
            " paid_through, next_charge_at, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'active',1,?,?,?,?)",
            *(i.mandate_id, i.payer, owner, i.channel, i.amount, i.currency, i.period),
            *(i.periods, m.intent_hash, i.expires_at, m.device, m.payer_sig),
            *(c.ends, c.ends, m.now, m.now),
        )
        row = await _mandate(db, i.mandate_id)
        assert row is not None
        receipt = await _charge(tx, row, c, m.now, sign, daily=True, limit=m.day_limit)
        return Subscribed(_info(row), receipt)


async def unsubscribe(
    tx: Tx, mandate_id: str, account: int, now: int
) -> tuple[F.SubscriptionInfo, bool]:
    """Cancel (True when it changed now); ``NotFound`` unless the subscriber's,
    ``Closed`` when lapsed or completed."""
    db = tx.sql
    row = await _mandate(db, mandate_id, " FOR UPDATE")
    if row is None or int(row[1]) != account:
        raise NotFound("no such subscription")
    s = _sub(row)
    if s.state == "cancelled":
        return _info(row), False
    return await _save(db, row, creators.cancel(s), now), True


async def charge_due(
    tx: Tx, now: int, sign: CreatorSigner, renewal: Renewal, limit: int
) -> list[Renewed]:
    """Charge (or mark past due, lapsed, completed) at most ``limit`` mandates due by
    ``now``, each re-checked under its lock: one charge per period however many nodes
    sweep."""
    db = tx.sql
    out = []
    due = await db.fetch(
        "SELECT mandate_id FROM subscriptions WHERE next_charge_at > 0 AND next_charge_at <= ?"
        " ORDER BY next_charge_at LIMIT ?",
        now,
        limit,
    )
    for (mandate_id,) in due:
        async with db.savepoint():
            row = await _mandate(db, str(mandate_id), " FOR UPDATE")
            if row is None:
                continue
            s = _sub(row)
            if s.state not in creators.LIVE or not 0 < s.next_charge_at <= now:
                continue  # another node charged or closed it meanwhile
            c = creators.next_charge(s, now)
            receipt = None
            if c is None:
                after = creators.completed(s)
            else:
                try:
                    async with db.savepoint():
                        receipt = await _charge(tx, row, c, now, sign, daily=False, limit=None)
                    after = creators.charged(s, c)
                except ledger.PaymentRefused:  # never a partial charge: nothing moved
                    after = creators.refused(s, now, renewal)
            out.append(Renewed(await _save(db, row, after, now), receipt))
    return out


# --------------------------------------------------------------------------- reads


async def subscription(db: Sql, mandate_id: str, viewer: int) -> F.SubscriptionInfo | None:
    """The mandate, for its subscriber or the channel's owner (None for anyone else)."""
    row = await _mandate(db, mandate_id)
    if row is None or viewer not in (int(row[1]), int(row[2])):
        return None
    return _info(row)


async def subscriptions(
    db: Sql, viewer: int, channel: int, after: str, limit: int
) -> list[F.SubscriptionInfo]:
    """``viewer``'s own mandates (``channel`` 0) or a channel's (its owner only:
    ``Forbidden``), by mandate id after ``after``."""
    if channel:
        if await _owner(db, channel) != viewer:
            raise Forbidden("only the channel's owner lists its subscribers")
        where, key = "channel=?", channel
    else:
        where, key = "subscriber=?", viewer
    rows = await db.fetch(
        f"SELECT {_SUB} FROM subscriptions WHERE {where} AND mandate_id > ?"
        " ORDER BY mandate_id LIMIT ?",
        *(key, after, limit),
    )
    return [_info(r) for r in rows]


async def creator_receipts(
    db: Sql, ref: str, viewer: int, after: int, limit: int
) -> list[F.CreatorReceipt]:
    """Receipts of tip or mandate ``ref`` whose payer or payee is ``viewer``."""
    rows = await db.fetch(
        "SELECT body FROM creator_receipts WHERE ref=? AND (payer=? OR payee=?) AND n>=?"
        " ORDER BY n LIMIT ?",
        *(ref, viewer, viewer, after + 1 if after else 0, limit),
    )
    return [_receipt_decoder.decode(bytes(r[0])) for r in rows]


async def has_access(db: Sql, channel: int, account: int, now: int) -> bool:
    """An admin (the owner too), or a subscriber with a paid period covering ``now``."""
    if not account:
        return False
    return bool(
        await db.fetchval(
            "SELECT 1 FROM pub_admins WHERE channel=? AND account=?"
            " UNION ALL SELECT 1 FROM subscriptions WHERE subscriber=? AND channel=?"
            " AND paid_through > ? LIMIT 1",
            *(channel, account, account, channel, now),
        )
    )


class Creators(Scripts):
    """Each posting is one write of the group commit; reads use a read connection."""

    post_tip = writes(post_tip)
    post_tips = reads(post_tips)
    set_channel_price = writes(set_channel_price)
    channel_price = reads(channel_price)
    subscribe = writes(subscribe)
    unsubscribe = writes(unsubscribe)
    charge_due = writes(charge_due)
    subscription = reads(subscription)
    subscriptions = reads(subscriptions)
    creator_receipts = reads(creator_receipts)
    has_access = reads(has_access)
