"""Who may publish what in a public channel, and which seq and version come next (SPEC.md 20.4).

Plain rules over what the store read inside the write's transaction; time is passed in. The
publisher signs seq, version and time before the server stores the post, so the server cannot
assign them: it checks that they are the next ones and that the time is close to its own, and
refuses anything else (the client reads the channel again and signs anew).
"""

from __future__ import annotations

from typing import NamedTuple

from chatproto import posts

from chatd.errors import Conflict, Forbidden, Invalid, NotFound

MAX_SKEW_MS = 5 * 60 * 1000
"""How far a post's signed time may be from the server's clock."""


def check_publish(
    *,
    is_admin: bool,
    last_seq: int,
    current_ver: int | None,
    current_kind: str,
    seq: int,
    ver: int,
    kind: str,
    content: bytes,
    ts: int,
    now: int,
) -> None:
    """Refuse a ``publish`` of ``seq``/``ver`` by someone who is not an admin (``FORBIDDEN``), a
    new post whose seq is not ``last_seq + 1`` or an edit whose version is not the current one
    plus one (``CONFLICT``), an edit of a post that does not exist or is deleted
    (``NOT_FOUND``), a tombstone with content or as a first version and a time more than
    ``MAX_SKEW_MS`` from ``now`` (``INVALID``). ``current_ver`` is the stored version of post
    ``seq`` (None: there is none) and ``current_kind`` its kind."""
    if not is_admin:
        raise Forbidden("only the channel's admins publish")
    if abs(ts - now) > MAX_SKEW_MS:
        raise Invalid("the post's time is too far from the server's clock")
    if kind == posts.TOMBSTONE and (content or ver == 0):
        raise Invalid("a tombstone is a later version with no content")
    if ver == 0:
        if seq != last_seq + 1:
            raise Conflict(f"the next post of this channel is {last_seq + 1}")
        return
    if current_ver is None or current_kind == posts.TOMBSTONE:
        raise NotFound("no such post")
    if ver != current_ver + 1:
        raise Conflict(f"the next version of this post is {current_ver + 1}")


def same_post(
    stored: tuple[int, int, int, int, str, bytes, bytes, bool],
    offered: tuple[int, int, int, int, str, bytes, bytes, bool],
) -> bool:
    """A publish whose (ver, ts, author, device, kind, content, sig, paid) equals what is
    stored is a resend of a post whose answer was lost: answered again, not refused."""
    return stored == offered


class SearchCursor(NamedTuple):
    """Where a directory search's next page starts (SPEC.md 20.2): which query word drives the
    index scan (chosen on the first page, kept for the next ones) and the (word, channel) of the
    last channel shown; on the wire ``"DRIVER TERM CHANNEL"``, opaque to clients."""

    driver: int
    term: str
    channel: int

    def encode(self) -> str:
        return f"{self.driver} {self.term} {self.channel}"


def decode_cursor(text: str, words: int) -> SearchCursor | None:
    """The cursor of ``text`` ("" : the first page, None) for a query of ``words`` words;
    ``INVALID`` when it is not one this server made for such a query."""
    if not text:
        return None
    parts = text.split(" ")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit() or not parts[1]:
        raise Invalid("not a search cursor")
    cursor = SearchCursor(int(parts[0]), parts[1], int(parts[2]))
    if cursor.driver >= words:
        raise Invalid("not a search cursor of this query")
    return cursor
