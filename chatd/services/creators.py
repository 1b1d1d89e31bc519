"""Creators paid through the ledger (SPEC.md 15.12-15.14): tips on public posts, paid
subscriptions to a public channel, and paid posts only subscribers read.

A ``tip`` or ``subscribe`` is checked here first with no stored state (the intent's payer is the
caller, its device belongs to it, the device's signature verifies, ids, currency, amount,
limits); the store then checks what needs stored state and commits the money movement, its
signed receipt and what it changes (the post's tip totals; the mandate) in ONE transaction.
Receipts are signed with the server's payment key (``PaymentService.signing_key``).

The renewal sweeper, a task of the app's TaskGroup, charges every mandate whose period is due,
at start and then every ``[payments] sweep_interval`` seconds; the store makes a second charge
of a period impossible, so every node may sweep. Each change of a mandate is pushed as a
``subscription_event`` to the subscriber's and the owner's connections (on every node).

Paid posts: the server gives a paid post's content only to accounts with access (the channel's
admins, and subscribers with a paid period covering now); others get ``chatproto.posts.locked``
(no content). ``post_event`` is encoded once for every follower, so it always carries the
placeholder; a reader with access reads the content with ``get_posts``/``get_post_history``.
"""

from __future__ import annotations

import asyncio
import logging

from chatproto import creators, posts
from chatproto import frames as F
from chatproto.errors import ErrorCode, SignatureError

from chatd.core import creators as rules
from chatd.core import ledger
from chatd.errors import ChatdError, Forbidden, NotFound
from chatd.services.deps import Deps
from chatd.services.fanout import publish_to_account
from chatd.services.payments import PaymentService
from chatd.services.sweeper import sweep_until
from chatd.store.base import NewMandate, NewTip, Renewed

log = logging.getLogger(__name__)

SWEEP_BATCH = 100

CreatorFrame = (
    F.Tip
    | F.SetChannelPrice
    | F.GetChannelPrice
    | F.Subscribe
    | F.Unsubscribe
    | F.GetSubscription
    | F.ListSubscriptions
    | F.GetCreatorReceipts
    | F.GetPostTips
)


def _price_frame(rid: int, channel: int, owner: int, price: rules.Price | None) -> F.ChannelPrice:
    if price is None:
        return F.ChannelPrice(re=rid, channel=channel, owner=owner)
    return F.ChannelPrice(
        re=rid,
        channel=channel,
        owner=owner,
        amount=price.amount,
        currency=price.currency,
        period=price.period,
    )


class CreatorService:
    def __init__(self, deps: Deps, payments: PaymentService) -> None:
        self._d = deps
        self._payments = payments
        self._server = deps.settings.server.name
        s = deps.settings.payments
        self.renewal = rules.Renewal(
            grace_ms=int(s.subscription_grace * 1000), retry_ms=int(s.subscription_retry * 1000)
        )
        self._min_period = s.subscription_min_period
        self._stop = asyncio.Event()

    def sign(self, unsigned: F.CreatorReceipt) -> F.CreatorReceipt:
        return creators.sign_receipt(self._payments.signing_key, self._server, unsigned)

    async def handle(self, account: int, f: CreatorFrame) -> F.Frame:
        """Serve one creators' frame of ``account``."""
        store = self._d.store
        match f:
            case F.Tip():
                return await self.tip(account, f)
            case F.Subscribe():
                return await self.subscribe(account, f)
            case F.Unsubscribe():
                ledger.check_id(f.mandate_id, "mandate_id")
                info, changed = await store.unsubscribe(f.mandate_id, account, self._now())
                if changed:
                    self._announce(info, None)
                return F.SubscriptionAnswer(re=f.id, subscription=info)
            case F.SetChannelPrice():
                return await self.set_price(account, f)
            case F.GetChannelPrice():
                owner, price = await store.channel_price(f.channel)
                return _price_frame(f.id, f.channel, owner, price)
            case F.GetSubscription():
                found = await store.subscription(f.mandate_id, account)
                if found is None:
                    raise NotFound("no such subscription")
                return F.SubscriptionAnswer(re=f.id, subscription=found)
            case F.ListSubscriptions():
                items = await store.subscriptions(account, f.channel, f.after, f.limit)
                more = len(items) == f.limit
                return F.Subscriptions(
                    re=f.id, items=items, next=items[-1].mandate_id if more else ""
                )
            case F.GetCreatorReceipts():
                got = await store.creator_receipts(f.ref, account, f.after, f.limit)
                if not got and not f.after:
                    raise NotFound("no such tip or subscription")
                more = len(got) == f.limit
                return F.CreatorReceipts(re=f.id, items=got, next=got[-1].n if more else 0)
            case F.GetPostTips():
                totals = await store.post_tips(f.channel, f.seq)
                return F.PostTips(re=f.id, channel=f.channel, seq=f.seq, totals=totals)
        raise ChatdError("not a creators' frame", ErrorCode.UNKNOWN_FRAME)

    def _now(self) -> int:
        return self._d.clock.now_ms()

    async def _check_signature(
        self, account: int, payer: int, device: int, sig: bytes, intent: creators.Intent
    ) -> None:
        if payer != account:
            raise Forbidden("an intent is sent by its payer's own account")
        row = await self._d.store.device(device)
        if row is None or row.account != payer:
            raise ledger.WrongDevice(f"device {device} is not a device of account {payer}")
        try:
            creators.verify_intent(row.public_key, sig, self._server, intent)
        except SignatureError:
            raise ledger.BadSignature("the intent's signature does not verify") from None

    async def tip(self, account: int, f: F.Tip) -> F.Tipped:
        i = f.intent
        await self._check_signature(account, i.payer, f.device, f.sig, i)
        now = self._now()
        limits = self._payments.limits
        rules.check_tip(i, now, limits)
        t = NewTip(
            intent=i,
            intent_hash=creators.intent_hash(self._server, i),
            device=f.device,
            payer_sig=f.sig,
            now=now,
            day_limit=limits.per_day.get(i.currency),
        )
        receipt, replay = await self._d.store.post_tip(t, self.sign)
        self._counted("tip", replay)
        if not replay:
            publish_to_account(self._d.hub, i.payee, F.TipEvent(receipt=receipt))
        return F.Tipped(re=f.id, receipt=receipt, replay=replay)

    async def set_price(self, account: int, f: F.SetChannelPrice) -> F.ChannelPrice:
        price = None
        if f.amount:
            rules.check_price(
                f.amount, f.currency, f.period, self._payments.limits, self._min_period
            )
            price = rules.Price(f.amount, f.currency, f.period)
        await self._d.store.set_channel_price(f.channel, account, price, self._now())
        return _price_frame(f.id, f.channel, account, price)

    async def subscribe(self, account: int, f: F.Subscribe) -> F.Subscribed:
        i = f.intent
        await self._check_signature(account, i.payer, f.device, f.sig, i)
        now = self._now()
        limits = self._payments.limits
        rules.check_mandate(i, now, limits, self._min_period)
        m = NewMandate(
            intent=i,
            intent_hash=creators.intent_hash(self._server, i),
            device=f.device,
            payer_sig=f.sig,
            now=now,
            day_limit=limits.per_day.get(i.currency),
        )
        done = await self._d.store.subscribe(m, self.sign)
        self._counted("subscribe", done.replay)
        if not done.replay:
            self._announce(done.subscription, done.receipt)
        return F.Subscribed(
            re=f.id, subscription=done.subscription, receipt=done.receipt, replay=done.replay
        )

    def _announce(self, info: F.SubscriptionInfo, receipt: F.CreatorReceipt | None) -> None:
        event = F.SubscriptionEvent(subscription=info, receipt=receipt)
        for account in (info.subscriber, info.owner):
            publish_to_account(self._d.hub, account, event)

    def _counted(self, type: str, replay: bool) -> None:
        self._d.metrics.payments.labels(type=type, replay=str(replay).lower()).inc()

    # ------------------------------------------------------------------ paid posts

    async def readable(self, account: int, channel: int, items: list[F.Post]) -> list[F.Post]:
        """``items`` as ``account`` may read them: a paid post's content only with access (an
        admin, or a paid period covering now); otherwise its placeholder. One access read per
        page, and none for a page without a paid post."""
        if not any(p.paid and not posts.is_tombstone(p) for p in items):
            return items
        if await self._d.store.has_access(channel, account, self._now()):
            return items
        return [posts.locked(p) if p.paid and not posts.is_tombstone(p) else p for p in items]

    # ------------------------------------------------------------------ the renewal sweeper

    async def sweep(self) -> int:
        """Charge every mandate due by now (or mark it past due, lapsed, completed); how many
        changed. Also what tests call after moving the clock."""
        done = 0
        while True:
            changed: list[Renewed] = await self._d.store.charge_due(
                self._now(), self.sign, self.renewal, SWEEP_BATCH
            )
            for c in changed:
                self._announce(c.subscription, c.receipt)
                if c.receipt is not None:
                    self._counted("charge", False)
            done += len(changed)
            if len(changed) < SWEEP_BATCH:
                break
        if done:
            log.info("subscriptions swept", extra={"changed": done})
        return done

    async def run(self) -> None:
        """Sweep now (periods that fell due while the server was down are charged at start),
        then every ``sweep_interval`` seconds, until ``close``."""
        interval = self._d.settings.payments.sweep_interval
        await sweep_until(self._stop, self.sweep, interval, "subscription")

    def close(self) -> None:
        self._stop.set()
