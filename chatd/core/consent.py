"""Consent: who may put whom into a conversation, reach them, or watch them. Pure decisions.

Every decision is a function of the *target's* view of the *actor*: the target's privacy setting
for that action and its ``Relation`` to the actor (has the target blocked the actor? is the
actor one of the target's contacts?). The services read the relation from the store and ask
here; nothing in this module does I/O or reads a clock (budgets take ``now``).

The table (SPEC.md 18.2 is its wire form):

=================================  ==========  ==========================  =========================
the actor wants to ...             blocked     not a contact               a contact
=================================  ==========  ==========================  =========================
start a direct conversation        NOT_FOUND   a *request* (setting        a conversation
                                               ``everyone``: a conversation)
add the target to a group/channel  dropped     an *invitation* (``everyone``:  member (``nobody``:
                                               member)                     an invitation)
see its presence / last seen       never       setting ``everyone`` only   setting ``everyone``
                                                                           or ``contacts``
claim its one-time prekeys         NOT_FOUND   a small budget per target,  yes
                                               then the signed prekey only
queue to-device items to it        NOT_FOUND   a small quota per sender    a larger quota per sender
find it by handle (``lookup``)     NOT_FOUND   setting ``everyone`` only   setting ``everyone``
                                               (the default)               or ``contacts``
=================================  ==========  ==========================  =========================

"Contact" is directional: the accounts *the target* accepted (their message request) or
messaged first. Sharing a group does not make a contact, but an
account sharing an accepted conversation with the target is not a stranger for keys and
to-device items (group members need each other's keys to encrypt).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final, Literal

Setting = Literal["everyone", "contacts", "nobody"]
SETTINGS: Final[tuple[Setting, ...]] = ("everyone", "contacts", "nobody")
DEFAULT: Final[Setting] = "contacts"
FIND_ME_DEFAULT: Final[Setting] = "everyone"
"""Found by handle by anyone unless the account says otherwise: a stranger starts a
conversation by handle (the message request is where consent is asked, not the lookup)."""

Placement = Literal["member", "request", "refused"]
"""Where an account goes when someone else puts it into a conversation: straight in
(``member``), into its requests to accept or not (``request``: a message request for a direct
conversation, an invitation for a group or channel), or nowhere (``refused``: blocked)."""


@dataclass(frozen=True, slots=True)
class Relation:
    """How the target sees the actor."""

    blocked: bool = False
    """The target blocked the actor."""
    contact: bool = False
    """The actor is one of the target's contacts (accepted by it, or messaged first by it)."""
    shares: bool = False
    """They share a conversation the target accepted (a member of the same group, say)."""


STRANGER: Final = Relation()


@dataclass(frozen=True, slots=True)
class Privacy:
    """An account's settings (the server's defaults until it sets its own)."""

    add_me: Setting = DEFAULT
    presence: Setting = DEFAULT
    last_seen: Setting = DEFAULT
    find_me: Setting = FIND_ME_DEFAULT


def check_setting(value: str) -> Setting:
    """``value`` as a setting; ``ValueError`` for anything else."""
    for s in SETTINGS:
        if value == s:
            return s
    raise ValueError(f"a privacy setting is everyone, contacts or nobody, not {value!r}")


def _allows(setting: Setting, rel: Relation) -> bool:
    return setting == "everyone" or (setting == "contacts" and rel.contact)


def placement(kind: str, add_me: Setting, rel: Relation, *, bot: bool = False) -> Placement:
    """Where the target goes when the actor opens a conversation of ``kind`` with it, or adds
    it to one. A bot is added by an owner or admin (SPEC.md 16.2) and never asked; a contact may
    always open a direct conversation (``nobody`` is about groups); everything else follows
    ``add_me``."""
    if rel.blocked:
        return "refused"
    if bot or (kind == "direct" and rel.contact):
        return "member"
    return "member" if _allows(add_me, rel) else "request"


def sees_presence(p: Privacy, rel: Relation) -> bool:
    """Whether the actor may see the target online (it shares a conversation with it already:
    the presence audience, SPEC.md 10.3)."""
    return not rel.blocked and _allows(p.presence, rel)


def sees_last_seen(p: Privacy, rel: Relation) -> bool:
    """Whether the actor may see when the target was last online (0 is sent otherwise)."""
    return sees_presence(p, rel) and _allows(p.last_seen, rel)


def may_find(p: Privacy, rel: Relation) -> bool:
    """Whether the actor may find the target by its handle (``lookup``). Who may not is told the
    handle does not exist, exactly as for an unknown one. Like presence, sharing a group does
    not count: only the target's contacts pass ``contacts``."""
    return not rel.blocked and _allows(p.find_me, rel)


def trusted(rel: Relation) -> bool:
    """Not a stranger for keys and to-device items: a contact, or sharing an accepted
    conversation."""
    return not rel.blocked and (rel.contact or rel.shares)


@dataclass(frozen=True, slots=True)
class Quota:
    """What one sender may have queued for one target device at once."""

    items: int
    bytes: int


def to_device_quota(rel: Relation, trusted_quota: Quota, stranger_quota: Quota) -> Quota | None:
    """The per-sender quota on a target's to-device queue; None when the sender is blocked."""
    if rel.blocked:
        return None
    return trusted_quota if trusted(rel) else stranger_quota


def within(quota: Quota, queued_items: int, queued_bytes: int, body: int) -> bool:
    """Whether one more item of ``body`` bytes fits beside what the sender has queued."""
    return queued_items + 1 <= quota.items and queued_bytes + body <= quota.bytes


class Window:
    """A fixed budget per key per period (a claimer's claims, a target's one-time prekeys
    handed to strangers), with time passed in. Bounded: at most ``max_keys`` keys are tracked;
    past that the least recently used are forgotten first."""

    __slots__ = ("_budget", "_max_keys", "_period", "_used")

    def __init__(self, budget: int, period: float, max_keys: int = 100_000) -> None:
        self._budget = budget
        self._period = period
        self._max_keys = max_keys
        self._used: dict[Hashable, tuple[float, int]] = {}

    def take(self, key: Hashable, now: float, units: int = 1) -> bool:
        """Spend ``units`` of ``key``'s budget at ``now``; False (nothing spent) when they do
        not fit in what is left of it for the current period."""
        start, used = self._used.get(key, (now, 0))
        if now - start >= self._period:
            start, used = now, 0
        if used + units > self._budget:
            return False
        self._used.pop(key, None)  # re-inserted last: the dict stays in order of activity
        self._used[key] = (start, used + units)
        while len(self._used) > self._max_keys:
            del self._used[next(iter(self._used))]
        return True
