"""Consent (SPEC.md 18): contacts, message requests, invitations, blocks and privacy settings.

Every way one account reaches another passes a decision of ``core.consent`` here first: opening
a direct conversation or adding someone to a group (a stranger gets a *request* or an
*invitation* instead), watching someone's presence, claiming their prekeys, queueing to-device
items for their devices. The store reads the relation (``seen_by``, ``relations``); the rule is
pure; the write that follows is the ordinary one (``ConversationService``, ``KeyService``).

The decision is read before the write, not inside its transaction: a setting changed or a block
made while a request is in flight applies from the next request on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, assert_never

import msgspec
from chatproto import frames as F
from chatproto.errors import ErrorCode

from chatd.core import consent as C
from chatd.core import pages, rules
from chatd.errors import ChatdError, NotFound, RateLimited
from chatd.services.conversations import ConversationService
from chatd.services.deps import Deps
from chatd.services.fanout import publish_to_account
from chatd.services.keys import KeyService
from chatd.services.limits import Limits
from chatd.store.base import RequestRow, Seen


class ConsentRequired(ChatdError):
    code = ErrorCode.CONSENT_REQUIRED


def defaults(deps: Deps) -> C.Privacy:
    s = deps.settings.consent
    return C.Privacy(
        C.check_setting(s.add_me), C.check_setting(s.presence), C.check_setting(s.last_seen)
    )


def _privacy_frame(rid: int, p: C.Privacy) -> F.Privacy:
    return F.Privacy(
        re=rid, add_me=p.add_me, presence=p.presence, last_seen=p.last_seen, find_me=p.find_me
    )


async def presence_audience(
    deps: Deps, subject: int, viewers: Sequence[int]
) -> tuple[list[int], list[int]]:
    """Those of ``viewers`` that may see ``subject`` online: ``(with its last_seen,
    without)`` (SPEC.md 18.2)."""
    if not viewers:
        return [], []
    privacy = await deps.store.privacy(subject) or defaults(deps)
    relations = await deps.store.relations(subject, viewers)
    full: list[int] = []
    bare: list[int] = []
    for v in viewers:
        rel = relations.get(v, C.STRANGER)
        if C.sees_last_seen(privacy, rel):
            full.append(v)
        elif C.sees_presence(privacy, rel):
            bare.append(v)
    return full, bare


async def visible_presence(deps: Deps, viewer: int, subjects: Sequence[int]) -> dict[int, bool]:
    """Those of ``subjects`` whose presence ``viewer`` may see, each with whether it may see
    their last_seen; ``viewer`` itself always."""
    seen = await deps.store.seen_by(viewer, subjects)
    base = defaults(deps)
    out = {viewer: True} if viewer in subjects else {}
    for subject, s in seen.items():
        p = s.privacy or base
        if C.sees_presence(p, s.relation):
            out[subject] = C.sees_last_seen(p, s.relation)
    return out


def _request_info(r: RequestRow) -> F.RequestInfo:
    return F.RequestInfo(
        conv=r.conv,
        kind=r.kind,  # type: ignore[arg-type]
        sender=r.sender,
        handle=r.handle,
        at=r.at,
        title=r.title,
        last_seq=r.last_seq,
    )


class ContactService:
    def __init__(
        self, deps: Deps, conversations: ConversationService, keys: KeyService, limits: Limits
    ) -> None:
        self._d = deps
        self._conv = conversations
        self._keys = keys
        self._limits = limits
        """The windows below are counted there: in Redis with several nodes (issue 14.5)."""
        s = deps.settings.consent
        self._s = s
        self._trusted_quota = C.Quota(s.to_device_items, s.to_device_bytes)
        self._stranger_quota = C.Quota(s.stranger_to_device_items, s.stranger_to_device_bytes)

    def _placement(self, kind: str, seen: Seen) -> C.Placement:
        add_me = (seen.privacy or defaults(self._d)).add_me
        return C.placement(kind, add_me, seen.relation, bot=seen.bot)

    async def _seen(self, actor: int, targets: Sequence[int]) -> dict[int, Seen]:
        seen = await self._d.store.seen_by(actor, targets)
        for t in targets:
            if t != actor and t not in seen:
                raise NotFound(f"no account {t}")
        return seen

    async def handle(
        self,
        account: int,
        f: F.ListRequests
        | F.AnswerRequest
        | F.ListAnswers
        | F.DismissAnswer
        | F.Block
        | F.Unblock
        | F.ListContacts
        | F.SetPrivacy
        | F.GetPrivacy,
    ) -> F.Frame:
        """Serve one of the consent frames (SPEC.md 18.1)."""
        match f:
            case F.ListRequests():
                return await self.requests(account, f)
            case F.AnswerRequest():
                await self.answer(account, f)
            case F.ListAnswers():
                return await self.answers(account, f)
            case F.DismissAnswer():
                await self._d.store.dismiss_decline(account, f.conv, f.account)
            case F.Block():
                await self.block(account, f)
            case F.Unblock():
                await self.unblock(account, f)
            case F.ListContacts():
                return await self.contacts(account, f)
            case F.SetPrivacy():
                return await self.set_privacy(account, f)
            case F.GetPrivacy():
                return await self.privacy(account, f.id)
            case _:
                assert_never(f)
        return F.Ok(re=f.id)

    # ------------------------------------------------------------------ conversations

    async def create(self, account: int, device: int, f: F.CreateConv) -> F.ConvInfo:
        """``create_conv`` with consent: a stranger's direct conversation arrives as a request;
        group members who did not consent are invited instead (SPEC.md 18.3)."""
        d = self._d
        others = sorted(set(f.members) - {account})
        if f.kind == "direct":
            if len(others) != 1 or len(set(f.members)) != 1:
                return await self._conv.create(account, device, f)  # INVALID, as before
            other = others[0]
            place = self._placement("direct", (await self._seen(account, others))[other])
            if place == "refused":
                raise NotFound(f"no account {other}")
            now = d.clock.now_ms()
            requested: list[bool] = []

            async def record_request(conv: int) -> None:
                # Before the conversation's first message reaches anyone: the recipient's client
                # answers it with a receipt at once, which must already find the request.
                requested.append(await d.store.add_request(conv, other, account, now))

            info = await self._conv.create(
                account, device, f, record_request if place == "request" else None
            )
            await d.store.add_contact(account, other, now)
            if place == "request":
                if not requested:  # the conversation existed: its request is made now
                    requested.append(await d.store.add_request(info.conv, other, account, now))
                if requested[0]:
                    await self._announce(info.conv, other)
            return info
        seen = await self._seen(account, others)
        places = {t: self._placement(f.kind, seen[t]) for t in others}
        admitted = [t for t in others if places[t] == "member"]
        invited = [t for t in others if places[t] == "request"]
        if f.entry is not None and len(admitted) != len(others):
            raise ConsentRequired(
                "some of these accounts must be invited: create the conversation with the"
                " others, then invite them"
            )
        info = await self._conv.create(
            account, device, msgspec.structs.replace(f, members=admitted)
        )
        now = d.clock.now_ms()
        for t in invited:
            if await d.store.add_request(info.conv, t, account, now):
                await self._announce(info.conv, t)
        return info

    async def invite(self, account: int, device: int, f: F.Invite) -> None:
        """``invite`` with consent: an account that did not consent gets an invitation (``ok``
        all the same); a blocked inviter's invite does nothing."""
        d = self._d
        seen = (await self._seen(account, [f.account])).get(f.account)
        pending = await d.store.request(f.conv, f.account)
        if (
            seen is None
            or self._placement("group", seen) == "member"
            or (pending is not None and pending.state == "accepted")
        ):
            await self._conv.invite(account, device, f)
            if pending is not None:
                await d.store.drop_request(f.conv, f.account)
            return
        found = await d.store.member_kind(f.conv, account)
        if found is None:
            raise NotFound("no such conversation")
        rules.check_manage_members(*found)
        if await d.store.member_kind(f.conv, f.account) is not None:
            raise ChatdError("already a member", ErrorCode.CONFLICT)
        if await d.store.is_banned(f.conv, f.account):
            raise ChatdError("banned from this conversation", ErrorCode.FORBIDDEN)
        if self._placement("group", seen) == "refused":
            return  # the inviter is not told it is blocked
        if await d.store.add_request(f.conv, f.account, account, d.clock.now_ms()):
            await self._announce(f.conv, f.account)

    async def muted(self, conv: int, account: int) -> bool:
        """Whether ``account``'s receipts and typing in ``conv`` must not reach the others: it
        has not accepted the conversation (SPEC.md 18.3)."""
        return bool(await self._d.store.pending_convs(account, [conv]))

    async def _announce(self, conv: int, account: int) -> None:
        row = await self._d.store.request(conv, account)
        if row is not None:
            publish_to_account(self._d.hub, account, F.RequestEvent(request=_request_info(row)))
            await self._d.hub.published()

    # ------------------------------------------------------------------ requests

    async def requests(self, account: int, f: F.ListRequests) -> F.Requests:
        rows = await self._d.store.requests_of(account, f.after, f.limit + 1)
        # 500 invitations with 128-character titles pass a frame: cut by bytes (SPEC.md 11.5).
        infos, cut = pages.fit(_request_info(r) for r in rows[: f.limit])
        return F.Requests(re=f.id, requests=infos, more=cut or len(rows) > f.limit)

    async def answer(self, account: int, f: F.AnswerRequest) -> None:
        d = self._d
        now = d.clock.now_ms()
        row = await d.store.request(f.conv, account)
        if row is None or row.state != "pending":
            raise NotFound("no such request")
        match f.answer:
            case "accept" if row.kind == "direct":
                await d.store.accept_request(f.conv, account, now)
            case "accept":
                joined = await self._join(row, account, now)
                await self._tell_inviter(row, account, "accept", joined)
            case "delete" if row.kind == "direct":
                await self._drop(row, account)
            case "delete":  # kept until the inviter's client says it was told
                await d.store.decline_request(f.conv, account, now)
                await self._tell_inviter(row, account, "decline", False)
            case "block":  # the blocked inviter is told nothing (SPEC.md 18.2)
                await self._drop(row, account)
                await self._block(account, row.sender)

    async def answers(self, account: int, f: F.ListAnswers) -> F.Answers:
        """The answers to ``account``'s invitations it may still act on (SPEC.md 18.3): what
        an inviter offline when they came reads at its next login."""
        rows = await self._d.store.answers_of(account, (f.after, f.after_account), f.limit + 1)
        infos, cut = pages.fit(
            F.AnswerInfo(conv=r.conv, account=r.account, handle=r.handle, answer=r.answer)  # type: ignore[arg-type]
            for r in rows[: f.limit]
        )
        return F.Answers(re=f.id, answers=infos, more=cut or len(rows) > f.limit)

    async def _join(self, row: RequestRow, account: int, now: int) -> bool:
        """An invitation accepted: joined as if its sender invited now (its role checked now),
        True; a conversation with a signed log waits for an admin's signed ``invite`` instead,
        False."""
        d = self._d
        if await d.store.log_head(row.conv) is not None:
            await d.store.mark_accepted(row.conv, account)
            return False
        change = await d.store.invite(row.conv, row.sender, account, now, None)
        await d.store.drop_request(row.conv, account)
        await self._conv._apply(change)  # watched before its joined message goes out
        return True

    async def _tell_inviter(
        self, row: RequestRow, account: int, answer: Literal["accept", "decline"], joined: bool
    ) -> None:
        """``invitation_answered`` to the inviter's connections (SPEC.md 18.3): with a signed
        log its client sends the signed ``invite`` that lets the invitee in. The answer is kept
        (the accepted invitation, or the decline) for an inviter away now: ``answers``."""
        me = await self._d.store.account(account)
        if me is None:
            return
        ev = F.InvitationAnswered(
            conv=row.conv, account=account, handle=me.handle, answer=answer, joined=joined
        )
        publish_to_account(self._d.hub, row.sender, ev)
        await self._d.hub.published()

    async def _drop(self, row: RequestRow, account: int) -> None:
        await self._d.store.drop_request(row.conv, account)
        if row.kind == "direct":
            self._d.hub.unwatch(account, row.conv)
            await self._d.hub.published()

    # ------------------------------------------------------------------ blocks

    async def block(self, account: int, f: F.Block) -> None:
        if f.account == account:
            raise ChatdError("you cannot block yourself", ErrorCode.INVALID)
        await self._block(account, f.account)

    async def _block(self, account: int, blocked: int) -> None:
        left = await self._d.store.block(account, blocked, self._d.clock.now_ms())
        if left is not None:
            self._d.hub.unwatch(left[1], left[0])
            await self._d.hub.published()

    async def unblock(self, account: int, f: F.Unblock) -> None:
        conv = await self._d.store.unblock(account, f.account)
        if conv is not None:
            self._d.hub.watch(f.account, conv)
            await self._d.hub.published()

    async def contacts(self, account: int, f: F.ListContacts) -> F.Contacts:
        rows = await self._d.store.contact_list(account, f.which == "blocked", f.after, f.limit + 1)
        return F.Contacts(re=f.id, accounts=rows[: f.limit], more=len(rows) > f.limit)

    # ------------------------------------------------------------------ settings

    async def privacy(self, account: int, rid: int) -> F.Privacy:
        p = await self._d.store.privacy(account) or defaults(self._d)
        return _privacy_frame(rid, p)

    async def set_privacy(self, account: int, f: F.SetPrivacy) -> F.Privacy:
        p = await self._d.store.privacy(account) or defaults(self._d)
        p = C.Privacy(
            f.add_me or p.add_me,
            f.presence or p.presence,
            f.last_seen or p.last_seen,
            f.find_me or p.find_me,
        )
        await self._d.store.set_privacy(account, p)
        return _privacy_frame(f.id, p)

    # ------------------------------------------------------------------ keys and queues

    async def claim(self, account: int, device: int, f: F.ClaimKeys) -> F.Bundles:
        """``claim_keys`` within budgets: a blocked claimer finds no account; a claimer has
        ``claims_per_minute``; strangers share ``stranger_prekeys_per_hour`` one-time prekeys
        of a target, then get its signed prekeys only (the last resort, SPEC.md 18.5)."""
        d = self._d
        if f.account != account:
            rel = (await d.store.relations(f.account, [account])).get(account, C.STRANGER)
            if rel.blocked:
                raise NotFound(f"no account {f.account}")
            s, limits = self._s, self._limits
            if not await limits.window(f"kc:{account}", s.claims_per_minute, 60.0):
                raise RateLimited("too many key claims: retry in a minute")
            if not C.trusted(rel) and not await limits.window(
                f"kp:{f.account}", s.stranger_prekeys_per_hour, 3600.0
            ):
                return await self._keys.claim(device, f, one_time=False)
        return await self._keys.claim(device, f)

    async def to_device(self, account: int, device: int, f: F.ToDevice) -> None:
        """``to_device`` within the sender's quota on the target device (SPEC.md 18.5)."""
        d = self._d
        target = await d.store.device(f.device)
        if target is None:
            raise NotFound("no such device")
        if target.account != account:
            rel = (await d.store.relations(target.account, [account])).get(account, C.STRANGER)
            quota = C.to_device_quota(rel, self._trusted_quota, self._stranger_quota)
            if quota is None:
                raise NotFound("no such device")
            items, size = await d.store.queued_from(f.device, account)
            if not C.within(quota, items, size, len(f.body)):
                raise RateLimited(
                    f"you have {items} items ({size} bytes) queued for this device: wait for it"
                    " to fetch them"
                )
            if quota is self._stranger_quota:  # and all strangers together, per hour
                s, limits = self._s, self._limits
                if not await limits.window(
                    f"tb:{f.device}", s.stranger_to_device_bytes_per_hour, 3600.0, len(f.body)
                ):
                    raise RateLimited("this device takes no more from strangers this hour")
                if not await limits.window(f"ti:{f.device}", s.stranger_to_device_per_hour, 3600.0):
                    raise RateLimited("this device takes no more from strangers this hour")
            # Counted again inside the insert's transaction, under the device's queue lock:
            # items sent at once from the sender's connections on any node each read the count
            # above before any was queued, and together went past the quota.
            await self._keys.to_device(account, device, f, quota)
            return
        await self._keys.to_device(account, device, f)
