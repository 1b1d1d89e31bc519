"""Creators in the SDK (SPEC.md 15.12-15.14): tip a post, set a channel's price, subscribe
with a signed mandate, cancel, read subscriptions and receipts; every receipt verified.

    receipt = await client.creators.tip(channel, seq, "2.00", "USD")
    await client.creators.set_price(channel, "4.99", "USD", days=30)        # the owner
    sub, first = await client.creators.subscribe(channel, periods=12)
    await client.creators.unsubscribe(sub.mandate_id)

A tip or a mandate is signed by this device's key over ``chatproto.creators``' payloads and sent
until the server answers (the id makes a retry the same payment: a resend after a lost answer
gets the first receipt). A receipt is shown only once it verifies: the server's signature under
the payment key the client pinned (``Payments.key``), the payer's terms hashed into it, and the
payer's own signature under its device's key from its signed device list (the server cannot
make that one). Pushed tips and charges arrive as ``TipReceived`` / ``SubscriptionChanged``,
or as a ``SecurityWarning`` when their receipt does not verify.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from chatproto import creators
from chatproto import frames as F
from chatproto.errors import ChatProtoError, ErrorCode, SignatureError

from chatclient.connection import Connection
from chatclient.e2e import E2E, NoDeviceList
from chatclient.errors import ChatClientError, RequestError
from chatclient.events import SecurityWarning, SubscriptionChanged, TipReceived
from chatclient.payments import DEFAULT_TTL, Payments, call_until_answered, minor_units

_RETRYABLE = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL})
DAY = 86_400


class Creators:
    """The creators' side of one ``Client`` (``client.creators``)."""

    def __init__(self, conn: Connection, e2e: E2E, payments: Payments) -> None:
        self._c = conn
        self._e2e = e2e
        self._payments = payments

    # ------------------------------------------------------------------ receipts

    async def _payer_key(self, r: F.CreatorReceipt) -> bytes | None:
        """The key of the device that signed ``r``'s intent: this device's own, or the one
        the payer's signed device list names (None: the payer has no device list)."""
        ks = self._c.keystore
        if r.payer == ks.account and r.device == ks.device:
            return ks.key.public_key
        try:
            listed = await self._e2e.devices(r.payer)
        except NoDeviceList:
            return None
        entry = next((d for d in listed if d.device == r.device), None)
        if entry is None:
            raise SignatureError(f"device {r.device} is not on the payer's device list")
        return entry.signing_key

    async def verify(self, r: F.CreatorReceipt) -> bool:
        """``SignatureError`` unless ``r`` verifies (SPEC.md 15.12); True when the payer's own
        signature was checked too (False: the payer has no device list to check it with)."""
        key = self._payments.key
        if key is None:
            raise SignatureError("the server's payment key is not known: cannot verify receipts")
        payer_key = await self._payer_key(r)
        creators.verify_receipt(self._payments.server, key, r, payer_key=payer_key)
        return payer_key is not None

    # ------------------------------------------------------------------ postings

    async def price(self, channel: int) -> F.ChannelPrice:
        """The channel's owner and subscription price (``amount`` 0: none)."""
        frame = F.GetChannelPrice(id=self._c.next_id(), channel=channel)
        return await self._c.call(frame, F.ChannelPrice)

    async def tip(
        self,
        channel: int,
        seq: int,
        amount: str | int,
        currency: str,
        *,
        tip_id: str | None = None,
        ttl: float = DEFAULT_TTL,
    ) -> F.CreatorReceipt:
        """Tip post ``seq`` of ``channel`` (paid to the channel's owner); the verified receipt.
        ``RequestError`` with the refusal's code (``INSUFFICIENT_FUNDS``, ``NOT_FOUND`` for a
        deleted post, ...)."""
        c = self._c
        minor = minor_units(amount, currency)
        owner = (await self.price(channel)).owner
        intent = F.TipIntent(
            tip_id=tip_id or f"tip_{uuid.uuid4().hex}",
            payer=c.keystore.account,
            payee=owner,
            channel=channel,
            post=seq,
            amount=minor,
            currency=currency,
            expires_at=time.time_ns() // 1_000_000 + int(ttl * 1000),
        )
        frame = F.Tip(
            id=1,
            intent=intent,
            device=c.keystore.device,
            sig=creators.sign_intent(c.keystore.key, c.server_name, intent),
        )
        got: F.Tipped = await call_until_answered(self._c, frame, F.Tipped, time.monotonic() + ttl)
        await self._check(got.receipt, intent)
        return got.receipt

    async def _check(self, r: F.CreatorReceipt, intent: creators.Intent) -> None:
        await self.verify(r)
        if creators.receipt_intent(r) != intent:
            raise SignatureError("the receipt is not for the intent this device signed")

    async def set_price(
        self, channel: int, amount: str | int, currency: str, *, days: float = 30
    ) -> F.ChannelPrice:
        """The owner's subscription price per period of ``days``; mandates already signed keep
        the price they agreed to. ``amount`` 0 ends paid subscriptions for new subscribers."""
        minor = 0 if amount in (0, "0") else minor_units(amount, currency)
        frame = F.SetChannelPrice(
            id=self._c.next_id(),
            channel=channel,
            amount=minor,
            currency=currency if minor else "",
            period=int(days * DAY) if minor else 0,
        )
        return await self._c.call(frame, F.ChannelPrice)

    async def subscribe(
        self,
        channel: int,
        periods: int,
        *,
        amount: str | int | None = None,
        currency: str | None = None,
        mandate_id: str | None = None,
        ttl: float = DEFAULT_TTL,
    ) -> tuple[F.SubscriptionInfo, F.CreatorReceipt]:
        """Sign a mandate for the channel's current price for at most ``periods`` periods; the
        first period is charged now. With ``amount``/``currency`` (what the user agreed to), a
        different price is refused here (``RequestError(PRICE_CHANGED)``) before signing."""
        c = self._c
        price = await self.price(channel)
        if not price.amount:
            raise RequestError(ErrorCode.PRICE_CHANGED, "the channel has no paid subscription")
        if currency is not None and currency != price.currency:
            raise RequestError(ErrorCode.PRICE_CHANGED, f"the price is in {price.currency}")
        if amount is not None and minor_units(amount, price.currency) != price.amount:
            raise RequestError(ErrorCode.PRICE_CHANGED, "the channel's price is not that")
        intent = F.MandateIntent(
            mandate_id=mandate_id or f"m_{uuid.uuid4().hex}",
            payer=c.keystore.account,
            payee=price.owner,
            channel=channel,
            amount=price.amount,
            currency=price.currency,
            period=price.period,
            periods=periods,
            expires_at=time.time_ns() // 1_000_000 + int(ttl * 1000),
        )
        frame = F.Subscribe(
            id=1,
            intent=intent,
            device=c.keystore.device,
            sig=creators.sign_intent(c.keystore.key, c.server_name, intent),
        )
        got: F.Subscribed = await call_until_answered(
            self._c, frame, F.Subscribed, time.monotonic() + ttl
        )
        await self._check(got.receipt, intent)
        return got.subscription, got.receipt

    async def unsubscribe(self, mandate_id: str) -> F.SubscriptionInfo:
        """No further charge; access until ``paid_through`` (again: the same answer)."""
        frame = F.Unsubscribe(id=1, mandate_id=mandate_id)
        got: F.SubscriptionAnswer = await call_until_answered(
            self._c, frame, F.SubscriptionAnswer, time.monotonic() + self._c.request_timeout * 3
        )
        return got.subscription

    async def subscription(self, mandate_id: str) -> F.SubscriptionInfo:
        frame = F.GetSubscription(id=self._c.next_id(), mandate_id=mandate_id)
        return (await self._c.call(frame, F.SubscriptionAnswer)).subscription

    async def subscriptions(
        self, channel: int = 0, *, after: str = "", limit: int = 50
    ) -> tuple[list[F.SubscriptionInfo], str]:
        """This account's mandates (``channel`` 0), or a channel's it owns; and the ``after``
        of the next page ("": no more)."""
        frame = F.ListSubscriptions(id=self._c.next_id(), channel=channel, after=after, limit=limit)
        got = await self._c.call(frame, F.Subscriptions)
        return list(got.items), got.next

    async def every_subscription(self, *, limit: int = 50) -> AsyncIterator[F.SubscriptionInfo]:
        """This account's mandates, every page of them (``limit`` a page)."""
        after = ""
        while True:
            items, after = await self.subscriptions(after=after, limit=limit)
            for sub in items:
                yield sub
            if not after:
                return

    async def receipts(
        self, ref: str, *, after: int = 0, limit: int = 50
    ) -> list[F.CreatorReceipt]:
        """The receipts of a tip or of a mandate's charges (from period ``after`` + 1), each
        verified (``SignatureError`` for one that does not)."""
        frame = F.GetCreatorReceipts(id=self._c.next_id(), ref=ref, after=after, limit=limit)
        got = await self._c.call(frame, F.CreatorReceipts)
        for r in got.items:
            await self.verify(r)
        return list(got.items)

    async def post_tips(self, channel: int, seq: int) -> list[F.TipTotal]:
        """The post's tips: a count and total per currency."""
        frame = F.GetPostTips(id=self._c.next_id(), channel=channel, seq=seq)
        return list((await self._c.call(frame, F.PostTips)).totals)

    # ------------------------------------------------------------------ pushed

    def on_event(self, frame: F.TipEvent | F.SubscriptionEvent) -> None:
        """A pushed tip or mandate change: emitted once its receipt verified (off the receive
        path: the payer's device list may have to be fetched)."""
        self._c.spawn(self._pushed(frame), name="verify-creator-receipt")

    async def _pushed(self, frame: F.TipEvent | F.SubscriptionEvent) -> None:
        receipt = frame.receipt
        try:
            if receipt is not None:
                await self.verify(receipt)
        except (ChatProtoError, ChatClientError) as exc:
            await self._c.emit(
                SecurityWarning(0, f"receipt {receipt.ref if receipt else ''} refused: {exc}")
            )
            return
        if isinstance(frame, F.TipEvent):
            await self._c.emit(TipReceived(frame.receipt))
        else:
            await self._c.emit(SubscriptionChanged(frame.subscription, frame.receipt))
