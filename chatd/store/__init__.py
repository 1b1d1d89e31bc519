"""Storage: one file per concern, each use case written once for SQLite and PostgreSQL.

=================================================  =========================================
use case                                           file
=================================================  =========================================
the store as services see it (``Store``)           ``__init__.py`` (this file)
the rows the store and the services exchange       ``base.py``
accounts, devices, last seen                       ``accounts.py``
conversations, members, roles, membership logs     ``conversations.py``
reading messages, cursors, system messages         ``messages.py``
deleting a message for everyone (tombstones)       ``moderation.py``
message franking, reports                          ``reports.py``
appending a message (the hot path)                 ``sqlite.py`` / ``postgres.py`` (``append``)
E2E keys, device lists, the to-device queue        ``keys.py``
bot profiles and bot access                        ``bots.py``
contacts, blocks, privacy, requests, invitations   ``consent.py``
Web Push subscriptions                             ``push.py``
invite links and join requests                     ``links.py``
public channels, follows, signed posts, comments   ``channels.py``
reactions and counts, the channel directory        ``channels.py``
comment bans, slow mode, post views                ``channel_moderation.py``
the timeline's reads                               ``timeline.py``
Moments, audiences, encrypted comments and likes   ``moments.py``
wallets, payments, red packets, requests, audit    ``ledger.py``
tips, channel prices, subscriptions                ``creators.py``
``chatd wallet`` on its own connection             ``ledger.py`` (``mint``, reads, audit)
running SQL on either database (the dialects)      ``sql.py``
connections, the writer's transaction, seqs        ``sqlite.py`` / ``postgres.py``
group commit (queue, batches, shutdown)            ``writer.py``
schema migrations                                  ``migrate.py``, ``migrations/``
=================================================  =========================================

Who may do what is ``chatd.core`` (``rules``, ``ledger``, ``publishing``); a transaction script checks it
inside the write's own transaction, before it writes anything.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable

from chatd.store.accounts import Accounts
from chatd.store.base import Appended, NewMessage, StoreStatistics
from chatd.store.bots import Bots
from chatd.store.channel_moderation import ChannelModeration
from chatd.store.channels import Channels, PostComments
from chatd.store.consent import Consent
from chatd.store.conversations import Conversations
from chatd.store.creators import Creators
from chatd.store.keys import Keys
from chatd.store.ledger import Ledger
from chatd.store.links import Links
from chatd.store.messages import Messages
from chatd.store.moderation import Moderation
from chatd.store.moments import Moments
from chatd.store.push import Push
from chatd.store.reports import Reports
from chatd.store.timeline import Timelines


class Store(
    Accounts,
    Conversations,
    Bots,
    Messages,
    Keys,
    Consent,
    Reports,
    Moderation,
    Push,
    Links,
    Channels,
    PostComments,
    ChannelModeration,
    Timelines,
    Moments,
    Ledger,
    Creators,
    abc.ABC,
):
    """Everything the server stores: every concern, each written once (its module says what
    each method returns and raises), over what a backend supplies (``sqlite.SQLiteStore``,
    ``postgres.PostgresStore``): its connections, ``_submit`` and ``_read``, and the methods
    below. Services, health and metrics depend on this type, never on a backend.

    The store is the truth: a message exists once ``append`` resolves, and only then is it acked
    and published. Writes are serialised per store (one writer task with group commit), and the
    authorisation that guards a write is checked inside the same transaction as the write.

    Errors: a refusal is a ``chatd.errors`` class (``NotFound``, ``Forbidden``, ``Invalid``,
    ``Conflict``, ...) raised before anything is written: a refused write changes nothing.
    Besides those each method names, any method may raise ``Unavailable``: the database cannot
    be reached or could not commit, the store is overloaded or shutting down (nothing acked is
    lost; retry)."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations. ``RuntimeError`` when another process holds
        an SQLite file; the driver's error when the database cannot be reached."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Refuse new writes, commit what is queued, then close (again: nothing)."""

    @abc.abstractmethod
    def statistics(self) -> StoreStatistics:
        """What health and metrics report about the store; never raises."""

    @abc.abstractmethod
    def append(
        self, message: NewMessage, then: Callable[[asyncio.Future[Appended]], None] | None = None
    ) -> asyncio.Future[Appended]:
        """Queue ``message`` for the next group commit (the hot path, each backend's own). The
        future resolves once it is durable (``duplicate`` when its cmid was stored before with
        the same content), or fails with ``NotFound`` (sender not a member), ``Forbidden`` (may
        not send there), ``Conflict`` (the cmid was used for another message) or
        ``Unavailable``; futures resolve in commit order, which is seq order within a
        conversation. ``then(future)``, unlike a done callback, runs as the future resolves,
        inside the writer's own turn of the loop (see ``GroupCommitWriter``)."""


__all__ = ["Store"]
