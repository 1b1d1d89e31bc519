"""To-device messages between two devices (E2E.md section 6): X3DH/PQXDH + Double Ratchet.

Message bytes (the ``body`` of a ``to_device`` frame)::

    NORMAL  = 0x01 || ratchet message
    PREKEY  = 0x02 || X3DH header || ratchet message

The initiator sends PREKEY messages (the same X3DH header in each) until it has decrypted a
message from the responder; after that, NORMAL messages.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Final, Literal, NamedTuple

import msgspec

from chatproto.e2e import primitives as P
from chatproto.e2e import ratchet, x3dh
from chatproto.errors import CryptoError, DecryptError, ReplayError, UntrustedKeyError

NORMAL: Final = 0x01
PREKEY: Final = 0x02


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """A pairwise session with one remote device (persist it with ``msgspec.msgpack``)."""

    ratchet: ratchet.RatchetState
    kind: x3dh.Kind
    """Which agreement created the session: ``"pqxdh"`` or ``"x3dh"``."""
    remote_signing_key: bytes
    remote_identity_key: bytes
    base_key: bytes
    """The initiator's X3DH ephemeral public key: identifies the session in PREKEY messages."""
    header_hash: bytes
    """SHA-256 of the encoded X3DH header that started the session (both sides): a later PREKEY
    message of the same session must carry exactly that header."""
    pending_header: bytes | None = None
    """Initiator only: the encoded X3DH header, sent in front of each message until a reply."""


class Decrypted(NamedTuple):
    plaintext: bytes
    session: Session
    prekeys: x3dh.PreKeyState
    """The prekey state to commit (without a one-time prekey the message consumed)."""


def start_session(
    identity: x3dh.IdentityKeyPair,
    bundle: x3dh.PreKeyBundle,
    *,
    expected_signing_key: bytes | None = None,
    require_pq: bool = False,
    ephemeral_private: bytes | None = None,
    ratchet_private: bytes | None = None,
    pq_encapsulate: Callable[[bytes], tuple[bytes, bytes]] | None = None,
) -> Session:
    """An initiator session from a fetched bundle (``x3dh.initiate``; ``UntrustedKeyError`` if
    the bundle does not verify)."""
    agreement = x3dh.initiate(
        identity,
        bundle,
        expected_signing_key=expected_signing_key,
        require_pq=require_pq,
        ephemeral_private=ephemeral_private,
        pq_encapsulate=pq_encapsulate,
    )
    header = x3dh.encode_header(agreement.header)
    state = ratchet.init_initiator(
        agreement.shared_secret,
        agreement.remote_signed_prekey,
        agreement.associated_data,
        dh_private=ratchet_private,
    )
    return Session(
        ratchet=state,
        kind=agreement.header.kind,
        remote_signing_key=bundle.signing_key,
        remote_identity_key=bundle.identity_key,
        base_key=agreement.header.ephemeral_key,
        header_hash=P.sha256(header),
        pending_header=header,
    )


def encrypt_to_device(
    session: Session | None,
    plaintext: bytes,
    *,
    identity: x3dh.IdentityKeyPair | None = None,
    bundle: x3dh.PreKeyBundle | None = None,
    expected_signing_key: bytes | None = None,
    require_pq: bool = False,
) -> tuple[bytes, Session]:
    """``(message bytes, new session)``. Without a session, ``identity`` and ``bundle`` start
    one (``start_session``)."""
    if session is None:
        if identity is None or bundle is None:
            raise CryptoError("no session: pass identity and bundle to start one")
        session = start_session(
            identity, bundle, expected_signing_key=expected_signing_key, require_pq=require_pq
        )
    body, state = ratchet.encrypt(session.ratchet, plaintext)
    new = msgspec.structs.replace(session, ratchet=state)
    if session.pending_header is not None:
        return bytes([PREKEY]) + session.pending_header + body, new
    return bytes([NORMAL]) + body, new


def message_type(message: bytes) -> Literal["prekey", "normal"]:
    if message[:1] == bytes([PREKEY]):
        return "prekey"
    if message[:1] == bytes([NORMAL]):
        return "normal"
    raise DecryptError("unknown to-device message type")


def prekey_header(message: bytes) -> x3dh.X3DHHeader:
    """The X3DH header of a PREKEY message (e.g. to check ``signing_key`` against the sender's
    device list before decrypting)."""
    if message_type(message) != "prekey":
        raise DecryptError("not a PREKEY message")
    return x3dh.decode_header(message[1:])[0]


def matches(session: Session, signing_key: bytes, identity_key: bytes) -> bool:
    """Whether ``session`` is with the device whose listed keys are these (E2E.md 6: a session is
    used only while the remote keys equal the ones the verified device list names)."""
    return P.constant_time_equal(session.remote_signing_key, signing_key) and (
        P.constant_time_equal(session.remote_identity_key, identity_key)
    )


def decrypt_from_device(
    session: Session | None,
    prekeys: x3dh.PreKeyState,
    message: bytes,
    *,
    expected_signing_key: bytes | None = None,
    expected_identity_key: bytes | None = None,
    previous: Sequence[Session] = (),
    seen_base_keys: Collection[bytes] = (),
    require_pq: bool = False,
    ratchet_private: bytes | None = None,
) -> Decrypted:
    """Decrypt a message from one remote device. ``session`` is the current session with that
    device (or None), ``previous`` the earlier ones still kept (newest first). A PREKEY message
    whose base key is one of theirs continues that session (and must carry exactly its header);
    one whose base key is in ``seen_base_keys`` (sessions started before and since dropped) is a
    replay (``ReplayError``); any other starts a new session (replacing the old one once
    committed). ``expected_signing_key`` / ``expected_identity_key`` (the sender device's keys
    from its account's verified device list) are checked against the header's before anything
    is computed (``UntrustedKeyError``). Nothing passed in changes; commit ``Decrypted.session``
    and ``Decrypted.prekeys`` on success."""
    kind = message_type(message)
    if kind == "normal":
        if session is None:
            raise DecryptError("NORMAL message without a session")
        pt, state = ratchet.decrypt(session.ratchet, message[1:], dh_private=ratchet_private)
        return Decrypted(
            pt, msgspec.structs.replace(session, ratchet=state, pending_header=None), prekeys
        )
    header, body = x3dh.decode_header(message[1:])
    header_hash = P.sha256(message[1 : len(message) - len(body)])
    if expected_signing_key is not None and not P.constant_time_equal(
        header.signing_key, expected_signing_key
    ):
        raise UntrustedKeyError("PREKEY message from an unexpected signing key")
    if expected_identity_key is not None and not P.constant_time_equal(
        header.identity_key, expected_identity_key
    ):
        raise UntrustedKeyError("PREKEY message from an unexpected identity key")
    for known in (session, *previous):
        if known is not None and P.constant_time_equal(known.base_key, header.ephemeral_key):
            # A further PREKEY message of a session it started: the one-time prekey is gone, and
            # running X3DH again would reopen a message already read (a replay).
            if not P.constant_time_equal(known.header_hash, header_hash):
                raise DecryptError("PREKEY message does not match its session")
            pt, state = ratchet.decrypt(known.ratchet, body, dh_private=ratchet_private)
            return Decrypted(pt, msgspec.structs.replace(known, ratchet=state), prekeys)
    if header.ephemeral_key in seen_base_keys:
        raise ReplayError("PREKEY message of a session started before (a replay)")
    response = x3dh.respond(prekeys, header, require_pq=require_pq)
    state = ratchet.init_responder(
        response.shared_secret,
        response.signed_prekey.private,
        response.signed_prekey.public,
        response.associated_data,
    )
    pt, state = ratchet.decrypt(state, body, dh_private=ratchet_private)
    new = Session(
        ratchet=state,
        kind=header.kind,
        remote_signing_key=header.signing_key,
        remote_identity_key=header.identity_key,
        base_key=header.ephemeral_key,
        header_hash=header_hash,
    )
    return Decrypted(pt, new, response.prekeys)
