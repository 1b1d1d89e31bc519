"""Reports of end-to-end encrypted messages, verified by message franking (SPEC.md 18.7,
E2E.md 17, ``chatproto.franking``).

A ``send`` with a franking commitment ``fc`` keeps it in the message's row (and ``deliver``
carries it, so receivers check it before showing the message). A ``report`` reveals the
plaintext and the franking key; the server computes the tag (HMAC under the server's franking
secret over the commitment, sender, conv, seq and ts) of the stored commitment and of the one
the opening gives, and compares. Nothing stored reveals an unreported plaintext: the commitment
is an HMAC under a key the server never learns.
"""

from __future__ import annotations

import os

from chatproto import frames as F
from chatproto import franking
from chatproto.errors import ErrorCode

from chatd.errors import ChatdError, NotFound
from chatd.services.deps import Deps
from chatd.store.base import Franked


class ReportService:
    def __init__(self, deps: Deps) -> None:
        self._d = deps
        self._secret: bytes | None = None

    async def open(self) -> None:
        """Load the server's franking secret (made on first use, shared by every node)."""
        self._secret = await self._d.store.franking_secret(os.urandom(franking.KEY_BYTES))

    def _key(self) -> bytes:
        assert self._secret is not None, "ReportService.open() first"
        return self._secret

    async def report(self, account: int, f: F.Report) -> F.Reported:
        """Verify and store ``account``'s report. A non-member gets ``NOT_FOUND`` as for a
        missing conversation; a report whose opening does not verify (or of a message sent
        without franking, or never sent) ``REPORT_REFUSED``, and nothing is stored."""
        d = self._d
        if await d.store.membership(f.conv, account) is None:
            raise NotFound("no such conversation")
        t = await d.store.franked(f.conv, f.seq)
        if t is None or not franking.verify(
            self._key(),
            self._tag(t),
            f.plaintext,
            f.fk,
            sender=t.sender,
            conv=t.conv,
            seq=t.seq,
            ts=t.ts,
        ):
            raise ChatdError("the opening does not verify", ErrorCode.REPORT_REFUSED)
        report = await d.store.add_report(account, t, f.plaintext, f.reason, d.clock.now_ms())
        return F.Reported(re=f.id, report=report, sender=t.sender)

    def _tag(self, t: Franked) -> bytes:
        """The tag the stored commitment gives (or the one stored before commitments were)."""
        if t.fc is None:
            assert t.tag is not None
            return t.tag
        return franking.tag(self._key(), t.fc, sender=t.sender, conv=t.conv, seq=t.seq, ts=t.ts)
