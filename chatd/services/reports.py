"""Reports of end-to-end encrypted messages, verified by message franking (SPEC.md 18.7,
E2E.md 17, ``chatproto.franking``).

A ``send`` with a franking commitment ``fc``: once committed, the server computes its tag
(HMAC under the server's franking secret over the commitment, sender, conv, seq and ts) and
stores it beside the message before acking. A ``report`` reveals the plaintext and the
franking key; the server recomputes the commitment and the tag and compares. Nothing stored
reveals an unreported plaintext: the server keeps neither the commitment nor the key.
"""

from __future__ import annotations

import asyncio
import os

from chatproto import frames as F
from chatproto import franking
from chatproto.errors import ErrorCode

from chatd.errors import ChatdError, NotFound
from chatd.services.deps import Deps
from chatd.store.base import FrankingTag, StoredMessage


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

    def record(self, m: StoredMessage, commitment: bytes) -> asyncio.Future[None]:
        """Queue the tag of committed message ``m`` sent with ``commitment``."""
        tag = franking.tag(
            self._key(), commitment, sender=m.sender, conv=m.conv, seq=m.seq, ts=m.ts
        )
        return self._d.store.put_franking_tag(FrankingTag(m.conv, m.seq, m.sender, m.ts, tag))

    async def report(self, account: int, f: F.Report) -> F.Reported:
        """Verify and store ``account``'s report. A non-member gets ``NOT_FOUND`` as for a
        missing conversation; a report whose opening does not verify (or of a message sent
        without franking, or never sent) ``REPORT_REFUSED``, and nothing is stored."""
        d = self._d
        if await d.store.membership(f.conv, account) is None:
            raise NotFound("no such conversation")
        t = await d.store.franking_tag(f.conv, f.seq)
        if t is None or not franking.verify(
            self._key(), t.tag, f.plaintext, f.fk, sender=t.sender, conv=t.conv, seq=t.seq, ts=t.ts
        ):
            raise ChatdError("the opening does not verify", ErrorCode.REPORT_REFUSED)
        report = await d.store.add_report(account, t, f.plaintext, f.reason, d.clock.now_ms())
        return F.Reported(re=f.id, report=report, sender=t.sender)
