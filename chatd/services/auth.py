"""Challenge-response login. No passwords and no bearer secret: a device proves it holds its
Ed25519 key by signing this connection's single-use nonce bound to this server's name."""

from __future__ import annotations

import os

from chatproto import auth
from chatproto import frames as F
from chatproto.e2e.primitives import is_valid_public_key, verify
from chatproto.errors import ErrorCode, SignatureError
from chatproto.limits import NONCE_BYTES

from chatd.errors import AuthFailed, ChatdError, HandleTaken, Invalid
from chatd.services.deps import Deps
from chatd.store.base import AccountRow, DeviceRow

__all__ = ["AccountRow", "AuthService", "DeviceRow", "new_nonce"]
"""The rows a login yields are re-exported: the session names them from here, since the
transport reaches storage only through services."""


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def _not_suspended(account: AccountRow) -> None:
    """A suspended account logs in nowhere (SPEC.md 6.1): ``SUSPENDED``, after the signature
    was checked (a stranger learns nothing of it)."""
    if account.suspended:
        raise ChatdError("this account is suspended", ErrorCode.SUSPENDED)


class AuthService:
    def __init__(self, deps: Deps) -> None:
        self._d = deps
        self._server = deps.settings.server.name

    def _check(self, key: bytes, sig: bytes, message: bytes) -> None:
        try:
            verify(key, sig, message)
        except SignatureError:
            raise AuthFailed("signature does not verify") from None

    async def register(self, f: F.Register, nonce: bytes) -> tuple[AccountRow, DeviceRow]:
        if not is_valid_public_key(f.device_key):
            raise Invalid("device_key is not an Ed25519 public key")
        self._check(f.device_key, f.sig, auth.login_payload(self._server, nonce, f.device_key))
        # A read first: a taken handle costs no write transaction (the writer is shared with
        # every message), however often a register for it is replayed. The write checks again.
        if await self._d.store.account_by_handle(f.handle) is not None:
            raise HandleTaken(f"handle {f.handle!r} is taken")
        owner = await self._bot_owner(f)
        return await self._d.store.create_account(
            f.handle, f.name, f.type, f.device_key, f.device_name, self._d.clock.now_ms(), owner
        )

    async def _bot_owner(self, f: F.Register) -> int:
        """The account whose device signed this bot's registration (SPEC.md 6.1); 0 for a
        user, or a bot that declares itself (it gets a user's frame budget, SPEC.md 11.1)."""
        if f.approver is None and f.approval is None:
            return 0
        if f.type != "bot" or f.approver is None or f.approval is None:
            raise Invalid("approver and approval go together, on a bot's registration only")
        approver = await self._d.store.device(f.approver)
        owner = None if approver is None else await self._d.store.account(approver.account)
        if approver is None or owner is None or owner.type != "user":
            raise AuthFailed("unknown approving device")
        payload = auth.bot_approval_payload(self._server, f.handle, f.device_key)
        self._check(approver.public_key, f.approval, payload)
        return owner.id

    async def login(self, f: F.Login, nonce: bytes) -> tuple[AccountRow, DeviceRow]:
        device = await self._d.store.device(f.device)
        if device is None:
            raise AuthFailed("unknown device or bad signature")
        self._check(
            device.public_key, f.sig, auth.login_payload(self._server, nonce, device.public_key)
        )
        account = await self._d.store.account(device.account)
        if account is None:  # pragma: no cover - a device always has its account
            raise AuthFailed("unknown device or bad signature")
        _not_suspended(account)
        return account, device

    async def link(self, f: F.LinkDevice, nonce: bytes) -> tuple[AccountRow, DeviceRow]:
        account = await self._d.store.account_by_handle(f.handle)
        approver = await self._d.store.device(f.approver)
        if account is None or approver is None or approver.account != account.id:
            raise AuthFailed("unknown account or approving device")
        if not is_valid_public_key(f.device_key):
            raise Invalid("device_key is not an Ed25519 public key")
        self._check(
            approver.public_key,
            f.approval,
            auth.device_approval_payload(self._server, account.id, f.device_key),
        )
        self._check(f.device_key, f.sig, auth.login_payload(self._server, nonce, f.device_key))
        _not_suspended(account)
        device = await self._d.store.add_device(
            account.id, f.device_key, f.device_name, approver.id, self._d.clock.now_ms()
        )
        return account, device
