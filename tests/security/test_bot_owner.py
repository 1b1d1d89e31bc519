"""Issue 14.5, last part: "the account type is self-declared, so registering as ``bot`` gave
1,048" of 1,500 requests where a user's connection got 102. A bot is now created by its owner:
the owner's device signs the bot's registration (SPEC.md 6.1), and only such a bot gets the bot
frame budget (SPEC.md 11.1); one that declares itself counts as a user. A forged or misplaced
approval is refused. Against a real server."""

from __future__ import annotations

from pathlib import Path

from chatproto import auth
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ErrorCode
from conftest import make_settings, run_server
from testkit import Raw

from .test_limits import blast

SERVER = {"frames_per_second": 50.0, "frame_burst": 100.0, "account_connections": 0}
"""Per connection (the defaults, pinned); a bot's connection 500/s, burst 1,000."""


def bot_register(r: Raw, handle: str, approver: int = 0, approval: bytes = b"") -> F.Register:
    return F.Register(
        id=r.next_id(),
        handle=handle,
        name=handle.title(),
        type="bot",
        device_key=r.key.public_key,
        device_name="bot",
        sig=r.login_sig(),
        approver=approver or None,
        approval=approval or None,
    )


async def test_only_a_bot_its_owner_created_gets_the_bot_budget(tmp_path: Path) -> None:
    async with run_server(make_settings(tmp_path, limits=SERVER)) as server:
        owner = await Raw.open(server.url)
        await owner.register("owner")
        name = server.app.settings.server.name

        # Self-declared: accepted, but with a user's budget (before: 1,048 of 1,500).
        selfmade = await Raw.open(server.url)
        await selfmade.request(bot_register(selfmade, "selfmade_bot"), F.Welcome)
        ok, limited, _ = await blast([selfmade], 1500)
        assert ok + limited == 1500
        assert ok < 200, ok  # a user's burst of 100 and ~50/s

        # Created by its owner: the owner's device signs (server, handle, bot key).
        real = await Raw.open(server.url)
        approval = owner.key.sign(auth.bot_approval_payload(name, "real_bot", real.key.public_key))
        await real.request(bot_register(real, "real_bot", owner.device, approval), F.Welcome)
        ok, limited, _ = await blast([real], 1500)
        assert ok >= 1000, ok  # the bot burst

        # Refused: an approval for another handle, or from a key that is not the device's.
        for handle, signer in (("other_bot", owner.key), ("forged_bot", SigningKey.generate())):
            r = await Raw.open(server.url)
            signed_for = "x_bot" if handle == "other_bot" else handle
            bad = signer.sign(auth.bot_approval_payload(name, signed_for, r.key.public_key))
            answer = await r.request(bot_register(r, handle, owner.device, bad))
            assert isinstance(answer, F.Error) and answer.code == ErrorCode.AUTH_FAILED, answer
            await r.close()
        # ... and an approval on a user's registration.
        r = await Raw.open(server.url)
        f = bot_register(r, "plain_user", owner.device, approval)
        answer = await r.request(F.Register(**{**_fields(f), "type": "user"}))
        assert isinstance(answer, F.Error) and answer.code == ErrorCode.INVALID, answer
        for c in (owner, selfmade, real, r):
            await c.close()


def _fields(f: F.Register) -> dict[str, object]:
    return {k: getattr(f, k) for k in f.__struct_fields__}
