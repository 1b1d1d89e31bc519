"""Accounts: this device's first login (register) or its linking to an existing account
(SPEC.md 6.1). Later logins are the connection's (``Connection._setup``)."""

from __future__ import annotations

from chatproto import frames as F

from chatclient.connection import Connection


class Accounts:
    """Registering and linking this key store's device."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def register(
        self,
        handle: str,
        name: str,
        *,
        bot: bool = False,
        device_name: str = "python",
        owner: tuple[int, bytes] | None = None,
    ) -> int:
        """Create an account with this device as its first device; returns the account id.
        ``owner``: for a bot, its owner's ``(device, approval)`` (``Client.approve_bot``):
        without it a bot declares itself and gets a user's frame budget (SPEC.md 6.1, 11.1)."""
        c = self._conn
        await c.current_challenge()
        key = c.keystore.key
        sig = c.login_sig()
        welcome: F.Welcome = await c.request(
            F.Register(
                id=c.next_id(),
                handle=handle,
                name=name,
                type="bot" if bot else "user",
                device_key=key.public_key,
                device_name=device_name,
                sig=sig,
                approver=None if owner is None else owner[0],
                approval=None if owner is None else owner[1],
            ),
            F.Welcome,
        )
        self._remember(welcome)
        await c.after_login(first_device=True)
        return welcome.account

    async def link(
        self, handle: str, approver: int, approval: bytes, *, device_name: str = "python"
    ) -> int:
        """Add this device to account ``handle`` with an existing device's approval."""
        c = self._conn
        await c.current_challenge()
        key = c.keystore.key
        sig = c.login_sig()
        welcome: F.Welcome = await c.request(
            F.LinkDevice(
                id=c.next_id(),
                handle=handle,
                device_key=key.public_key,
                device_name=device_name,
                approver=approver,
                approval=approval,
                sig=sig,
            ),
            F.Welcome,
        )
        self._remember(welcome)
        await c.after_login()
        return welcome.device

    def _remember(self, welcome: F.Welcome) -> None:
        ks = self._conn.keystore
        ks.account, ks.device, ks.handle = welcome.account, welcome.device, welcome.handle
        ks.save()
