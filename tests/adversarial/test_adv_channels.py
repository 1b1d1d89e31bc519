"""A malicious server against public posts (issue 19.1, SPEC.md 20.4).

The server stores and pushes posts, so it can change any byte of what it pushes and add devices
to any account in its database; what it cannot make is a signature of a device on the
publisher's signed device list. A follower's client checks every pushed post and refuses (with
a ``SecurityWarning``, never a ``ChannelPost``) a post whose text was changed on the way, or one
the server signed with a device it added to the publisher's account.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import msgspec
import pytest
from adversarial.test_adv_sessions import Attacker, malicious_server
from botkit import Inbox
from chatclient import Client
from chatclient.events import ChannelPost, Event, SecurityWarning
from chatproto import frames as F
from chatproto import kinds, posts
from chatproto.e2e.primitives import SigningKey


def post_text(value: str) -> object:
    return lambda ev: isinstance(ev, ChannelPost) and ev.text == value


def refused(ev: Event) -> bool:
    return isinstance(ev, SecurityWarning) and "refused" in ev.reason


def alter_pushed_posts(attacker: Attacker, text: str) -> None:
    """From now on every pushed post carries ``text`` instead of what was published."""

    def rewrite(frame: F.ServerFrame) -> F.ServerFrame:
        if not isinstance(frame, F.PostEvent):
            return frame
        content = kinds.encode_content(kinds.Text(text=text))[1]
        return F.PostEvent(post=msgspec.structs.replace(frame.post, content=content))

    attacker.rewrite = rewrite


async def test_a_pushed_post_altered_by_the_server_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        alice, bob = [await stack.enter_async_context(Client(server.url)) for _ in "ab"]
        await alice.register("alice", "Alice")
        await bob.register("bob", "Bob")
        box = Inbox(bob)
        ch = (await alice.channels.create("alice_news", "Alice News")).channel
        await bob.channels.follow(ch)
        await bob.timeline.watch_feed()  # posts are pushed to connections watching the feed
        await alice.channels.publish_text(ch, "honest")
        await box.take(post_text("honest"))
        alter_pushed_posts(attacker, "sell everything now")
        await alice.channels.publish_text(ch, "hold")
        (warning,) = await box.take(refused)
        assert "signature" in warning.reason  # type: ignore[union-attr]
        box.none(post_text("sell everything now"))
        attacker.rewrite = None


async def test_a_post_signed_by_a_device_the_server_added_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server adds a ghost device to Alice's account (its own key, in its database) and
    pushes a post signed by it, in Alice's name, to her followers: its signature verifies
    under the ghost's key, but the ghost is not on Alice's signed device list."""
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        alice, bob = [await stack.enter_async_context(Client(server.url)) for _ in "ab"]
        await alice.register("alice", "Alice")
        await bob.register("bob", "Bob")
        box = Inbox(bob)
        ch = (await alice.channels.create("alice_news", "Alice News")).channel
        await bob.channels.follow(ch)
        await bob.timeline.watch_feed()  # posts are pushed to connections watching the feed
        await alice.channels.publish_text(ch, "honest")
        await box.take(post_text("honest"))
        ghost, seed = attacker.ghost_device(alice.account)
        forged = F.Post(
            channel=ch,
            seq=2,
            ts=int(time.time() * 1000),
            author=alice.account,
            device=ghost,
            kind="text",
            content=kinds.encode_content(kinds.Text(text="forged"))[1],
            sig=bytes(64),
        )
        forged = msgspec.structs.replace(
            forged, sig=posts.sign_post(SigningKey(seed), alice.server_name, forged)
        )

        def inject(frame: F.ServerFrame) -> F.ServerFrame:
            if isinstance(frame, F.PostEvent):
                return F.PostEvent(post=forged)
            return frame

        attacker.rewrite = inject
        await alice.channels.publish_text(ch, "second")
        (warning,) = await box.take(refused)
        assert "not on account" in warning.reason  # type: ignore[union-attr]
        box.none(post_text("forged"))
        attacker.rewrite = None
