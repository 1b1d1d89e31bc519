"""Payments: signed intents in, ledger postings and signed receipts out (SPEC.md section 15).

A ``pay`` or ``red_packet`` is checked here first, with no stored state: the intent's payer is
the caller, its device belongs to the payer, the device's signature verifies, and the ids,
currency, amount and limits are acceptable. The posting itself then goes to the store's
group-commit writer, which checks what needs stored state (idempotency, membership, expiry, the
day's total, funds) and commits the money movement and its receipt message in one transaction.
Like ``send``, nothing awaits the commit: the answer (``posted``) goes out from the commit's
callback, after the receipt was published to the conversation's members (the caller included).

The server's receipt key is made once and kept in the store (every node signs with it). The
sweeper, a task of the app's TaskGroup, refunds expired red packets and expires requests at
start and then every ``sweep_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from functools import partial
from typing import Protocol

from chatproto import frames as F
from chatproto import kinds, payments
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ErrorCode, SignatureError

from chatd.core import ledger
from chatd.errors import ChatdError, Forbidden
from chatd.services.deps import Deps
from chatd.services.fanout import publish_committed, publish_message
from chatd.services.sweeper import sweep_until
from chatd.store.base import DeviceRow, NewRedPacket, NewRequest, NewTransfer, Posting

log = logging.getLogger(__name__)

SWEEP_BATCH = 100
_DEVICE_CACHE = 65_536


class Payer(Protocol):
    """The session as payments sees it."""

    conn_id: int
    account: int
    device: int
    inflight: int

    def reply(self, frame: F.Frame) -> None: ...
    def fail(self, rid: int, code: ErrorCode, message: str) -> None: ...
    def send_done(self) -> None: ...


def limits_of(deps: Deps) -> ledger.Limits:
    s = deps.settings.payments
    return ledger.Limits(
        per_transfer=ledger.parse_limits(s.max_transfer),
        per_day=ledger.parse_limits(s.max_per_day),
        max_shares=s.red_packet_max_shares,
        red_packet_ttl_ms=int(s.red_packet_ttl * 1000),
        max_intent_ttl_ms=int(s.max_intent_ttl * 1000),
        max_request_ttl_ms=int(s.max_request_ttl * 1000),
    )


class PaymentService:
    def __init__(self, deps: Deps) -> None:
        self._d = deps
        self.limits = limits_of(deps)
        self._server = deps.settings.server.name
        self._key: SigningKey | None = None
        self._devices: dict[int, DeviceRow] = {}
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ the receipt key

    async def open(self) -> None:
        """Load the server's receipt key (made on first use, shared by every node)."""
        self._key = SigningKey(await self._d.store.payment_key(os.urandom(32)))

    @property
    def signing_key(self) -> SigningKey:
        """The receipt key (creators' receipts are signed with it too: ``services.creators``)."""
        assert self._key is not None, "PaymentService.open() first"
        return self._key

    @property
    def public_key(self) -> bytes:
        assert self._key is not None, "PaymentService.open() first"
        return self._key.public_key

    def sign(self, unsigned: kinds.PaymentReceipt) -> bytes:
        """The body of a receipt message: the receipt with the server's signature."""
        assert self._key is not None, "PaymentService.open() first"
        return kinds.encode_content(payments.sign_receipt(self._key, self._server, unsigned))[1]

    def key_frame(self, rid: int) -> F.PaymentKey:
        return F.PaymentKey(re=rid, server=self._server, key=self.public_key)

    # ------------------------------------------------------------------ postings

    async def _signer(self, device: int) -> DeviceRow | None:
        """Devices never change their key, so they are cached (bounded)."""
        row = self._devices.get(device)
        if row is None:
            row = await self._d.store.device(device)
            if row is not None:
                if len(self._devices) >= _DEVICE_CACHE:
                    self._devices.clear()
                self._devices[device] = row
        return row

    async def _check_signature(
        self,
        s: Payer,
        payer: int,
        device: int,
        sig: bytes,
        intent: F.TransferIntent | F.RedPacketIntent,
    ) -> None:
        if payer != s.account:
            raise Forbidden("an intent is sent by its payer's own account")
        row = await self._signer(device)
        if row is None or row.account != payer:
            raise ledger.WrongDevice(f"device {device} is not a device of account {payer}")
        try:
            payments.verify_intent(row.public_key, sig, self._server, intent)
        except SignatureError:
            raise ledger.BadSignature("the intent's signature does not verify") from None

    async def pay(self, s: Payer, f: F.Pay) -> None:
        i = f.intent
        await self._check_signature(s, i.payer, f.device, f.sig, i)
        now = self._d.clock.now_ms()
        ledger.check_transfer(i, now, self.limits)
        t = NewTransfer(
            transfer_id=i.transfer_id,
            payer=i.payer,
            payee=i.payee,
            amount=i.amount,
            currency=i.currency,
            conv=i.conv,
            request_id=i.request_id,
            intent_hash=payments.intent_hash(self._server, i),
            memo_hash=i.memo_hash,
            intent_expires_at=i.expires_at,
            device=f.device,
            payer_sig=f.sig,
            now=now,
            day_limit=self.limits.per_day.get(i.currency),
        )
        self._submit(s, f.id, self._d.store.post_transfer(t, self.sign), "transfer")

    async def red_packet(self, s: Payer, f: F.SendRedPacket) -> None:
        i = f.intent
        await self._check_signature(s, i.payer, f.device, f.sig, i)
        now = self._d.clock.now_ms()
        ledger.check_red_packet(i, now, self.limits)
        shares = ledger.split(i.total, i.shares, i.split, secrets.randbelow)
        p = NewRedPacket(
            packet_id=i.packet_id,
            sender=i.payer,
            conv=i.conv,
            currency=i.currency,
            shares=tuple(shares),
            split=i.split,
            intent_hash=payments.intent_hash(self._server, i),
            memo_hash=i.memo_hash,
            intent_expires_at=i.expires_at,
            device=f.device,
            payer_sig=f.sig,
            expires_at=now + self.limits.red_packet_ttl_ms,
            now=now,
            day_limit=self.limits.per_day.get(i.currency),
        )
        self._submit(s, f.id, self._d.store.create_red_packet(p, self.sign), "red_packet")

    def claim(self, s: Payer, f: F.Claim) -> None:
        ledger.check_id(f.packet_id, "packet_id")
        now = self._d.clock.now_ms()
        self._submit(
            s,
            f.id,
            self._d.store.claim_red_packet(f.packet_id, s.account, now, self.sign),
            "claim",
        )

    def request(self, s: Payer, f: F.RequestPayment) -> None:
        now = self._d.clock.now_ms()
        ledger.check_request(s.account, f, now, self.limits)
        r = NewRequest(
            f.request_id, f.conv, s.account, f.payer, f.amount, f.currency, f.expires_at, now
        )
        self._submit(s, f.id, self._d.store.open_request(r, self.sign), "request")

    def close_request(self, s: Payer, f: F.DeclineRequest | F.CancelRequest) -> None:
        ledger.check_id(f.request_id, "request_id")
        state = "declined" if isinstance(f, F.DeclineRequest) else "cancelled"
        now = self._d.clock.now_ms()
        self._submit(
            s,
            f.id,
            self._d.store.close_request(f.request_id, s.account, state, now, self.sign),
            state,
        )

    def _submit(self, s: Payer, rid: int, future: asyncio.Future[Posting], type: str) -> None:
        s.inflight += 1
        future.add_done_callback(partial(self._posted, s, rid, type))

    def _posted(self, s: Payer, rid: int, type: str, future: asyncio.Future[Posting]) -> None:
        s.send_done()
        exc = future.exception()
        if exc is not None:
            if isinstance(exc, ChatdError):
                s.fail(rid, exc.code, exc.message)
            else:
                log.error("posting failed", extra={"error": repr(exc)})
                s.fail(rid, ErrorCode.INTERNAL, "internal error")
            return
        posting = future.result()
        self._d.metrics.payments.labels(type=type, replay=str(posting.replay).lower()).inc()
        m = posting.message
        hub = self._d.hub
        publish_committed(hub, m, repeat=posting.replay)
        reply = F.Posted(
            re=rid, conv=m.conv, seq=m.seq, ts=m.ts, body=m.body, replay=posting.replay
        )
        hub.after_published(partial(s.reply, reply))

    # ------------------------------------------------------------------ reads

    async def balance(self, s: Payer, f: F.GetBalance) -> F.Balances:
        rows = await self._d.store.balances(s.account)
        return F.Balances(
            re=f.id,
            balances=[
                F.BalanceInfo(currency=c, amount=b)
                for c, b in rows
                if not f.currency or c == f.currency
            ],
        )

    async def history(self, s: Payer, f: F.WalletHistory) -> F.WalletEntries:
        rows = await self._d.store.wallet_entries(s.account, f.currency, f.before, f.limit + 1)
        return F.WalletEntries(
            re=f.id,
            entries=[
                F.WalletEntry(
                    entry=e.entry,
                    ref=e.ref,
                    type=e.type,
                    currency=e.currency,
                    amount=e.amount,
                    balance=e.balance,
                    counterparty=ledger.wire_account(e.counterparty),
                    conv=e.conv,
                    posted_at=e.posted_at,
                )
                for e in rows[: f.limit]
            ],
            more=len(rows) > f.limit,
        )

    # ------------------------------------------------------------------ the sweeper

    async def sweep(self) -> int:
        """Refund the red packets and expire the requests whose time has passed; how many."""
        done = 0
        while True:
            postings = await self._d.store.sweep_payments(
                self._d.clock.now_ms(), self.sign, SWEEP_BATCH
            )
            for p in postings:
                publish_message(self._d.hub, p.message)
            if postings:
                self._d.metrics.payments.labels(type="expired", replay="false").inc(len(postings))
            done += len(postings)
            if len(postings) < SWEEP_BATCH:
                break
        if done:
            log.info("payments swept", extra={"postings": done})
        return done

    async def run(self) -> None:
        """Sweep now (a packet that expired while the server was down is refunded at start),
        then every ``sweep_interval`` seconds, until ``close``."""
        interval = self._d.settings.payments.sweep_interval
        await sweep_until(self._stop, self.sweep, interval, "payments")

    def close(self) -> None:
        self._stop.set()
