"""Channel posts for the store contract tests (channels, timeline, channel moderation): a post
as the service hands it to the store once it has checked the signature, so every store test
builds the same row."""

from __future__ import annotations

from chatproto import frames as F
from chatproto import posts

NOW = 1_700_000_000_000
SIG = bytes(64)  # the store keeps what the service verified; it checks no signature itself


def post(channel: int, seq: int, author: int, ver: int = 0, text: str = "hi") -> F.Post:
    """Post ``seq`` (version ``ver``) of ``channel`` by ``author``; an empty ``text`` is a
    tombstone (the signed delete)."""
    kind = posts.TOMBSTONE if text == "" else "text"
    return F.Post(
        channel=channel,
        seq=seq,
        ver=ver,
        ts=NOW,
        author=author,
        device=1,
        kind=kind,
        content=text.encode(),
        sig=SIG,
    )
