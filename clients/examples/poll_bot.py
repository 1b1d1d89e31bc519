"""Poll mini-app: create a poll, vote through mini-app actions, watch the tally update live.

    /poll Lunch where? | Pizza | Sushi | Tacos     create (or the action poll.create)
    miniapp.invoke app="poll" action="vote" params={"poll": "12", "option": 2}
    /vote 12 2                                     the same vote, typed (for text-only clients)
    /results 12                                    the tally (or the action poll.results)

The bot posts the poll as a text message and edits that message (an ``edit`` targeting it)
after every vote, so every member's client shows the live tally; each ``miniapp.result`` card
carries the tally and one button per option (pressing one is the next ``poll.vote``). Each voter has one vote and
may change it; a retried invocation (same id) counts once. Polls live in the conversation's
``ctx.state``, so they survive a bot restart.

The answer to a vote goes to the voter alone where the protocol allows it: in a direct
conversation with the bot it says which option was chosen. In a group it cannot: every message
of a conversation reaches every member (``to`` only narrows what *bots* receive, SPEC.md 16.3),
so there the card says only that the vote counted, never what it was, and a typed ``/vote`` is
answered in one line.

Run: .venv/bin/python clients/examples/poll_bot.py --url ws://127.0.0.1:8765/ws
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from chatclient.bots import ArgumentError, Bot, Context, Router
from chatclient.events import Message
from chatproto import kinds

router = Router("poll")
MAX_OPTIONS = 10
Option = Annotated[int, msgspec.Meta(ge=1, le=MAX_OPTIONS)]


def _polls(ctx: Context) -> dict[str, Any]:
    polls: dict[str, Any] = ctx.state.setdefault("polls", {})
    return polls


def _get(ctx: Context, poll: str) -> dict[str, Any]:
    p: dict[str, Any] | None = _polls(ctx).get(poll)
    if p is None:
        raise ArgumentError(f"there is no poll {poll!r} here")
    return p


def tally(p: dict[str, Any]) -> str:
    """The poll as text: question, options with vote counts, how to vote."""
    counts = [0] * len(p["options"])
    for choice in p["votes"].values():
        counts[choice - 1] += 1
    total = sum(counts)
    lines = [f"📊 {p['question']}" + ("" if p["open"] else " (closed)")]
    for i, (option, n) in enumerate(zip(p["options"], counts, strict=True), 1):
        bar = "█" * round(10 * n / total) if total else ""
        lines.append(f"{i}. {option} — {n} {bar}".rstrip())
    lines.append(f"{total} vote{'s' if total != 1 else ''} · poll {p['id']}")
    if p["open"]:
        lines.append(f"vote: /vote {p['id']} N (N from 1 to {len(p['options'])})")
    return "\n".join(lines)


def buttons(p: dict[str, Any]) -> list[kinds.Button]:
    """One button per option (each a further ``poll.vote`` invocation) while the poll is open."""
    if not p["open"]:
        return []
    return [
        kinds.Button(title=option[:64], action="vote", params={"poll": p["id"], "option": i})
        for i, option in enumerate(p["options"], 1)
    ]


async def _create(ctx: Context, question: str, options: list[str]) -> dict[str, Any]:
    options = [o.strip() for o in options if o.strip()]
    if not question.strip() or not 2 <= len(options) <= MAX_OPTIONS:
        raise ArgumentError(f"a poll needs a question and 2-{MAX_OPTIONS} options")
    pid = str(ctx.message.seq)
    p = {
        "id": pid,
        "question": question.strip(),
        "options": options,
        "votes": {},
        "by": ctx.sender.account,
        "open": True,
        "seq": 0,
    }
    ack = await ctx.send(ctx.conversation.id, tally(p))
    p["seq"] = ack.seq if ack is not None else 0
    _polls(ctx)[pid] = p
    return p


async def _vote(ctx: Context, poll: str, option: int) -> dict[str, Any]:
    p = _get(ctx, poll)
    if not p["open"]:
        raise ArgumentError("this poll is closed")
    if option > len(p["options"]):
        raise ArgumentError(f"option must be 1-{len(p['options'])}")
    p["votes"][str(ctx.sender.account)] = option
    await _refresh(ctx, p)
    return p


async def _refresh(ctx: Context, p: dict[str, Any]) -> None:
    """Edit the poll message: every member's client shows the new tally."""
    if p["seq"]:
        await ctx.send(ctx.conversation.id, kinds.Edit(target=p["seq"], text=tally(p)))


# ---------------------------------------------------------------------- commands


@router.command("start")
async def start_cmd(msg: Message, ctx: Context) -> str:
    """What this bot does"""
    return (
        "I run polls. /poll Question? | option | option ... creates one; vote with its buttons"
        " or /vote POLL N; /results shows the latest tally."
    )


@router.command("poll")
async def poll_cmd(msg: Message, ctx: Context, *, spec: str) -> None:
    """Create a poll: /poll Question? | option | option ..."""
    question, *options = spec.split("|")
    await _create(ctx, question, options)


@router.command("vote")
async def vote_cmd(msg: Message, ctx: Context, poll: str, option: Option) -> str:
    """Vote in a poll (or use the poll.vote action)"""
    p = await _vote(ctx, poll, option)
    if ctx.conversation.kind == "direct":  # the voter alone reads it
        return f"You voted for {p['options'][option - 1]}.\n{tally(p)}"
    return f"Vote counted (poll {poll}): the poll message shows the tally."


@router.command("results")
async def results_cmd(msg: Message, ctx: Context, poll: str | None = None) -> str:
    """Show a poll's tally (default: the latest poll)"""
    polls = _polls(ctx)
    if not polls:
        return "No polls here yet. Create one: /poll Question? | A | B"
    return tally(_get(ctx, poll) if poll else polls[max(polls, key=int)])


# ---------------------------------------------------------------------- mini-app actions


@router.action("poll.create")
async def create_action(msg: Message, ctx: Context, question: str, options: str) -> None:
    """Create a poll; options separated by |"""
    p = await _create(ctx, question, options.split("|"))
    await ctx.answer(tally(p), title="Poll created", buttons=buttons(p))


@router.action("poll.vote")
async def vote_action(msg: Message, ctx: Context, poll: str, option: Option) -> None:
    """Vote (again, to change the vote)"""
    p = await _vote(ctx, poll, option)
    # Everyone in a group reads the card: it says that the vote counted, not what it was.
    chosen = p["options"][option - 1]
    title = f"You voted for {chosen}" if ctx.conversation.kind == "direct" else "Vote counted"
    await ctx.answer(tally(p), title=title, buttons=buttons(p))


@router.action("poll.results")
async def results_action(msg: Message, ctx: Context, poll: str) -> None:
    """The tally"""
    p = _get(ctx, poll)
    await ctx.answer(tally(p), title="Results", buttons=buttons(p))


@router.action("poll.close")
async def close_action(msg: Message, ctx: Context, poll: str) -> None:
    """Close a poll (its creator only)"""
    p = _get(ctx, poll)
    if p["by"] != ctx.sender.account:
        raise ArgumentError("only the poll's creator can close it")
    p["open"] = False
    await _refresh(ctx, p)
    await ctx.answer(tally(p), title="Poll closed")


if __name__ == "__main__":
    Bot("ws://127.0.0.1:8765/ws", "poll_bot.key", router, app_title="Poll", app_icon="📊").run()
