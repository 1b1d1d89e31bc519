"""Mini-apps, cards and shares (SPEC.md 16.5, 16.6): invoking a bot's action and waiting for its
result card, pressing a card's buttons, paying a card's order, sharing and forwarding.

``invoke`` sends the invocation addressed to the bot with a fresh id, again (same id: the bot
answers it once) every ``resend_every`` seconds, until its ``miniapp.result`` arrives; the
result is picked out of the event stream by ``observe`` (an event filter). Shares and forwards
are end-to-end encrypted in the target conversation like any message.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from chatproto import frames as F
from chatproto import kinds
from chatproto.e2e.payload import E2E_KIND

from chatclient.connection import Connection
from chatclient.conversations import Conversations
from chatclient.errors import ChatClientError, InvocationTimeoutError
from chatclient.events import Event, InvocationTimeout, Message
from chatclient.media import Media
from chatclient.payments import Payments, Receipt
from chatclient.profiles import Profiles
from chatclient.sending import Sending


@dataclass
class _Invocation:
    conv: int
    bot: int
    future: asyncio.Future[Message]


class MiniApps:
    """Invocations in flight, cards, shares and forwards."""

    def __init__(
        self,
        conn: Connection,
        conversations: Conversations,
        profiles: Profiles,
        sending: Sending,
        payments: Payments,
        media: Media,
    ) -> None:
        self._conn = conn
        self._convs = conversations
        self._profiles = profiles
        self._sending = sending
        self._payments = payments
        self._media = media
        self._invocations: dict[str, _Invocation] = {}

    def observe(self, event: Event) -> Event:
        """An event filter: a bot's result card settles the invocation waiting for it."""
        if isinstance(event, Message) and isinstance(event.content, kinds.MiniappResult):
            waiting = self._invocations.get(event.content.invocation_id)
            if (
                waiting is not None
                and waiting.bot == event.sender
                and waiting.conv == event.conv
                and not waiting.future.done()
            ):
                waiting.future.set_result(event)
        return event

    async def add_bot(self, conv: int, bot: int | str) -> int:
        """Invite a bot (an account id or ``@handle``) into group or channel ``conv`` (owner or
        admin); it starts with access ``addressed``. Returns the bot's account id."""
        account = await self._convs.lookup(bot) if isinstance(bot, str) else bot
        await self._convs.invite(conv, account)
        return account

    async def invoke(
        self,
        conv: int,
        bot: int,
        app: str,
        action: str,
        params: Mapping[str, str | int | bool] | None = None,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - when the invocation counts as failed (an event)
        resend_every: float | None = None,
        invocation_id: str | None = None,
    ) -> Message:
        """Invoke ``action`` of mini-app ``app`` of ``bot`` in ``conv`` and return the bot's
        ``miniapp.result`` message (its card; ``content.error`` set when the action failed).

        The invocation is addressed to the bot with a fresh id and sent again (same id: the bot
        answers it once) every ``resend_every`` seconds (default ``timeout / 3``) until its
        result arrives. After ``timeout`` seconds without one, an ``InvocationTimeout`` event is
        emitted and ``InvocationTimeoutError`` raised."""
        inv = invocation_id or uuid.uuid4().hex
        content = kinds.MiniappInvoke(
            invocation_id=inv, app=app, action=action, params=dict(params or {})
        )
        loop = asyncio.get_running_loop()
        waiting = _Invocation(conv, bot, loop.create_future())
        self._invocations[inv] = waiting
        every = resend_every if resend_every is not None else max(timeout / 3, 0.2)
        started = loop.time()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self._sending.send(conv, content, to=(bot,))
                    done, _ = await asyncio.wait({waiting.future}, timeout=every)
                    if done:
                        return waiting.future.result()
        except TimeoutError:
            waited = loop.time() - started
            await self._conn.emit(InvocationTimeout(conv, bot, inv, app, action, waited))
            raise InvocationTimeoutError(inv, waited) from None
        finally:
            self._invocations.pop(inv, None)
            if not waiting.future.done():
                waiting.future.cancel()

    async def press(self, card: Message, button: kinds.Button | int, **kw: Any) -> Message:
        """Press a button of a bot's card (a ``miniapp.result``, or its index there): invoke its
        action, in the card's mini-app (or the button's ``app`` of its ``bot``), in the card's
        conversation (the direct one with another bot that is not a member there). ``kw`` as
        for ``invoke``."""
        result = card.content
        if not isinstance(result, kinds.MiniappResult):
            raise ChatClientError("only a bot's card has buttons")
        if isinstance(button, int):
            if not 0 <= button < len(result.buttons):
                raise ChatClientError(f"the card has {len(result.buttons)} button(s)")
            button = result.buttons[button]
        bot = button.bot or card.sender
        app = button.app
        if not app:
            manifest = (await self._profiles.bot_profile(bot)).manifest
            if manifest is None:
                raise ChatClientError(f"account {bot} has no mini-app")
            app = manifest.name
        conv = card.conv
        if bot not in (await self._convs.view(conv)).bots:
            conv = await self._convs.direct(bot)
        return await self.invoke(conv, bot, app, button.action, button.params, **kw)

    async def open_share(self, share: kinds.Share, conv: int | None = None, **kw: Any) -> Message:
        """Open a shared mini-app card: invoke its action in ``conv`` (default: the direct
        conversation with its bot). ``kw`` as for ``invoke``."""
        if not (share.bot and share.app and share.action):
            raise ChatClientError("this share is not a mini-app card")
        target = conv if conv is not None else await self._convs.direct(share.bot)
        return await self.invoke(target, share.bot, share.app, share.action, share.params, **kw)

    async def pay_order(self, result: Message, *, ttl: float = 600.0) -> Receipt:
        """Pay the order on a bot's ``miniapp.result`` card: a ``pay`` to the bot naming the
        order's ``request_id``, for exactly its amount (the server refuses any other). Returns
        the verified receipt. Paying the same order again (a retry, after a crash too: the
        signed intent is kept in the key store) is the same posting: the ledger moves the money
        once and the answer is the first receipt (``replay``)."""
        card = result.content
        if not isinstance(card, kinds.MiniappResult) or card.order is None:
            raise ChatClientError("this message is not a card with an order")
        if result.own or result.sender == 0:
            raise ChatClientError("an order is paid to the bot that sent it")
        return await self._payments.pay_order(result.conv, result.sender, card.order, ttl=ttl)

    async def share(self, conv: int, card: kinds.Share, **kw: Any) -> F.Ack:
        """Share a card (a link, an image reference, or a mini-app card) into ``conv``,
        end-to-end encrypted like any message."""
        kw.setdefault("to", ())
        return await self._sending.send(conv, card, **kw)

    async def forward(self, message: Message, to_conv: int, *, origin: bool = True) -> F.Ack:
        """Forward ``message`` (as this client decrypted it) into ``to_conv``, with attribution
        (its author and time; ``origin``: its conversation and seq too). It is encrypted again
        for the target conversation: the server sees one more ``e2e`` message. A forwarded
        message keeps its original attribution when forwarded again."""
        if message.kind in (E2E_KIND, kinds.WITHHELD):
            raise ChatClientError("only a decrypted message can be forwarded")
        fwd = message.content
        if not isinstance(fwd, kinds.Forward):
            fwd = kinds.Forward(
                sender=message.sender,
                ts=message.ts,
                kind=message.kind,
                body=message.body,
                conv=message.conv,
                seq=message.seq,
            )
        if not origin:
            fwd = msgspec.structs.replace(fwd, conv=0, seq=0)
        blob = self._media.blob_of(fwd)  # a file: its blob becomes readable in to_conv (no upload)
        if blob:
            await self._media.attach(to_conv, blob)
        ack = await self._sending.send(to_conv, fwd, to=())
        if blob:
            await self._media.attach(to_conv, blob, ack.seq)
        return ack
