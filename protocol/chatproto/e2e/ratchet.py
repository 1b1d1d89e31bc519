"""The Double Ratchet (Signal's specification, E2E.md section 5), sans-I/O.

State is an immutable ``RatchetState``; ``encrypt`` and ``decrypt`` return a new state and never
touch the one passed in, so a failed decryption leaves the caller's state exactly as it was (the
caller commits the returned state only on success).

* DH ratchet: X25519. KDF_RK: HKDF-SHA256(salt = root key, ikm = DH output, info
  ``INFO_RK``) -> 64 bytes = new root key || chain key.
* KDF_CK: message key = HMAC-SHA256(ck, 0x01), next chain key = HMAC-SHA256(ck, 0x02).
* ENCRYPT: HKDF-SHA256(salt = 32 zero bytes, ikm = message key, info ``INFO_MSG``) -> 44 bytes =
  AES-256 key || 12-byte nonce; AES-256-GCM with AAD = AD || header bytes.
* Header: version (1) || DH public key (32) || PN u32be || N u32be = 41 bytes.
* Out of order: up to ``MAX_SKIP`` message keys skipped per chain step, at most
  ``MAX_SKIPPED_KEYS`` kept in total (the oldest are dropped).
"""

from __future__ import annotations

import struct
from typing import Final

import msgspec

from chatproto.e2e import primitives as P
from chatproto.errors import CryptoError, DecryptError, ReplayError

VERSION: Final = 1
INFO_RK: Final = b"chatd-e2e-ratchet-root-v1"
INFO_MSG: Final = b"chatd-e2e-ratchet-message-v1"
MAX_SKIP: Final = 1000
MAX_SKIPPED_KEYS: Final = 2000
MAX_COUNTER: Final = 2**32 - 1
HEADER_BYTES: Final = 41
_HEADER: Final = struct.Struct(">B32sII")


class SkippedKey(msgspec.Struct, frozen=True, array_like=True):
    dh: bytes
    n: int
    mk: bytes


class RatchetState(msgspec.Struct, frozen=True, kw_only=True):
    """One side of a Double Ratchet session (the spec's state variables, plus ``ad``)."""

    ad: bytes
    """Associated data of the session (X3DH AD, 128 bytes)."""
    rk: bytes
    dhs_private: bytes
    dhs_public: bytes
    dhr: bytes | None = None
    cks: bytes | None = None
    ckr: bytes | None = None
    ns: int = 0
    nr: int = 0
    pn: int = 0
    skipped: tuple[SkippedKey, ...] = ()
    """Skipped message keys, oldest first, at most ``MAX_SKIPPED_KEYS``."""


class Header(msgspec.Struct, frozen=True, kw_only=True):
    dh: bytes
    pn: int
    n: int


def encode_header(h: Header) -> bytes:
    return _HEADER.pack(VERSION, h.dh, h.pn, h.n)


def decode_header(data: bytes) -> Header:
    if len(data) < HEADER_BYTES:
        raise DecryptError("truncated ratchet header")
    version, dh, pn, n = _HEADER.unpack_from(data)
    if version != VERSION:
        raise DecryptError(f"unknown ratchet message version {version}")
    return Header(dh=dh, pn=pn, n=n)


def kdf_rk(rk: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    out = P.hkdf_sha256(dh_out, salt=rk, info=INFO_RK, length=64)
    return out[:32], out[32:]


def kdf_ck(ck: bytes) -> tuple[bytes, bytes]:
    """``(next chain key, message key)``."""
    return P.hmac_sha256(ck, b"\x02"), P.hmac_sha256(ck, b"\x01")


def _message_cipher(mk: bytes) -> tuple[bytes, bytes]:
    out = P.hkdf_sha256(mk, salt=bytes(32), info=INFO_MSG, length=44)
    return out[:32], out[32:]


def init_initiator(
    shared_secret: bytes, remote_ratchet_key: bytes, ad: bytes, *, dh_private: bytes | None = None
) -> RatchetState:
    """Alice's state: her first ratchet key pair against Bob's signed prekey."""
    priv = P.x25519_generate() if dh_private is None else dh_private
    rk, cks = kdf_rk(shared_secret, P.x25519(priv, remote_ratchet_key))
    return RatchetState(
        ad=ad,
        rk=rk,
        dhs_private=priv,
        dhs_public=P.x25519_public(priv),
        dhr=remote_ratchet_key,
        cks=cks,
    )


def init_responder(
    shared_secret: bytes, ratchet_private: bytes, ratchet_public: bytes, ad: bytes
) -> RatchetState:
    """Bob's state: his signed prekey pair is his first ratchet key pair."""
    return RatchetState(
        ad=ad, rk=shared_secret, dhs_private=ratchet_private, dhs_public=ratchet_public
    )


def encrypt(state: RatchetState, plaintext: bytes) -> tuple[bytes, RatchetState]:
    """``(message bytes, new state)``. Message = header (41 bytes) || AES-256-GCM ciphertext."""
    if state.cks is None:
        raise CryptoError("no sending chain yet: the responder must receive a message first")
    if state.ns >= MAX_COUNTER:
        raise CryptoError("sending chain exhausted")
    cks, mk = kdf_ck(state.cks)
    header = encode_header(Header(dh=state.dhs_public, pn=state.pn, n=state.ns))
    key, nonce = _message_cipher(mk)
    ct = P.aes_gcm_encrypt(key, nonce, plaintext, state.ad + header)
    return header + ct, msgspec.structs.replace(state, cks=cks, ns=state.ns + 1)


def _skip(state: RatchetState, until: int) -> RatchetState:
    """Store the receiving chain's message keys up to (not including) ``until``."""
    if state.ckr is None or until <= state.nr:
        return state
    if until - state.nr > MAX_SKIP:
        raise DecryptError(f"more than {MAX_SKIP} skipped messages")
    assert state.dhr is not None
    ckr = state.ckr
    new: list[SkippedKey] = []
    for n in range(state.nr, until):
        ckr, mk = kdf_ck(ckr)
        new.append(SkippedKey(state.dhr, n, mk))
    skipped = (state.skipped + tuple(new))[-MAX_SKIPPED_KEYS:]
    return msgspec.structs.replace(state, ckr=ckr, nr=until, skipped=skipped)


def _dh_ratchet(state: RatchetState, header: Header, dh_private: bytes | None) -> RatchetState:
    rk, ckr = kdf_rk(state.rk, P.x25519(state.dhs_private, header.dh))
    priv = P.x25519_generate() if dh_private is None else dh_private
    rk, cks = kdf_rk(rk, P.x25519(priv, header.dh))
    return msgspec.structs.replace(
        state,
        pn=state.ns,
        ns=0,
        nr=0,
        dhr=header.dh,
        rk=rk,
        ckr=ckr,
        dhs_private=priv,
        dhs_public=P.x25519_public(priv),
        cks=cks,
    )


def decrypt(
    state: RatchetState, message: bytes, *, dh_private: bytes | None = None
) -> tuple[bytes, RatchetState]:
    """``(plaintext, new state)``; ``DecryptError`` (``ReplayError`` for a message key already
    used) with ``state`` untouched otherwise. ``dh_private`` fixes the next ratchet key pair
    (test vectors)."""
    header = decode_header(message)
    hbytes, ct = message[:HEADER_BYTES], message[HEADER_BYTES:]
    aad = state.ad + hbytes
    for i, sk in enumerate(state.skipped):
        if sk.n == header.n and P.constant_time_equal(sk.dh, header.dh):
            key, nonce = _message_cipher(sk.mk)
            pt = P.aes_gcm_decrypt(key, nonce, ct, aad)
            return pt, msgspec.structs.replace(
                state, skipped=state.skipped[:i] + state.skipped[i + 1 :]
            )
    new = state
    try:
        if state.dhr is None or not P.constant_time_equal(header.dh, state.dhr):
            new = _skip(new, header.pn)
            new = _dh_ratchet(new, header, dh_private)
        elif header.n < state.nr:
            raise ReplayError("message key already used (or dropped)")
        new = _skip(new, header.n)
    except DecryptError:
        raise
    except CryptoError as exc:  # a bad (e.g. low-order) ratchet key
        raise DecryptError(f"bad ratchet key: {exc.message}") from exc
    assert new.ckr is not None
    ckr, mk = kdf_ck(new.ckr)
    key, nonce = _message_cipher(mk)
    pt = P.aes_gcm_decrypt(key, nonce, ct, aad)
    return pt, msgspec.structs.replace(new, ckr=ckr, nr=header.n + 1)
