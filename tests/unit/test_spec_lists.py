"""SPEC.md's lists say every frame and error code the protocol package defines: section 4.1
names each client frame, section 4.2 each server frame (or the later section with its fields),
section 5 each error code, and the browser client (``clients/web``) knows each code. A stranger implementing a client from SPEC.md alone starts from these
lists; a frame added in a later section but missing here is one such a client never learns of."""

from __future__ import annotations

import re
from pathlib import Path

from chatproto import frames as F
from chatproto.errors import ErrorCode

SPEC = (Path(__file__).resolve().parents[2] / "protocol" / "SPEC.md").read_text()


def _between(start: str, end: str) -> str:
    return SPEC[SPEC.index(start) : SPEC.index(end)]


def _tag(frame: type[F.Frame]) -> str:
    tag = frame.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def _first_column_names(text: str) -> set[str]:
    """The backquoted names in the first column of each table row of ``text``."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`(\w+)`", line.split("|")[1]))
    return names


def test_section_4_1_names_every_client_frame() -> None:
    table = _first_column_names(_between("### 4.1 Client -> server", "**`register`**"))
    missing = sorted(_tag(f) for f in F.CLIENT_FRAMES if _tag(f) not in table)
    assert missing == []


def test_section_4_2_names_every_server_frame() -> None:
    text = _between("### 4.2 Server -> client", "## 5. Errors")
    named = set(re.findall(r"\*\*`(\w+)`\*\*", text)) | _first_column_names(text)
    missing = sorted(_tag(f) for f in F.SERVER_FRAMES if _tag(f) not in named)
    assert missing == []


def test_section_5_lists_every_error_code_by_name() -> None:
    text = _between("## 5. Errors", "## 6. Authentication")
    missing = sorted(c.name for c in ErrorCode if f"`{c.name}`" not in text)
    assert missing == []


def test_the_web_client_names_every_error_code_with_its_number() -> None:
    """The browser client's ``ErrorCode`` table is the protocol's: a code it lacks is one whose
    error it cannot name (it had no 69, ``PRICE_CHANGED``, when mandates came)."""
    codec = (
        Path(__file__).resolve().parents[2] / "clients" / "web" / "src" / "codec.ts"
    ).read_text()
    block = codec[codec.index("export const ErrorCode = {") : codec.index("} as const;")]
    web = {name: int(number) for name, number in re.findall(r"(\w+): (\d+)", block)}
    assert web == {c.name: c.value for c in ErrorCode}
