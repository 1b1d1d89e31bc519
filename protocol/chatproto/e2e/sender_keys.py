"""Sender Keys (Signal) / Megolm-style group encryption (E2E.md section 7), sans-I/O.

Each device keeps one ``SenderKeyState`` per conversation it sends in; it hands the
``SenderKeyDistribution`` to every member device over pairwise sessions, then encrypts each
conversation message once. Receivers keep one ``SenderKeyReceiverState`` per
(conversation, sending device, key id).

Chain: message key = HMAC-SHA256(chain, 0x01), next chain = HMAC-SHA256(chain, 0x02). The message
key expands (HKDF-SHA256, info ``INFO_MSG``) to an AES-256 key and a 12-byte nonce.

Message bytes::

    0x01 || key_id u32be || iteration u32be || AES-256-GCM ciphertext||tag || Ed25519 sig (64)
"""

from __future__ import annotations

import struct
from typing import Final

import msgspec

from chatproto.e2e import primitives as P
from chatproto.errors import ChatProtoError, CryptoError, DecryptError, ReplayError

VERSION: Final = 1
AAD_CONTEXT: Final = b"chatd-e2e-sender-key-v1"
SIG_CONTEXT: Final = b"chatd-e2e-sender-key-sig-v1"
INFO_MSG: Final = b"chatd-e2e-sender-key-message-v1"
MAX_SKIP: Final = 2000
"""Most iterations a receiver derives forward for one message."""
MAX_SKIPPED_KEYS: Final = 2000
"""Most skipped message keys a receiver keeps per sender key (the oldest are dropped)."""
MAX_ITERATION: Final = 2**32 - 1
_HEAD: Final = struct.Struct(">BII")
OVERHEAD: Final = _HEAD.size + P.GCM_TAG_BYTES + P.SIGNATURE_BYTES
"""Bytes a sender-key message adds to its plaintext (9 + 16 + 64 = 89)."""


class SenderKeyState(msgspec.Struct, frozen=True, kw_only=True):
    """The sending side: ``chain_key`` is the key for message ``iteration``."""

    conv: int
    key_id: int
    chain_key: bytes
    iteration: int
    signing_seed: bytes
    signing_key: bytes


class SenderKeyDistribution(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="t", tag="sender_key"
):
    """What a sender hands each member device over a pairwise session (a to-device content)."""

    conv: int
    key_id: int
    iteration: int
    chain_key: bytes
    signing_key: bytes


class SkippedMessageKey(msgspec.Struct, frozen=True, array_like=True):
    iteration: int
    mk: bytes


class SenderKeyReceiverState(msgspec.Struct, frozen=True, kw_only=True):
    """The receiving side for one (conv, sending device, key id). ``chain_key`` is the key of
    ``iteration``, the lowest iteration not yet derived."""

    conv: int
    sender_account: int
    sender_device: int
    key_id: int
    signing_key: bytes
    chain_key: bytes
    iteration: int
    first_iteration: int
    skipped: tuple[SkippedMessageKey, ...] = ()


def new_sender_key(
    conv: int,
    *,
    key_id: int | None = None,
    chain_key: bytes | None = None,
    signing_seed: bytes | None = None,
) -> SenderKeyState:
    """A fresh sender key (also how to rotate: a new one has a new random ``key_id``)."""
    kid = int.from_bytes(P.random_bytes(4), "big") if key_id is None else key_id
    if not 0 <= kid <= MAX_ITERATION:
        raise CryptoError("key_id out of u32 range")
    signer = P.SigningKey(P.random_bytes(32) if signing_seed is None else signing_seed)
    return SenderKeyState(
        conv=conv,
        key_id=kid,
        chain_key=P.random_bytes(32) if chain_key is None else chain_key,
        iteration=0,
        signing_seed=signer.seed,
        signing_key=signer.public_key,
    )


def distribution(state: SenderKeyState) -> SenderKeyDistribution:
    return SenderKeyDistribution(
        conv=state.conv,
        key_id=state.key_id,
        iteration=state.iteration,
        chain_key=state.chain_key,
        signing_key=state.signing_key,
    )


def receiver_from_distribution(
    dist: SenderKeyDistribution, *, sender_account: int, sender_device: int
) -> SenderKeyReceiverState:
    """Receiver state from a distribution that arrived over the pairwise session with
    ``sender_account``/``sender_device`` (the caller vouches for that binding)."""
    if len(dist.chain_key) != 32 or not P.is_valid_public_key(dist.signing_key):
        raise CryptoError("malformed sender key distribution")
    if not 0 <= dist.key_id <= MAX_ITERATION or not 0 <= dist.iteration <= MAX_ITERATION:
        raise CryptoError("sender key distribution out of range")
    return SenderKeyReceiverState(
        conv=dist.conv,
        sender_account=sender_account,
        sender_device=sender_device,
        key_id=dist.key_id,
        signing_key=dist.signing_key,
        chain_key=dist.chain_key,
        iteration=dist.iteration,
        first_iteration=dist.iteration,
    )


def _step(chain: bytes) -> tuple[bytes, bytes]:
    """``(next chain, message key)``."""
    return P.hmac_sha256(chain, b"\x02"), P.hmac_sha256(chain, b"\x01")


def _binding(conv: int, account: int, device: int) -> bytes:
    return struct.pack(">QQQ", conv, account, device)


def _aad(conv: int, account: int, device: int, head: bytes) -> bytes:
    return AAD_CONTEXT + b"\x00" + _binding(conv, account, device) + head


def _sig_payload(conv: int, account: int, device: int, signed: bytes) -> bytes:
    return SIG_CONTEXT + b"\x00" + _binding(conv, account, device) + signed


def _cipher(mk: bytes) -> tuple[bytes, bytes]:
    out = P.hkdf_sha256(mk, salt=bytes(32), info=INFO_MSG, length=44)
    return out[:32], out[32:]


def encrypt(
    state: SenderKeyState, plaintext: bytes, *, sender_account: int, sender_device: int
) -> tuple[bytes, SenderKeyState]:
    """``(message bytes, new state)``: one message for every member of ``state.conv``."""
    if state.iteration > MAX_ITERATION:
        raise CryptoError("sender key exhausted: rotate")
    chain, mk = _step(state.chain_key)
    head = _HEAD.pack(VERSION, state.key_id, state.iteration)
    key, nonce = _cipher(mk)
    ct = P.aes_gcm_encrypt(
        key, nonce, plaintext, _aad(state.conv, sender_account, sender_device, head)
    )
    signed = head + ct
    sig = P.SigningKey(state.signing_seed).sign(
        _sig_payload(state.conv, sender_account, sender_device, signed)
    )
    new = msgspec.structs.replace(state, chain_key=chain, iteration=state.iteration + 1)
    return signed + sig, new


def message_key_id(message: bytes) -> int:
    """The key id of a sender-key message (to find the receiver state)."""
    if len(message) < _HEAD.size + P.GCM_TAG_BYTES + P.SIGNATURE_BYTES:
        raise DecryptError("truncated sender-key message")
    version, key_id, _ = _HEAD.unpack_from(message)
    if version != VERSION:
        raise DecryptError(f"unknown sender-key message version {version}")
    return int(key_id)


def message_iteration(message: bytes) -> int:
    """The iteration of a sender-key message (read before decrypting: a gap shows)."""
    message_key_id(message)
    return int(_HEAD.unpack_from(message)[2])


def decrypt(state: SenderKeyReceiverState, message: bytes) -> tuple[bytes, SenderKeyReceiverState]:
    """``(plaintext, new state)``. Verifies the signature first; ``ReplayError`` for an
    iteration whose key was already used; ``DecryptError`` for anything else. ``state`` is
    never changed."""
    key_id = message_key_id(message)
    if key_id != state.key_id:
        raise DecryptError("no sender key with this key id")
    signed, sig = message[: -P.SIGNATURE_BYTES], message[-P.SIGNATURE_BYTES :]
    binding = (state.conv, state.sender_account, state.sender_device)
    try:
        P.verify(state.signing_key, sig, _sig_payload(*binding, signed))
    except ChatProtoError as exc:
        raise DecryptError("sender-key message signature does not verify") from exc
    _, _, iteration = _HEAD.unpack_from(signed)
    head, ct = signed[: _HEAD.size], signed[_HEAD.size :]
    aad = _aad(*binding, head)
    if iteration < state.iteration:
        for i, sk in enumerate(state.skipped):
            if sk.iteration == iteration:
                key, nonce = _cipher(sk.mk)
                pt = P.aes_gcm_decrypt(key, nonce, ct, aad)
                skipped = state.skipped[:i] + state.skipped[i + 1 :]
                return pt, msgspec.structs.replace(state, skipped=skipped)
        if iteration < state.first_iteration:
            raise DecryptError("message older than the sender key this device received")
        raise ReplayError("sender-key message key already used (or dropped)")
    if iteration - state.iteration > MAX_SKIP:
        raise DecryptError(f"more than {MAX_SKIP} skipped sender-key iterations")
    chain = state.chain_key
    new_skipped: list[SkippedMessageKey] = []
    for i in range(state.iteration, iteration):
        chain, mk = _step(chain)
        new_skipped.append(SkippedMessageKey(i, mk))
    chain, mk = _step(chain)
    key, nonce = _cipher(mk)
    pt = P.aes_gcm_decrypt(key, nonce, ct, aad)
    skipped = (state.skipped + tuple(new_skipped))[-MAX_SKIPPED_KEYS:]
    return pt, msgspec.structs.replace(
        state, chain_key=chain, iteration=iteration + 1, skipped=skipped
    )
