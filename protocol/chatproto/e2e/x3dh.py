"""PQXDH / X3DH key agreement (E2E.md section 4), sans-I/O.

A device's end-to-end identity is its Ed25519 signing key (the login key of SPEC.md 6) plus an
X25519 identity key whose public bytes the signing key signs. It publishes a signed X25519
prekey, optionally a signed ML-KEM-768 prekey, and one-time X25519 prekeys. An initiator that
fetched a ``PreKeyBundle`` runs ``initiate``; the responder runs ``respond`` on the resulting
``X3DHHeader``. Both get the same 32-byte secret and associated data.

Every function takes its randomness as optional arguments (fixed values for test vectors) and
returns new state; nothing is mutated.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final, Literal

import msgspec

from chatproto.e2e import primitives as P
from chatproto.errors import (
    ChatProtoError,
    CryptoError,
    DecryptError,
    InvalidKeyError,
    UntrustedKeyError,
)

IDENTITY_CONTEXT: Final = b"chatd-e2e-identity-v1"
SIGNED_PREKEY_CONTEXT: Final = b"chatd-e2e-signed-prekey-v1"
PQ_PREKEY_CONTEXT: Final = b"chatd-e2e-pq-prekey-v1"
INFO_PQXDH: Final = b"chatd-e2e-pqxdh-v1 CURVE25519 SHA-256 ML-KEM-768"
INFO_X3DH: Final = b"chatd-e2e-x3dh-v1 CURVE25519 SHA-256"
F: Final = b"\xff" * 32
"""Prefix of the KDF input (X3DH/PQXDH ``F``: 32 0xFF bytes for X25519)."""
MAX_KEY_ID: Final = 2**32 - 1

Kind = Literal["pqxdh", "x3dh"]


# --- signed payloads ---------------------------------------------------------------------------


def identity_payload(signing_key: bytes, identity_key: bytes) -> bytes:
    """What the Ed25519 signing key signs to vouch for its X25519 identity key."""
    return IDENTITY_CONTEXT + b"\x00" + signing_key + identity_key


def signed_prekey_payload(kid: int, key: bytes) -> bytes:
    return SIGNED_PREKEY_CONTEXT + b"\x00" + struct.pack(">I", kid) + key


def pq_prekey_payload(kid: int, key: bytes) -> bytes:
    return PQ_PREKEY_CONTEXT + b"\x00" + struct.pack(">I", kid) + key


# --- public material (field names as in frames.SignedPrekey / OneTimePrekey / Bundle) ----------


class SignedPrekey(msgspec.Struct, frozen=True, kw_only=True):
    """A signed prekey as published: X25519 (32 bytes) or ML-KEM-768 (1184 bytes)."""

    kid: int
    key: bytes
    sig: bytes


class OneTimePrekey(msgspec.Struct, frozen=True, kw_only=True):
    kid: int
    key: bytes


class PreKeyBundle(msgspec.Struct, frozen=True, kw_only=True):
    """What an initiator fetched for one device (``frames.Bundle`` without ``device``)."""

    signing_key: bytes
    identity_key: bytes
    identity_sig: bytes
    signed_prekey: SignedPrekey
    pq_prekey: SignedPrekey | None = None
    one_time: OneTimePrekey | None = None


class UploadMaterial(msgspec.Struct, frozen=True, kw_only=True):
    """What a device publishes (``frames.UploadKeys`` fields)."""

    signing_key: bytes
    identity_key: bytes
    identity_sig: bytes
    signed_prekey: SignedPrekey
    pq_prekey: SignedPrekey | None
    one_time: tuple[OneTimePrekey, ...]


# --- private state -----------------------------------------------------------------------------


class IdentityKeyPair(msgspec.Struct, frozen=True, kw_only=True):
    """A device's long-term keys. ``signing_seed`` is the Ed25519 login key's seed."""

    signing_seed: bytes
    signing_key: bytes
    identity_private: bytes
    identity_key: bytes
    identity_sig: bytes


class X25519PrekeyPair(msgspec.Struct, frozen=True, kw_only=True):
    kid: int
    private: bytes
    public: bytes
    sig: bytes = b""
    """Empty for one-time prekeys (unsigned)."""


class PQPrekeyPair(msgspec.Struct, frozen=True, kw_only=True):
    kid: int
    seed: bytes
    """64-byte ML-KEM-768 seed (d || z)."""
    public: bytes
    sig: bytes


class PreKeyState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything private a device keeps for key agreement.

    ``previous_signed_prekey`` / ``previous_pq_prekey`` stay usable after a rotation so that
    messages made from an older bundle still open; the device drops them after a grace period
    (E2E.md 4.6)."""

    identity: IdentityKeyPair
    signed_prekey: X25519PrekeyPair
    previous_signed_prekey: X25519PrekeyPair | None = None
    pq_prekey: PQPrekeyPair | None = None
    previous_pq_prekey: PQPrekeyPair | None = None
    one_time: tuple[X25519PrekeyPair, ...] = ()
    next_kid: int = 1
    """Next key id to assign (prekey ids are unique per device across all three kinds)."""


def _kid(kid: int) -> int:
    if not 0 <= kid <= MAX_KEY_ID:
        raise CryptoError("key id out of u32 range")
    return kid


def new_identity(signing_seed: bytes, identity_private: bytes | None = None) -> IdentityKeyPair:
    """The identity of the device whose Ed25519 seed is ``signing_seed``."""
    signer = P.SigningKey(signing_seed)
    priv = P.x25519_generate() if identity_private is None else identity_private
    pub = P.x25519_public(priv)
    return IdentityKeyPair(
        signing_seed=signing_seed,
        signing_key=signer.public_key,
        identity_private=priv,
        identity_key=pub,
        identity_sig=signer.sign(identity_payload(signer.public_key, pub)),
    )


def new_signed_prekey(
    identity: IdentityKeyPair, kid: int, private: bytes | None = None
) -> X25519PrekeyPair:
    priv = P.x25519_generate() if private is None else private
    pub = P.x25519_public(priv)
    sig = P.SigningKey(identity.signing_seed).sign(signed_prekey_payload(_kid(kid), pub))
    return X25519PrekeyPair(kid=kid, private=priv, public=pub, sig=sig)


def new_pq_prekey(identity: IdentityKeyPair, kid: int, seed: bytes | None = None) -> PQPrekeyPair:
    s = P.mlkem768_generate() if seed is None else seed
    pub = P.mlkem768_public(s)
    sig = P.SigningKey(identity.signing_seed).sign(pq_prekey_payload(_kid(kid), pub))
    return PQPrekeyPair(kid=kid, seed=s, public=pub, sig=sig)


def new_device(
    signing_seed: bytes,
    *,
    one_time: int = 100,
    with_pq: bool | None = None,
    identity_private: bytes | None = None,
    signed_prekey_private: bytes | None = None,
    pq_seed: bytes | None = None,
    one_time_privates: tuple[bytes, ...] | None = None,
) -> PreKeyState:
    """A device's complete key-agreement state: identity, signed prekey (kid 1), PQ prekey
    (kid 2, when ``with_pq``; default: when this build has ML-KEM) and ``one_time`` one-time
    prekeys (kids 3...). Fixed private values may be passed for test vectors."""
    identity = new_identity(signing_seed, identity_private)
    pq = P.HAS_MLKEM if with_pq is None else with_pq
    state = PreKeyState(
        identity=identity,
        signed_prekey=new_signed_prekey(identity, 1, signed_prekey_private),
        pq_prekey=new_pq_prekey(identity, 2, pq_seed) if pq else None,
        next_kid=3,
    )
    count = len(one_time_privates) if one_time_privates is not None else one_time
    state, _ = add_one_time_prekeys(state, count, privates=one_time_privates)
    return state


def add_one_time_prekeys(
    state: PreKeyState, count: int, *, privates: tuple[bytes, ...] | None = None
) -> tuple[PreKeyState, tuple[OneTimePrekey, ...]]:
    """``count`` new one-time prekeys: the new state and the public halves to upload."""
    new: list[X25519PrekeyPair] = []
    kid = state.next_kid
    for i in range(count):
        priv = P.x25519_generate() if privates is None else privates[i]
        new.append(X25519PrekeyPair(kid=_kid(kid), private=priv, public=P.x25519_public(priv)))
        kid += 1
    state = msgspec.structs.replace(state, one_time=state.one_time + tuple(new), next_kid=kid)
    return state, tuple(OneTimePrekey(kid=k.kid, key=k.public) for k in new)


def rotate_signed_prekeys(
    state: PreKeyState, *, private: bytes | None = None, pq_seed: bytes | None = None
) -> PreKeyState:
    """A new signed prekey (and a new PQ prekey if the device has one); the current ones become
    ``previous_*`` (the ones before are dropped)."""
    kid = state.next_kid
    spk = new_signed_prekey(state.identity, kid, private)
    kid += 1
    pq = None
    if state.pq_prekey is not None:
        pq = new_pq_prekey(state.identity, kid, pq_seed)
        kid += 1
    return msgspec.structs.replace(
        state,
        signed_prekey=spk,
        previous_signed_prekey=state.signed_prekey,
        pq_prekey=pq,
        previous_pq_prekey=state.pq_prekey,
        next_kid=_kid(kid),
    )


def upload_material(state: PreKeyState) -> UploadMaterial:
    """The public material of ``state`` (everything to publish, all one-time prekeys)."""
    spk = state.signed_prekey
    pq = state.pq_prekey
    return UploadMaterial(
        signing_key=state.identity.signing_key,
        identity_key=state.identity.identity_key,
        identity_sig=state.identity.identity_sig,
        signed_prekey=SignedPrekey(kid=spk.kid, key=spk.public, sig=spk.sig),
        pq_prekey=None if pq is None else SignedPrekey(kid=pq.kid, key=pq.public, sig=pq.sig),
        one_time=tuple(OneTimePrekey(kid=k.kid, key=k.public) for k in state.one_time),
    )


def bundle_from_upload(upload: UploadMaterial, one_time_index: int | None = 0) -> PreKeyBundle:
    """The bundle a directory would hand out for ``upload`` (tests, and local simulation)."""
    otk = None
    if one_time_index is not None and one_time_index < len(upload.one_time):
        otk = upload.one_time[one_time_index]
    return PreKeyBundle(
        signing_key=upload.signing_key,
        identity_key=upload.identity_key,
        identity_sig=upload.identity_sig,
        signed_prekey=upload.signed_prekey,
        pq_prekey=upload.pq_prekey,
        one_time=otk,
    )


# --- verification -------------------------------------------------------------------------------


def verify_identity(signing_key: bytes, identity_key: bytes, identity_sig: bytes) -> None:
    """``UntrustedKeyError`` unless ``signing_key`` signed ``identity_key`` (and both are
    usable keys)."""
    try:
        P.check_x25519_public(identity_key)
        P.verify(signing_key, identity_sig, identity_payload(signing_key, identity_key))
    except ChatProtoError as exc:
        raise UntrustedKeyError(f"identity key does not verify: {exc.message}") from exc


def verify_bundle(bundle: PreKeyBundle, expected_signing_key: bytes | None = None) -> None:
    """Check every signature of ``bundle`` against its Ed25519 ``signing_key`` (and, if given,
    that this is the key the caller expects for the device, e.g. from the signed device list).
    Raises ``UntrustedKeyError``."""
    if expected_signing_key is not None and not P.constant_time_equal(
        bundle.signing_key, expected_signing_key
    ):
        raise UntrustedKeyError("bundle signing key is not the device's expected key")
    verify_identity(bundle.signing_key, bundle.identity_key, bundle.identity_sig)
    spk = bundle.signed_prekey
    try:
        P.check_x25519_public(spk.key)
        P.verify(bundle.signing_key, spk.sig, signed_prekey_payload(_kid(spk.kid), spk.key))
        if bundle.pq_prekey is not None:
            pq = bundle.pq_prekey
            if len(pq.key) != P.MLKEM768_PUBLIC_KEY_BYTES:
                raise InvalidKeyError("an ML-KEM-768 public key is 1184 bytes")
            P.verify(bundle.signing_key, pq.sig, pq_prekey_payload(_kid(pq.kid), pq.key))
        if bundle.one_time is not None:
            _kid(bundle.one_time.kid)
            P.check_x25519_public(bundle.one_time.key)
    except ChatProtoError as exc:
        raise UntrustedKeyError(f"bundle does not verify: {exc.message}") from exc


# --- the agreement ------------------------------------------------------------------------------


class X3DHHeader(msgspec.Struct, frozen=True, kw_only=True):
    """What the initiator sends in front of its first messages (E2E.md 4.5 byte layout)."""

    kind: Kind
    signing_key: bytes
    identity_key: bytes
    identity_sig: bytes
    ephemeral_key: bytes
    spk_id: int
    otk_id: int | None = None
    pq_id: int | None = None
    pq_ciphertext: bytes | None = None


class Agreement(msgspec.Struct, frozen=True, kw_only=True):
    """Result of ``initiate``: the secret, the header to send, the associated data, and the
    responder's signed prekey (the initiator's first ratchet public key)."""

    shared_secret: bytes
    header: X3DHHeader
    associated_data: bytes
    remote_signed_prekey: bytes


def associated_data(
    initiator_signing: bytes, initiator_ik: bytes, responder_signing: bytes, responder_ik: bytes
) -> bytes:
    """AD = initiator Ed25519 || initiator X25519 IK || responder Ed25519 || responder X25519 IK
    (128 bytes)."""
    return initiator_signing + initiator_ik + responder_signing + responder_ik


def _kdf(dhs: list[bytes], kem_secret: bytes | None) -> bytes:
    ikm = F + b"".join(dhs) + (kem_secret or b"")
    info = INFO_PQXDH if kem_secret is not None else INFO_X3DH
    return P.hkdf_sha256(ikm, salt=bytes(32), info=info, length=32)


def initiate(
    identity: IdentityKeyPair,
    bundle: PreKeyBundle,
    *,
    expected_signing_key: bytes | None = None,
    require_pq: bool = False,
    ephemeral_private: bytes | None = None,
    pq_encapsulate: Callable[[bytes], tuple[bytes, bytes]] | None = None,
) -> Agreement:
    """Run PQXDH (or X3DH when the bundle has no PQ prekey or this build lacks ML-KEM) against
    ``bundle``, after ``verify_bundle``. ``require_pq`` refuses the downgrade
    (``UntrustedKeyError``). ``ephemeral_private`` and ``pq_encapsulate`` (a function
    ``public key -> (ciphertext, secret)``) are for test vectors."""
    verify_bundle(bundle, expected_signing_key)
    use_pq = bundle.pq_prekey is not None and (P.HAS_MLKEM or pq_encapsulate is not None)
    if require_pq and not use_pq:
        raise UntrustedKeyError("PQXDH required but the bundle or this build has no ML-KEM")
    ek = P.x25519_generate() if ephemeral_private is None else ephemeral_private
    ek_pub = P.x25519_public(ek)
    spk = bundle.signed_prekey
    dhs = [
        P.x25519(identity.identity_private, spk.key),
        P.x25519(ek, bundle.identity_key),
        P.x25519(ek, spk.key),
    ]
    if bundle.one_time is not None:
        dhs.append(P.x25519(ek, bundle.one_time.key))
    kem_secret: bytes | None = None
    ct: bytes | None = None
    pq_id: int | None = None
    if use_pq:
        assert bundle.pq_prekey is not None
        ct, kem_secret = (pq_encapsulate or P.mlkem768_encapsulate)(bundle.pq_prekey.key)
        pq_id = bundle.pq_prekey.kid
    header = X3DHHeader(
        kind="pqxdh" if use_pq else "x3dh",
        signing_key=identity.signing_key,
        identity_key=identity.identity_key,
        identity_sig=identity.identity_sig,
        ephemeral_key=ek_pub,
        spk_id=spk.kid,
        otk_id=None if bundle.one_time is None else bundle.one_time.kid,
        pq_id=pq_id,
        pq_ciphertext=ct,
    )
    return Agreement(
        shared_secret=_kdf(dhs, kem_secret),
        header=header,
        associated_data=associated_data(
            identity.signing_key, identity.identity_key, bundle.signing_key, bundle.identity_key
        ),
        remote_signed_prekey=spk.key,
    )


class Response(msgspec.Struct, frozen=True, kw_only=True):
    """Result of ``respond``: the secret, the AD, the signed prekey pair the initiator used
    (the responder's first ratchet key pair), and the prekey state without the consumed
    one-time prekey. Commit ``prekeys`` only once the first message decrypted."""

    shared_secret: bytes
    associated_data: bytes
    signed_prekey: X25519PrekeyPair
    prekeys: PreKeyState


def respond(state: PreKeyState, header: X3DHHeader, *, require_pq: bool = False) -> Response:
    """The responder's side of ``initiate``. Raises ``UntrustedKeyError`` for a bad identity
    signature, ``DecryptError`` for unknown prekey ids (a used one-time prekey included)."""
    verify_identity(header.signing_key, header.identity_key, header.identity_sig)
    if require_pq and header.kind != "pqxdh":
        raise UntrustedKeyError("PQXDH required")
    spk = next(
        (
            k
            for k in (state.signed_prekey, state.previous_signed_prekey)
            if k is not None and k.kid == header.spk_id
        ),
        None,
    )
    if spk is None:
        raise DecryptError("unknown signed prekey id")
    ident = state.identity
    try:
        dhs = [
            P.x25519(spk.private, header.identity_key),
            P.x25519(ident.identity_private, header.ephemeral_key),
            P.x25519(spk.private, header.ephemeral_key),
        ]
    except InvalidKeyError as exc:
        raise DecryptError(f"bad ephemeral key: {exc.message}") from exc
    one_time = state.one_time
    if header.otk_id is not None:
        otk = next((k for k in one_time if k.kid == header.otk_id), None)
        if otk is None:
            raise DecryptError("unknown or already used one-time prekey")
        dhs.append(P.x25519(otk.private, header.ephemeral_key))
        one_time = tuple(k for k in one_time if k.kid != header.otk_id)
    kem_secret: bytes | None = None
    if header.kind == "pqxdh":
        pq = next(
            (
                k
                for k in (state.pq_prekey, state.previous_pq_prekey)
                if k is not None and k.kid == header.pq_id
            ),
            None,
        )
        if pq is None or header.pq_ciphertext is None:
            raise DecryptError("unknown PQ prekey id")
        kem_secret = P.mlkem768_decapsulate(pq.seed, header.pq_ciphertext)
    elif header.pq_id is not None or header.pq_ciphertext is not None:
        raise DecryptError("x3dh header with PQ fields")
    return Response(
        shared_secret=_kdf(dhs, kem_secret),
        associated_data=associated_data(
            header.signing_key, header.identity_key, ident.signing_key, ident.identity_key
        ),
        signed_prekey=spk,
        prekeys=msgspec.structs.replace(state, one_time=one_time),
    )


# --- header bytes -------------------------------------------------------------------------------

_FLAG_OTK: Final = 0x01
_FLAG_PQ: Final = 0x02
HEADER_VERSION: Final = 1
_FIXED: Final = struct.Struct(">BB32s32s64s32sI")


def encode_header(h: X3DHHeader) -> bytes:
    flags = (_FLAG_OTK if h.otk_id is not None else 0) | (_FLAG_PQ if h.kind == "pqxdh" else 0)
    out = _FIXED.pack(
        HEADER_VERSION,
        flags,
        h.signing_key,
        h.identity_key,
        h.identity_sig,
        h.ephemeral_key,
        h.spk_id,
    )
    if h.otk_id is not None:
        out += struct.pack(">I", h.otk_id)
    if h.kind == "pqxdh":
        if h.pq_id is None or h.pq_ciphertext is None:
            raise CryptoError("pqxdh header without PQ fields")
        out += struct.pack(">I", h.pq_id) + h.pq_ciphertext
    return out


def decode_header(data: bytes) -> tuple[X3DHHeader, bytes]:
    """``(header, rest)``; ``DecryptError`` if ``data`` does not start with a valid header."""
    if len(data) < _FIXED.size:
        raise DecryptError("truncated X3DH header")
    version, flags, sk, ik, sig, ek, spk_id = _FIXED.unpack_from(data)
    if version != HEADER_VERSION or flags & ~(_FLAG_OTK | _FLAG_PQ):
        raise DecryptError("unknown X3DH header version or flags")
    pos = _FIXED.size
    otk_id: int | None = None
    if flags & _FLAG_OTK:
        if len(data) < pos + 4:
            raise DecryptError("truncated X3DH header")
        (otk_id,) = struct.unpack_from(">I", data, pos)
        pos += 4
    pq_id: int | None = None
    ct: bytes | None = None
    if flags & _FLAG_PQ:
        end = pos + 4 + P.MLKEM768_CIPHERTEXT_BYTES
        if len(data) < end:
            raise DecryptError("truncated X3DH header")
        (pq_id,) = struct.unpack_from(">I", data, pos)
        ct = data[pos + 4 : end]
        pos = end
    header = X3DHHeader(
        kind="pqxdh" if flags & _FLAG_PQ else "x3dh",
        signing_key=sk,
        identity_key=ik,
        identity_sig=sig,
        ephemeral_key=ek,
        spk_id=spk_id,
        otk_id=otk_id,
        pq_id=pq_id,
        pq_ciphertext=ct,
    )
    return header, data[pos:]
