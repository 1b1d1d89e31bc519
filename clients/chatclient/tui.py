"""The pieces of the ``chat`` terminal client that do not talk to the server.

* ``parse_command``: one input line -> a typed command (pure).
* ``Names`` and ``format_*``: events -> display lines (pure; ``Names`` is a cache the caller fills).
* ``LineEditor``: keystrokes -> edited input line and completed lines (pure).
* ``PipeConsole`` / ``TerminalConsole``: stdin lines in, display lines out. The terminal one puts
  the TTY in cbreak mode and redraws the prompt and the partial input under every printed line.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import stat
import termios
import tty
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, TextIO

import msgspec
from chatproto import frames as F
from chatproto import kinds, links, money
from chatproto.errors import ChatProtoError, MoneyError
from chatproto.limits import MAX_PAGE, MAX_TITLE_CHARS, is_handle

from chatclient.events import (
    BotAdded,
    BotRemoved,
    ChannelPost,
    Connected,
    DevicesChanged,
    Disconnected,
    Event,
    InvocationTimeout,
    LockedPost,
    MasterKeyReceived,
    Message,
    MomentNote,
    MomentPost,
    Presence,
    SecurityWarning,
    SubscriptionChanged,
    TipReceived,
    Typing,
    Undecryptable,
)

# --------------------------------------------------------------------------- commands


class ParseError(ValueError):
    """A line that is not a valid command; ``str()`` is the message to show."""


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Convs:
    pass


@dataclass(frozen=True)
class Open:
    index: int | None = None
    handle: str | None = None


@dataclass(frozen=True)
class Dm:
    handle: str


@dataclass(frozen=True)
class Create:
    kind: str  # "group" or "channel"
    title: str
    handles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Invite:
    handle: str


@dataclass(frozen=True)
class Kick:
    handle: str


@dataclass(frozen=True)
class Role:
    handle: str
    role: str


@dataclass(frozen=True)
class Leave:
    pass


@dataclass(frozen=True)
class Rename:
    title: str


@dataclass(frozen=True)
class History:
    count: int = 20


@dataclass(frozen=True)
class Who:
    pass


@dataclass(frozen=True)
class Me:
    pass


@dataclass(frozen=True)
class Drop:
    pass


@dataclass(frozen=True)
class Quit:
    pass


@dataclass(frozen=True)
class Safety:
    """Show the safety number with @handle (compare it with theirs, in person or by call)."""

    handle: str


@dataclass(frozen=True)
class Verify:
    handle: str
    verified: bool = True


@dataclass(frozen=True)
class Approve:
    """Put a newly linked device of your own account on your signed device list, with the login
    key it shows (``key``: its hex, or a prefix of at least 16 hex digits)."""

    device: int
    key: str = ""


@dataclass(frozen=True)
class Handover:
    """Send your account's master key to another device on your signed device list."""

    device: int


@dataclass(frozen=True)
class Pay:
    """Pay @handle in the current conversation (or your direct one with them, said before it is
    confirmed)."""

    handle: str
    amount: str
    currency: str
    memo: str = ""
    confirmed: bool = False
    """``/pay! ...``: no confirmation step (scripts; ``chat --yes`` does it for every payment)."""


@dataclass(frozen=True)
class PayRequest:
    """Pay a request to pay that was shown (``/pay rq_...``)."""

    request_id: str
    confirmed: bool = False


@dataclass(frozen=True)
class Decline:
    """Decline a request to pay addressed to you (``/decline rq_...``)."""

    request_id: str


@dataclass(frozen=True)
class CancelRequest:
    """Withdraw your own request to pay (``/cancel rq_...``)."""

    request_id: str


@dataclass(frozen=True)
class Yes:
    """Confirm the payment waiting for confirmation."""


@dataclass(frozen=True)
class No:
    """Drop the payment waiting for confirmation."""


@dataclass(frozen=True)
class Reply:
    """Answer message ``target`` (None: the latest message of someone else here)."""

    target: int | None
    text: str


@dataclass(frozen=True)
class EditMessage:
    """Change the text of your message ``target`` (None: your latest message here)."""

    target: int | None
    text: str


@dataclass(frozen=True)
class DeleteMessage:
    """Delete your message ``target`` for everyone (None: your latest message here)."""

    target: int | None = None


@dataclass(frozen=True)
class React:
    """React to message ``target`` (None: the latest message here) with ``emoji``."""

    target: int | None
    emoji: str
    remove: bool = False


@dataclass(frozen=True)
class NewPublic:
    """Create a public channel ``@handle`` (``/public @handle "Title" [description]``)."""

    handle: str
    title: str
    about: str = ""


@dataclass(frozen=True)
class Publish:
    """Publish ``text`` in your public channel ``@channel``, signed by this device."""

    channel: str
    text: str


@dataclass(frozen=True)
class EditPost:
    """Publish a new version of post ``seq`` (``text``) or its tombstone (``text`` None)."""

    channel: str
    seq: int
    text: str | None


@dataclass(frozen=True)
class Follow:
    """Follow (or unfollow) public channel ``@channel``: no invitation needed."""

    channel: str
    follow: bool = True


@dataclass(frozen=True)
class Search:
    """Search the directory of public channels for ``query`` (``/search more``: next page)."""

    query: str


@dataclass(frozen=True)
class ShowPosts:
    """Show the newest ``count`` posts of public channel ``@channel``, each verified."""

    channel: str
    count: int = 10


@dataclass(frozen=True)
class ShowTimeline:
    """Show the newest entries of this account's timeline (``more``: the next older page)."""

    more: bool = False


@dataclass(frozen=True)
class CommentPost:
    """Comment on post ``seq`` of ``@channel`` (``reply_to``: answer that comment)."""

    channel: str
    seq: int
    text: str
    reply_to: int = 0


@dataclass(frozen=True)
class ShowComments:
    """Show the thread of post ``seq`` of ``@channel``."""

    channel: str
    seq: int


@dataclass(frozen=True)
class ReactToPost:
    """React to post ``seq`` of ``@channel`` with ``emoji`` (``remove``: take it back)."""

    channel: str
    seq: int
    emoji: str
    remove: bool = False


@dataclass(frozen=True)
class TipPost:
    """Tip post ``seq`` of ``@channel`` (paid to its owner), e.g. ``/tip @news 3 2.00 USD``."""

    channel: str
    seq: int
    amount: str
    currency: str
    confirmed: bool = False


@dataclass(frozen=True)
class ChannelPriceCmd:
    """Show (``amount`` None) or set your channel's subscription price per ``days``; ``off``
    (amount "0") ends it for new subscribers."""

    channel: str
    amount: str | None = None
    currency: str = ""
    days: int = 30


@dataclass(frozen=True)
class SubscribeCmd:
    """Subscribe to ``@channel`` for ``periods`` periods at the price the user typed (``None``:
    show the price and how to agree to it)."""

    channel: str
    periods: int | None = None
    amount: str = ""
    currency: str = ""
    confirmed: bool = False


@dataclass(frozen=True)
class UnsubscribeCmd:
    channel: str


@dataclass(frozen=True)
class ShowSubscriptions:
    """Your subscriptions (``channel``: the one to that channel)."""

    channel: str = ""


@dataclass(frozen=True)
class PaidPost:
    """Publish ``text`` in ``@channel`` for its subscribers only."""

    channel: str
    text: str


@dataclass(frozen=True)
class BanComments:
    """Ban ``who`` (``@handle``, or ``#N``: the author of comment N as ``/comments`` showed
    it) from commenting in ``@channel`` for ``seconds`` (0: until lifted), or lift the ban
    (``lift``); ``delete`` empties their comments there too."""

    channel: str
    who: str
    seconds: int = 0
    delete: bool = False
    lift: bool = False


@dataclass(frozen=True)
class CommentBanList:
    """The bans in force in ``@channel`` (its admins only)."""

    channel: str


@dataclass(frozen=True)
class SlowMode:
    """Let non-admins comment in ``@channel`` once per ``seconds`` (0: off)."""

    channel: str
    seconds: int


@dataclass(frozen=True)
class PostMoment:
    """Post a Moment (SPEC.md 22) to ``audience`` (handles; empty: all your contacts)."""

    text: str
    audience: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShowMoments:
    """The newest ``count`` Moments you see (of ``author`` when given), decrypted."""

    author: str | None = None
    count: int = 10


@dataclass(frozen=True)
class CommentMoment:
    """Comment on Moment ``moment`` (``reply_to``: answer that comment)."""

    moment: int
    text: str
    reply_to: int = 0


@dataclass(frozen=True)
class ShowMomentComments:
    """The comments and likes of Moment ``moment`` you see (your contacts' only)."""

    moment: int


@dataclass(frozen=True)
class LikeMoment:
    """Like Moment ``moment`` (``like`` False: take the like back)."""

    moment: int
    like: bool = True


@dataclass(frozen=True)
class DeleteMoment:
    """Delete your Moment ``moment``, or (``comment``) a comment under it."""

    moment: int
    comment: int = 0


@dataclass(frozen=True)
class Reads:
    """How far each member has read the current conversation (``/read``)."""


@dataclass(frozen=True)
class BotCommand:
    """A ``/word`` that is no command of chat: sent as is to the bots of the conversation."""

    text: str


@dataclass(frozen=True)
class AskPayment:
    """Ask @handle for money (``/request``)."""

    handle: str
    amount: str
    currency: str
    memo: str = ""


@dataclass(frozen=True)
class Balance:
    currency: str = ""


@dataclass(frozen=True)
class Wallet:
    """Your latest ledger entries with the running balance."""

    count: int = 20


@dataclass(frozen=True)
class RedPacket:
    amount: str
    currency: str
    shares: int
    split: str = "random"
    memo: str = ""
    confirmed: bool = False


@dataclass(frozen=True)
class ClaimPacket:
    packet: str = ""
    """"" = the latest red packet of the current conversation."""


@dataclass(frozen=True)
class Invoke:
    """Invoke a bot's mini-app action here: ``/invoke @bot app.action k=v ...``."""

    handle: str
    action: str
    """``action`` or ``app.action`` (the app defaults to the bot's mini-app)."""
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Press:
    """Press button N of a card (the numbers shown in brackets)."""

    number: int


@dataclass(frozen=True)
class PayOrder:
    """Pay order N (a bot card's order, numbered as shown)."""

    number: int
    confirmed: bool = False


@dataclass(frozen=True)
class Forward:
    """Forward message SEQ of the current conversation to another (``/convs`` number or
    ``@handle`` for the direct one)."""

    seq: int
    index: int | None = None
    handle: str | None = None


@dataclass(frozen=True)
class ShareLink:
    title: str
    link: str = ""
    text: str = ""


@dataclass(frozen=True)
class ShareCard:
    """Share a mini-app card: opening it invokes ``action`` of ``handle``'s mini-app."""

    handle: str
    action: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Seqs:
    """Show (or hide) message seqs."""


@dataclass(frozen=True)
class Bots:
    """The current conversation's bots, their access, commands and mini-app."""


@dataclass(frozen=True)
class Access:
    """Let a bot of the current group read everything (``all``) or only what is addressed to
    it (``addressed``)."""

    handle: str
    access: str


@dataclass(frozen=True)
class SendFile:
    """Send the file at ``path`` end-to-end encrypted (``/file``; ``/image``: with its
    dimensions and a thumbnail)."""

    path: str
    image: bool = False


@dataclass(frozen=True)
class SaveAttachment:
    """Save the attachment of message ``seq`` here to ``path`` (default: its name, here)."""

    seq: int
    path: str | None = None


@dataclass(frozen=True)
class Requests:
    """The pending message requests and group invitations (``/requests``), numbered."""


@dataclass(frozen=True)
class Answer:
    """Answer a message request or invitation: ``accept``, ``delete`` (``/decline``) or
    ``block``; by its sender's handle or its ``/requests`` number."""

    answer: str
    handle: str | None = None
    index: int | None = None


@dataclass(frozen=True)
class Block:
    handle: str
    blocked: bool = True


@dataclass(frozen=True)
class ContactList:
    """Your contacts and the accounts you blocked (``/contacts``)."""


@dataclass(frozen=True)
class Privacy:
    """Show the privacy settings, or change one (``/privacy add_me contacts``)."""

    setting: str = ""
    value: str = ""


@dataclass(frozen=True)
class NewBot:
    """Create a bot account owned by yours, its key in ``path`` (default ``HANDLE.key``)."""

    handle: str
    name: str
    path: str = ""


@dataclass(frozen=True)
class MakeLink:
    """``/link [approval] [uses=N] [expires=7d] [name]``: a new invite link here (SPEC.md 20)."""

    name: str = ""
    expires_in: float = 0.0
    """Seconds; 0: never."""
    max_uses: int = 0
    approval: bool = False


@dataclass(frozen=True)
class LinkList:
    """The invite links of the current group or channel, with their use counts (``/links``)."""


@dataclass(frozen=True)
class Unlink:
    """Revoke invite link ``link`` (its number in ``/links``) of the current conversation."""

    link: int


@dataclass(frozen=True)
class JoinByLink:
    """``/join LINK`` (``/preview LINK``: only say where it leads)."""

    link: str
    preview_only: bool = False


@dataclass(frozen=True)
class JoinRequestList:
    """The pending join requests of the current group or channel (``/joinrequests``)."""


@dataclass(frozen=True)
class Admit:
    """Approve (``/approve @handle``) or decline (``/deny @handle``) a join request here."""

    handle: str
    approve: bool = True


Command = (
    Say
    | MakeLink
    | LinkList
    | Unlink
    | JoinByLink
    | JoinRequestList
    | Admit
    | Requests
    | Answer
    | Block
    | ContactList
    | Privacy
    | NewBot
    | SendFile
    | SaveAttachment
    | Help
    | Convs
    | Open
    | Dm
    | Create
    | Invite
    | Kick
    | Role
    | Leave
    | Rename
    | History
    | Who
    | Me
    | Drop
    | Quit
    | Safety
    | Verify
    | Approve
    | Handover
    | Pay
    | AskPayment
    | Balance
    | Wallet
    | RedPacket
    | ClaimPacket
    | Invoke
    | Press
    | PayOrder
    | Forward
    | ShareLink
    | ShareCard
    | Bots
    | Access
    | Seqs
    | PayRequest
    | Decline
    | CancelRequest
    | Yes
    | No
    | Reply
    | EditMessage
    | DeleteMessage
    | React
    | Reads
    | BotCommand
    | NewPublic
    | Publish
    | EditPost
    | Follow
    | Search
    | ShowPosts
    | ShowTimeline
    | CommentPost
    | ShowComments
    | ReactToPost
    | TipPost
    | ChannelPriceCmd
    | SubscribeCmd
    | UnsubscribeCmd
    | ShowSubscriptions
    | PaidPost
    | BanComments
    | CommentBanList
    | SlowMode
    | PostMoment
    | ShowMoments
    | CommentMoment
    | ShowMomentComments
    | LikeMoment
    | DeleteMoment
)

MONEY_COMMANDS = (Pay, PayRequest, PayOrder, RedPacket)
"""Commands that move money out of the wallet: each is confirmed first (``/yes``), unless typed
with ``!`` (``/pay! ...``) or chat runs with ``--yes``."""

HELP = """\
commands:
  /convs                     list your conversations with unread counts
  /open N | /open @handle    switch to conversation N of /convs, or the direct one with @handle
  /dm @handle                open (or create) the direct conversation with @handle
  /group "Title" @a @b ...   create a group with these members
  /channel "Title" [@a ...]  create a channel
  /invite @handle            add someone to the current group or channel (a stranger gets
                             an invitation to accept)
  /kick @handle              remove someone from the current group or channel
  /role @handle admin|member change someone's role (owner only)
  /leave                     leave the current group or channel
  /rename Title              rename the current group or channel
  /history [N]               show the N (default 20) messages before the ones already shown
  /reply [SEQ] text          answer message SEQ (default: the latest from someone else)
  /edit [SEQ] text           change your message SEQ (default: your latest)
  /delete [SEQ]              delete message SEQ for everyone (default: your latest); another's
                             message: if you are the group's owner or an admin
  /react [SEQ] EMOJI         react to message SEQ (default: the latest); /unreact to undo
  /read                      how far each member has read here (seen since you connected)
  /who                       members of the current conversation, with roles and presence
  /me                        who you are
  /requests                  message requests and group invitations waiting for you
  /accept @handle | N        accept the request or invitation from @handle (or number N)
  /decline @handle | N       delete it; its sender is not told
  /block @handle             block @handle (no messages, invitations, presence from them);
                             /unblock @handle undoes it
  /contacts                  your contacts (whom you accepted or messaged first) and blocks
  /privacy                   who may add you, see you online, see your last seen, find you
  /privacy SETTING VALUE     change one: add_me|presence|last_seen|find_me everyone|contacts|nobody
  /link [approval] [uses=N] [expires=7d] [name]
                             an invite link to the current group or channel (admins); share it
  /links                     its invite links, with their uses; /revoke N stops link N at once
  /join LINK                 join through an invite link (/preview LINK: where it leads)
  /joinrequests              who asked to join here through a link that needs approval
  /approve @handle           let them in (/deny @handle declines; they are not told)
  /newbot HANDLE "Name" [KEYFILE]  create a bot owned by you; its key goes to KEYFILE
                             (default HANDLE.key), which the bot runs with
  /safety @handle            the 60-digit safety number to compare with @handle
  /verify @handle            mark @handle's keys verified (also accepts a changed key)
  /unverify @handle          forget that @handle's keys were verified
  /approve DEVICE [KEY]      add your newly linked device (KEY: its /me key) to your device list
  /handover DEVICE           give your account's master key to DEVICE (on your device list)
  /pay @handle 12.50 USD [memo]      pay @handle here (or in your direct conversation)
  /pay REQUEST_ID            pay a request to pay shown here (rq_...)
  /decline REQUEST_ID        decline a request to pay you; /cancel REQUEST_ID withdraws yours
  /yes | /no                 confirm or drop the payment chat asks about (/pay! ... skips the
                             question; chat --yes skips it for every payment)
  /request @handle 12.50 USD [memo]  ask @handle for money
  /balance [CUR]             your balances
  /wallet [N]                your last N (default 20) payments with the running balance
  /redpacket 88.88 CNY 8 [equal] [greeting]  drop a red packet of 8 shares here
  /claim [ID]                take a share of the latest (or that) red packet here
  /bots                      the bots here: what they read, their commands and mini-apps
  /invoke @bot app.action [k=v ...]  run a bot's mini-app action here (its card shows)
  /press N                   press button [N] of a card (or open a shared mini-app card)
  /payorder N                pay order N of a bot's card (through your wallet)
  /seqs                      show (or hide) message numbers (#SEQ), which /reply, /edit,
                             /delete, /react and /forward take
  /forward SEQ N|@handle     forward message SEQ of this conversation to conversation N
  /share "Title" [URL] [text]        share a link card here
  /share @bot app.action [k=v ...]   share a mini-app card here
  /access @bot all|addressed let a bot here read everything, or only what names it
  /file PATH                 send a file here, end-to-end encrypted (/image PATH: a photo,
                             with its size and a thumbnail)
  /save N [PATH]             save the file of message #N here (/seqs) to PATH or its name
  /public @handle "Title" [description]  create a public channel anyone can find and follow;
                             prints its link chatd://channel/HANDLE, which every @channel
                             below also takes
  /publish @channel text     publish a post in your public channel (signed by this device)
  /editpost @channel SEQ text  publish a new version of post SEQ (its history is kept)
  /delpost @channel SEQ      delete post SEQ (a signed tombstone replaces it)
  /follow @channel           follow a public channel (no invitation): its posts show here;
                             /unfollow @channel stops them
  /search WORDS              find public channels by handle, title or description
                             (/search more: the next page)
  /posts @channel [N]        the newest N (default 10) posts of a public channel, followed or
                             not, each checked against its publisher's device key
  /timeline                  the newest posts of the channels you follow and your contacts'
                             Moments, newest last (/timeline more: the page before)
  /comment @channel SEQ [#N] text  comment on post SEQ (#N: answer comment N)
  /comments @channel SEQ     the comments of post SEQ, with their numbers
  /reactpost @channel SEQ EMOJI  react to post SEQ; /unreactpost takes it back
  /tip @channel SEQ AMOUNT CURRENCY  tip post SEQ (paid to the channel's owner; /yes confirms)
  /price @channel [AMOUNT CURRENCY [DAYS] | off]  show or set your channel's subscription price
  /subscribe @channel [PERIODS AMOUNT CURRENCY]  show the price, or subscribe at it (/yes)
  /unsubscribe @channel      no further charges (you keep what you paid for)
  /subscription [@channel]   your subscriptions: state, paid through
  /paidpost @channel text    publish for your channel's subscribers only
  /bancomments @channel @user|#N [30m|2h|7d] [delete]  ban a user (#N: the author of comment
                             N) from commenting in your channel, for a while or until lifted;
                             delete: their comments there go too. /unbancomments lifts it
  /commentbans @channel      the bans in force in your channel
  /slowmode @channel SECONDS|off  non-admins comment once per SECONDS (at most 3600)
  /moment [@a @b ...] text   post a Moment to these contacts (none: all your contacts),
                             end-to-end encrypted to them
  /moments [@handle] [N]     the newest N (default 10) Moments you see (of @handle)
  /mcomment ID [#N] text     comment on Moment ID (#N: answer comment N); only the author
                             and your own contacts see it
  /mcomments ID              the comments and likes of Moment ID you see
  /mlike ID | /munlike ID    like Moment ID, or take the like back
  /delmoment ID [#N]         delete your Moment ID, or comment N under it
  /drop                      simulate a network failure (the client reconnects)
  /quit                      exit (also Ctrl-D)
any other line is sent to the current conversation. A /word that is none of the above goes to
the bots of the conversation (/start, /poll Lunch? | A | B, /start@shop_bot: /bots lists them);
start a line with // to send it as text that begins with /"""

LOCAL_COMMANDS = frozenset(
    [
        "help",
        "convs",
        "leave",
        "who",
        "me",
        "quit",
        "drop",
        "open",
        "dm",
        "group",
        "channel",
        "invite",
        "kick",
        "role",
        "rename",
        "safety",
        "verify",
        "unverify",
        "approve",
        "handover",
        "pay",
        "request",
        "decline",
        "cancel",
        "requests",
        "accept",
        "link",
        "links",
        "revoke",
        "join",
        "preview",
        "joinrequests",
        "deny",
        "block",
        "unblock",
        "contacts",
        "privacy",
        "newbot",
        "yes",
        "no",
        "reply",
        "edit",
        "delete",
        "del",
        "react",
        "unreact",
        "read",
        "receipts",
        "balance",
        "wallet",
        "redpacket",
        "claim",
        "bots",
        "seqs",
        "invoke",
        "press",
        "payorder",
        "forward",
        "share",
        "access",
        "history",
        "file",
        "image",
        "save",
        "public",
        "publish",
        "editpost",
        "delpost",
        "follow",
        "unfollow",
        "search",
        "posts",
        "comment",
        "comments",
        "reactpost",
        "unreactpost",
        "tip",
        "price",
        "subscribe",
        "unsubscribe",
        "subscription",
        "paidpost",
        "bancomments",
        "unbancomments",
        "commentbans",
        "slowmode",
        "moment",
        "moments",
        "mcomment",
        "mcomments",
        "mlike",
        "munlike",
        "delmoment",
    ]
)
"""chat's own command names (after aliases); any other /word may be a bot's."""
PRIVACY_SETTINGS = ("add_me", "presence", "last_seen", "find_me")
_FREE_TEXT = frozenset(
    {"publish", "editpost", "comment", "reply", "edit", "moment", "mcomment", "paidpost"}
)
"""Commands whose last argument is text as typed (quotes and apostrophes included)."""
_ALIASES = {"q": "quit", "exit": "quit", "h": "help", "?": "help", "list": "convs"}


def parse_handle(word: str) -> str:
    """``@Bob`` or ``bob`` -> ``bob``; raises ``ParseError`` for what cannot be a handle."""
    handle = word.removeprefix("@").lower()
    if not is_handle(handle):
        raise ParseError(f"not a handle: {word}")
    return handle


def is_channel_ref(word: str) -> bool:
    """Whether ``word`` is meant as a public channel: ``@handle`` or a channel link."""
    return word.startswith(("@", links.CHANNEL_PREFIX))


def parse_channel(word: str) -> str:
    """A public channel's handle from ``@News``, ``news`` or ``chatd://channel/news`` (the link
    ``/public`` prints, SPEC.md 20.1); ``ParseError`` for anything else."""
    if not word.startswith(links.CHANNEL_PREFIX):
        return parse_handle(word)
    try:
        return links.parse_channel_ref(word)
    except ChatProtoError:
        raise ParseError(f"not a channel link: {word}") from None


def parse_currency(word: str) -> str:
    """``usd`` -> ``USD``; ``ParseError`` for what is not an ISO 4217 code."""
    code = word.upper()
    if not money.is_currency(code):
        raise ParseError(f"not a currency: {word} (use an ISO 4217 code such as USD, EUR, JPY)")
    return code


def parse_money(text: str, currency: str) -> str:
    """``text`` if it is a valid amount of ``currency`` (kept as text: the SDK parses it)."""
    try:
        money.parse_amount(text, currency)
    except MoneyError as exc:
        raise ParseError(exc.message) from None
    return text


def _creator_command(name: str, args: list[str], rest: str, confirmed: bool) -> Command:
    """The creators' commands (SPEC.md 15.12-15.14)."""
    channel = parse_channel(args[0]) if args and is_channel_ref(args[0]) else ""
    match name:
        case "tip":
            if len(args) != 4 or not channel or not args[1].isdigit():
                raise ParseError("usage: /tip @channel SEQ AMOUNT CURRENCY")
            currency = parse_currency(args[3])
            amount = parse_money(args[2], currency)
            return TipPost(channel, int(args[1]), amount, currency, confirmed)
        case "price":
            if not channel or len(args) not in (1, 2, 3, 4):
                raise ParseError("usage: /price @channel [AMOUNT CURRENCY [DAYS] | off]")
            if len(args) == 1:
                return ChannelPriceCmd(channel)
            if len(args) == 2 and args[1] == "off":
                return ChannelPriceCmd(channel, "0")
            if len(args) == 2 or (len(args) == 4 and not args[3].isdigit()):
                raise ParseError("usage: /price @channel [AMOUNT CURRENCY [DAYS] | off]")
            currency = parse_currency(args[2])
            days = int(args[3]) if len(args) == 4 else 30
            return ChannelPriceCmd(channel, parse_money(args[1], currency), currency, days)
        case "subscribe":
            if channel and len(args) == 1:
                return SubscribeCmd(channel)
            if not channel or len(args) != 4 or not args[1].isdigit() or int(args[1]) < 1:
                raise ParseError("usage: /subscribe @channel [PERIODS AMOUNT CURRENCY]")
            currency = parse_currency(args[3])
            amount = parse_money(args[2], currency)
            return SubscribeCmd(channel, int(args[1]), amount, currency, confirmed)
        case "unsubscribe":
            if not channel or len(args) != 1:
                raise ParseError("usage: /unsubscribe @channel")
            return UnsubscribeCmd(channel)
        case "subscription":
            if len(args) > 1 or (args and not channel):
                raise ParseError("usage: /subscription [@channel]")
            return ShowSubscriptions(channel)
    handle, text = _channel_text(rest, "/paidpost @channel text")
    return PaidPost(handle, text)


def _channel_text(rest: str, usage: str) -> tuple[str, str]:
    """``@channel text`` (``/publish``, ``/paidpost``): the channel's handle and the text as
    typed, stripped; ``ParseError`` with ``usage`` when either is missing."""
    handle, _, text = rest.strip().partition(" ")
    if not is_channel_ref(handle) or not text.strip():
        raise ParseError(f"usage: {usage}")
    return parse_channel(handle), text.strip()


def _params(words: list[str], usage: str) -> tuple[tuple[str, str], ...]:
    out = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key.isidentifier():
            raise ParseError(f"usage: {usage}  (parameters are name=value)")
        out.append((key, value))
    return tuple(out)


def _target(args: list[str]) -> tuple[int | None, list[str]]:
    """A leading message number (``12`` or ``#12``) and the words after it."""
    if args and args[0].removeprefix("#").isdigit() and int(args[0].removeprefix("#")) >= 1:
        return int(args[0].removeprefix("#")), args[1:]
    return None, args


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _request_id(word: str, usage: str) -> str:
    if word.startswith("@") or not _REQUEST_ID.fullmatch(word):
        raise ParseError(f"usage: {usage}")
    return word


def _number(word: str, usage: str) -> int:
    if not word.isdigit() or int(word) < 1:
        raise ParseError(f"usage: {usage}")
    return int(word)


def _reply_to(body: str) -> tuple[int, str]:
    """A comment's ``[#N] text`` (``/comment``, ``/mcomment``): the comment it answers (0:
    none) and its text, stripped."""
    body = body.strip()
    first, _, after = body.partition(" ")
    if first.startswith("#") and first[1:].isdigit():
        return int(first[1:]), after.strip()
    return 0, body


def _title(title: str) -> str:
    title = title.strip()
    if not title:
        raise ParseError("the title is empty")
    if len(title) > MAX_TITLE_CHARS:
        raise ParseError(f"the title is longer than {MAX_TITLE_CHARS} characters")
    return title


def _parse_moderation(name: str, args: list[str]) -> Command:
    """``/bancomments``, ``/unbancomments``, ``/commentbans``, ``/slowmode`` (SPEC.md 20.9)."""
    match name:
        case "commentbans":
            if len(args) != 1:
                raise ParseError("usage: /commentbans @channel")
            return CommentBanList(parse_channel(args[0]))
        case "slowmode":
            text = "usage: /slowmode @channel SECONDS|off"
            if len(args) != 2:
                raise ParseError(text)
            if args[1].lower() == "off":
                return SlowMode(parse_channel(args[0]), 0)
            if not args[1].isdigit() or int(args[1]) > 3600:
                raise ParseError(f"{text} (at most 3600)")
            return SlowMode(parse_channel(args[0]), int(args[1]))
    lift = name == "unbancomments"
    text = (
        "usage: /unbancomments @channel @user|#N"
        if lift
        else "usage: /bancomments @channel @user|#N [30m|2h|7d] [delete]"
    )
    if len(args) < 2 or (lift and len(args) != 2) or len(args) > 4:
        raise ParseError(text)
    who = args[1]
    if who.startswith("#") and who[1:].isdigit():
        pass
    elif who.startswith("@"):
        who = "@" + parse_handle(who)
    else:
        raise ParseError(text)
    seconds, delete = 0, False
    for word in args[2:]:
        m = _DURATION.fullmatch(word.lower())
        if m and not seconds:
            seconds = int(m.group(1)) * _SECONDS[m.group(2)]
        elif word.lower() == "delete" and not delete:
            delete = True
        else:
            raise ParseError(text)
    return BanComments(parse_channel(args[0]), who, seconds, delete, lift)


def parse_command(line: str) -> Command | None:
    """The command on ``line``; None for a blank line. Raises ``ParseError`` with a usage hint."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    if line.startswith("//"):
        return Say(line[1:])
    if not line.startswith("/"):
        return Say(line)
    word, _, rest = line[1:].partition(" ")
    name = _ALIASES.get(word.lower(), word.lower())
    confirmed = name.endswith("!") and name[:-1] in (
        "pay",
        "payorder",
        "redpacket",
        "tip",
        "subscribe",
    )
    name = name.removesuffix("!") if confirmed else name
    try:
        args = shlex.split(rest)
    except ValueError as exc:
        if name not in LOCAL_COMMANDS:  # a bot's command: its text is not chat's to parse
            return BotCommand(line)
        if name not in _FREE_TEXT:
            raise ParseError(f"/{name}: {exc}") from None
        args = rest.split()  # its text is taken as typed: an apostrophe is no quote

    def usage(text: str) -> ParseError:
        return ParseError(f"usage: {text}")

    match name:
        case "help" | "convs" | "leave" | "who" | "me" | "quit" | "drop":
            if args:
                raise usage(f"/{name}")
            simple: dict[str, Command] = {
                "help": Help(),
                "convs": Convs(),
                "leave": Leave(),
                "who": Who(),
                "me": Me(),
                "quit": Quit(),
                "drop": Drop(),
            }
            return simple[name]
        case "file" | "image":
            if len(args) != 1:
                raise usage(f"/{name} PATH")
            return SendFile(args[0], image=name == "image")
        case "save":
            if not 1 <= len(args) <= 2 or not args[0].removeprefix("#").isdigit():
                raise usage("/save N [PATH]  (N: the message's number, /seqs shows them)")
            return SaveAttachment(
                int(args[0].removeprefix("#")), args[1] if len(args) == 2 else None
            )
        case "open":
            if len(args) != 1:
                raise usage("/open N | /open @handle")
            if args[0].isdigit():
                if int(args[0]) < 1:
                    raise usage("/open N (N counts from 1, as /convs shows)")
                return Open(index=int(args[0]))
            return Open(handle=parse_handle(args[0]))
        case "dm":
            if len(args) != 1:
                raise usage("/dm @handle")
            return Dm(parse_handle(args[0]))
        case "group" | "channel":
            if not args or args[0].startswith("@"):
                raise usage(f'/{name} "Title" @handle ...')
            handles = tuple(dict.fromkeys(parse_handle(a) for a in args[1:]))
            return Create(name, _title(args[0]), handles)
        case "invite" | "kick":
            if len(args) != 1:
                raise usage(f"/{name} @handle")
            return (
                Invite(parse_handle(args[0])) if name == "invite" else Kick(parse_handle(args[0]))
            )
        case "role":
            if len(args) != 2 or args[1] not in ("admin", "member"):
                raise usage("/role @handle admin|member")
            return Role(parse_handle(args[0]), args[1])
        case "rename":
            if not rest.strip():
                raise usage("/rename Title")
            return Rename(_title(args[0] if len(args) == 1 else rest))
        case "safety" | "verify" | "unverify":
            if len(args) != 1:
                raise usage(f"/{name} @handle")
            handle = parse_handle(args[0])
            return Safety(handle) if name == "safety" else Verify(handle, name == "verify")
        case "approve" | "deny" if len(args) == 1 and args[0].startswith("@"):
            return Admit(parse_handle(args[0]), name == "approve")
        case "deny":
            raise usage("/deny @handle")
        case "link":
            return _make_link(args)
        case "links" | "joinrequests":
            if args:
                raise usage(f"/{name}")
            return LinkList() if name == "links" else JoinRequestList()
        case "revoke":
            if len(args) != 1:
                raise usage("/revoke N  (N: the link's number, as /links shows)")
            return Unlink(_number(args[0], "/revoke N"))
        case "join" | "preview":
            if len(args) != 1 or links.token_of(args[0]) is None:
                raise usage(f"/{name} {links.PREFIX}...  (an invite link)")
            return JoinByLink(args[0], preview_only=name == "preview")
        case "approve":
            if not 1 <= len(args) <= 2 or not args[0].isdigit():
                raise usage("/approve DEVICE [KEY] | /approve @handle")
            key = args[1].lower() if len(args) == 2 else ""
            if key and (len(key) < 16 or any(ch not in "0123456789abcdef" for ch in key)):
                raise usage("/approve DEVICE KEY (KEY: at least 16 hex digits of its /me key)")
            return Approve(int(args[0]), key)
        case "handover":
            if len(args) != 1 or not args[0].isdigit():
                raise usage("/handover DEVICE")
            return Handover(int(args[0]))
        case "pay" if len(args) == 1:
            return PayRequest(_request_id(args[0], "/pay REQUEST_ID"), confirmed)
        case "requests" | "contacts":
            if args:
                raise usage(f"/{name}")
            return Requests() if name == "requests" else ContactList()
        case "accept" | "decline" if len(args) == 1 and (
            args[0].startswith("@") or args[0].isdigit()
        ):
            answer = "accept" if name == "accept" else "delete"
            if args[0].isdigit():
                return Answer(answer, index=_number(args[0], f"/{name} @handle | N"))
            return Answer(answer, handle=parse_handle(args[0]))
        case "accept":
            raise usage("/accept @handle | N  (N: as /requests numbers them)")
        case "block" | "unblock":
            if len(args) != 1:
                raise usage(f"/{name} @handle")
            return Block(parse_handle(args[0]), name == "block")
        case "public":
            if len(args) < 2 or not args[0].startswith("@"):
                raise usage('/public @handle "Title" [description]')
            return NewPublic(parse_handle(args[0]), _title(args[1]), " ".join(args[2:]))
        case "publish":
            channel, text = _channel_text(rest, "/publish @channel text")
            return Publish(channel, text)
        case "editpost":
            words = rest.strip().split(" ", 2)
            if len(words) < 3 or not is_channel_ref(words[0]) or not words[1].isdigit():
                raise usage("/editpost @channel SEQ text")
            return EditPost(parse_channel(words[0]), int(words[1]), words[2].strip())
        case "delpost":
            if len(args) != 2 or not is_channel_ref(args[0]) or not args[1].isdigit():
                raise usage("/delpost @channel SEQ")
            return EditPost(parse_channel(args[0]), int(args[1]), None)
        case "follow" | "unfollow":
            if len(args) != 1:
                raise usage(f"/{name} @channel")
            return Follow(parse_channel(args[0]), name == "follow")
        case "search":
            if not rest.strip():
                raise usage("/search WORDS | /search more")
            return Search(rest.strip())
        case "comment":
            words = rest.strip().split(" ", 2)
            text = "/comment @channel SEQ [#N] text"
            if len(words) < 3 or not is_channel_ref(words[0]) or not words[1].isdigit():
                raise usage(text)
            reply_to, body = _reply_to(words[2])
            if not body:
                raise usage(text)
            return CommentPost(parse_channel(words[0]), int(words[1]), body, reply_to)
        case "comments":
            if len(args) != 2 or not args[1].isdigit():
                raise usage("/comments @channel SEQ")
            return ShowComments(parse_channel(args[0]), int(args[1]))
        case "reactpost" | "unreactpost":
            if len(args) != 3 or not args[1].isdigit():
                raise usage(f"/{name} @channel SEQ EMOJI")
            return ReactToPost(parse_channel(args[0]), int(args[1]), args[2], name == "unreactpost")
        case "tip" | "price" | "subscribe" | "unsubscribe" | "subscription" | "paidpost":
            return _creator_command(name, args, rest, confirmed)
        case "bancomments" | "unbancomments" | "commentbans" | "slowmode":
            return _parse_moderation(name, args)
        case "moment":
            audience, text = [], rest.strip()
            while text.startswith("@"):
                who, _, text = text.partition(" ")
                audience.append(parse_handle(who))
                text = text.strip()
            if not text:
                raise usage("/moment [@a @b ...] text")
            return PostMoment(text, tuple(audience))
        case "moments":
            author = parse_handle(args[0]) if args and args[0].startswith("@") else None
            more = args[1:] if author is not None else args
            if len(more) > 1 or (more and not more[0].isdigit()):
                raise usage("/moments [@handle] [N]")
            count = min(int(more[0]), MAX_PAGE) if more else 10
            return ShowMoments(author, max(count, 1))
        case "mcomment":
            words = rest.strip().split(" ", 1)
            text = "/mcomment ID [#N] text"
            if len(words) < 2 or not words[0].isdigit():
                raise usage(text)
            reply_to, body = _reply_to(words[1])
            if not body:
                raise usage(text)
            return CommentMoment(int(words[0]), body, reply_to)
        case "mcomments" | "mlike" | "munlike":
            if len(args) != 1 or not args[0].isdigit():
                raise usage(f"/{name} ID")
            if name == "mcomments":
                return ShowMomentComments(int(args[0]))
            return LikeMoment(int(args[0]), name == "mlike")
        case "delmoment":
            ok = 1 <= len(args) <= 2 and args[0].isdigit()
            if ok and len(args) == 2:
                ok = args[1].startswith("#") and args[1][1:].isdigit()
            if not ok:
                raise usage("/delmoment ID [#N]")
            return DeleteMoment(int(args[0]), int(args[1][1:]) if len(args) == 2 else 0)
        case "timeline":
            if args not in ([], ["more"]):
                raise usage("/timeline [more]")
            return ShowTimeline(more=bool(args))
        case "posts":
            if not 1 <= len(args) <= 2 or (len(args) == 2 and not args[1].isdigit()):
                raise usage("/posts @channel [N]")
            count = min(int(args[1]), MAX_PAGE) if len(args) == 2 else 10
            return ShowPosts(parse_channel(args[0]), max(count, 1))
        case "privacy":
            if not args:
                return Privacy()
            if (
                len(args) != 2
                or args[0] not in PRIVACY_SETTINGS
                or args[1] not in ("everyone", "contacts", "nobody")
            ):
                raise usage("/privacy [add_me|presence|last_seen|find_me everyone|contacts|nobody]")
            return Privacy(args[0], args[1])
        case "newbot":
            if len(args) not in (2, 3) or not args[1].strip():
                raise usage('/newbot HANDLE "Name" [KEYFILE]')
            if len(args[1].strip()) > 64:
                raise ParseError("the name is longer than 64 characters")
            return NewBot(parse_handle(args[0]), args[1].strip(), args[2] if len(args) == 3 else "")
        case "decline" | "cancel":
            text = (
                "/decline @handle | N | REQUEST_ID" if name == "decline" else "/cancel REQUEST_ID"
            )
            if len(args) != 1:
                raise usage(text)
            rid = _request_id(args[0], text)
            return Decline(rid) if name == "decline" else CancelRequest(rid)
        case "yes" | "no":
            if args:
                raise usage(f"/{name}")
            return Yes() if name == "yes" else No()
        case "reply" | "edit":
            target, _ = _target(args) if len(args) > 1 else (None, args)
            text = rest.strip()  # as typed: quotes and apostrophes are the message's
            body = text.split(None, 1)[1] if target is not None else text
            if not body:
                raise usage(f"/{name} [SEQ] text")
            if len(body) > 16_000:
                raise ParseError("the text is longer than 16000 characters")
            return Reply(target, body) if name == "reply" else EditMessage(target, body)
        case "delete" | "del":
            target, words = _target(args)
            if words:
                raise usage("/delete [SEQ]")
            return DeleteMessage(target)
        case "react" | "unreact":
            target, words = _target(args)
            if len(words) != 1 or not 1 <= len(words[0]) <= 16:
                raise usage(f"/{name} [SEQ] EMOJI")
            return React(target, words[0], remove=name == "unreact")
        case "read" | "receipts":
            if args:
                raise usage("/read")
            return Reads()
        case "pay" | "request":
            if len(args) < 3:
                raise usage(
                    f"/{name} @handle AMOUNT CURRENCY [memo]  (e.g. /{name} @bob 12.50 USD)"
                )
            currency = parse_currency(args[2])
            amount = parse_money(args[1], currency)
            memo = " ".join(args[3:])
            if len(memo) > 256:
                raise ParseError("the memo is longer than 256 characters")
            if name == "pay":
                return Pay(parse_handle(args[0]), amount, currency, memo, confirmed)
            return AskPayment(parse_handle(args[0]), amount, currency, memo)
        case "balance":
            if len(args) > 1:
                raise usage("/balance [CURRENCY]")
            return Balance(parse_currency(args[0]) if args else "")
        case "wallet":
            if not args:
                return Wallet()
            if len(args) != 1 or not args[0].isdigit() or not 1 <= int(args[0]) <= MAX_PAGE:
                raise usage(f"/wallet [N]  (1 <= N <= {MAX_PAGE})")
            return Wallet(int(args[0]))
        case "redpacket":
            if len(args) < 3 or not args[2].isdigit() or int(args[2]) < 1:
                raise usage("/redpacket AMOUNT CURRENCY SHARES [equal|random] [greeting]")
            currency = parse_currency(args[1])
            amount = parse_money(args[0], currency)
            words = args[3:]
            split = "random"
            if words and words[0] in ("equal", "random"):
                split, words = words[0], words[1:]
            return RedPacket(amount, currency, int(args[2]), split, " ".join(words), confirmed)
        case "claim":
            if len(args) > 1:
                raise usage("/claim [PACKET_ID]")
            return ClaimPacket(args[0] if args else "")
        case "bots" | "seqs":
            if args:
                raise usage(f"/{name}")
            return Bots() if name == "bots" else Seqs()
        case "invoke":
            text = "/invoke @bot app.action [name=value ...]"
            if len(args) < 2 or not args[0].startswith("@"):
                raise usage(text)
            return Invoke(parse_handle(args[0]), args[1], _params(args[2:], text))
        case "press" | "payorder":
            if len(args) != 1:
                raise usage(f"/{name} N")
            n = _number(args[0], f"/{name} N")
            return Press(n) if name == "press" else PayOrder(n, confirmed)
        case "forward":
            text = "/forward SEQ N|@handle"
            if len(args) != 2:
                raise usage(text)
            seq = _number(args[0], text)
            if args[1].startswith("@"):
                return Forward(seq, handle=parse_handle(args[1]))
            return Forward(seq, index=_number(args[1], text))
        case "share":
            if not args:
                raise usage('/share "Title" [URL] [text] | /share @bot app.action [k=v ...]')
            if args[0].startswith("@"):
                text = "/share @bot app.action [name=value ...]"
                if len(args) < 2:
                    raise usage(text)
                return ShareCard(parse_handle(args[0]), args[1], _params(args[2:], text))
            title = _title(args[0])
            words = args[1:]
            link = words.pop(0) if words and "://" in words[0] else ""
            return ShareLink(title, link, " ".join(words))
        case "access":
            if len(args) != 2 or args[1] not in ("all", "addressed"):
                raise usage("/access @bot all|addressed")
            return Access(parse_handle(args[0]), args[1])
        case "history":
            if not args:
                return History()
            if len(args) != 1 or not args[0].isdigit() or not 1 <= int(args[0]) <= MAX_PAGE:
                raise usage(f"/history [N]  (1 <= N <= {MAX_PAGE})")
            return History(int(args[0]))
        case _ if re.fullmatch(r"[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_.]{3,32})?", word):
            return BotCommand(line)  # perhaps a bot's: the session knows the bots here
        case _:
            raise ParseError(f"unknown command /{word}; /help lists the commands")


_DURATION = re.compile(r"(\d{1,6})([smhd])\Z")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _make_link(args: list[str]) -> MakeLink:
    text = "/link [approval] [uses=N] [expires=30m|12h|7d] [name]"
    approval, uses, expires, name = False, 0, 0.0, []
    for a in args:
        if a == "approval":
            approval = True
        elif a.startswith("uses="):
            uses = _number(a.removeprefix("uses="), text)
        elif a.startswith("expires="):
            m = _DURATION.match(a.removeprefix("expires="))
            if m is None or int(m[1]) == 0:
                raise ParseError(f"usage: {text}")
            expires = float(int(m[1]) * _SECONDS[m[2]])
        else:
            name.append(a)
    label = " ".join(name)
    if len(label) > 64:
        raise ParseError("the link's name is longer than 64 characters")
    return MakeLink(label, expires, uses, approval)


# --------------------------------------------------------------------------- formatting


@dataclass(frozen=True)
class Line:
    text: str
    style: str = ""  # "", "dim", "system", "error"


@dataclass
class Names:
    """What the formatter knows: who I am, account handles, conversation infos."""

    me: int = 0
    my_handle: str = ""
    handles: dict[int, str] = field(default_factory=dict)
    convs: dict[int, F.ConvInfo] = field(default_factory=dict)
    seqs: bool = False
    """Show each message's seq (``/seqs``: what ``/forward`` and replies refer to)."""
    channels: dict[int, str] = field(default_factory=dict)
    """Public channels' handles by id (SPEC.md 20)."""

    def learn(self, info: F.ConvInfo) -> None:
        """Remember ``info`` (a listing entry, without members, keeps the known members)."""
        old = self.convs.get(info.conv)
        if not info.members and old is not None and old.members:
            info = msgspec.structs.replace(info, members=old.members)
        self.convs[info.conv] = info
        for m in info.members:
            self.handles[m.account] = m.handle

    def handle(self, account: int) -> str:
        if account == self.me and self.my_handle:
            return self.my_handle
        return self.handles.get(account, f"user#{account}")

    def label(self, conv: int) -> str:
        info = self.convs.get(conv)
        if info is None:
            return f"#{conv}"
        if info.kind == "direct":
            peers = [m for m in info.members if m.account != self.me]
            return f"@{peers[0].handle}" if peers else f"direct #{conv}"
        return info.title or f"{info.kind} #{conv}"


@dataclass
class Cards:
    """Numbers for the buttons and orders shown, which ``/press N`` and ``/payorder N`` take.
    A card shown twice (live, then in /history) keeps its numbers."""

    buttons: dict[int, tuple[Message, int]] = field(default_factory=dict)
    """N -> (the card, the button's index; -1: a shared mini-app card, opened as a whole)."""
    orders: dict[int, Message] = field(default_factory=dict)
    _seen: dict[tuple[int, int, int], int] = field(default_factory=dict)
    _seen_orders: dict[tuple[int, int], int] = field(default_factory=dict)

    def button(self, m: Message, index: int) -> int:
        key = (m.conv, m.seq, index)
        n = self._seen.get(key)
        if n is None:
            n = self._seen[key] = len(self.buttons) + 1
            self.buttons[n] = (m, index)
        return n

    def order(self, m: Message) -> int:
        key = (m.conv, m.seq)
        n = self._seen_orders.get(key)
        if n is None:
            n = self._seen_orders[key] = len(self.orders) + 1
            self.orders[n] = m
        return n


def clock(ts_ms: int, tz: tzinfo | None = None) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz).strftime("%H:%M")


def format_system(ev: kinds.SystemEvent, names: Names, kind: str = "conversation") -> str:
    actor, who = names.handle(ev.actor), names.handle(ev.account)
    match ev.event:
        case "created":
            return f"{actor} created the {kind}"
        case "joined":
            bot = " (a bot)" if ev.access else ""
            return f"{who} joined{bot}" if ev.actor == ev.account else f"{actor} added {who}{bot}"
        case "bot_access":
            what = "everything" if ev.access == "all" else "only what is addressed to it"
            return f"{actor} let {who} read {what}"
        case "left":
            return f"{actor} left"
        case "removed":
            return f"{actor} removed {who}"
        case "role":
            return f"{actor} made {who} {ev.role}"
        case "renamed":
            return f'{actor} renamed the {kind} to "{ev.title}"'
        case "deleted":
            whose = "their own" if ev.actor == ev.account else f"{who}'s"
            return f"{actor} deleted {whose} message #{ev.target} for everyone"
    return f"{actor}: {ev.event}"  # pragma: no cover - the Literal is exhaustive


def format_size(n: int) -> str:
    """``812 B``, ``4.2 KB``, ``18.0 MB`` (powers of 1000, as file managers show)."""
    if n < 1000:
        return f"{n} B"
    size = float(n)
    for unit in ("KB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} GB"


def format_message(
    m: Message, names: Names, tz: tzinfo | None = None, cards: Cards | None = None
) -> Line | None:
    """``[label] HH:MM handle: text``; None for kinds that are not shown (receipts). A bot's
    card lists its buttons and order, numbered by ``cards`` when given."""
    prefix = f"[{names.label(m.conv)}] {clock(m.ts, tz)}"
    if names.seqs:
        prefix += f" #{m.seq}"
    who = names.handle(m.sender)
    if not m.e2e:
        who += " (not end-to-end encrypted)"
    c = m.content
    match c:
        case kinds.SystemEvent():
            info = names.convs.get(m.conv)
            noun = info.kind if info is not None and info.kind != "direct" else "conversation"
            return Line(
                f"{prefix} * {format_system(c, names, noun)}",
                "system",
            )
        case kinds.Text():
            reply = f" (↩ #{m.reply_to})" if m.reply_to else ""
            return Line(f"{prefix} {who}{reply}: {c.text}")
        case kinds.Edit():
            first, *more = c.text.splitlines() or [""]
            rest = f" … (+{len(more)} lines)" if more else ""
            return Line(f"{prefix} {who} (edited #{c.target}): {first}{rest}")
        case kinds.Delete():
            return Line(f"{prefix} {who} deleted #{c.target}", "dim")
        case kinds.Deleted():
            return Line(f"{prefix} {who}: (message deleted by {names.handle(c.by)})", "dim")
        case kinds.Reaction():
            verb = "removed" if c.remove else "reacted"
            return Line(
                f"{prefix} {who} {verb} {c.emoji} {'from' if c.remove else 'to'} #{c.target}", "dim"
            )
        case kinds.ReadReceipt():
            return None
        case kinds.PaymentReceipt():
            return Line(f"{prefix} $ {format_receipt(c, names)}", "system")
        case kinds.PaymentTransfer():
            if not c.memo:
                return None  # the receipt says it all
            return Line(f"{prefix} {who} ({_money(c.amount, c.currency)}): {c.memo}")
        case kinds.PaymentRequest():
            memo = f": {c.memo}" if c.memo else ""
            return Line(f"{prefix} {who} asks {_money(c.amount, c.currency)}{memo}")
        case kinds.MiniappInvoke():
            return Line(f"{prefix} {who} invoked {c.app}.{c.action}", "dim")
        case kinds.MiniappResult():
            return format_card(m, c, f"{prefix} {who}", cards)
        case kinds.Share() if c.bot and c.app and c.action:
            number = f" [{cards.button(m, -1)}]" if cards is not None else ""
            return Line(
                f"{prefix} {who} shared a mini-app card: {c.title} — {names.handle(c.bot)}"
                f" {c.app}.{c.action}{number} open"
            )
        case kinds.Share():
            return Line(
                f"{prefix} {who} shared: {' '.join(x for x in (c.title, c.text, c.link, c.image) if x)}"
            )
        case kinds.Attachment():
            what = (
                "an image" if c.width and c.height else "a voice note" if c.waveform else "a file"
            )
            dims = f", {c.width}x{c.height}" if c.width and c.height else ""
            secs = f", {c.duration_ms / 1000:.1f} s" if c.duration_ms else ""
            caption = f": {c.caption}" if c.caption else ""
            return Line(
                f"{prefix} {who} sent {what} {c.name or '(no name)'!r} ({format_size(c.size)}"
                f"{dims}{secs}){caption}  /save {m.seq}"
            )
        case kinds.Forward():
            origin = f", {names.label(c.conv)} #{c.seq}" if c.conv and c.seq else ""
            head = f"{prefix} {who} forwarded from {names.handle(c.sender)} ({clock(c.ts, tz)}{origin})"
            inner = m.forwarded
            if isinstance(inner, kinds.Text):
                return Line(f"{head}: {inner.text}")
            if inner is None or isinstance(inner, kinds.Forward):
                return Line(f"{head}: a {c.kind!r} message this client cannot show")
            # The original as it would show (a card without numbers: its buttons and order
            # belong to the original conversation), after the attribution.
            original = Message(m.conv, m.seq, c.ts, c.sender, 0, c.kind, c.body, inner)
            shown = format_message(original, dataclasses.replace(names, seqs=False), tz)
            if shown is None:
                return Line(f"{head}: a {c.kind!r} message")
            said = shown.text.removeprefix(f"[{names.label(m.conv)}] {clock(c.ts, tz)} ")
            said = said.removeprefix(f"{names.handle(c.sender)}: ")
            return Line(f"{head}: {said}", shown.style)
    return Line(f"{prefix} {who} sent a {m.kind!r} message this client cannot show", "dim")


def format_card(m: Message, c: kinds.MiniappResult, head: str, cards: Cards | None = None) -> Line:
    """A bot's ``miniapp.result``: title and text, then its numbered buttons and order."""
    if c.error:
        return Line(f"{head}: ⚠ {c.error}", "error")
    lines = [f"{head}: {' - '.join(x for x in (c.title, c.text) if x) or '(done)'}"]
    if c.image:
        lines.append(f"    image: {c.image}")
    if c.buttons:
        labels = [
            f"[{cards.button(m, i)}] {b.title}" if cards is not None else f"[{b.title}]"
            for i, b in enumerate(c.buttons)
        ]
        lines.append("    " + "  ".join(labels) + ("  (/press N)" if cards is not None else ""))
    if c.order is not None:
        o = c.order
        what = f" for {o.memo}" if o.memo else ""
        if cards is not None:
            n = cards.order(m)
            lines.append(f"    order {n}: {_money(o.amount, o.currency)}{what} — /payorder {n}")
        else:
            lines.append(f"    order: {_money(o.amount, o.currency)}{what}")
    return Line("\n".join(lines))


def _money(amount: int, currency: str) -> str:
    try:
        return money.format_money(amount, currency)
    except MoneyError:
        return f"{amount} {currency[:8]} (minor units)"


def format_receipt(r: kinds.PaymentReceipt, names: Names) -> str:
    """One line for a verified payment receipt (the client refuses the others before this)."""
    amount = _money(r.amount, r.currency)
    payer, payee = names.handle(r.payer), names.handle(r.payee)
    match r.type:
        case "transfer":
            paid = f" (request {r.request_id})" if r.request_id else ""
            return f"{payer} paid {payee} {amount}{paid}"
        case "red_packet":
            return (
                f"{payer} dropped a red packet: {amount} in {r.shares} shares"
                f" ({r.split or 'random'}); /claim {r.ref}"
            )
        case "claim":
            return f"{payee} claimed {amount} from red packet {r.ref} (share {r.shares})"
        case "refund":
            return f"red packet {r.ref} expired: {amount} back to {payee}"
        case "request":
            who = payer if r.payer else "anyone"
            return f"{payee} asks {who} for {amount}: /pay {r.ref} (or /decline {r.ref})"
        case "declined":
            return f"{payer} declined {payee}'s request {r.ref} for {amount}"
        case "cancelled":
            return f"{payee} cancelled the request {r.ref} for {amount}"
        case "expired":
            return f"the request {r.ref} for {amount} expired"
    return f"payment {r.type} {r.ref}: {amount}"  # pragma: no cover - the Literal is exhaustive


def format_balances(balances: dict[str, int]) -> list[Line]:
    if not balances:
        return [Line("no money yet", "dim")]
    return [Line(f"  {_money(amount, currency)}") for currency, amount in sorted(balances.items())]


def format_wallet(
    entries: Iterable[F.WalletEntry], names: Names, tz: tzinfo | None = None
) -> list[Line]:
    """Oldest first: ``2024-05-01 12:00  -12.50 USD  transfer to bob  = 87.50 USD``."""
    out = []
    for e in sorted(entries, key=lambda e: e.entry):
        when = datetime.fromtimestamp(e.posted_at / 1000, tz).strftime("%Y-%m-%d %H:%M")
        other = "the system" if e.counterparty == 0 else names.handle(e.counterparty)
        way = "from" if e.amount > 0 else "to"
        sign = "+" if e.amount > 0 else ""
        out.append(
            Line(
                f"  {when}  {sign}{_money(e.amount, e.currency)}  {e.type} {way} {other}"
                f"  = {_money(e.balance, e.currency)}"
            )
        )
    if not out:
        out.append(Line("no payments yet", "dim"))
    return out


def format_safety_number(number: str) -> str:
    """60 digits as 12 groups of 5, in two rows, as Signal shows them."""
    groups = [number[i : i + 5] for i in range(0, len(number), 5)]
    return " ".join(groups[:6]) + "\n" + " ".join(groups[6:])


def format_event(
    ev: Event, names: Names, tz: tzinfo | None = None, cards: Cards | None = None
) -> Line | None:
    """One display line for an event, or None when the event is not shown."""
    match ev:
        case Message():
            return format_message(ev, names, tz, cards)
        case InvocationTimeout():
            return Line(
                f"[{names.label(ev.conv)}] {ev.app}.{ev.action}: no answer from"
                f" {names.handle(ev.bot)} after {ev.waited:.0f} s",
                "error",
            )
        case BotAdded():
            what = "everything" if ev.access == "all" else "what is addressed to it"
            return Line(
                f"[{names.label(ev.conv)}] {names.handle(ev.bot)} is a bot; it reads {what}"
                " (/bots: its commands)",
                "dim",
            )
        case BotRemoved():
            return None  # the system message says it
        case Connected():
            if ev.reconnect:
                return Line("reconnected", "system")
            return Line(f"connected as @{names.handle(ev.account)}", "system")
        case Disconnected():
            if ev.will_retry:
                return Line("connection lost, reconnecting...", "system")
            why = f" ({ev.reason})" if ev.reason else ""
            return Line(f"disconnected{why}", "error")
        case Typing():
            if ev.account == names.me or not ev.on:
                return None
            return Line(f"[{names.label(ev.conv)}] {names.handle(ev.account)} is typing...", "dim")
        case Presence():
            if ev.account == names.me:
                return None
            state = "is online" if ev.online else "went offline"
            return Line(f"{names.handle(ev.account)} {state}", "dim")
        case Undecryptable():
            return Line(
                f"[{names.label(ev.conv)}] #{ev.seq} from {names.handle(ev.sender)}:"
                f" cannot decrypt ({ev.reason})",
                "error",
            )
        case SecurityWarning():
            return Line(f"security: {names.handle(ev.account)}: {ev.reason}", "error")
        case ChannelPost():
            return format_post(ev, names, tz)
        case LockedPost():
            where = names.channels.get(ev.channel, f"channel#{ev.channel}")
            return Line(f"[@{where}] #{ev.seq} (for subscribers: /subscribe @{where})", "dim")
        case TipReceived(receipt=r):
            where = names.channels.get(r.channel, f"channel#{r.channel}")
            return Line(
                f"[@{where}] #{r.post} {names.handle(r.payer)} tipped you"
                f" {money.format_money(r.amount, r.currency)}",
                "system",
            )
        case SubscriptionChanged():
            return format_subscription(ev.subscription, names, ev.receipt)
        case F.CommentEvent(channel=channel, seq=seq, comment=m):
            where = names.channels.get(channel, f"channel#{channel}")
            return Line(f"[@{where}] #{seq} comment {format_comment(m)}", "dim")
        case MomentPost():
            return format_moment(ev, names, tz)
        case MomentNote():
            return format_moment_note(ev, names)
        case DevicesChanged():
            return Line(f"{names.handle(ev.account)} changed devices", "dim")
        case F.RequestEvent():
            return format_request(ev.request)
        case F.JoinRequestEvent():
            who = f"@{ev.request.handle}"
            return Line(
                f"[{names.label(ev.conv)}] {who} asks to join through link {ev.request.link}:"
                f" /approve {who} or /deny {who} there",
                "system",
            )
        case MasterKeyReceived():
            return Line(
                f"device {ev.from_device} gave this device your account's master key:"
                " /approve works here now",
                "system",
            )
    return None  # receipts


def format_post(p: ChannelPost, names: Names, tz: tzinfo | None = None) -> Line:
    """One line for a verified post: ``[@channel] #SEQ HH:MM text`` (edits and deletions
    marked)."""
    channel = names.channels.get(p.channel, f"channel#{p.channel}")
    at = datetime.fromtimestamp(p.ts / 1000, tz).strftime("%H:%M")
    if p.deleted:
        return Line(f"[@{channel}] #{p.seq} {at} (deleted)", "dim")
    text = p.text if p.text is not None else f"({p.kind})"
    edited = " (edited)" if p.ver else ""
    views = f" · {p.views} view{'' if p.views == 1 else 's'}" if p.views else ""
    return Line(f"[@{channel}] #{p.seq} {at} {text}{edited}{views}")


def format_moment(m: MomentPost, names: Names, tz: tzinfo | None = None) -> Line:
    """One line for a Moment: ``[moment ID] @author HH:MM text``."""
    at = datetime.fromtimestamp(m.ts / 1000, tz).strftime("%H:%M")
    head = f"[moment {m.moment}] {m.handle or names.handle(m.author)}"
    if m.deleted:
        return Line(f"{head} (deleted)", "dim")
    if not m.readable:
        return Line(f"{head} {at} (cannot decrypt: its key did not come)", "error")
    text = m.text if m.text is not None else f"({m.kind})"
    return Line(f"{head} {at} {text}")


def format_moment_note(n: MomentNote, names: Names) -> Line:
    """One line for a comment or like under a Moment."""
    head = f"[moment {n.moment}] #{n.comment} {n.handle or names.handle(n.author)}"
    if n.deleted:
        return Line(f"{head} (deleted)", "dim")
    if not n.readable:
        return Line(f"{head}: (cannot decrypt)", "error")
    if n.like:
        return Line(f"{head} likes it {n.text or ''}".rstrip(), "dim")
    to = f" (↩ #{n.reply_to})" if n.reply_to else ""
    return Line(f"{head}{to}: {n.text}")


def format_period(seconds: int) -> str:
    """A subscription's period: in whole days from a day up ("30 days"), else in seconds."""
    return f"{seconds // 86_400} days" if seconds >= 86_400 else f"{seconds} s"


def format_subscription(
    s: F.SubscriptionInfo, names: Names, charge: F.CreatorReceipt | None = None
) -> Line:
    """One line for a subscription: who, which channel, its state and until when it is paid."""
    where = names.channels.get(s.channel, f"channel#{s.channel}")
    price = f"{money.format_money(s.amount, s.currency)} / {format_period(s.period)}"
    until = datetime.fromtimestamp(s.paid_through / 1000).strftime("%Y-%m-%d %H:%M")
    who = "you" if s.subscriber == names.me else names.handle(s.subscriber)
    paid = f", period {charge.n} charged" if charge is not None else ""
    return Line(
        f"[@{where}] subscription of {who}: {s.state}{paid}, {price},"
        f" {s.charged}/{s.periods} periods, paid through {until}",
        "error" if s.state in ("past_due", "lapsed") else "system",
    )


def format_request(r: F.RequestInfo, number: int | None = None) -> Line:
    """One line for a message request or invitation, saying what to type."""
    who = f"@{r.handle}"
    if r.kind == "direct":
        what = f"{who} wants to message you"
    else:
        title = f' "{r.title}"' if r.title else ""
        what = f"{who} invites you to the {r.kind}{title}"
    if number is not None:
        return Line(f"{number:>4}. {what}")
    return Line(f"{what}: /accept {who}, /decline {who} or /block {who}", "system")


def format_requests(requests: Iterable[F.RequestInfo]) -> list[Line]:
    out = [format_request(r, n) for n, r in enumerate(requests, 1)]
    if not out:
        return [Line("no requests or invitations waiting", "dim")]
    return [*out, Line("/accept N, /decline N, or /block @handle", "dim")]


def unread(info: F.ConvInfo) -> int:
    return max(0, info.last_seq - info.read)


def format_convs(infos: Iterable[F.ConvInfo], names: Names, current: int | None) -> list[Line]:
    out = []
    for n, info in enumerate(infos, 1):
        mark = "*" if info.conv == current else " "
        count = unread(info)
        extra = f", {count} unread" if count else ""
        out.append(
            Line(
                f"{mark}{n:>3}. [{names.label(info.conv)}] {info.kind}, {info.member_count} members{extra}"
            )
        )
    if not out:
        out.append(Line('no conversations yet: /dm @handle or /group "Title" @a @b', "dim"))
    return out


def format_bots(
    bots: Iterable[tuple[int, str, F.BotProfile | None]], names: Names, conv: int
) -> list[Line]:
    """``/bots``: each bot of the conversation with its access, commands and mini-app."""
    out = []
    for account, access, profile in bots:
        reads = "everything" if access == "all" else "what is addressed to it"
        out.append(Line(f"  {names.handle(account)}  reads {reads}"))
        if profile is None:
            continue
        for c in profile.commands:
            params = " ".join(f"<{p.name}>" if p.required else f"[{p.name}]" for p in c.params)
            usage = " ".join(x for x in (f"/{c.name}", params) if x)
            out.append(Line(f"    {usage}" + (f" — {c.description}" if c.description else "")))
        m = profile.manifest
        if m is not None:
            title = " ".join(x for x in (m.icon, m.title or m.name) if x)
            out.append(Line(f"    mini-app {title}:"))
            for a in m.actions:
                params = " ".join(
                    f"{p.name}=" + ("|".join(map(str, p.choices)) or p.type) for p in a.params
                )
                price = f" ({_money(a.price.amount, a.price.currency)})" if a.price else ""
                out.append(
                    Line(
                        f"      /invoke @{names.handle(account)} {m.name}.{a.name} {params}".rstrip()
                        + f" — {a.title}{price}"
                    )
                )
    if not out:
        return [Line(f"no bots in [{names.label(conv)}]", "dim")]
    return [Line(f"[{names.label(conv)}] bots:"), *out]


def format_who(
    info: F.ConvInfo,
    presence: Iterable[F.PresenceInfo],
    names: Names,
    tz: tzinfo | None = None,
) -> list[Line]:
    seen = {p.account: p for p in presence}
    out = [Line(f"[{names.label(info.conv)}] {info.kind}, {len(info.members)} members")]
    for m in info.members:
        p = seen.get(m.account)
        if m.account == names.me or (p is not None and p.online):
            state = "online"
        elif p is not None and p.last_seen:
            state = f"last seen {datetime.fromtimestamp(p.last_seen / 1000, tz):%Y-%m-%d %H:%M}"
        elif p is not None:
            state = "offline"
        else:
            state = "presence hidden"
        you = " (you)" if m.account == names.me else ""
        out.append(Line(f"  {m.handle}{you}  {m.role}  {state}"))
    return out


# --------------------------------------------------------------------------- line editing


class LineEditor:
    """A minimal line editor over raw keystrokes: printable text, Backspace, Ctrl-U (clear),
    Ctrl-W (delete word), Enter, Ctrl-D on an empty line (end of input). Escape sequences
    (arrow keys and the like) are swallowed."""

    EOF = None

    def __init__(self) -> None:
        self.buffer = ""
        self._esc = ""  # "", "esc", "csi", "ss3"

    def feed(self, text: str) -> list[str | None]:
        """Completed lines (None for end of input) from ``text``; ``buffer`` keeps the rest."""
        out: list[str | None] = []
        for ch in text:
            if self._esc == "esc":
                self._esc = {"[": "csi", "O": "ss3"}.get(ch, "")
                continue
            if self._esc == "csi":
                if "@" <= ch <= "~":
                    self._esc = ""
                continue
            if self._esc == "ss3":
                self._esc = ""
                continue
            if ch in "\r\n":
                out.append(self.buffer)
                self.buffer = ""
            elif ch in "\x7f\x08":
                self.buffer = self.buffer[:-1]
            elif ch == "\x15":  # Ctrl-U
                self.buffer = ""
            elif ch == "\x17":  # Ctrl-W
                self.buffer = self.buffer.rstrip()
                cut = self.buffer.rfind(" ")
                self.buffer = self.buffer[: cut + 1] if cut >= 0 else ""
            elif ch == "\x04":  # Ctrl-D
                if not self.buffer:
                    out.append(self.EOF)
            elif ch == "\x1b":
                self._esc = "esc"
            elif ch == "\t":
                self.buffer += " "
            elif ch >= " ":
                self.buffer += ch
        return out


# --------------------------------------------------------------------------- consoles


async def read_chunks(fd: int) -> AsyncIterator[bytes]:
    """Bytes from ``fd`` as they arrive, until end of file; never blocks the loop on a pipe or
    TTY (a regular file, which never blocks, is read directly)."""
    if stat.S_ISREG(os.fstat(fd).st_mode):
        while chunk := os.read(fd, 65536):
            yield chunk
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
        queue.put_nowait(data)

    try:
        loop.add_reader(fd, readable)
    except (OSError, NotImplementedError):  # e.g. /dev/null cannot be polled; it never blocks
        while chunk := os.read(fd, 65536):
            yield chunk
        return
    try:
        while data := await queue.get():
            yield data
    finally:
        loop.remove_reader(fd)


class PipeConsole:
    """Lines from a pipe or file, display lines written as they come (no prompt, no color)."""

    def __init__(self, fd: int, out: TextIO) -> None:
        self.fd, self.out = fd, out
        self.on_edit: Callable[[str], None] | None = None

    def show(self, line: Line) -> None:
        self.out.write(line.text + "\n")
        self.out.flush()

    def set_prompt(self, prompt: str) -> None:
        pass

    async def lines(self) -> AsyncIterator[str]:
        pending = b""
        async for chunk in read_chunks(self.fd):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                yield raw.decode("utf-8", "replace")
        if pending:
            yield pending.decode("utf-8", "replace")

    def __enter__(self) -> PipeConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


_STYLES = {"dim": "\x1b[2m", "system": "\x1b[36m", "error": "\x1b[31m"}


class TerminalConsole:
    """A TTY in cbreak mode: events print above the input line, which is redrawn each time."""

    def __init__(self, fd: int, out: TextIO, *, color: bool = True) -> None:
        self.fd, self.out, self.color = fd, out, color
        self.prompt = "> "
        self.editor = LineEditor()
        self.on_edit: Callable[[str], None] | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> TerminalConsole:
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd, termios.TCSANOW)
        self._redraw()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        self.out.write("\r\x1b[2K")
        self.out.flush()

    def _style(self, line: Line) -> str:
        code = _STYLES.get(line.style, "") if self.color else ""
        return f"{code}{line.text}\x1b[0m" if code else line.text

    def _redraw(self) -> None:
        width = max(10, shutil.get_terminal_size().columns - len(self.prompt) - 1)
        self.out.write(f"\r\x1b[2K{self.prompt}{self.editor.buffer[-width:]}")
        self.out.flush()

    def show(self, line: Line) -> None:
        self.out.write(f"\r\x1b[2K{self._style(line)}\n")
        self._redraw()

    def set_prompt(self, prompt: str) -> None:
        self.prompt = prompt
        self._redraw()

    async def lines(self) -> AsyncIterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        async for chunk in read_chunks(self.fd):
            before = self.editor.buffer
            for line in self.editor.feed(decoder.decode(chunk)):
                if line is None:
                    return
                if line.startswith("/") and not line.startswith("//"):
                    self.show(Line(f"{self.prompt}{line}", "dim"))
                yield line
            self._redraw()
            if self.on_edit is not None and self.editor.buffer != before:
                self.on_edit(self.editor.buffer)


Console = PipeConsole | TerminalConsole


def open_console(fd: int, out: TextIO) -> Console:
    """A terminal console when both ends are a TTY, else a pipe console."""
    with contextlib.suppress(OSError, ValueError):
        if os.isatty(fd) and out.isatty():
            return TerminalConsole(fd, out, color="NO_COLOR" not in os.environ)
    return PipeConsole(fd, out)


def comment_text(m: F.CommentInfo) -> str:
    """A comment's text (its kind in brackets when it is not text)."""
    if m.kind == "text":
        try:
            content = kinds.decode_content(m.kind, m.content)
        except ChatProtoError:
            return "(unreadable)"
        if isinstance(content, kinds.Text):
            return content.text
    return f"({m.kind})"


def format_comment(m: F.CommentInfo) -> str:
    """A comment as ``/comments`` and a pushed comment show it: ``#N @handle (↩ #R): text``
    (``(deleted)`` for a deleted one)."""
    to = f" (↩ #{m.reply_to})" if m.reply_to else ""
    text = "(deleted)" if m.deleted else comment_text(m)
    return f"#{m.comment} {m.handle}{to}: {text}"
