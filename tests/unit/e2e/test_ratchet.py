"""Double Ratchet properties: round trips in any delivery order within the skip window, every
single-bit change rejected with the state unchanged, bounded skipping, replays refused."""

from __future__ import annotations

import msgspec
import pytest
from chatproto.e2e import ratchet
from chatproto.errors import DecryptError, ReplayError
from hypothesis import given, settings
from hypothesis import strategies as st
from unit.e2e.e2e_helpers import flips, ratchet_pair


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    rounds=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=4),
)
def test_any_delivery_order_within_the_window_decrypts_everything(
    data: st.DataObject, rounds: list[int]
) -> None:
    alice, bob = ratchet_pair()
    sides = {"a": alice, "b": bob}
    turn = "a"
    for count in rounds:
        other = "b" if turn == "a" else "a"
        sent = []
        for i in range(count):
            pt = data.draw(st.binary(max_size=64), label="plaintext") + bytes([i])
            msg, sides[turn] = ratchet.encrypt(sides[turn], pt)
            sent.append((msg, pt))
        order = data.draw(st.permutations(sent), label="order")
        for msg, pt in order:
            got, sides[other] = ratchet.decrypt(sides[other], msg)
            assert got == pt
        turn = other
    assert all(not s.skipped for s in sides.values())


def test_messages_held_back_across_ratchet_steps_still_decrypt() -> None:
    alice, bob = ratchet_pair()
    held = []
    for rnd in range(3):
        m0, alice = ratchet.encrypt(alice, b"held %d" % rnd)
        m1, alice = ratchet.encrypt(alice, b"sent %d" % rnd)
        held.append(m0)
        pt, bob = ratchet.decrypt(bob, m1)
        assert pt == b"sent %d" % rnd
        reply, bob = ratchet.encrypt(bob, b"reply")
        _, alice = ratchet.decrypt(alice, reply)
    for rnd, m in enumerate(held):
        pt, bob = ratchet.decrypt(bob, m)
        assert pt == b"held %d" % rnd
    assert bob.skipped == ()


def test_the_state_round_trips_through_msgpack() -> None:
    alice, bob = ratchet_pair()
    m, alice = ratchet.encrypt(alice, b"x")
    _, bob = ratchet.decrypt(bob, m)
    for s in (alice, bob):
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=ratchet.RatchetState) == s


def test_every_single_bit_flip_of_a_message_is_rejected_and_changes_nothing() -> None:
    alice, bob = ratchet_pair()
    m0, alice = ratchet.encrypt(alice, b"first")
    _, bob = ratchet.decrypt(bob, m0)
    skip, alice = ratchet.encrypt(alice, b"skipped")  # so a skipped key is in play as well
    msg, alice = ratchet.encrypt(alice, b"attack at dawn")
    for bad in flips(msg):
        with pytest.raises(DecryptError):
            ratchet.decrypt(bob, bad)
    for bad in flips(skip):
        with pytest.raises(DecryptError):
            ratchet.decrypt(bob, bad)
    # bob's state is immutable and was never replaced: both still decrypt
    pt, bob2 = ratchet.decrypt(bob, msg)
    assert pt == b"attack at dawn"
    pt, _ = ratchet.decrypt(bob2, skip)
    assert pt == b"skipped"


def test_every_single_bit_flip_of_the_associated_data_is_rejected() -> None:
    alice, bob = ratchet_pair()
    msg, _ = ratchet.encrypt(alice, b"hello")
    for bad_ad in flips(bob.ad, step=3):
        with pytest.raises(DecryptError):
            ratchet.decrypt(msgspec.structs.replace(bob, ad=bad_ad), msg)


def test_a_replay_is_refused_and_the_state_is_unchanged() -> None:
    alice, bob = ratchet_pair()
    m0, alice = ratchet.encrypt(alice, b"0")
    m1, alice = ratchet.encrypt(alice, b"1")
    _, bob = ratchet.decrypt(bob, m0)
    _, bob = ratchet.decrypt(bob, m1)
    for m in (m0, m1):
        with pytest.raises(ReplayError):
            ratchet.decrypt(bob, m)


def test_skipping_more_than_max_skip_is_refused() -> None:
    alice, bob = ratchet_pair()
    for _ in range(ratchet.MAX_SKIP + 1):
        _, alice = ratchet.encrypt(alice, b"lost")
    far, alice = ratchet.encrypt(alice, b"far")
    with pytest.raises(DecryptError):
        ratchet.decrypt(bob, far)


def test_exactly_max_skip_is_allowed_and_the_skipped_store_is_bounded() -> None:
    alice, bob = ratchet_pair()
    lost = []
    for _ in range(ratchet.MAX_SKIP):
        m, alice = ratchet.encrypt(alice, b"lost")
        lost.append(m)
    m, alice = ratchet.encrypt(alice, b"ok")
    pt, bob = ratchet.decrypt(bob, m)
    assert pt == b"ok"
    assert len(bob.skipped) == ratchet.MAX_SKIP
    # another chain with MAX_SKIP more skipped keys: the oldest are dropped beyond the bound
    reply, bob = ratchet.encrypt(bob, b"r")
    _, alice = ratchet.decrypt(alice, reply)
    for _ in range(ratchet.MAX_SKIP):
        _, alice = ratchet.encrypt(alice, b"lost")
    m, alice = ratchet.encrypt(alice, b"ok2")
    _, bob = ratchet.decrypt(bob, m)
    assert len(bob.skipped) == ratchet.MAX_SKIPPED_KEYS
    # one more skipped key (on a third chain) pushes the oldest out
    reply, bob = ratchet.encrypt(bob, b"r2")
    _, alice = ratchet.decrypt(alice, reply)
    _, alice = ratchet.encrypt(alice, b"lost")
    m, alice = ratchet.encrypt(alice, b"ok3")
    _, bob = ratchet.decrypt(bob, m)
    assert len(bob.skipped) == ratchet.MAX_SKIPPED_KEYS
    with pytest.raises(DecryptError):
        ratchet.decrypt(bob, lost[0])  # dropped
    pt, _ = ratchet.decrypt(bob, lost[-1])  # still kept
    assert pt == b"lost"


def test_the_responder_cannot_send_before_receiving() -> None:
    _, bob = ratchet_pair()
    with pytest.raises(Exception, match="sending chain"):
        ratchet.encrypt(bob, b"x")


def test_a_low_order_ratchet_key_in_a_header_is_refused() -> None:
    alice, bob = ratchet_pair()
    msg, _ = ratchet.encrypt(alice, b"x")
    bad = msg[:1] + bytes(32) + msg[33:]
    with pytest.raises(DecryptError):
        ratchet.decrypt(bob, bad)
