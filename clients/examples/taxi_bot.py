"""Taxi mini-app: a booking in steps — pick-up, destination, quote, confirm — on cards or in text.

    taxi.book                     start: a card asking for the pick-up point (one button each)
    taxi.pickup place=station     then the destination card
    taxi.destination place=airport    then the quote card: Confirm / Cancel
    taxi.confirm  |  taxi.cancel  accept the quote (an order to pay), or drop it
    /book, then answer each question (a reply to the bot, or anything in a direct chat)
    /ride                         where your booking stands
    /start                        what the bot does

Each user's booking is a small state machine kept in the conversation's ``ctx.state`` (so a
restart resumes it): a step that does not come next (a stale button, a destination before a
pick-up) is refused with a clear error on the card. Accepting the quote opens a request to pay
the fare (``ctx.order``, on the card or as ``/pay rq-...`` in text); the ride is booked only
when the ledger's receipt for it arrives, so nobody is booked beyond what they hold, and a
booking is confirmed once.

Run: .venv/bin/python clients/examples/taxi_bot.py --url ws://127.0.0.1:8765/ws
"""

from __future__ import annotations

import math
from typing import Any, Literal

from chatclient.bots import ArgumentError, Bot, Context, F, Router
from chatclient.errors import RequestError
from chatclient.events import Message
from chatproto import kinds, money

router = Router("taxi")
CURRENCY = "USD"
PLACES: dict[str, tuple[str, float, float]] = {
    "station": ("Central station", 0.0, 0.0),
    "airport": ("Airport", 18.0, -6.0),
    "harbour": ("Harbour", -3.0, 4.0),
    "museum": ("Museum", 1.5, 2.0),
}
"""place -> (name, x km, y km)."""
Place = Literal["station", "airport", "harbour", "museum"]
BASE, PER_KM = 300, 120
"""Fare: cents at pick-up, cents per km."""


def fare(pickup: str, destination: str) -> tuple[float, int]:
    """(distance in km, price in cents) between two places."""
    _, x1, y1 = PLACES[pickup]
    _, x2, y2 = PLACES[destination]
    km = round(math.hypot(x2 - x1, y2 - y1), 1)
    return km, BASE + round(PER_KM * km)


def _rides(ctx: Context) -> dict[str, Any]:
    rides: dict[str, Any] = ctx.state.setdefault("rides", {})
    return rides


def _ride(ctx: Context) -> dict[str, Any]:
    """This user's booking (step ``pickup`` -> ``destination`` -> ``confirm`` -> ``booked``)."""
    ride: dict[str, Any] | None = _rides(ctx).get(str(ctx.sender.account))
    if ride is None:
        raise ArgumentError("no booking in progress: start with taxi.book or /book")
    return ride


def _place_buttons(action: str, skip: str = "") -> list[kinds.Button]:
    return [
        kinds.Button(title=name, action=action, params={"place": place})
        for place, (name, _, _) in PLACES.items()
        if place != skip
    ]


def _parse_place(text: str) -> str:
    word = text.strip().lower()
    for place, (name, _, _) in PLACES.items():
        if word in (place, name.lower()):
            return place
    raise ArgumentError(f"I don't know {text.strip()!r}: one of {', '.join(PLACES)}")


def _start(ctx: Context) -> tuple[str, list[kinds.Button]]:
    _rides(ctx)[str(ctx.sender.account)] = {"step": "pickup"}
    return "Where should we pick you up?", _place_buttons("pickup")


def _set_pickup(ctx: Context, place: str) -> tuple[str, list[kinds.Button]]:
    ride = _ride(ctx)
    if ride["step"] != "pickup":
        raise ArgumentError("the pick-up point is already set: continue, or taxi.book again")
    ride.update(step="destination", pickup=place)
    return f"From {PLACES[place][0]}. Where to?", _place_buttons("destination", skip=place)


def _set_destination(ctx: Context, place: str) -> tuple[str, list[kinds.Button]]:
    ride = _ride(ctx)
    if ride["step"] != "destination":
        raise ArgumentError("choose the pick-up point first")
    if place == ride["pickup"]:
        raise ArgumentError("the destination is where you are")
    km, cents = fare(ride["pickup"], place)
    ride.update(step="confirm", destination=place, km=km, price=cents)
    text = (
        f"{PLACES[ride['pickup']][0]} → {PLACES[place][0]}: {km} km,"
        f" {money.format_money(cents, CURRENCY)}. Confirm?"
    )
    return text, [
        kinds.Button(title="Confirm", action="confirm"),
        kinds.Button(title="Cancel", action="cancel"),
    ]


def _route(ride: dict[str, Any]) -> str:
    return f"{PLACES[ride['pickup']][0]} → {PLACES[ride['destination']][0]}"


async def _accept(ctx: Context) -> tuple[str, kinds.PaymentRequest]:
    """The quote accepted: an order for the fare, paid before anything is booked."""
    ride = _ride(ctx)
    if ride["step"] == "booked":
        raise ArgumentError(f"already booked: ride {ride['id']}")
    if ride["step"] == "pay":
        raise ArgumentError(f"waiting for your payment of request {ride['request']}")
    if ride["step"] != "confirm":
        raise ArgumentError("there is no quote to confirm yet")
    order = await ctx.order(ride["price"], CURRENCY, memo=f"taxi {_route(ride)}")
    ride.update(step="pay", request=order.request_id)
    fare = money.format_money(ride["price"], CURRENCY)
    return f"{_route(ride)}, {fare}: pay to book.", order


def _status(ride: dict[str, Any] | None) -> str:
    """``/ride``: where this user's booking stands, in words."""
    if ride is None:
        return "No booking. /book to start."
    step = ride["step"]
    if step == "pickup":
        return f"Booking started: where should we pick you up? ({', '.join(PLACES)})"
    if step == "destination":
        return f"From {PLACES[ride['pickup']][0]}: where to? ({', '.join(PLACES)})"
    fare = money.format_money(ride["price"], CURRENCY)
    if step == "confirm":
        return f"Quote: {_route(ride)}, {ride['km']} km, {fare}. Confirm? (yes/no)"
    if step == "pay":
        return f"{_route(ride)}, {fare}: waiting for your payment (/pay {ride['request']})."
    return f"Ride {ride['id']}: {_route(ride)}, {fare} paid. Your driver is on the way."


# ---------------------------------------------------------------------- mini-app actions


@router.action("taxi.book")
async def book_action(msg: Message, ctx: Context) -> None:
    """Book a taxi"""
    text, buttons = _start(ctx)
    await ctx.answer(text, title="🚕 Taxi", buttons=buttons)


@router.action("taxi.pickup")
async def pickup_action(msg: Message, ctx: Context, place: Place) -> None:
    """Pick-up point"""
    text, buttons = _set_pickup(ctx, place)
    await ctx.answer(text, title="Destination", buttons=buttons)


@router.action("taxi.destination")
async def destination_action(msg: Message, ctx: Context, place: Place) -> None:
    """Destination"""
    text, buttons = _set_destination(ctx, place)
    await ctx.answer(text, title="Quote", buttons=buttons)


@router.action("taxi.confirm")
async def confirm_action(msg: Message, ctx: Context) -> None:
    """Confirm the quote (then pay the order to book)"""
    text, order = await _accept(ctx)
    await ctx.answer(text, title="Pay to book", order=order)


@router.action("taxi.cancel")
async def cancel_action(msg: Message, ctx: Context) -> None:
    """Cancel the booking"""
    await ctx.answer(await _cancel(ctx), title="🚕 Taxi")


async def _cancel(ctx: Context) -> str:
    """Drop this user's booking; a fare not paid yet can no longer be paid (its request is
    cancelled), and a booked ride stays booked."""
    ride = _rides(ctx).get(str(ctx.sender.account))
    if ride is not None and ride["step"] == "booked":
        raise ArgumentError(f"ride {ride['id']} is booked and paid already")
    if ride is not None and ride["step"] == "pay":
        try:
            await ctx.client.payments.cancel(ride["request"])
        except RequestError:  # closed: paid just before, and its receipt books the ride
            return "Your payment came first: the ride is booked."
    _rides(ctx).pop(str(ctx.sender.account), None)
    return "Cancelled."


# ---------------------------------------------------------------------- the same flow in text


@router.command("start")
async def start_cmd(msg: Message, ctx: Context) -> str:
    """What this bot does"""
    return (
        "I book taxis. /book, then tell me where from and where to (or use my mini-app:"
        " taxi.book); you pay the fare when you confirm, and the ride is booked once paid."
        " /ride shows where your booking stands."
    )


@router.command("book")
async def book_cmd(msg: Message, ctx: Context) -> str:
    """Book a taxi, step by step"""
    text, _ = _start(ctx)
    return f"{text} ({', '.join(PLACES)})"


@router.command("ride")
async def ride_cmd(msg: Message, ctx: Context) -> str:
    """Where your booking stands"""
    return _status(_rides(ctx).get(str(ctx.sender.account)))


@router.message(F.text & F.addressed)
async def answer(msg: Message, ctx: Context) -> str | None:
    """The next step of a booking in text: a place, then a place, then yes/no."""
    ride = _rides(ctx).get(str(ctx.sender.account))
    if ride is None or msg.text is None:
        return None
    step, text = ride["step"], msg.text
    if step == "pickup":
        return _set_pickup(ctx, _parse_place(text))[0]
    if step == "destination":
        return _set_destination(ctx, _parse_place(text))[0] + " (yes/no)"
    if step == "confirm":
        if text.strip().lower() in ("yes", "y", "confirm"):
            said, order = await _accept(ctx)
            return f"{said} /pay {order.request_id}"
        return await _cancel(ctx)
    return None


@router.message(F.receipt("transfer"))
async def paid(msg: Message, ctx: Context) -> None:
    """A payment to the bot: the ride whose order it settles is booked (once)."""
    r = msg.content
    assert isinstance(r, kinds.PaymentReceipt)  # F.receipt; verified by the SDK already
    ride = _rides(ctx).get(str(r.payer))
    if r.payee != ctx.me.account or ride is None or ride.get("request") != r.request_id:
        return  # not the fare of a ride waiting for it
    if ride["step"] != "pay" or (r.amount, r.currency) != (ride["price"], CURRENCY):
        return  # already booked (the ledger settles a request once), or not the fare
    ride.update(step="booked", id=f"R{msg.seq}")
    await ctx.reply(
        f"Booked ride {ride['id']}: {_route(ride)}, {money.format_money(r.amount, CURRENCY)}"
        " paid. Your driver arrives in 4 minutes."
    )


if __name__ == "__main__":
    Bot("ws://127.0.0.1:8765/ws", "taxi_bot.key", router, app_title="Taxi", app_icon="🚕").run()
