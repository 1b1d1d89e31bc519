"""chatclient.outbox: what the key store keeps of an unacknowledged message.

A message typed before an upgrade (or a kill) must go out after it with the same cmid and the
same bytes, so the record's format is pinned here: a record as the SDK wrote it before the
split (msgpack map conv/kind/body/to/reply_to/wire_kind/wire_body) comes back as an entry ready
to write, and an entry round-trips.
"""

from __future__ import annotations

import msgspec
from chatclient.outbox import Pending, restored, stored
from chatproto import client as core


def test_a_record_written_before_the_split_comes_back_ready_with_its_wire_bytes() -> None:
    old = msgspec.msgpack.encode(
        {
            "conv": 5,
            "kind": "text",
            "body": b"plain",
            "to": [3],
            "reply_to": 2,
            "wire_kind": "e2e",
            "wire_body": b"sealed",
        }
    )
    entry = restored("m1", old)
    assert (entry.conv, entry.cmid, entry.kind, entry.body, entry.to) == (
        5,
        "m1",
        "e2e",
        b"sealed",
        (3,),
    )
    assert entry.ready
    assert entry.data == Pending("text", b"plain", (3,), 2)


def test_a_record_not_yet_encrypted_comes_back_to_be_prepared() -> None:
    old = msgspec.msgpack.encode({"conv": 5, "kind": "text", "body": b"plain"})
    entry = restored("m1", old)
    assert not entry.ready and entry.data.to is None  # addressees worked out when sent


def test_an_entry_round_trips_through_its_record() -> None:
    entry = core.Entry(5, "m1", "e2e", b"sealed", (3,), True, Pending("text", b"plain", (3,), 2))
    again = restored("m1", stored(entry))
    assert (again.kind, again.body, again.to, again.ready) == ("e2e", b"sealed", (3,), True)
    assert again.data == entry.data
