"""Bot profiles and bot members' access (``Bots``), written once for both databases. Adding
a bot to a conversation is ``conversations`` (``create_conversation``, ``invite``); which bots a
message is withheld from is decided in ``append`` (``core.rules.withheld_from``)."""

from __future__ import annotations

from chatproto import kinds

from chatd.core import rules
from chatd.errors import Forbidden
from chatd.store.base import BotProfileRow, MembershipChange, SignedChange
from chatd.store.conversations import account_type, link, role_in, signed_message
from chatd.store.sql import Scripts, Sql, Tx, reads, writes


async def set_bot_access(
    tx: Tx,
    conv: int,
    actor: int,
    account: int,
    access: str,
    now: int,
    entry: SignedChange | None = None,
) -> MembershipChange | None:
    """Change a bot member's access and append its ``bot_access`` system message in one
    transaction; None (nothing written) when it already has that access. ``NotFound``
    (actor or bot not a member), ``Invalid`` (direct, or not a bot), ``Forbidden`` (actor
    neither owner nor admin)."""
    rules.check_set_bot_access(*await role_in(tx.sql, conv, actor))  # orders it with appends
    row = await tx.sql.fetchrow(
        "SELECT m.access, a.type FROM members m JOIN accounts a ON a.id = m.account_id"
        " WHERE m.conv_id=? AND m.account_id=?",
        *(conv, account),
    )
    if not rules.changes_access(row, access):
        return None
    await link(tx.sql, conv, entry)
    event = kinds.SystemEvent(event="bot_access", actor=actor, account=account, access=access)
    m = await signed_message(tx, conv, now, event, entry)
    await tx.sql.execute(
        "UPDATE members SET access=? WHERE conv_id=? AND account_id=?", access, conv, account
    )
    tx.touched(conv)
    return MembershipChange(conv, m)


async def set_bot_profile(tx: Tx, account: int, body: bytes, now: int) -> None:
    """Replace the bot's profile; ``Forbidden`` when ``account`` is not a bot."""
    if await account_type(tx.sql, account) != "bot":
        raise Forbidden("only a bot account has a bot profile")
    await tx.sql.execute(
        "INSERT INTO bot_profiles (account_id, body, updated_at) VALUES (?,?,?)"
        " ON CONFLICT (account_id) DO UPDATE SET body=excluded.body,"
        " updated_at=excluded.updated_at",
        *(account, body, now),
    )


async def bot_profile(db: Sql, account: int) -> BotProfileRow | None:
    """The bot's profile (empty if never set), or None when ``account`` is not a bot."""
    row = await db.fetchrow(
        "SELECT a.type, p.body, p.updated_at FROM accounts a"
        " LEFT JOIN bot_profiles p ON p.account_id = a.id WHERE a.id=?",
        account,
    )
    if row is None or row[0] != "bot":
        return None
    return BotProfileRow(account, bytes(row[1] or b""), int(row[2] or 0))


class Bots(Scripts):
    """Bot profiles and bot members' access (SPEC.md section 16). Membership writes elsewhere
    (``create_conversation``, ``invite``) also follow its rules: only an owner or admin adds a
    bot (``Forbidden``), whose access starts ``addressed`` in a group or channel and ``all`` in
    a direct conversation; ``append`` records, per message, the bots it is withheld from."""

    set_bot_access = writes(set_bot_access)
    set_bot_profile = writes(set_bot_profile)
    bot_profile = reads(bot_profile)
