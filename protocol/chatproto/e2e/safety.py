"""Safety numbers (E2E.md section 9), computed exactly as libsignal's
``NumericFingerprintGenerator`` / ``Fingerprint::new`` (displayable version 0, scannable
``CombinedFingerprints`` protobuf version 1 or 2).

For each party: ``h = SHA-512(0x0000 || key || stable_id || key)``, then ``iterations - 1`` times
``h = SHA-512(h || key)``. The party's 30 digits are the first 30 bytes of ``h`` as six 5-byte
big-endian numbers, each mod 100 000, zero-padded to 5 digits. The safety number is the two
30-digit strings, the smaller first. The scannable form is the protobuf
``{1: version, 2: {1: local h[:32]}, 3: {1: remote h[:32]}}``.

chatd uses it per account: ``key`` = the account's master Ed25519 public key (32 bytes, no
prefix) from its signed device list, ``stable_id`` = the account id in ASCII decimal.
"""

from __future__ import annotations

from typing import Final

from chatproto.e2e import primitives as P
from chatproto.errors import CryptoError

ITERATIONS: Final = 5200
FINGERPRINT_VERSION: Final = b"\x00\x00"
SCANNABLE_VERSION: Final = 1


def fingerprint_hash(key: bytes, stable_id: bytes, iterations: int = ITERATIONS) -> bytes:
    """The 64-byte iterated hash of one party (libsignal ``get_fingerprint``)."""
    if not 1 < iterations <= 1_000_000:
        raise CryptoError("invalid fingerprint iterations")
    h = P.sha512(FINGERPRINT_VERSION + key + stable_id + key)
    for _ in range(iterations - 1):
        h = P.sha512(h + key)
    return h


def digits(fingerprint: bytes) -> str:
    """30 digits from the first 30 bytes of a fingerprint hash."""
    return "".join(
        f"{int.from_bytes(fingerprint[i : i + 5], 'big') % 100_000:05d}" for i in range(0, 30, 5)
    )


def safety_number(
    local_key: bytes,
    local_id: bytes,
    remote_key: bytes,
    remote_id: bytes,
    iterations: int = ITERATIONS,
) -> str:
    """The 60-digit safety number; both parties compute the same string."""
    a = digits(fingerprint_hash(local_key, local_id, iterations))
    b = digits(fingerprint_hash(remote_key, remote_id, iterations))
    return a + b if a < b else b + a


def _logical(content: bytes) -> bytes:
    return b"\x0a" + bytes([len(content)]) + content


def scannable(
    local_key: bytes,
    local_id: bytes,
    remote_key: bytes,
    remote_id: bytes,
    version: int = SCANNABLE_VERSION,
    iterations: int = ITERATIONS,
) -> bytes:
    """libsignal's ``CombinedFingerprints`` protobuf bytes (what the QR code holds)."""
    if not 0 <= version < 128:
        raise CryptoError("scannable version out of range")
    local = _logical(fingerprint_hash(local_key, local_id, iterations)[:32])
    remote = _logical(fingerprint_hash(remote_key, remote_id, iterations)[:32])
    return (
        b"\x08"
        + bytes([version])
        + b"\x12"
        + bytes([len(local)])
        + local
        + b"\x1a"
        + bytes([len(remote)])
        + remote
    )


def compare_scanned(own: bytes, scanned: bytes) -> bool:
    """Whether ``scanned`` (the other party's QR bytes) matches ``own``: same version, their
    local is our remote and the other way round. Only the exact layout ``scannable`` writes is
    accepted."""
    if len(own) != 74 or len(scanned) != 74:
        return False
    layout = (slice(0, 6), slice(38, 42))
    if any(own[s] != scanned[s] for s in layout):  # tags, lengths and version
        return False
    return P.constant_time_equal(own[6:38], scanned[42:74]) and P.constant_time_equal(
        own[42:74], scanned[6:38]
    )


def account_safety_number(
    local_account: int, local_master_key: bytes, remote_account: int, remote_master_key: bytes
) -> str:
    """chatd's safety number between two accounts (master keys of their device lists)."""
    return safety_number(
        local_master_key,
        str(local_account).encode(),
        remote_master_key,
        str(remote_account).encode(),
    )
