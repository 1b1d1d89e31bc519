"""Key agreement and to-device sessions: bundle verification, PQ degradation, one-time prekey
consumption, tampering, low-order keys."""

from __future__ import annotations

import msgspec
import pytest
from chatproto.e2e import pairwise, x3dh
from chatproto.e2e import primitives as P
from chatproto.errors import DecryptError, UntrustedKeyError
from hypothesis import given, settings
from hypothesis import strategies as st
from unit.e2e.e2e_helpers import flips

ALICE = x3dh.new_device(P.random_bytes(32), one_time=2)
BOB = x3dh.new_device(P.random_bytes(32), one_time=3)


def _bundle(state: x3dh.PreKeyState = BOB, otk: int | None = 0) -> x3dh.PreKeyBundle:
    return x3dh.bundle_from_upload(x3dh.upload_material(state), otk)


def test_this_build_runs_pqxdh() -> None:
    assert P.HAS_MLKEM
    session = pairwise.start_session(ALICE.identity, _bundle())
    assert session.kind == "pqxdh"


@pytest.mark.parametrize("otk", [0, None])
def test_both_sides_agree(otk: int | None) -> None:
    agreement = x3dh.initiate(ALICE.identity, _bundle(otk=otk))
    response = x3dh.respond(BOB, agreement.header)
    assert response.shared_secret == agreement.shared_secret
    assert response.associated_data == agreement.associated_data
    assert len(response.associated_data) == 128
    assert len(response.prekeys.one_time) == len(BOB.one_time) - (otk is not None)
    header, rest = x3dh.decode_header(x3dh.encode_header(agreement.header))
    assert header == agreement.header
    assert rest == b""


def test_without_mlkem_pqxdh_degrades_to_x3dh_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(P, "HAS_MLKEM", False)
    agreement = x3dh.initiate(ALICE.identity, _bundle())
    assert agreement.header.kind == "x3dh"
    assert agreement.header.pq_ciphertext is None
    with pytest.raises(UntrustedKeyError):
        x3dh.initiate(ALICE.identity, _bundle(), require_pq=True)
    monkeypatch.undo()
    assert x3dh.respond(BOB, agreement.header).shared_secret == agreement.shared_secret
    with pytest.raises(UntrustedKeyError):
        x3dh.respond(BOB, agreement.header, require_pq=True)


def test_a_bundle_without_a_pq_prekey_gives_x3dh() -> None:
    bundle = msgspec.structs.replace(_bundle(), pq_prekey=None)
    assert x3dh.initiate(ALICE.identity, bundle).header.kind == "x3dh"


def _tampered_bundles(bundle: x3dh.PreKeyBundle) -> list[x3dh.PreKeyBundle]:
    spk, pq = bundle.signed_prekey, bundle.pq_prekey
    assert pq is not None
    other = x3dh.new_device(P.random_bytes(32), one_time=0, with_pq=False)
    r = msgspec.structs.replace
    out = [
        r(bundle, identity_sig=bytes(64)),
        r(bundle, identity_key=other.identity.identity_key),
        r(bundle, signing_key=other.identity.signing_key),
        r(bundle, signed_prekey=r(spk, key=other.signed_prekey.public)),
        r(bundle, signed_prekey=r(spk, kid=spk.kid + 1)),
        r(bundle, signed_prekey=r(spk, sig=other.signed_prekey.sig)),
        r(bundle, pq_prekey=r(pq, kid=pq.kid + 1)),
        r(bundle, pq_prekey=r(pq, key=pq.key[:-1] + bytes([pq.key[-1] ^ 1]))),
        r(bundle, identity_key=bytes(32)),  # low order, even if it were signed
    ]
    for bad in flips(spk.sig, step=7):
        out.append(r(bundle, signed_prekey=r(spk, sig=bad)))
    for bad in flips(bundle.identity_sig, step=7):
        out.append(r(bundle, identity_sig=bad))
    return out


def test_a_bundle_with_any_bad_signature_is_untrusted() -> None:
    bundle = _bundle()
    x3dh.verify_bundle(bundle)
    for bad in _tampered_bundles(bundle):
        with pytest.raises(UntrustedKeyError):
            x3dh.verify_bundle(bad)
        with pytest.raises(UntrustedKeyError):
            x3dh.initiate(ALICE.identity, bad)


def test_a_bundle_for_another_key_than_expected_is_untrusted() -> None:
    with pytest.raises(UntrustedKeyError):
        x3dh.verify_bundle(_bundle(), expected_signing_key=ALICE.identity.signing_key)
    x3dh.verify_bundle(_bundle(), expected_signing_key=BOB.identity.signing_key)


def test_a_low_order_one_time_prekey_is_refused() -> None:
    bundle = _bundle()
    assert bundle.one_time is not None
    for key in (bytes(32), b"\x01" + bytes(31), bytes(31) + b"\x80"):
        bad = msgspec.structs.replace(
            bundle, one_time=msgspec.structs.replace(bundle.one_time, key=key)
        )
        with pytest.raises(UntrustedKeyError):
            x3dh.initiate(ALICE.identity, bad)


def test_a_one_time_prekey_works_once() -> None:
    agreement = x3dh.initiate(ALICE.identity, _bundle())
    response = x3dh.respond(BOB, agreement.header)
    with pytest.raises(DecryptError, match="one-time"):
        x3dh.respond(response.prekeys, agreement.header)


def test_a_rotated_signed_prekey_still_answers_old_bundles() -> None:
    old_bundle = _bundle()
    rotated = x3dh.rotate_signed_prekeys(BOB)
    agreement = x3dh.initiate(ALICE.identity, old_bundle)
    assert x3dh.respond(rotated, agreement.header).shared_secret == agreement.shared_secret
    twice = x3dh.rotate_signed_prekeys(rotated)
    with pytest.raises(DecryptError):
        x3dh.respond(twice, agreement.header)
    new = x3dh.initiate(ALICE.identity, _bundle(rotated))
    assert x3dh.respond(rotated, new.header).shared_secret == new.shared_secret


# --------------------------------------------------------------------------- sessions


def _converse(
    plaintexts: list[bytes],
) -> tuple[pairwise.Session, pairwise.Session, x3dh.PreKeyState]:
    a_session: pairwise.Session | None = None
    b_session: pairwise.Session | None = None
    bob = BOB
    for i, pt in enumerate(plaintexts):
        if i % 3 != 2 or b_session is None:
            msg, a_session = pairwise.encrypt_to_device(
                a_session, pt, identity=ALICE.identity, bundle=_bundle()
            )
            got, b_session, bob = pairwise.decrypt_from_device(b_session, bob, msg)
        else:
            msg, b_session = pairwise.encrypt_to_device(b_session, pt)
            assert a_session is not None
            got, a_session, _ = pairwise.decrypt_from_device(a_session, ALICE, msg)
        assert got == pt
    assert a_session is not None
    assert b_session is not None
    return a_session, b_session, bob


@settings(max_examples=20, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=8))
def test_a_conversation_round_trips(plaintexts: list[bytes]) -> None:
    a, b, bob = _converse(plaintexts)
    assert len(bob.one_time) == len(BOB.one_time) - 1
    assert b.kind == a.kind == "pqxdh"
    for s in (a, b):
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=pairwise.Session) == s


def test_prekey_messages_until_the_first_reply_then_normal() -> None:
    m1, a = pairwise.encrypt_to_device(None, b"1", identity=ALICE.identity, bundle=_bundle())
    m2, a = pairwise.encrypt_to_device(a, b"2")
    assert pairwise.message_type(m1) == pairwise.message_type(m2) == "prekey"
    assert pairwise.prekey_header(m1).signing_key == ALICE.identity.signing_key
    # the second PREKEY message arrives first; the first one still opens afterwards
    pt, b, bob = pairwise.decrypt_from_device(None, BOB, m2)
    assert pt == b"2"
    pt, b, bob = pairwise.decrypt_from_device(b, bob, m1)
    assert pt == b"1"
    reply, b = pairwise.encrypt_to_device(b, b"r")
    assert pairwise.message_type(reply) == "normal"
    _, a, _ = pairwise.decrypt_from_device(a, ALICE, reply)
    m3, a = pairwise.encrypt_to_device(a, b"3")
    assert pairwise.message_type(m3) == "normal"
    assert pairwise.decrypt_from_device(b, bob, m3).plaintext == b"3"


def test_every_single_bit_flip_of_a_prekey_message_is_rejected() -> None:
    msg, _ = pairwise.encrypt_to_device(None, b"hi", identity=ALICE.identity, bundle=_bundle())
    header_end = len(msg) - (41 + 2 + 16)
    # every bit of the type byte, the fixed header part and the ratchet message; every 37th
    # byte of the ML-KEM ciphertext (implicit rejection makes each a different secret)
    fixed_end = 1 + 166 + 4 + 4
    positions = [*range(fixed_end), *range(fixed_end, header_end, 37), *range(header_end, len(msg))]
    for i in positions:
        for bit in range(8):
            bad = bytearray(msg)
            bad[i] ^= 1 << bit
            with pytest.raises((DecryptError, UntrustedKeyError)):
                pairwise.decrypt_from_device(None, BOB, bytes(bad))


def test_a_flipped_second_prekey_message_is_rejected_by_the_existing_session() -> None:
    m1, a = pairwise.encrypt_to_device(None, b"1", identity=ALICE.identity, bundle=_bundle())
    m2, a = pairwise.encrypt_to_device(a, b"2")
    _, b, bob = pairwise.decrypt_from_device(None, BOB, m1)
    for bad in flips(m2, step=5):
        with pytest.raises((DecryptError, UntrustedKeyError)):
            pairwise.decrypt_from_device(b, bob, bad)
    assert pairwise.decrypt_from_device(b, bob, m2).plaintext == b"2"


def test_every_single_bit_flip_of_a_normal_message_is_rejected() -> None:
    a, b, bob = _converse([b"a", b"b", b"c"])
    msg, _ = pairwise.encrypt_to_device(a, b"normal")
    assert pairwise.message_type(msg) == "normal"
    for bad in flips(msg):
        with pytest.raises(DecryptError):
            pairwise.decrypt_from_device(b, bob, bad)
    assert pairwise.decrypt_from_device(b, bob, msg).plaintext == b"normal"


def test_a_prekey_message_from_an_unexpected_device_key_is_refused() -> None:
    msg, _ = pairwise.encrypt_to_device(None, b"hi", identity=ALICE.identity, bundle=_bundle())
    with pytest.raises(UntrustedKeyError):
        pairwise.decrypt_from_device(None, BOB, msg, expected_signing_key=bytes(32))
    with pytest.raises(UntrustedKeyError):
        pairwise.decrypt_from_device(None, BOB, msg, expected_identity_key=bytes(32))
    got = pairwise.decrypt_from_device(
        None, BOB, msg, expected_signing_key=ALICE.identity.signing_key
    )
    assert got.plaintext == b"hi"


def test_a_normal_message_without_a_session_cannot_be_read() -> None:
    a, _, _ = _converse([b"a", b"b", b"c"])
    msg, _ = pairwise.encrypt_to_device(a, b"x")
    with pytest.raises(DecryptError):
        pairwise.decrypt_from_device(None, BOB, msg)


def test_a_forged_identity_in_a_prekey_message_is_untrusted() -> None:
    mallory = x3dh.new_device(P.random_bytes(32), one_time=0)
    forged = msgspec.structs.replace(ALICE.identity, identity_sig=mallory.identity.identity_sig)
    msg, _ = pairwise.encrypt_to_device(None, b"hi", identity=forged, bundle=_bundle())
    with pytest.raises(UntrustedKeyError):
        pairwise.decrypt_from_device(None, BOB, msg)


def test_a_prekey_message_replayed_is_refused_in_a_previous_session_and_after_it() -> None:
    """Without a one-time prekey, X3DH alone cannot tell a replay: the previous sessions kept
    and the base keys remembered do (E2E.md 6)."""
    from chatproto.errors import ReplayError

    first, _ = pairwise.encrypt_to_device(
        None, b"sender key", identity=ALICE.identity, bundle=_bundle(otk=None)
    )
    got = pairwise.decrypt_from_device(None, BOB, first)
    old = got.session
    # A later session replaced it; the old one is kept as a previous session.
    second, _ = pairwise.encrypt_to_device(
        None, b"again", identity=ALICE.identity, bundle=_bundle(otk=None)
    )
    current = pairwise.decrypt_from_device(old, BOB, second).session
    assert current.base_key != old.base_key
    with pytest.raises(ReplayError):  # continues the previous session: its key is used
        pairwise.decrypt_from_device(current, BOB, first, previous=[old])
    with pytest.raises(ReplayError):  # that session is gone, its base key remembered
        pairwise.decrypt_from_device(current, BOB, first, seen_base_keys={old.base_key})
    # Without either, X3DH runs again and the message opens a second time: the old bug.
    assert pairwise.decrypt_from_device(current, BOB, first).plaintext == b"sender key"


def test_sessions_match_only_the_listed_keys() -> None:
    session = pairwise.start_session(ALICE.identity, _bundle())
    assert pairwise.matches(session, BOB.identity.signing_key, BOB.identity.identity_key)
    assert not pairwise.matches(session, BOB.identity.signing_key, ALICE.identity.identity_key)
    assert not pairwise.matches(session, ALICE.identity.signing_key, BOB.identity.identity_key)
