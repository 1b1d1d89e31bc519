"""The e2e primitives: X25519 refusals, AEAD, ML-KEM wrappers."""

from __future__ import annotations

import pytest
from chatproto.e2e import primitives as P
from chatproto.errors import CryptoError, DecryptError, InvalidKeyError

SMALL_ORDER = sorted(P._SMALL_ORDER)


@pytest.mark.parametrize("point", SMALL_ORDER, ids=lambda p: p.hex()[:8])
@pytest.mark.parametrize("high_bit", [False, True])
def test_low_order_x25519_keys_are_refused(point: bytes, high_bit: bool) -> None:
    key = point[:31] + bytes([point[31] | (0x80 if high_bit else 0)])
    assert P.is_small_order(key)
    with pytest.raises(InvalidKeyError):
        P.x25519(P.x25519_generate(), key)


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33)])
def test_x25519_keys_of_the_wrong_length_are_refused(key: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        P.x25519(P.x25519_generate(), key)
    with pytest.raises(InvalidKeyError):
        P.x25519_public(key)


def test_x25519_agrees() -> None:
    a, b = P.x25519_generate(), P.x25519_generate()
    assert P.x25519(a, P.x25519_public(b)) == P.x25519(b, P.x25519_public(a))


def test_rfc7748_x25519_vector() -> None:
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob_pub = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    assert P.x25519_public(alice).hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert P.x25519(alice, bob_pub).hex() == (
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    )


def test_aes_gcm_refuses_tampering_and_bad_sizes() -> None:
    key, nonce = bytes(32), bytes(12)
    ct = P.aes_gcm_encrypt(key, nonce, b"data", b"aad")
    assert P.aes_gcm_decrypt(key, nonce, ct, b"aad") == b"data"
    with pytest.raises(DecryptError):
        P.aes_gcm_decrypt(key, nonce, ct, b"aae")
    with pytest.raises(DecryptError):
        P.aes_gcm_decrypt(key, nonce, ct[:10], b"aad")
    with pytest.raises(InvalidKeyError):
        P.aes_gcm_encrypt(bytes(16), nonce, b"", b"")


def test_mlkem_round_trip_and_refusals() -> None:
    seed = P.mlkem768_generate()
    pub = P.mlkem768_public(seed)
    assert len(pub) == P.MLKEM768_PUBLIC_KEY_BYTES
    ct, ss = P.mlkem768_encapsulate(pub)
    assert P.mlkem768_decapsulate(seed, ct) == ss
    with pytest.raises(DecryptError):
        P.mlkem768_decapsulate(seed, ct[:-1])
    with pytest.raises(InvalidKeyError):
        P.mlkem768_encapsulate(pub[:-1])


def test_without_mlkem_the_kem_functions_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "HAS_MLKEM", False)
    with pytest.raises(CryptoError):
        P.mlkem768_generate()
    with pytest.raises(CryptoError):
        P.mlkem768_encapsulate(bytes(1184))


def test_hkdf_rfc5869_case_1() -> None:
    okm = P.hkdf_sha256(
        bytes.fromhex("0b" * 22),
        salt=bytes.fromhex("000102030405060708090a0b0c"),
        info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_non_canonical_x25519_keys_are_refused() -> None:
    pub = P.x25519_public(P.x25519_generate())
    high = pub[:31] + bytes([pub[31] | 0x80])  # same point for X25519, another encoding
    p_plus_2 = (2**255 - 19 + 2).to_bytes(32, "little")
    for key in (high, p_plus_2):
        with pytest.raises(InvalidKeyError):
            P.x25519(P.x25519_generate(), key)
