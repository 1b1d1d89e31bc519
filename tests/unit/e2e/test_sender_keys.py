"""Sender keys: round trips in any order within the skip window, tampering, replays, missing
keys, rotation."""

from __future__ import annotations

import msgspec
import pytest
from chatproto.e2e import payload, sender_keys
from chatproto.e2e import primitives as P
from chatproto.errors import CryptoError, DecryptError, ReplayError
from hypothesis import given, settings
from hypothesis import strategies as st
from unit.e2e.e2e_helpers import flips

CONV, ACCOUNT, DEVICE = 10, 20, 30


def _pair(
    conv: int = CONV,
) -> tuple[sender_keys.SenderKeyState, sender_keys.SenderKeyReceiverState]:
    state = sender_keys.new_sender_key(conv)
    receiver = sender_keys.receiver_from_distribution(
        sender_keys.distribution(state), sender_account=ACCOUNT, sender_device=DEVICE
    )
    return state, receiver


def _enc(state: sender_keys.SenderKeyState, pt: bytes) -> tuple[bytes, sender_keys.SenderKeyState]:
    return sender_keys.encrypt(state, pt, sender_account=ACCOUNT, sender_device=DEVICE)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), count=st.integers(min_value=1, max_value=12))
def test_any_delivery_order_decrypts_everything_once(data: st.DataObject, count: int) -> None:
    state, receiver = _pair()
    sent = []
    for i in range(count):
        pt = data.draw(st.binary(max_size=100)) + bytes([i])
        msg, state = _enc(state, pt)
        sent.append((msg, pt))
    for msg, pt in data.draw(st.permutations(sent)):
        got, receiver = sender_keys.decrypt(receiver, msg)
        assert got == pt
    assert receiver.skipped == ()
    msg, _ = data.draw(st.sampled_from(sent))
    with pytest.raises(ReplayError):
        sender_keys.decrypt(receiver, msg)


def test_a_skipped_iteration_decrypts_later_and_a_replay_is_refused_state_unchanged() -> None:
    state, receiver = _pair()
    m0, state = _enc(state, b"zero")
    m1, state = _enc(state, b"one")
    m2, state = _enc(state, b"two")
    pt, receiver = sender_keys.decrypt(receiver, m2)
    assert pt == b"two"
    assert [k.iteration for k in receiver.skipped] == [0, 1]
    pt, receiver = sender_keys.decrypt(receiver, m0)
    assert pt == b"zero"
    for replay in (m0, m2):
        before = receiver
        with pytest.raises(ReplayError):
            sender_keys.decrypt(receiver, replay)
        assert receiver == before
    pt, receiver = sender_keys.decrypt(receiver, m1)
    assert pt == b"one"


def test_every_single_bit_flip_is_rejected_and_changes_nothing() -> None:
    state, receiver = _pair()
    m0, state = _enc(state, b"skipped")
    msg, state = _enc(state, b"hello group")
    _, receiver = sender_keys.decrypt(receiver, msg)  # m0's key is now a skipped key
    fresh, _ = _enc(state, b"next")
    for target in (m0, fresh):
        for bad in flips(target):
            with pytest.raises(DecryptError):
                sender_keys.decrypt(receiver, bad)
    assert sender_keys.decrypt(receiver, m0)[0] == b"skipped"
    assert sender_keys.decrypt(receiver, fresh)[0] == b"next"


def test_a_wrong_signature_is_rejected() -> None:
    state, receiver = _pair()
    msg, _ = _enc(state, b"x")
    other = P.SigningKey.generate()
    forged_state = msgspec.structs.replace(
        state, signing_seed=other.seed, signing_key=other.public_key
    )
    forged, _ = _enc(forged_state, b"x")
    with pytest.raises(DecryptError, match="signature"):
        sender_keys.decrypt(receiver, forged)
    with pytest.raises(DecryptError, match="signature"):
        sender_keys.decrypt(receiver, msg[:-64] + bytes(64))


def test_the_message_is_bound_to_conversation_and_sender() -> None:
    state, receiver = _pair()
    msg, _ = _enc(state, b"x")
    for field, value in (("conv", CONV + 1), ("sender_account", 1), ("sender_device", 1)):
        with pytest.raises(DecryptError):
            sender_keys.decrypt(msgspec.structs.replace(receiver, **{field: value}), msg)


def test_a_receiver_without_the_sender_key_cannot_decrypt() -> None:
    state, _ = _pair()
    _, stranger = _pair()  # another sender's key
    msg, _ = _enc(state, b"secret")
    with pytest.raises(DecryptError):
        sender_keys.decrypt(stranger, msg)
    # same key id, but not the chain key: still nothing
    guess = msgspec.structs.replace(
        stranger, key_id=state.key_id, signing_key=state.signing_key, iteration=0
    )
    with pytest.raises(DecryptError):
        sender_keys.decrypt(guess, msg)


def test_after_rotation_an_old_receiver_cannot_decrypt_new_messages() -> None:
    old, old_receiver = _pair()
    _, old = _enc(old, b"before")
    new = sender_keys.new_sender_key(CONV)
    assert new.key_id != old.key_id
    msg, _ = _enc(new, b"after rotation")
    assert sender_keys.message_key_id(msg) == new.key_id
    with pytest.raises(DecryptError):
        sender_keys.decrypt(old_receiver, msg)
    new_receiver = sender_keys.receiver_from_distribution(
        sender_keys.distribution(new), sender_account=ACCOUNT, sender_device=DEVICE
    )
    assert sender_keys.decrypt(new_receiver, msg)[0] == b"after rotation"


def test_a_late_joiner_cannot_read_messages_before_its_distribution() -> None:
    state, _ = _pair()
    early, state = _enc(state, b"early")
    late = sender_keys.receiver_from_distribution(
        sender_keys.distribution(state), sender_account=ACCOUNT, sender_device=DEVICE
    )
    with pytest.raises(DecryptError):
        sender_keys.decrypt(late, early)
    msg, state = _enc(state, b"later")
    assert sender_keys.decrypt(late, msg)[0] == b"later"


def test_skipping_is_bounded() -> None:
    state, receiver = _pair()
    for _ in range(sender_keys.MAX_SKIP + 1):
        _, state = _enc(state, b"")
    far, state = _enc(state, b"far")
    with pytest.raises(DecryptError, match="skipped"):
        sender_keys.decrypt(receiver, far)


def test_the_skipped_key_store_is_bounded() -> None:
    state, receiver = _pair()
    first, state = _enc(state, b"first")
    for _ in range(sender_keys.MAX_SKIP - 1):
        _, state = _enc(state, b"")
    m, state = _enc(state, b"m")
    _, receiver = sender_keys.decrypt(receiver, m)
    assert len(receiver.skipped) == sender_keys.MAX_SKIPPED_KEYS
    assert receiver.skipped[0].iteration == 0
    _, state = _enc(state, b"one more skipped")
    m, state = _enc(state, b"m2")
    _, receiver = sender_keys.decrypt(receiver, m)
    assert len(receiver.skipped) == sender_keys.MAX_SKIPPED_KEYS
    assert receiver.skipped[0].iteration == 1  # iteration 0's key was dropped
    with pytest.raises(ReplayError):
        sender_keys.decrypt(receiver, first)


def test_states_round_trip_through_msgpack_and_distribution_through_to_device() -> None:
    state, receiver = _pair()
    for s in (state, receiver):
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=type(s)) == s
    dist = sender_keys.distribution(state)
    assert payload.decode_to_device(payload.encode_to_device(dist)) == dist


def test_a_malformed_distribution_is_refused() -> None:
    state, _ = _pair()
    dist = sender_keys.distribution(state)
    for bad in (
        msgspec.structs.replace(dist, chain_key=b"short"),
        msgspec.structs.replace(dist, signing_key=bytes(31)),
        msgspec.structs.replace(dist, key_id=2**32),
    ):
        with pytest.raises(CryptoError):
            sender_keys.receiver_from_distribution(
                bad, sender_account=ACCOUNT, sender_device=DEVICE
            )
