"""Moments in the SDK (SPEC.md 22, E2E.md 18): post to contacts, read the feed, comment, like,
delete; every body end-to-end encrypted to whom may read it.

* ``post``: the body is sealed under a sender key made for this Moment alone; the key goes over
  the pairwise sessions to every listed device of the audience (and this account's other
  devices) BEFORE the Moment is posted (with ``audience=None``, "all my contacts", the server
  names the audience in its answer, so the key follows the post).
* ``comment`` / ``like``: ``get_moment`` gives the audience this account may know (its own
  contacts among the Moment's audience, the author, itself): the comment's key goes to their
  devices only. A contact of the Moment's author who is not this account's contact never holds
  the key of this account's comments, whatever the server does with the ciphertext.
* Resends: ``post``, ``comment`` and ``like`` name their frame with a fresh cmid; when the
  connection drops before the answer they send the SAME frame (the same cmid, the same sealed
  bytes) again once reconnected, up to ``RESENDS`` times, and the server answers a resend with
  what it stored (SPEC.md 22.1): a lost answer never posts twice. Only a ``ConnectionLost``
  after the last resend leaves it unknown whether it was stored (``feed`` tells).
* Reading: a Moment or comment whose key has not arrived yet is read again once the to-device
  queue is fetched (a pushed one waits for its key, up to ``KEY_WAIT`` seconds); what still
  does not open comes back with ``readable`` False, never as text.

Pushed ``moment_event`` / ``moment_comment_event`` frames come out of ``client.events()`` as
``MomentPost`` / ``MomentNote``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from chatproto import frames as F
from chatproto import kinds
from chatproto.e2e import moments as scopes
from chatproto.errors import ChatProtoError, CryptoError

from chatclient.connection import Connection
from chatclient.e2e import E2E, MissingKey
from chatclient.errors import ConnectionLost
from chatclient.events import MomentNote, MomentPost

KEY_WAIT = 10.0
"""Seconds a pushed Moment or comment waits for its key before it is shown unreadable."""
LIKE = "❤"
"""What a like says inside its ciphertext unless the caller gives another emoji."""
RESENDS = 3
"""Times a post, comment or like is sent again after the connection dropped before its answer
(each waits for the reconnect, up to the client's request timeout)."""

T = TypeVar("T", bound=F.Frame)


@dataclass(frozen=True, slots=True)
class MomentPage:
    """Moments newest first; ``next`` is the ``before`` of the next older page (None: no
    more)."""

    items: list[MomentPost]
    next: tuple[int, int] | None


def _text(kind: str, body: bytes) -> str | None:
    try:
        content = kinds.decode_content(kind, body)
    except ChatProtoError:
        return None
    return content.text if isinstance(content, kinds.Text) else None


class Moments:
    def __init__(
        self,
        conn: Connection,
        e2e: E2E,
        fetch_keys: Callable[[], Awaitable[None]],
        emit: Callable[[Any], Awaitable[None]],
    ) -> None:
        self._c = conn
        self._e2e = e2e
        self._fetch_keys = fetch_keys
        self._emit = emit
        self._key_came = asyncio.Event()
        """Set (and replaced) whenever a Moments key arrives: pushed items waiting retry."""

    # ------------------------------------------------------------------ writing

    async def post(self, text: str, audience: Sequence[int] | None = None) -> MomentPost:
        """Post ``text`` to ``audience`` (account ids, each a mutual contact: else
        ``RequestError`` CONSENT_REQUIRED and nothing is posted), or to every mutual contact
        (``None``)."""
        kind, body = kinds.encode_content(kinds.Text(text=text))
        sealed, key = await self._e2e.seal_once(scopes.MOMENTS, kind, body)
        if audience is not None:
            await self._e2e.share_key(key, list(audience))
        frame = F.PostMoment(
            id=self._c.next_id(),
            audience=sorted(set(audience or ())),
            all=audience is None,
            body=sealed,
            cmid=uuid.uuid4().hex,
        )
        got = await self._resend(frame, F.MomentAnswer)
        if audience is None:
            await self._e2e.share_key(key, got.audience)
        return await self._open(got.info, fetch=False)

    async def comment(self, moment: int, text: str, reply_to: int = 0) -> MomentNote:
        """Comment on ``moment`` (or answer comment ``reply_to``), readable by the Moment's
        author and this account's own contacts among its audience only."""
        kind, body = kinds.encode_content(kinds.Text(text=text))
        sealed = await self._seal_for_readers(moment, kind, body)
        frame = F.CommentMoment(
            id=self._c.next_id(), moment=moment, reply_to=reply_to, body=sealed,
            cmid=uuid.uuid4().hex,
        )  # fmt: skip
        got = await self._resend(frame, F.MomentCommented)
        return await self._open_note(got.comment, fetch=False)

    async def like(self, moment: int, emoji: str = LIKE) -> MomentNote:
        """Like ``moment`` once (again: the first like); ``emoji`` travels encrypted."""
        kind, body = kinds.encode_content(kinds.Text(text=emoji))
        sealed = await self._seal_for_readers(moment, kind, body)
        frame = F.LikeMoment(
            id=self._c.next_id(), moment=moment, body=sealed, cmid=uuid.uuid4().hex
        )
        got = await self._resend(frame, F.MomentCommented)
        return await self._open_note(got.comment, fetch=False)

    async def unlike(self, moment: int) -> None:
        await self._c.call(F.LikeMoment(id=self._c.next_id(), moment=moment, remove=True), F.Ok)

    async def delete(self, moment: int) -> None:
        """Delete this account's ``moment`` with its comments and likes."""
        await self._c.call(F.DeleteMoment(id=self._c.next_id(), moment=moment), F.Ok)

    async def delete_comment(self, moment: int, comment: int) -> None:
        """Delete a comment or like this account wrote, or any under its own Moment."""
        frame = F.DeleteMomentComment(id=self._c.next_id(), moment=moment, comment=comment)
        await self._c.call(frame, F.Ok)

    async def _resend(
        self, frame: F.PostMoment | F.CommentMoment | F.LikeMoment, expect: type[T]
    ) -> T:
        """``frame``'s answer; after a dropped connection the same frame (cmid and sealed bytes
        unchanged, a new request id) again once reconnected: the server stores it once."""
        for attempt in range(RESENDS + 1):
            try:
                return await self._c.call(frame, expect)
            except ConnectionLost:
                if attempt == RESENDS:
                    raise
            frame = msgspec.structs.replace(frame, id=self._c.next_id())
        raise AssertionError("unreachable")

    async def _seal_for_readers(self, moment: int, kind: str, body: bytes) -> bytes:
        got = await self._c.call(F.GetMoment(id=self._c.next_id(), moment=moment), F.MomentAnswer)
        sealed, key = await self._e2e.seal_once(scopes.comments_of(moment), kind, body)
        await self._e2e.share_key(key, got.audience)
        return sealed

    # ------------------------------------------------------------------ reading

    async def get(self, moment: int) -> MomentPost:
        """One Moment (``NotFound`` when this account does not see it)."""
        got = await self._c.call(F.GetMoment(id=self._c.next_id(), moment=moment), F.MomentAnswer)
        return await self._open(got.info)

    async def audience(self, moment: int) -> list[int]:
        """The audience this account may know of ``moment`` (SPEC.md 22.3)."""
        got = await self._c.call(F.GetMoment(id=self._c.next_id(), moment=moment), F.MomentAnswer)
        return list(got.audience)

    async def feed(
        self, *, author: int = 0, before: tuple[int, int] | None = None, limit: int = 20
    ) -> MomentPage:
        """A page of the Moments this account sees (of ``author`` when given), newest first."""
        ts, moment = before or (0, 0)
        frame = F.GetMoments(
            id=self._c.next_id(), author=author, before_ts=ts, before=moment, limit=limit
        )
        got = await self._c.call(frame, F.Moments)
        items = [await self._open(i) for i in got.items]
        return MomentPage(items, (got.next_ts, got.next) if got.next else None)

    async def open(self, info: F.MomentInfo) -> MomentPost:
        """A Moment as another answer gave it (the timeline's), decrypted."""
        return await self._open(info)

    async def comments(self, moment: int, *, page: int = 50) -> AsyncIterator[MomentNote]:
        """Every comment and like of ``moment`` this account sees, oldest first."""
        after = 0
        while True:
            frame = F.GetMomentComments(
                id=self._c.next_id(), moment=moment, after=after, limit=page
            )
            got = await self._c.call(frame, F.MomentComments)
            for c in got.items:
                yield await self._open_note(c)
            if not got.next:
                return
            after = got.next

    # ------------------------------------------------------------------ decrypting

    async def _opened(
        self,
        scope: int,
        seq: int,
        sender: int,
        device: int,
        body: bytes,
        *,
        fetch: bool,
        wait: float,
    ) -> tuple[str, bytes] | None:
        """The (kind, body) inside a Moments ciphertext, or None when it does not open. A
        missing key: fetch the to-device queue once (``fetch``), or wait up to ``wait`` seconds
        for keys to arrive."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        fetched = not fetch
        while True:
            came = self._key_came
            try:
                d = self._e2e.decrypt(scope, seq, sender, device, body)
            except MissingKey:
                if not fetched:
                    fetched = True
                    await self._fetch_keys()
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    return None
                try:
                    await asyncio.wait_for(came.wait(), left)
                except TimeoutError:
                    return None
                continue
            except (CryptoError, ChatProtoError):
                return None
            return d.kind, d.body

    async def _open(self, i: F.MomentInfo, *, fetch: bool = True, wait: float = 0.0) -> MomentPost:
        got = await self._opened(
            scopes.MOMENTS, i.moment, i.author, i.device, i.body, fetch=fetch, wait=wait
        )
        if got is None:
            return MomentPost(i.moment, i.author, i.ts, None, readable=False, handle=i.handle)
        kind, body = got
        return MomentPost(i.moment, i.author, i.ts, _text(kind, body), kind, body, handle=i.handle)

    async def _open_note(
        self, c: F.MomentComment, *, fetch: bool = True, wait: float = 0.0
    ) -> MomentNote:
        like = c.kind == "like"
        got = await self._opened(
            scopes.comments_of(c.moment), c.comment, c.author, c.device, c.body,
            fetch=fetch, wait=wait,
        )  # fmt: skip
        if got is None:
            return MomentNote(
                c.moment, c.comment, c.author, c.ts, like, None, c.reply_to, False,
                handle=c.handle,
            )  # fmt: skip
        return MomentNote(
            c.moment, c.comment, c.author, c.ts, like, _text(*got), c.reply_to, handle=c.handle
        )

    # ------------------------------------------------------------------ pushed

    def key_arrived(self, scope: int) -> None:
        """A Moments key arrived over a to-device message: pushed items waiting retry."""
        came, self._key_came = self._key_came, asyncio.Event()
        came.set()

    def on_event(self, frame: F.MomentEvent | F.MomentCommentEvent) -> None:
        """A pushed Moment or comment: decrypted off the receive path (its key may still be on
        its way), then emitted."""
        self._c.spawn(self._pushed(frame), name="open-moment")

    async def _pushed(self, frame: F.MomentEvent | F.MomentCommentEvent) -> None:
        event: MomentPost | MomentNote
        match frame:
            case F.MomentEvent(info=i, deleted=True):
                event = MomentPost(i.moment, i.author, i.ts, None, readable=False, deleted=True)
            case F.MomentEvent(info=i):
                event = await self._open(i, wait=KEY_WAIT)
            case F.MomentCommentEvent(comment=c, deleted=True):
                like = c.kind == "like"
                event = MomentNote(c.moment, c.comment, c.author, c.ts, like, None, c.reply_to,
                                   readable=False, deleted=True)  # fmt: skip
            case F.MomentCommentEvent(comment=c):
                event = await self._open_note(c, wait=KEY_WAIT)
        await self._emit(event)
