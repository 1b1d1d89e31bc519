"""One connection's protocol state and the router from typed frames to services.

The transport feeds ``receive`` one WebSocket message at a time and gives the session a ``Link``
to write with; the session never sees websockets. Before login only ``register``, ``login`` and
``link_device`` are served; afterwards every frame is rate limited and dispatched. Bad input gets
an ``Error`` frame and the connection stays open, except where the protocol says it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
from typing import Protocol

from chatproto import codec
from chatproto import frames as F
from chatproto.errors import ErrorCode, ProtocolError

from chatd.core.ratelimit import TokenBucket
from chatd.errors import ChatdError
from chatd.media.service import MediaService
from chatd.services.auth import AccountRow, AuthService, DeviceRow, new_nonce
from chatd.services.bots import BotService
from chatd.services.channel_moderation import ChannelModerationService
from chatd.services.channels import ChannelService
from chatd.services.contacts import ContactService
from chatd.services.conversations import ConversationService
from chatd.services.creators import CreatorService
from chatd.services.deps import Deps
from chatd.services.keys import KeyService
from chatd.services.limits import Limits, MemoryBuckets
from chatd.services.links import LinkService
from chatd.services.messaging import MessagingService
from chatd.services.moments import MomentService
from chatd.services.payments import PaymentService
from chatd.services.presence import PresenceService
from chatd.services.push import PushService
from chatd.services.reports import ReportService
from chatd.services.suspension import SuspensionService
from chatd.services.timeline import TimelineService

log = logging.getLogger(__name__)

_node_salt = int.from_bytes(os.urandom(3), "big") << 32
_conn_ids = itertools.count(1)

CLOSE_POLICY = 1008


class Link(Protocol):
    """How a session writes to its socket (the transport implements it)."""

    def push(self, data: bytes) -> None:
        """Write now without waiting; disconnect as a slow consumer past the outbound bound."""
        ...

    async def send(self, data: bytes) -> None:
        """Write, waiting while the socket's buffer is above its high-water mark."""
        ...

    async def close(self, code: int, reason: str) -> None: ...


class Services:
    """The services one node runs, built once and shared by all sessions."""

    def __init__(
        self, deps: Deps, limits: Limits | None = None, push: PushService | None = None
    ) -> None:
        self.deps = deps
        self.limits = limits or Limits(
            deps.settings.limits, deps.settings.server, MemoryBuckets(), deps.clock
        )
        """Budgets per account and per address, shared by every session (and node)."""
        self.auth = AuthService(deps)
        self.conversations = ConversationService(deps)
        self.reports = ReportService(deps)
        self.push = push or PushService(deps)
        """Web Push to offline devices (SPEC.md 21); off without a VAPID key."""
        self.messaging = MessagingService(deps, self.push)
        self.presence = PresenceService(deps)
        self.keys = KeyService(deps)
        self.payments = PaymentService(deps)
        self.bots = BotService(deps)
        self.suspension = SuspensionService(deps)
        self.contacts = ContactService(deps, self.conversations, self.keys, self.limits)
        self.links = LinkService(deps, self.conversations, self.limits)
        self.creators = CreatorService(deps, self.payments)
        """Tips, paid subscriptions, paid posts (SPEC.md 15.12-15.14)."""
        self.channels = ChannelService(deps, self.limits, self.creators)
        self.channel_moderation = ChannelModerationService(deps, self.limits)
        """Views, bans from comments and slow mode of public channels (SPEC.md 20.9)."""
        self.timeline = TimelineService(deps, self.creators)
        self.moments = MomentService(deps, self.limits)
        self.media: MediaService | None = None
        """Set by the app when media is on (chatd/media)."""
        self.sessions = 0


class Session:
    __slots__ = (
        "_account_bucket",
        "_bucket",
        "_failures",
        "_inflight_free",
        "_link",
        "_owed",
        "_svc",
        "_typing",
        "account",
        "address",
        "bot_budget",
        "conn_id",
        "device",
        "floors",
        "handle",
        "inflight",
        "is_bot",
        "nonce",
        "push",
        "watching",
    )

    def __init__(self, services: Services, link: Link, address: str = "") -> None:
        self._svc = services
        self._link = link
        self.push = link.push
        """Write ``data`` to the client (the hub's hot path: the link's own method, no call
        through the session per delivery)."""
        self.address = address
        """The client's address as the limits count it (``Limits.client_address``; "" when
        exempt)."""
        self._owed = False
        """The frame ``receive_nowait`` just returned still owes its token of the account's
        shared budget: Redis must be asked (``serve`` does, before anything else)."""
        self._account_bucket: TokenBucket | None = None
        """One node: the account's frame budget, the same bucket in each of its sessions."""
        self.conn_id = _node_salt | next(_conn_ids)
        self.account = 0
        self.device = 0
        self.handle = ""
        self.is_bot = False
        self.bot_budget = False
        self.floors: dict[int, int] = {}
        self.watching: dict[int, None] = {}  # a dict: an empty set costs 216 B, a dict 64 B
        self.inflight = 0
        self._inflight_free: asyncio.Event | None = None
        self.nonce: bytes | None = new_nonce()
        self._failures = 0
        limits = services.deps.settings.limits
        now = services.deps.clock.monotonic()
        self._bucket = TokenBucket(limits.frames_per_second, limits.frame_burst, now)
        self._typing: TokenBucket | None = None  # made on the first typing notice

    @property
    def authenticated(self) -> bool:
        return self.account != 0

    # ------------------------------------------------------------------ output

    def challenge(self) -> bytes:
        assert self.nonce is not None
        d = self._svc.deps
        return codec.encode(
            F.Challenge(
                server=d.settings.server.name,
                nonce=self.nonce,
                expires_in_ms=int(d.settings.limits.auth_timeout * 1000),
            )
        )

    def reply(self, frame: F.Frame) -> None:
        self._link.push(codec.encode(frame))

    def fail(
        self, rid: int, code: ErrorCode, message: str, retry_after: float | None = None
    ) -> None:
        """Answer request ``rid`` with ``error``; ``retry_after`` (seconds) is said in ms."""
        self._svc.deps.metrics.errors.labels(code=code.name).inc()
        wait = 0 if retry_after is None else max(1, math.ceil(retry_after * 1000))
        self.reply(F.Error(re=rid, code=int(code), msg=message[:256], retry_after=wait))

    async def send_paced(self, data: bytes) -> None:
        await self._link.send(data)

    def send_done(self) -> None:
        self.inflight -= 1
        if self._inflight_free is not None:
            self._inflight_free.set()

    # ------------------------------------------------------------------ input

    async def receive(self, data: bytes | str) -> None:
        """Handle one WebSocket message from the client."""
        frame = self.receive_nowait(data)
        if frame is not None:
            await self.serve(frame)

    def receive_nowait(self, data: bytes | str) -> F.ClientFrame | None:
        """Decode one WebSocket message and handle it now if that needs no waiting: bad input
        (answered with an error), a rate-limited frame, and the hot path, a logged-in ``send``
        with room in flight (queued for the next commit). Else return the frame for ``serve``.
        The transport calls this straight from the socket's read callback: no task step per
        message."""
        deps = self._svc.deps
        if isinstance(data, str):
            self.fail(0, ErrorCode.MALFORMED, "chatd.v1 uses binary messages only")
            return None
        try:
            frame = codec.decode_client(data, deps.settings.limits.max_frame_bytes)
        except ProtocolError as exc:
            self.fail(codec.request_id_of(data), exc.code, exc.message)
            return None
        counts = deps.metrics.hot.frames_in  # ``Metrics.frame_in``, inline (once per message)
        kind = type(frame)
        count = counts.get(kind)
        if count is None:
            deps.metrics.frame_in(kind)  # the first of its type: its creation time too
        else:
            counts[kind] = count + 1
        if self.account == 0:  # not ``authenticated`` (a property): once per message
            return frame
        now = deps.clock.monotonic()
        if not self._bucket.allow(now):
            self._refuse(frame, None)
            return None
        account = self._account_bucket  # the account's budget, shared by its sessions
        if account is not None:
            if not account.allow(now):
                self._refuse(frame, None)
                return None
        else:
            shared = self._svc.limits.frame_nowait(self.account, self.bot_budget)
            if shared is None:  # the account's budget is in Redis: ask, in ``serve``
                self._owed = True
                return frame
            if not shared:
                self._refuse(frame, None)
                return None
        if type(frame) is F.Send and self.inflight < deps.settings.limits.max_inflight_sends:
            try:
                self._svc.messaging.submit(self, frame)
            except ChatdError as exc:
                self.fail(frame.id, exc.code, exc.message)
            except Exception:
                log.exception("handler failed", extra={"frame": "Send"})
                self.fail(frame.id, ErrorCode.INTERNAL, "internal error")
            return None
        return frame

    def _refuse(self, frame: F.ClientFrame, retry: float | None) -> None:
        """Answer a frame over a limit with ``RATE_LIMITED`` (typing: nothing, SPEC 10.2)."""
        if isinstance(frame, F.Typing):
            return
        wait = "" if retry is None else f"; retry in {retry:.1f} s"
        self.fail(getattr(frame, "id", 0), ErrorCode.RATE_LIMITED, f"slow down{wait}", retry)

    async def serve(self, frame: F.ClientFrame) -> None:
        """Serve a frame ``receive_nowait`` returned (decoded, counted and rate limited)."""
        rid = getattr(frame, "id", 0)
        if self._owed:
            self._owed = False
            retry = await self._svc.limits.frame(self.account, self.bot_budget)
            if retry is not None:
                self._refuse(frame, retry)
                return
        try:
            if not self.authenticated:
                await self._before_login(frame)
            else:
                await self._dispatch(frame)
        except ChatdError as exc:
            self.fail(rid, exc.code, exc.message, getattr(exc, "retry_after", None))
        except ProtocolError as exc:
            self.fail(rid, exc.code, exc.message)
        except Exception:
            log.exception("handler failed", extra={"frame": type(frame).__name__})
            self.fail(rid, ErrorCode.INTERNAL, "internal error")

    async def _before_login(self, frame: F.ClientFrame) -> None:
        auth = self._svc.auth
        limits = self._svc.limits
        nonce = self.nonce
        assert nonce is not None
        if not isinstance(frame, F.Register | F.Login | F.LinkDevice):
            self.fail(getattr(frame, "id", 0), ErrorCode.AUTH_REQUIRED, "log in first")
            return
        # Limits per address, across connections and nodes (SPEC 6.1), before any work.
        retry = await limits.prelogin_attempt(self.address)
        if retry is None and isinstance(frame, F.Register):
            retry = await limits.registration(self.address)
        if retry is not None:
            # Not a failed attempt: answering costs less than the reconnection a close would
            # bring, and the auth deadline ends the connection anyway.
            self._refuse(frame, retry)
            return
        try:
            match frame:
                case F.Register():
                    account, device = await auth.register(frame, nonce)
                case F.Login():
                    account, device = await auth.login(frame, nonce)
                case F.LinkDevice():
                    account, device = await auth.link(frame, nonce)
        except ChatdError as exc:
            # A register for a taken handle is a failed attempt too: a signed register (valid
            # for this connection's nonce) could otherwise be replayed on it forever.
            if exc.code in (ErrorCode.AUTH_FAILED, ErrorCode.HANDLE_TAKEN):
                self.fail(frame.id, exc.code, exc.message)
                await self._failed_attempt()
                return
            raise
        await self._logged_in(frame.id, account, device)

    async def _failed_attempt(self) -> None:
        """A pre-login frame was refused (``AUTH_FAILED``, ``HANDLE_TAKEN``): the
        ``max_auth_failures``-th on a connection closes it (SPEC 6.1)."""
        self._failures += 1
        if self._failures >= self._svc.deps.settings.limits.max_auth_failures:
            await self._link.close(CLOSE_POLICY, "too many failed logins")

    async def _logged_in(self, rid: int, account: AccountRow, device: DeviceRow) -> None:
        svc = self._svc
        self.nonce = None  # single use
        self.account, self.device, self.handle = account.id, device.id, account.handle
        self.is_bot = account.type == "bot"
        # The bot budget only for a bot its owner created (SPEC.md 11.1): a self-declared one
        # counts as a user (issue 14.5: registering as a bot bought 10x the frames).
        self.bot_budget = self.is_bot and account.owner != 0
        self._account_bucket = svc.limits.account_bucket(account.id, self.bot_budget)
        if self.bot_budget:
            limits = svc.deps.settings.limits
            self._bucket = TokenBucket(
                limits.bot_frames_per_second, limits.bot_frame_burst, svc.deps.clock.monotonic()
            )
        # Attach first, then read the memberships (issue 14.7): a removal whose UNWATCH arrives
        # while the read is in flight is remembered by the hub and wins over what was read.
        # With other nodes, the account's topic must be subscribed at Redis before the read:
        # an UNWATCH published earlier is lost to this node, but its removal had committed
        # before it was published, so the read sees it.
        hub = svc.deps.hub
        first = hub.attach(self)
        await hub.barrier()
        hub.watch_read(self, await svc.deps.store.conversation_ids_of(account.id))
        hub.follow_read(self, await svc.deps.store.followed_channels(account.id))
        # Attached, then read again whether the account is suspended: a suspension committed
        # after the login's check was either seen here or, if later, by a sweep that finds this
        # connection attached (``SuspensionService``); before, a login checked just before a
        # suspension kept its connection.
        again = await svc.deps.store.account(account.id)
        if again is None or again.suspended:
            self.fail(rid, ErrorCode.SUSPENDED, "this account is suspended")
            await self._link.close(CLOSE_POLICY, "account suspended")
            return
        if first:  # before the welcome: once logged in, the account counts as online everywhere
            await svc.presence.announce(account.id, online=True)
        await svc.push.connected(device.id)
        self.reply(
            F.Welcome(
                re=rid,
                account=account.id,
                device=device.id,
                handle=account.handle,
                server_time=svc.deps.clock.now_ms(),
            )
        )

    async def _dispatch(self, frame: F.ClientFrame) -> None:
        svc = self._svc
        a, dev = self.account, self.device
        match frame:
            case F.Send():
                if self.inflight >= svc.deps.settings.limits.max_inflight_sends:
                    await self._wait_inflight()
                svc.messaging.submit(self, frame)
            case F.Sync():
                await svc.messaging.sync(self, frame)
            case F.Fetch():
                self.reply(await svc.messaging.fetch(self, frame))
            case F.Receipt():
                if not await svc.contacts.muted(frame.conv, a):  # a request's: never shown
                    await svc.presence.receipt(self.conn_id, a, dev, frame)
                self.reply(F.Ok(re=frame.id))
            case F.Typing():
                now = svc.deps.clock.monotonic()
                if self._typing is None:
                    rate = svc.deps.settings.limits.typing_per_second
                    self._typing = TokenBucket(rate, rate * 2, now)
                if self._typing.allow(now) and not await svc.contacts.muted(frame.conv, a):
                    # Never answered (SPEC 10.2): a non-member is ignored, not told.
                    with contextlib.suppress(ChatdError):
                        await svc.presence.typing(self.conn_id, a, frame)
            case F.CreateConv():
                self.reply(F.Conv(re=frame.id, info=await svc.contacts.create(a, dev, frame)))
            case F.ListConvs():
                self.reply(await svc.conversations.list(a, dev, frame))
            case F.ListMembers():
                self.reply(await svc.conversations.members(a, frame))
            case F.GetConv():
                self.reply(
                    F.Conv(re=frame.id, info=await svc.conversations.get(a, dev, frame.conv))
                )
            case F.Invite():
                await svc.contacts.invite(a, dev, frame)
                self.reply(F.Ok(re=frame.id))
            case F.Remove():
                await svc.conversations.remove(a, dev, frame)
                self.reply(F.Ok(re=frame.id))
            case F.Leave():
                await svc.conversations.leave(a, dev, frame)
                self.reply(F.Ok(re=frame.id))
            case F.SetRole():
                await svc.conversations.set_role(a, dev, frame)
                self.reply(F.Ok(re=frame.id))
            case F.Rename():
                await svc.conversations.rename(a, frame)
                self.reply(F.Ok(re=frame.id))
            case F.DeleteMessage():
                await svc.messaging.delete(a, frame)
                self.reply(F.Ok(re=frame.id))
            case F.GetMemberLog():
                self.reply(await svc.conversations.member_log(a, frame))
            case F.Lookup():
                self.reply(await svc.conversations.lookup(a, frame.id, frame.handle))
            case F.GetPresence():
                self.reply(await svc.presence.query(a, frame))
            case F.ToDevice():
                await svc.contacts.to_device(a, dev, frame)
                self.reply(F.Ok(re=frame.id))
            case F.FetchToDevice():
                self.reply(await svc.keys.fetch(dev, frame))
            case F.AckToDevice():
                await svc.keys.ack(dev, frame)
                self.reply(F.Ok(re=frame.id))
            case F.ClaimKeys():
                self.reply(await svc.contacts.claim(a, dev, frame))
            case F.UploadKeys():  # always the connection's own device: the frame names none
                self.reply(await svc.keys.upload(dev, frame))
            case F.GetDeviceList():
                self.reply(await svc.keys.get_device_list(frame))
            case F.PutDeviceList():  # always the connection's own account
                await svc.keys.put_device_list(self.conn_id, a, frame)
                self.reply(F.Ok(re=frame.id))
            case F.Pay() | F.SendRedPacket() | F.Claim() | F.RequestPayment():
                # Postings commit in the group-commit writer like sends: not awaited here.
                if self.inflight >= svc.deps.settings.limits.max_inflight_sends:
                    await self._wait_inflight()
                await self._post(frame)
            case F.DeclineRequest() | F.CancelRequest():
                svc.payments.close_request(self, frame)
            case F.GetBalance():
                self.reply(await svc.payments.balance(self, frame))
            case F.WalletHistory():
                self.reply(await svc.payments.history(self, frame))
            case F.GetPaymentKey():
                self.reply(svc.payments.key_frame(frame.id))
            case F.SetBotProfile():
                await svc.bots.set_profile(self, frame)
                self.reply(F.Ok(re=frame.id))
            case F.GetBotProfile():
                self.reply(await svc.bots.profile(frame))
            case F.SetBotAccess():
                await svc.bots.set_access(a, dev, frame)
                self.reply(F.Ok(re=frame.id))
            case F.UploadToken() | F.DownloadToken() | F.AttachBlob() | F.DetachBlob():
                if svc.media is None:
                    raise ChatdError("media is not enabled on this server", ErrorCode.UNAVAILABLE)
                self.reply(await svc.media.handle(a, frame))
            case (
                F.ListRequests()
                | F.AnswerRequest()
                | F.ListAnswers()
                | F.DismissAnswer()
                | F.Block()
                | F.Unblock()
                | F.ListContacts()
                | F.SetPrivacy()
                | F.GetPrivacy()
            ):
                self.reply(await svc.contacts.handle(a, frame))
            case F.Unban():
                await svc.deps.store.unban(frame.conv, a, frame.account)
                self.reply(F.Ok(re=frame.id))
            case F.Report():
                self.reply(await svc.reports.report(a, frame))
            case F.GetPush() | F.SetPush() | F.ClearPush():
                self.reply(await svc.push.handle(a, dev, frame))
            case F.CreateLink():
                self.reply(await svc.links.create(a, frame))
            case F.ListLinks():
                self.reply(await svc.links.list(a, frame))
            case F.RevokeLink():
                await svc.links.revoke(a, frame)
                self.reply(F.Ok(re=frame.id))
            case F.PreviewLink():
                self.reply(await svc.links.preview(a, self.address, frame))
            case F.JoinLink():
                self.reply(await svc.links.join(a, dev, self.address, frame))
            case F.ListJoinRequests():
                self.reply(await svc.links.requests(a, frame))
            case F.AnswerJoin():
                await svc.links.answer(a, dev, frame)
                self.reply(F.Ok(re=frame.id))
            case F.CancelJoin():
                await svc.links.cancel(a, frame)
                self.reply(F.Ok(re=frame.id))
            case (
                F.CreateChannel()
                | F.FindChannel()
                | F.SearchChannels()
                | F.Follow()
                | F.Unfollow()
                | F.SetChannelAdmin()
                | F.Publish()
                | F.GetPosts()
                | F.GetPostHistory()
                | F.Comment()
                | F.GetComments()
                | F.DeleteComment()
                | F.ReactPost()
                | F.GetReactions()
            ):
                self.reply(await svc.channels.handle(a, self.device, self.conn_id, frame))
            case (
                F.Tip()
                | F.SetChannelPrice()
                | F.GetChannelPrice()
                | F.Subscribe()
                | F.Unsubscribe()
                | F.GetSubscription()
                | F.ListSubscriptions()
                | F.GetCreatorReceipts()
                | F.GetPostTips()
            ):
                self.reply(await svc.creators.handle(a, frame))
            case F.WatchFeed() | F.WatchChannel() | F.WatchPost():
                self.reply(await svc.timeline.watch(self, frame))
            case F.GetTimeline():
                self.reply(await svc.timeline.timeline(a, frame))
            case (
                F.ViewPosts()
                | F.BanCommenter()
                | F.UnbanCommenter()
                | F.ListCommentBans()
                | F.SetSlowMode()
            ):
                self.reply(await svc.channel_moderation.handle(a, frame))
            case (
                F.PostMoment()
                | F.GetMoment()
                | F.GetMoments()
                | F.GetMomentComments()
                | F.CommentMoment()
                | F.LikeMoment()
                | F.DeleteMoment()
                | F.DeleteMomentComment()
            ):
                self.reply(await svc.moments.handle(a, self.device, self.conn_id, frame))
            case F.Register() | F.Login() | F.LinkDevice():
                self.fail(frame.id, ErrorCode.ALREADY_AUTHENTICATED, "already logged in")

    async def _post(self, frame: F.Pay | F.SendRedPacket | F.Claim | F.RequestPayment) -> None:
        payments = self._svc.payments
        match frame:
            case F.Pay():
                await payments.pay(self, frame)
            case F.SendRedPacket():
                await payments.red_packet(self, frame)
            case F.Claim():
                payments.claim(self, frame)
            case F.RequestPayment():
                payments.request(self, frame)

    async def _wait_inflight(self) -> None:
        """Backpressure: stop reading this socket while too many sends await their commit."""
        limit = self._svc.deps.settings.limits.max_inflight_sends
        while self.inflight >= limit:
            self._inflight_free = event = asyncio.Event()
            await event.wait()
        self._inflight_free = None

    async def suspended(self) -> None:
        """The operator suspended this account (``SuspensionService``): end the connection."""
        await self._link.close(CLOSE_POLICY, "account suspended")

    async def closed(self) -> None:
        """The connection ended: stop routing to it and, if it was the account's last, say so."""
        if not self.authenticated:
            return
        svc = self._svc
        if svc.deps.hub.detach(self):
            try:
                await svc.presence.announce(self.account, online=False)
            except ChatdError:
                log.warning("could not record last_seen", extra={"account": self.account})
