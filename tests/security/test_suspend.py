"""``chatd admin suspend/unsuspend ACCOUNT`` (issue 14.3, operators): a suspended account's
connections close (1008) on the running server within about a second, its logins (and a new
device's link) fail with the stable code ``SUSPENDED``, and ``unsuspend`` lets it back. The
command runs as its own process next to the server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from chatproto import frames as F
from chatproto.errors import ErrorCode
from conftest import make_settings, run_server
from testkit import Raw


async def admin(db: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatd",
        "admin",
        *args,
        "--db",
        db,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_a_suspended_account_is_disconnected_and_cannot_log_in_until_unsuspended(
    db: str, tmp_path: Path
) -> None:
    async with run_server(make_settings(tmp_path, store={"db": db})) as server:
        mallory = await Raw.open(server.url)
        await mallory.register("mallory")
        second = await Raw.open(server.url)
        await second.login(mallory.device, mallory.key)
        olivia = await Raw.open(server.url)
        await olivia.register("olivia")

        code, out = await admin(db, "suspend", "@mallory")
        assert code == 0, out
        # Both of mallory's connections end (close code 1008), olivia's does not.
        closes = await asyncio.gather(mallory.until_closed(10), second.until_closed(10))
        assert closes == [1008, 1008]
        assert isinstance(await olivia.request(F.ListConvs(id=olivia.next_id())), F.Convs)
        again = await Raw.open(server.url)
        refused = await again.request(
            F.Login(id=again.next_id(), device=mallory.device, sig=again.login_sig(mallory.key))
        )
        assert isinstance(refused, F.Error) and refused.code == ErrorCode.SUSPENDED, refused
        await again.close()

        assert (await admin(db, "unsuspend", str(mallory.account)))[0] == 0
        back = await Raw.open(server.url)
        await back.login(mallory.device, mallory.key)
        assert isinstance(await back.request(F.ListConvs(id=back.next_id())), F.Convs)
        # No such account: a failure, not a silent success.
        code, out = await admin(db, "suspend", "@nobody")
        assert code == 1 and "no account" in out
        for r in (back, olivia):
            await r.close()
