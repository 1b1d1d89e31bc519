"""Reporting a message to the server's operator (SPEC.md 18.7): ``client.report(conv, seq,
reason)``.

Every message this SDK encrypts is franked (E2E.md 17): a fresh franking key inside the
ciphertext, its commitment in the clear beside it. A report reveals the message's plaintext
and that key, as this device decrypted them; the server checks them against the tag it made
when the message was stored, so it learns the sender for sure and reads nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from chatproto import frames as F
from chatproto import franking

from chatclient.e2e import E2E
from chatclient.errors import ChatClientError
from chatclient.events import Message, Undecryptable

Request = Callable[[Any, type[Any]], Awaitable[Any]]


class Reports:
    def __init__(
        self,
        e2e: E2E,
        request: Request,
        next_id: Callable[[], int],
        message: Callable[[int, int], Awaitable[Message | Undecryptable]],
    ) -> None:
        self._e2e = e2e
        self._call = request
        self._next_id = next_id
        self._message = message

    async def report(self, conv: int, seq: int, reason: str = "") -> F.Reported:
        """Report message ``seq`` of ``conv``; the answer names the account that sent it.
        ``ChatClientError`` when this device cannot open it (never decrypted here, its own, or
        sent without franking); ``RequestError`` (code ``REPORT_REFUSED``) when the server
        finds it was not sent as decrypted."""
        opening = self._e2e.opening(conv, seq)
        if opening is None:
            await self._message(conv, seq)  # decrypts it from history (NotFound: no such)
            opening = self._e2e.opening(conv, seq)
        if opening is None:
            raise ChatClientError(
                f"message {seq} of conversation {conv} cannot be reported from this device"
                " (not decrypted here, or sent without franking)"
            )
        kind, body, key = opening
        frame = F.Report(
            id=self._next_id(),
            conv=conv,
            seq=seq,
            plaintext=franking.encode_plaintext(kind, body),
            fk=key,
            reason=reason[:256],
        )
        reported: F.Reported = await self._call(frame, F.Reported)
        return reported
