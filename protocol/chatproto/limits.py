"""Protocol limits, as data. SPEC.md quotes these numbers; the codec enforces them."""

from __future__ import annotations

import re
from typing import Final

MAX_FRAME_BYTES: Final = 256 * 1024
"""Largest encoded frame either side accepts (WebSocket message size)."""
MAX_BODY_BYTES: Final = 64 * 1024
"""Largest message body (opaque bytes: the encrypted content of one message)."""
MAX_HANDLE_CHARS: Final = 32
MIN_HANDLE_CHARS: Final = 3
HANDLE_PATTERN: Final = r"^[a-z0-9][a-z0-9_.]*\Z"
"""Whole-string match (``\\Z``, not ``$``: ``$`` would also accept a trailing newline)."""
_HANDLE = re.compile(HANDLE_PATTERN)


def is_handle(text: str) -> bool:
    """Whether ``text`` is a handle as the wire carries it (SPEC.md 2: lowercase, 3-32 of a-z,
    0-9, ``_`` and ``.``, not starting with ``_`` or ``.``): the one check every parser of a
    handle typed or pasted by a user asks, the codec's field rule being the same data."""
    return MIN_HANDLE_CHARS <= len(text) <= MAX_HANDLE_CHARS and _HANDLE.match(text) is not None


MAX_NAME_CHARS: Final = 64
MAX_TITLE_CHARS: Final = 128
MAX_CMID_CHARS: Final = 64
MAX_KIND_CHARS: Final = 32
MAX_MEMBERS_PER_REQUEST: Final = 256
MAX_MEMBER_ENTRY_BYTES: Final = 16 * 1024
"""Largest signed membership-log entry body (E2E.md section 15)."""
MAX_LINK_CHARS: Final = 256
"""Longest invite link text a ``preview_link``/``join_link`` may carry (SPEC.md 19.1)."""
MAX_LINK_NAME_CHARS: Final = 64
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

# Bots, mini-apps and shares (SPEC.md section 16). Names are checked by the server (INVALID),
# not by the decoder, so that a bot author gets a message naming the bad entry.
MAX_TO: Final = 16
"""Accounts one message may be addressed to (``send.to``)."""
MAX_BOT_COMMANDS: Final = 100
MAX_COMMAND_CHARS: Final = 32
COMMAND_PATTERN: Final = r"^[a-z0-9_]{1,32}\Z"
"""A command name, without the ``/``: what users type after it."""
MAX_DESCRIPTION_CHARS: Final = 256
MAX_PARAMS: Final = 16
"""Parameters of one command or one mini-app action."""
MAX_PARAM_NAME_CHARS: Final = 32
PARAM_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,31}\Z"
MAX_PARAM_TYPE_CHARS: Final = 16
PARAM_TYPE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,15}\Z"
"""A command parameter's type name (a display hint: ``str``, ``int``, ``date``, ...)."""
MAX_ACTIONS: Final = 64
MAX_ACTION_NAME_CHARS: Final = 64
MAX_APP_NAME_CHARS: Final = 32
NAME_PATTERN: Final = r"^[a-z0-9_][a-z0-9_.-]*\Z"
"""A mini-app's name (``miniapp.invoke.app``) and an action's name (``miniapp.invoke.action``)."""
MAX_CHOICES: Final = 32
MAX_CHOICE_CHARS: Final = 64
MAX_ICON_CHARS: Final = 8
MAX_BOT_PROFILE_BYTES: Final = 64 * 1024
"""Largest stored bot profile (commands and manifest, msgpack): ``set_bot_profile`` beyond it is
``INVALID``, so every ``bot_profile`` answer fits in a frame."""
MAX_PUSH_ENDPOINT_CHARS: Final = 1024
"""Longest Web Push endpoint URL a device may register (SPEC.md 21)."""
PUSH_PAYLOAD_BYTES: Final = 64
"""Every push payload is padded to this many bytes before encryption (SPEC.md 21.3)."""

MAX_SEARCH_CHARS: Final = 64
"""A directory search's query (``search_channels``, SPEC.md 20.2)."""
MAX_SEARCH_PAGE: Final = 50
"""Channels in one page of the directory."""
MAX_TIMELINE_PAGE: Final = 50
"""Items in one page of the timeline (``get_timeline``, SPEC.md 20.8)."""
MAX_TIMELINE_CURSOR_CHARS: Final = 80
"""A timeline cursor's longest text."""
MAX_MOMENT_BYTES: Final = 64 * 1024
"""A Moment's ciphertext (SPEC.md 22)."""
MAX_MOMENT_COMMENT_BYTES: Final = 16 * 1024
"""A Moment comment's or like's ciphertext."""
MAX_MOMENT_AUDIENCE: Final = 5000
"""Accounts one Moment may be posted to."""
MAX_REACTION_COUNTS: Final = 100
"""Emojis a post's counts list (the largest counts; SPEC.md 20.6): any string of 1-16 code
points is an emoji, so without a bound one account reacting 4,000 times made every answer and
push of the post's counts larger than a frame."""

# Moderation and views of public channels (SPEC.md 20.9).
MAX_VIEW_SEQS: Final = 100
"""Posts one ``view_posts`` names."""
MAX_SLOW_MODE: Final = 3600
"""Longest slow mode of a channel, in seconds."""
MAX_BAN_PAGE: Final = 100
"""Bans per ``list_comment_bans`` page."""
