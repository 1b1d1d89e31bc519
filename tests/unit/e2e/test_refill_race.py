"""``E2E.refill`` against a one-time prekey consumed while it awaits the server (issue 12)."""

from __future__ import annotations

from typing import Any

import msgspec
from chatclient import KeyStore
from chatclient.e2e import E2E, NS_DEVICE
from chatproto import frames as F
from chatproto.e2e import x3dh


async def test_a_prekey_consumed_during_the_refill_does_not_come_back() -> None:
    ks = KeyStore.memory()
    state = x3dh.new_device(ks.seed, one_time=10, with_pq=False)
    ks.put(NS_DEVICE, "prekeys", msgspec.msgpack.encode(state))
    consumed = state.one_time[0].kid
    uploaded: list[int] = []

    async def request(frame: Any, _answer: type[Any]) -> Any:
        assert isinstance(frame, F.UploadKeys)
        if not frame.one_time:
            # While the count is on its way, a PREKEY message uses one-time prekey ``consumed``
            # (receive_to_device commits the state without it).
            now = msgspec.msgpack.decode(ks.get(NS_DEVICE, "prekeys") or b"", type=x3dh.PreKeyState)
            left = tuple(k for k in now.one_time if k.kid != consumed)
            ks.put(
                NS_DEVICE,
                "prekeys",
                msgspec.msgpack.encode(msgspec.structs.replace(now, one_time=left)),
            )
            return F.KeyCount(re=frame.id, one_time=9)
        uploaded.extend(k.kid for k in frame.one_time)
        return F.KeyCount(re=frame.id, one_time=9 + len(frame.one_time))

    ids = iter(range(1, 100))
    e2e = E2E(ks, request, lambda: next(ids))
    assert await e2e.refill() == 100
    after = e2e.prekeys
    assert after is not None
    kids = [k.kid for k in after.one_time]
    assert consumed not in kids  # used once: its private key is gone for good
    assert len(kids) == 9 + 91 and set(uploaded) <= set(kids)
    assert consumed not in uploaded
