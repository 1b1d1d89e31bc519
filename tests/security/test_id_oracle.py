"""Issue 14.9, ids of payments and requests: they are global and were checked before
membership, so a stranger naming a conversation it is not in got ``CONFLICT`` for an id someone
used there and ``NOT_FOUND`` for a fresh one. Membership is now checked first: the same
``NOT_FOUND`` either way, on SQLite and on PostgreSQL; the payer's own retry still replays."""

from __future__ import annotations

from pathlib import Path

import paykit
from chatproto import frames as F
from chatproto.errors import ErrorCode
from conftest import make_settings, run_server
from testkit import Raw


async def answer(r: Raw, frame: F.Frame) -> str:
    f = await r.request(frame)
    return type(f).__name__ if not isinstance(f, F.Error) else ErrorCode(f.code).name


async def test_a_stranger_cannot_tell_used_payment_and_request_ids_from_fresh_ones(
    db: str, tmp_path: Path
) -> None:
    async with run_server(make_settings(tmp_path, store={"db": db})) as server:
        clients = paykit.Clients(server.url)
        try:
            alice = await clients.registered("alice")
            bob = await clients.registered("bobby")
            mallory = await clients.registered("mallory")
            conv = await paykit.group(alice, bob)
            store = server.app.services
            assert store is not None
            await store.deps.store.mint(alice.account, 5_000, "USD", paykit.now_ms(), "test")
            # alice uses a transfer id, a packet id and a request id in her conversation
            paid = paykit.intent(alice, bob.account, 100, conv)
            assert await answer(alice, paykit.pay_frame(alice, paid)) == "Posted"
            packet = paykit.packet_frame(alice, conv, 100, 2)
            assert await answer(alice, packet) == "Posted"
            request_id = paykit.new_id("r")
            asked = F.RequestPayment(
                id=alice.next_id(),
                request_id=request_id,
                conv=conv,
                amount=50,
                currency="USD",
                expires_at=paykit.now_ms() + 600_000,
            )
            assert await answer(alice, asked) == "Posted"

            # mallory probes them, naming alice's conversation (she is not a member)
            def probe_pay(tid: str) -> F.Pay:
                return paykit.pay_frame(
                    mallory, paykit.intent(mallory, alice.account, 1, conv, tid=tid)
                )

            def probe_packet(pid: str) -> F.SendRedPacket:
                return paykit.packet_frame(mallory, conv, 10, 1, pid=pid)

            def probe_request(rid: str) -> F.RequestPayment:
                return F.RequestPayment(
                    id=mallory.next_id(),
                    request_id=rid,
                    conv=conv,
                    amount=1,
                    currency="USD",
                    expires_at=paykit.now_ms() + 600_000,
                )

            probes = {
                "transfer": (probe_pay(paid.transfer_id), probe_pay(paykit.new_id())),
                "packet": (
                    probe_packet(packet.intent.packet_id),
                    probe_packet(paykit.new_id("p")),
                ),
                "request": (probe_request(request_id), probe_request(paykit.new_id("r"))),
            }
            for name, (used, fresh) in probes.items():
                # Before: CONFLICT for the used id, NOT_FOUND for the fresh one.
                assert await answer(mallory, used) == "NOT_FOUND", name
                assert await answer(mallory, fresh) == "NOT_FOUND", name

            # alice's own retry of her transfer is still answered with the first result
            again = await alice.request(paykit.pay_frame(alice, paid))
            assert isinstance(again, F.Posted) and again.replay
        finally:
            await clients.aclose()
