"""One exception root for the protocol package and the stable error codes of the wire.

Codes are part of the protocol: their numbers never change and are never reused. SPEC.md lists
them; the server sends them in ``Error`` frames and the SDK raises them as typed exceptions.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """Stable wire error codes (``Error.code``)."""

    # The peer sent bytes that are not a valid frame.
    MALFORMED = 1
    UNKNOWN_FRAME = 2
    BAD_FIELD = 3
    FRAME_TOO_LARGE = 4
    # Authentication.
    AUTH_REQUIRED = 10
    AUTH_FAILED = 11
    HANDLE_TAKEN = 12
    ALREADY_AUTHENTICATED = 13
    SUSPENDED = 14
    """The account is suspended by the operator: its logins fail (SPEC.md 6.1)."""
    # Requests that are well-formed but refused.
    NOT_FOUND = 20
    FORBIDDEN = 21
    CONFLICT = 22
    INVALID = 23
    CONSENT_REQUIRED = 24
    """A signed ``create_conv`` names accounts that must be invited instead (SPEC.md 18.3)."""
    REPORT_REFUSED = 25
    """A ``report``'s opening does not verify: the plaintext, franking key, sender, conv or seq
    is not what was sent (SPEC.md 18.7)."""
    PUSH_REFUSED = 26
    """A ``set_push`` endpoint the server will not send to (SPEC.md 21.2: not https, an
    address rather than a name, another port, or a push service the operator did not allow)."""
    # Limits.
    RATE_LIMITED = 30
    SLOW_CONSUMER = 31
    # The server cannot serve the request now; retrying later may succeed.
    UNAVAILABLE = 40
    INTERNAL = 50
    # Payments (SPEC.md section 15): the intent or request was refused and nothing moved.
    # Reuse of a transfer, packet or request id with other content is CONFLICT (22).
    BAD_SIGNATURE = 60
    """The payer's signature over the intent does not verify under the named device's key."""
    WRONG_DEVICE = 61
    """The signing device does not exist or is not a device of the intent's payer account."""
    NOT_MEMBER = 62
    """The payee (or a request's payer) is not a member of the conversation."""
    EXPIRED = 63
    """The intent's ``expires_at`` has passed, or the request or red packet has expired."""
    INSUFFICIENT_FUNDS = 64
    OVER_LIMIT = 65
    """Over the server's per-transfer or per-day limit for the currency."""
    UNKNOWN_CURRENCY = 66
    """Not an ISO 4217 code this server accepts."""
    INVALID_AMOUNT = 67
    """Zero, negative, too large, or a red packet with fewer minor units than shares."""
    CLOSED = 68
    """The request is no longer open (paid, declined, cancelled) or the red packet has no
    share left."""
    PRICE_CHANGED = 69
    """A mandate's terms are not the channel's current subscription price (SPEC.md 15.13):
    read the price again and sign anew."""

    # Media (SPEC.md section 17): refused before a byte is stored.
    FILE_TOO_LARGE = 70
    """An upload over the server's per-file limit."""
    QUOTA_EXCEEDED = 71
    """An upload over the account's bytes per day or total stored bytes."""

    # Invite links (SPEC.md section 19).
    LINK_INVALID = 80
    """The invite link cannot be used: malformed, unknown, expired, revoked or used up (one
    code for all, on purpose: SPEC.md 19.3)."""

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed later unchanged."""
        return self in (ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL)


class ChatProtoError(Exception):
    """Root of every exception raised by ``chatproto``."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ProtocolError(ChatProtoError):
    """The peer broke the protocol: undecodable bytes, unknown frame, a field out of bounds.

    The only exception ``codec.decode`` raises. The receiver answers with an ``Error`` frame
    carrying ``code`` and keeps the connection open; the offending frame had no effect.
    """

    code = ErrorCode.MALFORMED


class SignatureError(ChatProtoError):
    """A signature did not verify against the key it was checked with."""

    code = ErrorCode.AUTH_FAILED


class MoneyError(ChatProtoError):
    """An amount or currency a payment cannot use (``INVALID_AMOUNT``, ``UNKNOWN_CURRENCY``)."""

    code = ErrorCode.INVALID_AMOUNT


class CryptoError(ChatProtoError):
    """End-to-end encryption (``chatproto.e2e``) refused an input. Never sent on the wire."""

    code = ErrorCode.INVALID


class InvalidKeyError(CryptoError):
    """A key has the wrong length or is unsafe (e.g. a low-order X25519 point)."""


class DecryptError(CryptoError):
    """A ciphertext did not authenticate or cannot be decrypted with the state at hand.

    The state passed in is unchanged (e2e functions return new state only on success)."""


class ReplayError(DecryptError):
    """The message's key was already used: a replay or a duplicate delivery."""


class UntrustedKeyError(CryptoError):
    """A signature over key material does not verify, or a key differs from the pinned one."""
