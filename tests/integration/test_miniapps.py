"""Mini-apps against the real server (issue 7): the shop example selling through the ledger, the
taxi example's multi-step booking, invocations that time out, and a bot process killed with
invocations in flight that restarts from its key store and answers each once."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from botkit import (
    Inbox,
    bot_process,
    example,
    result_for,
    sent_by,
    text_is,
    user,
)
from chatclient import Client, KeyStore, Message
from chatclient.bots import Bot
from chatclient.errors import InvocationTimeoutError, RequestError
from chatclient.events import InvocationTimeout
from chatproto import kinds
from chatproto.errors import ErrorCode
from conftest import RunningServer
from paykit import audit, balances, mint


def buttons(result: Message) -> dict[str, kinds.Button]:
    assert isinstance(result.content, kinds.MiniappResult), result
    return {b.title: b for b in result.content.buttons}


async def press(client: Client, card: Message, title: str, **kw: float) -> Message:
    """Press the button ``title`` of a card (``Client.press``)."""
    return await client.press(card, buttons(card)[title], **kw)


# ---------------------------------------------------------------------- the shop


async def test_a_shop_order_is_paid_through_the_ledger_once_however_often_the_buyer_retries(
    server: RunningServer, tmp_path: Path
) -> None:
    shop = example("shop_bot")
    db = Path(server.app.settings.store.db)
    async with contextlib.AsyncExitStack() as stack:
        bot = await stack.enter_async_context(
            Bot(server.url, tmp_path / "shop_bot.key", shop.router, app_title="Shop")
        )
        alice = await stack.enter_async_context(
            Client(server.url, KeyStore.open(tmp_path / "alice.key"))
        )
        await alice.register("alice", "Alice")
        bob = await user(stack, server, "bob")
        group = (await alice.create("group", "Flat", [bob.account])).conv
        await alice.add_bot(group, "@shop_bot")  # access "addressed": it reads invocations only
        await mint(db, alice.account, 5_000)
        ia, ib = Inbox(alice), Inbox(bob)

        card = await alice.invoke(group, bot.me.account, "shop", "browse")
        assert card.content.title == "🛒 Shop"
        assert list(buttons(card)) == ["Green tea", "Cheesecake", "Shop mug"]
        tea = await press(alice, card, "Green tea")
        assert tea.reply_to and tea.content.text == "4.50 USD each"
        # The buyer's client resends the invocation (same id) every 50 ms until the result
        # comes: the bot answers it once and opens one order.
        order_card = await press(alice, tea, "Buy 2 (9.00 USD)", resend_every=0.05)
        order = order_card.content.order
        assert isinstance(order, kinds.PaymentRequest)
        assert (order.amount, order.currency, order.memo) == (900, "USD", "2 x Green tea")
        answered = result_for(bot.me.account, order_card.content.invocation_id)
        assert [m.seq for m in await ia.take(answered)] == [order_card.seq]  # on the stream too
        await ia.quiet(answered)  # and once

        receipt = await alice.pay_order(order_card)
        assert (receipt.receipt.type, receipt.receipt.request_id, receipt.replay) == (
            "transfer",
            order.request_id,
            False,
        )
        again = await alice.pay_order(order_card)  # the user taps "pay" again
        assert (again.seq, again.replay) == (receipt.seq, True)
        # A dropped connection in the middle of a payment: the retry is the same posting.
        paying = asyncio.create_task(alice.pay_order(order_card))
        await alice.drop_connection()
        assert (await paying).seq == receipt.seq
        # Someone else cannot pay alice's order, nor pay it twice.
        with pytest.raises(RequestError) as refused:
            await bob.pay_order(order_card)
        assert refused.value.code in (ErrorCode.FORBIDDEN, ErrorCode.INVALID, ErrorCode.CLOSED)

        confirm = text_is(bot.me.account, group, "✅ Paid 9.00 USD for 2 x Green tea")
        [confirmed] = await ib.take(confirm)
        assert confirmed.reply_to == receipt.seq  # the bot answers the (verified) receipt
        await ia.take(confirm)
        await alice.send_text(group, "/orders")
        await ia.take(text_is(bot.me.account, group, f"— paid ({order.request_id})"))
        await ia.quiet(confirm, wait=0.3)
        await ib.quiet(confirm, wait=0)

    assert balances(db, alice.account) == {"USD": 4_100}
    assert balances(db, bot.me.account) == {"USD": 900}
    assert audit(db).ok
    # Alice's client, restarted from its key store, retries once more: still the same posting.
    async with Client(server.url, KeyStore.open(tmp_path / "alice.key")) as alice_again:
        assert (await alice_again.pay_order(order_card)).replay
    assert balances(db, alice.account) == {"USD": 4_100}


# ---------------------------------------------------------------------- the taxi


async def test_a_taxi_is_booked_step_by_step_on_cards_and_stale_steps_are_refused(
    server: RunningServer,
) -> None:
    taxi = example("taxi_bot")
    db = Path(server.app.settings.store.db)
    async with contextlib.AsyncExitStack() as stack:
        bot = await stack.enter_async_context(
            Bot(server.url, KeyStore.memory(), taxi.router, handle="taxi_bot")
        )
        alice = await user(stack, server, "alice")
        conv = await alice.direct(bot.me.account)
        ia = Inbox(alice)
        card = await alice.invoke(conv, bot.me.account, "taxi", "book")
        assert card.content.text == "Where should we pick you up?"
        assert list(buttons(card)) == ["Central station", "Airport", "Harbour", "Museum"]
        where_to = await press(alice, card, "Central station")
        assert where_to.content.title == "Destination"
        assert "Central station" not in buttons(where_to)  # not a destination from there
        again = await press(alice, card, "Harbour")  # a stale button of the first card
        assert again.content.error.startswith("the pick-up point is already set")
        quote = await press(alice, where_to, "Airport")
        assert quote.content.text == "Central station → Airport: 19.0 km, 25.80 USD. Confirm?"
        order_card = await press(alice, quote, "Confirm")  # an order: nothing booked yet
        assert order_card.content.text == "Central station → Airport, 25.80 USD: pay to book."
        assert order_card.content.order.amount == 2580
        stale = await press(alice, quote, "Confirm")  # a second tap
        assert stale.content.error.startswith("waiting for your payment of request rq-")
        # Alice holds 1.00 USD: the ledger refuses the fare, and no ride is booked.
        await mint(db, alice.account, 100)
        with pytest.raises(RequestError) as refused:
            await alice.pay_order(order_card)
        assert refused.value.code == ErrorCode.INSUFFICIENT_FUNDS
        await mint(db, alice.account, 5_000)
        await alice.pay_order(order_card)
        [booked] = await ia.take(text_is(bot.me.account, conv, "Booked ride R"))
        assert booked.content.text.endswith("25.80 USD paid. Your driver arrives in 4 minutes.")
        stale = await press(alice, quote, "Confirm")
        assert stale.content.error.startswith("already booked: ride R")
        assert balances(db, alice.account) == {"USD": 5_100 - 2_580}
        card = await alice.invoke(conv, bot.me.account, "taxi", "destination", {"place": "museum"})
        assert card.content.error == "choose the pick-up point first"


async def test_a_taxi_is_booked_in_text_by_replies_to_the_bot_in_a_group(
    server: RunningServer,
) -> None:
    taxi = example("taxi_bot")
    async with contextlib.AsyncExitStack() as stack:
        bot = await stack.enter_async_context(
            Bot(server.url, KeyStore.memory(), taxi.router, handle="taxi_bot")
        )
        alice = await user(stack, server, "alice")
        bob = await user(stack, server, "bob")
        group = (await alice.create("group", "Trip", [bob.account, bot.me.account])).conv
        ib = Inbox(bob)
        taxi_says = sent_by(bot.me.account, group)
        await bob.send_text(group, "/book")
        [question] = await ib.take(taxi_says)
        assert question.content.text.startswith("Where should we pick you up?")
        await bob.send_text(group, "harbour")  # not addressed to the bot: it never gets it
        await ib.quiet(taxi_says)
        await bob.send_text(group, "harbour", reply_to=question.seq)  # a reply: addressed
        [question] = await ib.take(taxi_says)
        assert question.content.text == "From Harbour. Where to?"
        await bob.send_text(group, "museum", reply_to=question.seq)
        [quote] = await ib.take(taxi_says)
        assert quote.content.text == "Harbour → Museum: 4.9 km, 8.88 USD. Confirm? (yes/no)"
        await bob.send_text(group, "/ride")
        [status] = await ib.take(taxi_says)
        assert status.content.text == "Quote: Harbour → Museum, 4.9 km, 8.88 USD. Confirm? (yes/no)"
        await bob.send_text(group, "yes", reply_to=quote.seq)
        [to_pay] = await ib.take(taxi_says)
        said, rid = to_pay.content.text.split(" /pay ")
        assert said == "Harbour → Museum, 8.88 USD: pay to book."
        await mint(Path(server.app.settings.store.db), bob.account, 1_000)
        await bob.pay(group, bot.me.account, "8.88", "USD", request_id=rid)
        [booked] = await ib.take(taxi_says)
        assert booked.content.text.startswith("Booked ride R") and booked.reply_to
        await bob.send_text(group, "/ride@taxi_bot")
        [status] = await ib.take(taxi_says)
        assert status.content.text.endswith("8.88 USD paid. Your driver is on the way.")


# ---------------------------------------------------------------------- timeouts


async def test_an_invocation_nobody_answers_times_out_with_an_event_after_resends(
    server: RunningServer,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        silent = await stack.enter_async_context(Client(server.url))
        await silent.register("silent_bot", "Silent", bot=True)
        await silent.aclose()  # a bot that is down
        alice = await user(stack, server, "alice")
        conv = await alice.direct(silent.account)
        ia = Inbox(alice)
        with pytest.raises(InvocationTimeoutError) as timed_out:
            await alice.invoke(conv, silent.account, "app", "go", timeout=0.9, resend_every=0.25)
        inv = timed_out.value.invocation_id
        [event] = await ia.take(lambda ev: isinstance(ev, InvocationTimeout))
        assert (event.conv, event.bot, event.invocation_id, event.app, event.action) == (
            conv,
            silent.account,
            inv,
            "app",
            "go",
        )
        assert 0.85 <= event.waited < 5  # (the loop clock fires timers to the ms)
        sent = [
            m.content
            for m in await alice.history(conv)
            if isinstance(m, Message) and isinstance(m.content, kinds.MiniappInvoke)
        ]
        assert len(sent) >= 3 and {c.invocation_id for c in sent} == {inv}  # resent, one id


# ---------------------------------------------------------------------- crash and restart


async def test_a_killed_bot_restarts_from_its_key_store_and_answers_each_missed_invocation_once(
    server: RunningServer, tmp_path: Path
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        shop = await stack.enter_async_context(bot_process("shop_bot", server.url, tmp_path))
        alice = await user(stack, server, "alice")
        bot = await alice.lookup("shop_bot")
        conv = await alice.direct(bot)
        ia = Inbox(alice)
        first = await alice.invoke(conv, bot, "shop", "browse")
        assert first.content.title == "🛒 Shop"
        await ia.take(result_for(bot, first.content.invocation_id))  # the stream has it too

        def invocation(i: int) -> kinds.MiniappInvoke:
            order = i % 4 == 0  # every fourth opens an order with the ledger
            action = "order" if order else "item"
            params: dict[str, str | int | bool] = {"item": "cake" if order else "mug"}
            return kinds.MiniappInvoke(
                invocation_id=f"inv-{i}", app="shop", action=action, params=params
            )

        for i in range(12):  # in flight when the bot dies
            await alice.send(conv, invocation(i))
        got = await ia.take(result_for(bot))  # it is busy answering them...
        await shop.kill()  # ... and dies: no drain, no cursor saved
        for i in range(12, 20):  # sent while it is down, one of them twice (a retry)
            await alice.send(conv, invocation(i))
        await alice.send(conv, invocation(15))
        await shop.start()  # the same key store: it logs in, catches up
        got += await ia.take(result_for(bot), 19, timeout=15)
        await ia.quiet(result_for(bot), wait=0.5)
        ids = [r.content.invocation_id for r in got]
        assert sorted(ids) == sorted(f"inv-{i}" for i in range(20))  # each answered once
        orders = [r.content.order for r in got if r.content.order is not None]
        assert len({o.request_id for o in orders}) == len(orders) == 5
