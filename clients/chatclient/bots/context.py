"""What a handler gets besides the message: ``ctx``.

``ctx.reply`` answers in the same conversation, ``ctx.state`` is this conversation's persisted
state, ``ctx.args``/``ctx.command``/``ctx.invocation`` say what the user asked for.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from chatproto import frames as F
from chatproto import kinds
from chatproto.errors import ProtocolError

from chatclient.bots.errors import BotError
from chatclient.events import Message

if TYPE_CHECKING:
    from chatclient.client import Client


@dataclass(frozen=True, slots=True)
class Me:
    """The bot's own account."""

    account: int
    handle: str


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent the message, as this conversation knows them (``handle``/``role`` are empty
    when the sender is no longer a member)."""

    account: int
    handle: str = ""
    role: str = ""
    bot: bool = False
    """The sender is a bot account (the conversation lists its access)."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """The conversation a message belongs to (cached by the bot; refreshed when its membership
    or title changes)."""

    id: int
    kind: str
    """``direct``, ``group``, ``channel``; empty when the bot is no longer a member."""
    title: str = ""
    members: dict[int, Sender] = field(default_factory=dict)
    access: str = ""
    """The bot's own access here: ``all`` (it reads every message) or ``addressed`` (only
    commands, mentions, replies and invocations addressed to it; SPEC.md 16.3)."""

    @classmethod
    def from_info(cls, info: F.ConvInfo) -> Conversation:
        return cls(
            info.conv,
            info.kind,
            info.title,
            {
                m.account: Sender(m.account, m.handle, m.role, m.access is not None)
                for m in info.members
            },
            info.access or "",
        )


class State(MutableMapping[str, Any]):
    """A conversation's persisted state: a dict of JSON values (string keys).

    Loaded on first use in a handler and written when the handler returns normally, in the same
    commit that marks the message handled, so a restart neither loses it nor applies a message
    twice. A handler that raises leaves the state as it was. Handlers of one conversation run
    one at a time, so there is no race on it."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._data: dict[str, Any] = msgspec.json.decode(raw) if raw else {}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"State({self._data!r})"

    def dump(self) -> bytes | None:
        """The new JSON when it changed, else None (raises ``BotError`` for a value JSON cannot
        hold)."""
        try:
            new = msgspec.json.encode(self._data)
        except (TypeError, msgspec.EncodeError) as exc:
            raise BotError(f"ctx.state holds a value JSON cannot store: {exc}") from exc
        return None if new == self._raw else new


class Runtime(Protocol):
    """What a context needs from the running bot."""

    @property
    def client(self) -> Client: ...

    async def send_for(
        self,
        ctx: Context,
        conv: int,
        content: kinds.Content,
        to: Collection[int],
        reply_to: int | None,
    ) -> F.Ack | None: ...

    async def order_for(
        self, ctx: Context, amount: str | int, currency: str, memo: str, ttl: float
    ) -> kinds.PaymentRequest: ...

    def load_state(self, conv: int) -> bytes: ...


class Context:
    """Per-message context handed to handlers (and filters) as ``ctx``."""

    def __init__(
        self,
        message: Message,
        conversation: Conversation,
        sender: Sender,
        me: Me,
        runtime: Runtime | None = None,
        *,
        command: str | None = None,
        args: tuple[str, ...] = (),
        invocation: kinds.MiniappInvoke | None = None,
    ) -> None:
        self.message = message
        self.conversation = conversation
        self.sender = sender
        self.me = me
        self.command = command
        """The command name without ``/`` for command handlers (aliases resolved), else None."""
        self.args = args
        """The command's words as typed (typed values are passed to the handler itself)."""
        self.invocation = invocation
        """The ``miniapp.invoke`` content for action handlers, else None."""
        self.answered = False
        """Whether this invocation got its ``miniapp.result`` (the bot sends an empty one for
        a handler that returns without answering, so the user's client stops waiting)."""
        self.sent = 0
        self.orders = 0
        """Orders opened by this handler run (``order``): part of each request id."""
        self._runtime = runtime
        self._state: State | None = None

    @property
    def params(self) -> dict[str, str | int | bool]:
        """The invocation's raw parameters (typed ones are passed to the handler)."""
        return dict(self.invocation.params) if self.invocation is not None else {}

    @property
    def state(self) -> State:
        if self._state is None:
            raw = self._runtime.load_state(self.conversation.id) if self._runtime else b""
            self._state = State(raw)
        return self._state

    def state_dump(self) -> bytes | None:
        """The changed state to persist, if the handler touched and changed it."""
        return self._state.dump() if self._state is not None else None

    @property
    def client(self) -> Client:
        """The bot's SDK client (lookups, conversations, payments: anything not wrapped here)."""
        if self._runtime is None:
            raise BotError("this context is not attached to a running bot")
        return self._runtime.client

    async def reply(self, content: str | kinds.Content) -> F.Ack | None:
        """Answer in this conversation, as a reply to the message handled (``reply_to``; in a
        group, addressed to its sender when that is a bot): a string is a text message, or —
        in an action handler — the invocation's ``miniapp.result``; any typed content is sent
        as is.

        Returns the ``Ack``, or None when a restart found this very reply already stored (each
        reply has a client message id derived from the message it answers, so a handler re-run
        after a crash cannot post it twice)."""
        if isinstance(content, str):
            if self.invocation is not None:
                content = kinds.MiniappResult(
                    invocation_id=self.invocation.invocation_id, text=content
                )
            else:
                content = kinds.Text(text=content)
        return await self._post(self.conversation.id, content, reply=True)

    async def answer(
        self,
        text: str = "",
        *,
        title: str = "",
        image: str = "",
        buttons: Sequence[kinds.Button] = (),
        order: kinds.PaymentRequest | None = None,
        error: str = "",
    ) -> F.Ack | None:
        """Send this invocation's ``miniapp.result`` card (action handlers only): ``buttons``
        invoke further actions, ``order`` asks for a payment, ``error`` says the invocation
        failed. Raising ``ArgumentError`` in a handler answers with ``error`` too."""
        if self.invocation is None:
            raise BotError("ctx.answer() answers a miniapp.invoke; use ctx.reply() here")
        result = kinds.MiniappResult(
            invocation_id=self.invocation.invocation_id,
            title=title,
            text=text,
            image=image,
            buttons=list(buttons),
            order=order,
            error=error,
        )
        return await self._post(self.conversation.id, result, reply=True)

    async def order(
        self, amount: str | int, currency: str, memo: str = "", *, ttl: float = 3600.0
    ) -> kinds.PaymentRequest:
        """Open a request to pay (SPEC.md 15.5) from the sender of this message to the bot, for
        an order card: ``await ctx.answer("...", order=await ctx.order("12.50", "USD"))``.
        The user's client pays it with ``pay_order``; the ledger's ``transfer`` receipt (whose
        ``request_id`` is this order's) reaches the bot like any message. The request id is
        derived (keyed by a secret in the bot's key store, so nobody can open it first) from the
        bot, the conversation and this message, so a handler re-run after a crash opens no
        second request."""
        if self._runtime is None:
            raise BotError("this context is not attached to a running bot")
        return await self._runtime.order_for(self, amount, currency, memo, ttl)

    async def send(self, conv: int, content: str | kinds.Content) -> F.Ack | None:
        """Send to any conversation the bot is in (same idempotency as ``reply``)."""
        return await self._post(conv, content, reply=False)

    async def _post(self, conv: int, content: str | kinds.Content, *, reply: bool) -> F.Ack | None:
        if isinstance(content, str):
            content = kinds.Text(text=content)
        check_content(content)
        here = conv == self.conversation.id
        reply_to = self.message.seq if reply and here and self.message.seq else None
        to = (self.sender.account,) if reply and here and self.sender.bot else ()
        if (
            isinstance(content, kinds.MiniappResult)
            and self.invocation is not None
            and content.invocation_id == self.invocation.invocation_id
            and conv == self.conversation.id
        ):
            self.answered = True
        if self._runtime is None:
            raise BotError("this context is not attached to a running bot")
        self.sent += 1
        return await self._runtime.send_for(self, conv, content, to, reply_to)


def check_content(content: kinds.Content) -> None:
    """Refuse content the receivers could not read back (a 20,000-character text, say): the
    handler gets the error, instead of members silently getting an unreadable message."""
    try:
        kinds.decode_content(*kinds.encode_content(content))
    except ProtocolError as exc:
        raise BotError(f"cannot send this {content.KIND}: {exc.message}") from exc
