"""Payments in the SDK: sign intents with this device's key, post them until the server answers,
and verify every receipt against the server's payment key (SPEC.md section 15).

    receipt = await client.pay(conv, bob, "12.50", "USD", memo="lunch")
    await client.red_packet(group, "88.88", "CNY", shares=8)
    await client.claim(packet_id)
    await client.balance()                     # {"USD": 8750}

Amounts are decimal strings in major units (``"12.50"``) or ints of minor units (``1250``);
never floats. Every posting carries a client-made id, so a retry after a dropped connection
(or an ``UNAVAILABLE``) is the same posting: the server applies it once and answers the retry
with the first receipt. The human side (the memo, what a request is for) goes as an end-to-end
encrypted message (``payment.transfer`` / ``payment.request``) after the posting; the intent
commits to the memo's hash, so members can tell the memo belongs to the receipt.

Receipts: the server's payment key is fetched at login and pinned in the key store on first use.
Every ``payment.receipt`` message the client yields from ``events()`` has been verified (server
signature, the conversation, the payer's terms hashed into the intent); one that fails becomes a
``SecurityWarning`` instead, never a payment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec
from chatproto import frames as F
from chatproto import kinds, money, payments
from chatproto.e2e.primitives import random_bytes
from chatproto.errors import ChatProtoError, ErrorCode, SignatureError

from chatclient.e2e import NoDeviceList
from chatclient.errors import ChatClientError, Conflict, ConnectionLost, RequestError
from chatclient.events import Event, Message, SecurityWarning

if TYPE_CHECKING:
    from chatclient.connection import Connection
    from chatclient.e2e import E2E
    from chatclient.events import Undecryptable

    SendFn = Callable[..., Awaitable[F.Ack]]
    """``Client.send``: (conv, content, *, to=None, reply_to=None, cmid=None) -> Ack."""
    MessageFn = Callable[[int, int], Awaitable[Message | Undecryptable]]
    """``Client.message``: message ``seq`` of ``conv`` from history, decrypted."""

log = logging.getLogger(__name__)
T = TypeVar("T", bound=F.Frame)

KEY_NS = "payments"
ORDERS_NS = "payments.orders"
"""request id of an order -> the signed terms of its payment (retries re-send the same)."""
DEFAULT_TTL = 600.0
"""Seconds a signed intent stays valid: how long the SDK keeps retrying it."""
_RETRYABLE = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL})


@dataclass(frozen=True, slots=True)
class Receipt:
    """A committed payment event: its verified receipt, stored as message ``seq`` of ``conv``.
    ``replay``: the posting had been committed before (a retry); nothing moved again."""

    receipt: kinds.PaymentReceipt
    conv: int
    seq: int
    ts: int
    replay: bool

    @property
    def amount(self) -> str:
        """The amount as text, e.g. ``"12.50 USD"``."""
        return money.format_money(self.receipt.amount, self.receipt.currency)


def minor_units(amount: str | int, currency: str) -> int:
    """``"12.50"`` -> 1250 (USD); an int is taken as minor units already. Never a float."""
    if isinstance(amount, bool) or not isinstance(amount, str | int):
        raise TypeError(f"an amount is a decimal string or int minor units, not {amount!r}")
    if isinstance(amount, int):
        money.check_amount(amount)
        money.exponent(currency)
        return amount
    return money.parse_amount(amount, currency)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


async def call_until_answered(c: Connection, frame: Any, expect: type[T], deadline: float) -> T:
    """Send ``frame`` (a fresh request id each time) until the server answers it or ``deadline``
    (monotonic) passes: retried, with backoff and jitter, after a lost connection or a retryable
    error. Safe only for frames whose client-made id makes a resend the same request (payments,
    tips, mandates: the server answers a resend with the first result)."""
    attempt = 0
    while True:
        try:
            return await c.call(msgspec.structs.replace(frame, id=c.next_id()), expect)
        except (ConnectionLost, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise ConnectionLost(f"no answer before the intent expired: {exc}") from exc
        except RequestError as exc:
            if exc.code not in _RETRYABLE or time.monotonic() > deadline:
                raise
        attempt += 1
        await asyncio.sleep(min(2.0, 0.05 * 2 ** min(attempt, 6)) * (0.5 + random.random()))


class Payments:
    """The payment side of one ``Client`` (``client.payments``)."""

    def __init__(
        self, conn: Connection, e2e: E2E, send: SendFn, message: MessageFn, *, encrypt: bool
    ) -> None:
        self._c = conn
        self._e2e = e2e
        self._send = send
        self._message = message
        self._encrypt = encrypt
        self.server = ""
        self.key: bytes | None = None
        """The server's pinned payment key (None until the first login fetched it)."""
        self.key_loaded = asyncio.Event()
        """Set once a login's ``load_key`` is over (``Client`` waits for it on entering)."""

    # ------------------------------------------------------------------ the server's key

    async def load_key(self) -> None:
        """Fetch the server's receipt key; pin it on first use. A different key later is reported
        (``SecurityWarning``) and not trusted: receipts keep being checked against the pin."""
        try:
            await self._load_key()
        finally:
            self.key_loaded.set()

    async def _load_key(self) -> None:
        c = self._c
        try:
            reply: F.PaymentKey = await c.request(F.GetPaymentKey(id=c.next_id()), F.PaymentKey)
        except RequestError as exc:  # a server without payments: receipts cannot be verified
            log.info("no payment key: %s", exc)
            return
        pinned = c.keystore.get(KEY_NS, "server_key")
        self.server = reply.server
        if pinned is None:
            c.keystore.put(KEY_NS, "server_key", reply.key)
            self.key = reply.key
        elif pinned != reply.key:
            self.key = pinned
            await c.emit(
                SecurityWarning(
                    0,
                    "the server's payment key changed: receipts signed with the new key are"
                    " refused (the pinned key is kept)",
                )
            )
        else:
            self.key = pinned

    def verify(self, r: kinds.PaymentReceipt, conv: int, payer_key: bytes | None = None) -> None:
        """Raise ``SignatureError`` unless ``r`` is a valid receipt of ``conv`` (SPEC.md 15.7)."""
        if self.key is None:
            raise SignatureError("the server's payment key is not known: cannot verify receipts")
        payments.verify_receipt(self.server, self.key, r, conv=conv, payer_key=payer_key)

    def checked(self, event: Event) -> Event:
        """``event`` unless it is a receipt that does not verify (then a ``SecurityWarning``)."""
        if not isinstance(event, Message) or event.kind != kinds.PaymentReceipt.KIND:
            return event
        r = event.content
        try:
            if event.sender or event.device:  # e.g. a genuine receipt replayed inside an e2e send
                raise SignatureError(f"sent by account {event.sender}, not by the server")
            if not isinstance(r, kinds.PaymentReceipt):
                raise SignatureError("the receipt does not decode")
            payer_key = self._payer_key(r)
            self.verify(r, event.conv, payer_key)
        except ChatProtoError as exc:
            return SecurityWarning(
                0, f"payment receipt #{event.seq} in conversation {event.conv} refused: {exc}"
            )
        if payer_key is None and r.type in payments.SIGNED_BY_PAYER and self._encrypt:
            self._c.spawn(self._check_payer_later(r, event.seq))
        return event

    def _payer_key(self, r: kinds.PaymentReceipt) -> bytes | None:
        """The key of the device that signed ``r``'s intent, when this client already knows it:
        its own, or the payer's device from the payer's pinned device list (E2E.md 3). None when
        the list is not pinned yet or does not name that device (checked later)."""
        if r.type not in payments.SIGNED_BY_PAYER:
            return None
        c = self._c
        if r.payer == c.keystore.account and r.device == c.keystore.device:
            return c.keystore.key.public_key
        trust = self._e2e.trust(r.payer)
        if trust is None:
            return None
        entry = next((d for d in trust.devices if d.device == r.device), None)
        return None if entry is None else entry.signing_key

    async def _check_payer_later(self, r: kinds.PaymentReceipt, seq: int) -> None:
        """Check ``payer_sig`` of a receipt shown before the payer's device list was known
        (fetched now, off the receive path): a failure is a ``SecurityWarning``. A payer with no
        device list (a client without end-to-end encryption) cannot be checked."""
        c = self._c
        try:
            listed = await self._e2e.devices(r.payer, refresh=True)
        except (ChatClientError, TimeoutError) as exc:
            log.info("payer of receipt #%s not checked: %s", seq, exc)
            return
        except NoDeviceList:
            return
        except ChatProtoError as exc:
            reason = f"the payer's device list is refused: {exc.message}"
        else:
            entry = next((d for d in listed if d.device == r.device), None)
            intent = payments.receipt_intent(r)
            assert intent is not None
            try:
                if entry is None:
                    raise SignatureError(f"device {r.device} is not on the payer's device list")
                payments.verify_intent(entry.signing_key, r.payer_sig, self.server, intent)
                return
            except ChatProtoError as exc:
                reason = exc.message
        await c.emit(
            SecurityWarning(
                r.payer, f"payment receipt #{seq} in conversation {r.conv} refused: {reason}"
            )
        )

    # ------------------------------------------------------------------ postings

    async def _post(self, frame: Any, deadline: float) -> Receipt:
        """Send ``frame`` until the server answers it or ``deadline`` (monotonic) passes."""
        c = self._c
        reply = await call_until_answered(c, frame, F.Posted, deadline)
        content = kinds.decode_content(kinds.PaymentReceipt.KIND, reply.body)
        assert isinstance(content, kinds.PaymentReceipt)
        payer_key = c.keystore.key.public_key if content.type in payments.SIGNED_BY_PAYER else None
        self.verify(content, reply.conv, payer_key if content.device == c.keystore.device else None)
        return Receipt(content, reply.conv, reply.seq, reply.ts, reply.replay)

    def _expires(self, ttl: float) -> tuple[int, float]:
        return time.time_ns() // 1_000_000 + int(ttl * 1000), time.monotonic() + ttl

    async def pay(
        self,
        conv: int,
        to: int,
        amount: str | int,
        currency: str,
        memo: str = "",
        *,
        request_id: str = "",
        transfer_id: str | None = None,
        ttl: float = DEFAULT_TTL,
        expires_at: int | None = None,
    ) -> Receipt:
        """Pay ``to`` (a member of ``conv``) and return the verified receipt; then, if there is a
        memo, send it end-to-end encrypted as a ``payment.transfer`` message. Raises
        ``RequestError`` with the refusal's code (``INSUFFICIENT_FUNDS``, ``OVER_LIMIT``, ...)."""
        c = self._c
        minor = minor_units(amount, currency)
        tid = transfer_id or new_id("tr")
        nonce = random_bytes(16) if memo else b""
        if expires_at is None:
            expires_at, deadline = self._expires(ttl)
        else:  # a retry of an intent made before: the same terms, the same signature bytes
            left = (expires_at - time.time_ns() // 1_000_000) / 1000
            deadline = time.monotonic() + max(left, self._c.request_timeout)
        intent = F.TransferIntent(
            transfer_id=tid,
            payer=c.keystore.account,
            payee=to,
            amount=minor,
            currency=currency,
            conv=conv,
            memo_hash=payments.memo_hash(tid, memo, nonce),
            expires_at=expires_at,
            request_id=request_id,
        )
        frame = F.Pay(
            id=1,
            intent=intent,
            device=c.keystore.device,
            sig=payments.sign_intent(c.keystore.key, c.server_name, intent),
        )
        receipt = await self._post(frame, deadline)
        _check_matches(receipt, tid, c.keystore.account, to, minor, currency, conv)
        if memo:
            note = kinds.PaymentTransfer(
                transfer_id=tid, amount=minor, currency=currency, memo=memo, nonce=nonce
            )
            await self._send_memo(conv, note, f"memo-{tid}")
        return receipt

    async def _send_memo(self, conv: int, note: kinds.Content, cmid: str) -> None:
        """The memo message, also after a replayed posting: the first answer may have been lost
        before the memo went out (a retry gets ``replay``). Its cmid is fixed by the posting's
        id, so a memo stored before is refused as a CONFLICT (new ciphertext), not shown twice."""
        with contextlib.suppress(Conflict):
            await self._send(conv, note, cmid=cmid)

    async def request(
        self,
        conv: int,
        amount: str | int,
        currency: str,
        memo: str = "",
        *,
        payer: int = 0,
        request_id: str | None = None,
        ttl: float = 86_400.0,
    ) -> Receipt:
        """Ask ``payer`` (0: any member) in ``conv`` for money; the memo goes as an end-to-end
        encrypted ``payment.request`` message. The request is paid by ``pay(...,
        request_id=receipt.receipt.ref)``."""
        c = self._c
        minor = minor_units(amount, currency)
        rid = request_id or new_id("rq")
        expires_at, _ = self._expires(ttl)
        frame = F.RequestPayment(
            id=1,
            request_id=rid,
            conv=conv,
            payer=payer,
            amount=minor,
            currency=currency,
            expires_at=expires_at,
        )
        receipt = await self._post(frame, time.monotonic() + c.request_timeout * 3)
        if memo:
            note = kinds.PaymentRequest(request_id=rid, amount=minor, currency=currency, memo=memo)
            await self._send_memo(conv, note, f"memo-{rid}")
        return receipt

    async def pay_order(
        self, conv: int, payee: int, order: kinds.PaymentRequest, *, ttl: float = DEFAULT_TTL
    ) -> Receipt:
        """Pay a mini-app order (``Client.pay_order``): the transfer's id and deadline are kept
        in the key store under the order's request id before the first attempt, so every retry
        (even from a restarted client) is the same intent, which the ledger applies once."""
        ks = self._c.keystore
        saved = ks.get(ORDERS_NS, order.request_id)
        if saved is None:
            terms = _OrderTerms(new_id("tr"), self._expires(ttl)[0], conv, payee)
            ks.put(ORDERS_NS, order.request_id, msgspec.msgpack.encode(terms))
        else:
            terms = msgspec.msgpack.decode(saved, type=_OrderTerms)
            if (terms.conv, terms.payee) != (conv, payee):
                raise ChatClientError("this order was already paid in another conversation")
        try:
            return await self.pay(
                conv,
                payee,
                order.amount,
                order.currency,
                request_id=order.request_id,
                transfer_id=terms.transfer_id,
                expires_at=terms.expires_at,
            )
        except RequestError as exc:
            if exc.code == ErrorCode.EXPIRED:
                ks.delete(ORDERS_NS, order.request_id)  # never posted: a new try signs anew
            raise

    async def pay_request(self, r: kinds.PaymentReceipt, memo: str = "") -> Receipt:
        """Pay the request that receipt ``r`` (of type ``request``) announced."""
        if r.type != "request":
            raise ChatClientError(f"a {r.type} receipt is not a request")
        return await self.pay(r.conv, r.payee, r.amount, r.currency, memo, request_id=r.ref)

    async def decline(self, request_id: str) -> Receipt:
        c = self._c
        frame = F.DeclineRequest(id=1, request_id=request_id)
        return await self._post(frame, time.monotonic() + c.request_timeout * 3)

    async def cancel(self, request_id: str) -> Receipt:
        c = self._c
        frame = F.CancelRequest(id=1, request_id=request_id)
        return await self._post(frame, time.monotonic() + c.request_timeout * 3)

    async def red_packet(
        self,
        conv: int,
        total: str | int,
        currency: str,
        shares: int,
        memo: str = "",
        *,
        split: Literal["random", "equal"] = "random",
        packet_id: str | None = None,
        ttl: float = DEFAULT_TTL,
    ) -> Receipt:
        """Drop a red packet of ``total`` in ``shares`` into ``conv``; the greeting (``memo``)
        goes end-to-end encrypted as a ``payment.transfer`` message naming the packet."""
        c = self._c
        minor = minor_units(total, currency)
        pid = packet_id or new_id("rp")
        nonce = random_bytes(16) if memo else b""
        expires_at, deadline = self._expires(ttl)
        intent = F.RedPacketIntent(
            packet_id=pid,
            payer=c.keystore.account,
            conv=conv,
            total=minor,
            currency=currency,
            shares=shares,
            split=split,
            memo_hash=payments.memo_hash(pid, memo, nonce),
            expires_at=expires_at,
        )
        frame = F.SendRedPacket(
            id=1,
            intent=intent,
            device=c.keystore.device,
            sig=payments.sign_intent(c.keystore.key, c.server_name, intent),
        )
        receipt = await self._post(frame, deadline)
        _check_matches(receipt, pid, c.keystore.account, None, minor, currency, conv)
        if memo:
            note = kinds.PaymentTransfer(
                transfer_id=pid, amount=minor, currency=currency, memo=memo, nonce=nonce
            )
            await self._send_memo(conv, note, f"memo-{pid}")
        return receipt

    async def claim(self, packet_id: str) -> Receipt:
        """Take a share of a red packet (a second claim returns the first: ``replay``)."""
        c = self._c
        frame = F.Claim(id=1, packet_id=packet_id)
        return await self._post(frame, time.monotonic() + c.request_timeout * 3)

    # ------------------------------------------------------------------ reads

    async def balance(self, currency: str = "") -> dict[str, int]:
        """This account's balances in minor units, by currency."""
        c = self._c
        reply = await c.call(F.GetBalance(id=c.next_id(), currency=currency), F.Balances)
        return {b.currency: b.amount for b in reply.balances}

    async def history(
        self, currency: str = "", *, before: int | None = None, limit: int = 100
    ) -> tuple[list[F.WalletEntry], bool]:
        """One page of this account's ledger entries, newest first (``before``: an entry id),
        and whether older ones exist."""
        c = self._c
        reply = await c.call(
            F.WalletHistory(id=c.next_id(), currency=currency, before=before, limit=limit),
            F.WalletEntries,
        )
        return reply.entries, reply.more


class _OrderTerms(msgspec.Struct, array_like=True):
    transfer_id: str
    expires_at: int
    conv: int
    payee: int


def memo_matches(note: kinds.PaymentTransfer, r: kinds.PaymentReceipt) -> bool:
    """Whether an (end-to-end encrypted) ``payment.transfer`` note belongs to receipt ``r``."""
    return (
        note.transfer_id == r.ref
        and payments.memo_hash(note.transfer_id, note.memo, note.nonce) == r.memo_hash
    )


__all__: Sequence[str] = ("Payments", "Receipt", "memo_matches", "minor_units")


def _check_matches(
    receipt: Receipt,
    ref: str,
    payer: int,
    payee: int | None,
    amount: int,
    currency: str,
    conv: int,
) -> None:
    """A verified receipt is still refused when it is for another posting than the one this
    client signed (a server answering with an older receipt of the same device, say)."""
    r = receipt.receipt
    got = (r.ref, r.payer, r.amount, r.currency, r.conv, r.payee if payee is not None else None)
    if got != (ref, payer, amount, currency, conv, payee):
        raise SignatureError(f"the server's receipt is not for this posting: {got}")
