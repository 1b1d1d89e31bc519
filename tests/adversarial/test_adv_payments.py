"""A malicious server against payment receipts and intents (issue 12 point 6, E2E.md 13).

The server holds its receipt key, so it can sign any receipt; what it cannot make is the payer's
signature over the intent. A member's client checks it (``payer_sig``) under the payer's device
key from the payer's signed device list, and refuses a receipt whose terms the payer never
signed, whoever the payer is.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import msgspec
import pytest
from adversarial.test_adv_sessions import Attacker, Inbox, malicious_server, text
from chatclient import Client, Message
from chatclient.events import Event, SecurityWarning
from chatproto import frames as F
from chatproto import kinds, payments
from chatproto.e2e.primitives import SigningKey
from paykit import mint


def receipt(type: str) -> object:
    return lambda ev: (
        isinstance(ev, Message)
        and isinstance(ev.content, kinds.PaymentReceipt)
        and ev.content.type == type
    )


def refused(ev: Event) -> bool:
    return isinstance(ev, SecurityWarning) and "payment receipt" in ev.reason


def inflate(attacker: Attacker, server_name: str, factor: int) -> None:
    """From now on the server shows every transfer receipt ``factor`` times larger, re-hashed
    and signed again with its own receipt key (read from its database)."""
    ((seed,),) = attacker.read("SELECT seed FROM server_keys WHERE name='payments'")
    key = SigningKey(bytes(seed))

    def rewrite(frame: F.ServerFrame) -> F.ServerFrame:
        if not isinstance(frame, F.Deliver) or frame.kind != kinds.PaymentReceipt.KIND:
            return frame
        r = kinds.decode_content(frame.kind, frame.body)
        assert isinstance(r, kinds.PaymentReceipt)
        if r.type != "transfer":
            return frame
        big = msgspec.structs.replace(r, amount=r.amount * factor)
        intent = payments.receipt_intent(big)
        assert intent is not None
        big = msgspec.structs.replace(big, intent_hash=payments.intent_hash(server_name, intent))
        _, body = kinds.encode_content(payments.sign_receipt(key, server_name, big))
        return msgspec.structs.replace(frame, body=body)

    attacker.rewrite = rewrite


@pytest.mark.parametrize("pinned", [True, False], ids=["payer-pinned", "payer-unknown"])
async def test_a_receipt_the_payer_never_signed_is_refused_by_every_other_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pinned: bool
) -> None:
    """Alice pays Carol 3.00 in a group with Bob; the server shows Bob and Carol a receipt for
    300.00, validly signed by the server's key. Both refuse it (``payer_sig``): at once when they
    know Alice's device list, right after fetching it otherwise."""
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        alice, bob, carol = [await stack.enter_async_context(Client(server.url)) for _ in "abc"]
        for c, h in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            await c.register(h, h.title())
        boxes = [Inbox(c) for c in (bob, carol)]
        group = (await alice.create("group", "Lunch", [bob.account, carol.account])).conv
        if pinned:
            await alice.send_text(group, "paying now")  # its key reaches them: they pin her list
            for box in boxes:
                await box.take(text(group, "paying now"))
        else:
            for c in (bob, carol):
                assert c.e2e.trust(alice.account) is None
        await mint(attacker.db, alice.account, 1000)
        inflate(attacker, alice.server_name, 100)
        got = await alice.pay(group, carol.account, 300, "USD")
        assert got.receipt.amount == 300  # the payer checks the server's answer herself
        for box in boxes:
            (warning,) = await box.take(refused)
            assert "signature" in warning.reason  # type: ignore[union-attr]
            if pinned:  # refused before it was ever shown
                box.none(receipt("transfer"))
        attacker.rewrite = None
