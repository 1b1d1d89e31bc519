"""Shop mini-app: browse a catalog on cards, order, pay through the ledger, get one confirmation.

    shop.browse                   a card with one button per item
    shop.item item=tea            the item's card: Buy 1 / Buy 2 buttons
    shop.order item=tea qty=2     an order card: the total as a payment request to pay
    /orders                       your orders here and whether they are paid

An order is a request to pay opened with the ledger (``ctx.order``: ``request_payment`` with
the buyer as payer and the bot as payee) and carried on the ``miniapp.result`` card. The buyer's
client pays it with ``Client.pay_order``: a ``pay`` naming the request, for exactly its amount
(the server refuses any other). The ledger's ``transfer`` receipt reaches the bot like any
member (payment receipts reach bots whatever their access), verified by the SDK against the
server's payment key before a handler sees it; the bot checks that it settles one of its open
orders, by that buyer, in full, and confirms. Once per order: a retried payment is the same
posting (the ledger moves the money once and stores one receipt), a second payment of a paid
request is refused (``CLOSED``), and a handled receipt is never handled again, even after a
restart. Orders live in the conversation's ``ctx.state``.

Run: .venv/bin/python clients/examples/shop_bot.py --url ws://127.0.0.1:8765/ws
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from chatclient.bots import ArgumentError, Bot, Context, F, Router
from chatclient.events import Message
from chatproto import kinds, money

router = Router("shop")
CURRENCY = "USD"
CATALOG: dict[str, tuple[str, int]] = {
    "tea": ("Green tea", 450),
    "cake": ("Cheesecake", 600),
    "mug": ("Shop mug", 1200),
}
"""item -> (title, price in cents)."""
Item = Literal["tea", "cake", "mug"]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=10)]


def _price(cents: int) -> str:
    return money.format_money(cents, CURRENCY)


def _orders(ctx: Context) -> dict[str, Any]:
    orders: dict[str, Any] = ctx.state.setdefault("orders", {})
    return orders


@router.command("start")
async def start_cmd(msg: Message, ctx: Context) -> str:
    """What this shop sells and how to buy"""
    lines = [f"{title} — {_price(cents)}" for title, cents in CATALOG.values()]
    return "\n".join(
        [
            "Welcome to the shop! Open it with its mini-app (shop.browse; in chat:"
            " /invoke @shop_bot shop.browse) and pay orders from their cards.",
            *lines,
            "/orders lists your orders here.",
        ]
    )


@router.action("shop.browse")
async def browse(msg: Message, ctx: Context) -> None:
    """Browse the shop"""
    lines = [f"{title} — {_price(cents)}" for title, cents in CATALOG.values()]
    buttons = [
        kinds.Button(title=title, action="item", params={"item": item})
        for item, (title, _) in CATALOG.items()
    ]
    await ctx.answer("\n".join(lines), title="🛒 Shop", buttons=buttons)


@router.action("shop.item")
async def item(msg: Message, ctx: Context, item: Item) -> None:
    """Show an item"""
    title, cents = CATALOG[item]
    buttons = [
        kinds.Button(
            title=f"Buy {n} ({_price(n * cents)})", action="order", params={"item": item, "qty": n}
        )
        for n in (1, 2)
    ]
    buttons.append(kinds.Button(title="Back", action="browse"))
    await ctx.answer(f"{_price(cents)} each", title=title, buttons=buttons)


@router.action("shop.order")
async def order(msg: Message, ctx: Context, item: Item, qty: Quantity = 1) -> None:
    """Order an item"""
    title, cents = CATALOG[item]
    total = qty * cents
    what = f"{qty} x {title}"
    request = await ctx.order(total, CURRENCY, memo=what)
    _orders(ctx)[request.request_id] = {
        "what": what,
        "amount": total,
        "buyer": ctx.sender.account,
        "paid": 0,
    }
    await ctx.answer(f"{what}: {_price(total)}. Pay to confirm.", title="Your order", order=request)


@router.message(F.receipt("transfer"))
async def paid(msg: Message, ctx: Context) -> None:
    """A payment to the bot: confirm the order it settles (once)."""
    r = msg.content
    assert isinstance(r, kinds.PaymentReceipt)  # F.receipt; verified by the SDK already
    o = _orders(ctx).get(r.request_id) if r.payee == ctx.me.account else None
    if o is None:
        return  # not one of this bot's orders
    if o["paid"]:
        return  # already confirmed (cannot happen: the ledger settles a request once)
    if (r.payer, r.amount, r.currency) != (o["buyer"], o["amount"], CURRENCY):
        raise ArgumentError(f"receipt #{msg.seq} does not settle order {r.request_id}")
    o["paid"] = msg.seq
    await ctx.reply(f"✅ Paid {_price(r.amount)} for {o['what']} (order {r.request_id}). Thanks!")


@router.command("orders")
async def orders_cmd(msg: Message, ctx: Context) -> str:
    """Your orders here"""
    mine = [(rid, o) for rid, o in _orders(ctx).items() if o["buyer"] == ctx.sender.account]
    if not mine:
        return "No orders yet: open the shop (shop.browse)."
    return "\n".join(
        f"{o['what']} — {_price(o['amount'])} — {'paid' if o['paid'] else 'awaiting payment'}"
        f" ({rid})"
        for rid, o in mine
    )


if __name__ == "__main__":
    Bot("ws://127.0.0.1:8765/ws", "shop_bot.key", router, app_title="Shop", app_icon="🛒").run()
