"""Protocol limits, as data. SPEC.md quotes these numbers; the codec enforces them."""

from __future__ import annotations

from typing import Final

MAX_FRAME_BYTES: Final = 256 * 1024
"""Largest encoded frame either side accepts (WebSocket message size)."""
MAX_BODY_BYTES: Final = 64 * 1024
"""Largest message body (opaque bytes: the encrypted content of one message)."""
MAX_HANDLE_CHARS: Final = 32
MIN_HANDLE_CHARS: Final = 3
HANDLE_PATTERN: Final = r"^[a-z0-9][a-z0-9_.]*\Z"
"""Whole-string match (``\\Z``, not ``$``: ``$`` would also accept a trailing newline)."""
MAX_NAME_CHARS: Final = 64
MAX_TITLE_CHARS: Final = 128
MAX_CMID_CHARS: Final = 64
MAX_KIND_CHARS: Final = 32
MAX_MEMBERS_PER_REQUEST: Final = 256
MAX_PAGE: Final = 500
"""Most messages one ``Fetch`` returns and one ``Sync`` page carries."""
MAX_PRESENCE_QUERY: Final = 256
MAX_ERROR_MESSAGE_CHARS: Final = 256
MAX_U32: Final = 2**32 - 1
MAX_ID: Final = 2**53 - 1
"""Account, device and conversation ids and seqs stay below 2**53 (JSON/JS clients keep them exact)."""
ED25519_PUBLIC_KEY_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64
NONCE_BYTES: Final = 32

# End-to-end key directory and to-device queue (SPEC.md section 15).
X25519_PUBLIC_KEY_BYTES: Final = 32
MAX_PREKEY_BYTES: Final = 1184
"""Largest signed prekey: an ML-KEM-768 encapsulation (public) key. An X25519 one is 32."""
MAX_ONE_TIME_PER_UPLOAD: Final = 100
"""One-time prekeys one ``upload_keys`` frame may carry."""
MAX_ONE_TIME_PREKEYS: Final = 500
"""Unclaimed one-time prekeys the server keeps per device; an upload past it is refused."""
MAX_DEVICE_LIST_BYTES: Final = 64 * 1024
MAX_TO_DEVICE_BYTES: Final = 64 * 1024
MAX_TO_DEVICE_QUEUE: Final = 10_000
"""Unacknowledged to-device items the server keeps per target device."""

# Payments (SPEC.md section 15, "Payments").
MAX_PAY_ID_CHARS: Final = 64
"""Transfer, red packet and request ids chosen by clients."""
MAX_CURRENCY_CHARS: Final = 8
"""A currency field's length on the wire; only 3-letter ISO 4217 codes are accepted."""
