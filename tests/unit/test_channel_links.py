"""Public channel links (SPEC.md 20.1): ``chatd://channel/<handle>``, ``@handle`` and the bare
handle all name the channel; anything else is refused rather than guessed at."""

from __future__ import annotations

import msgspec
import pytest
from chatproto import links
from chatproto.errors import ChatProtoError, ErrorCode
from chatproto.frames import Handle
from chatproto.limits import HANDLE_PATTERN, is_handle
from hypothesis import given
from hypothesis import strategies as st

handles = st.from_regex(HANDLE_PATTERN, fullmatch=True).filter(lambda h: 3 <= len(h) <= 32)


def test_the_link_is_the_prefix_then_the_handle() -> None:
    assert links.channel_link("news") == "chatd://channel/news"
    assert links.channel_link("a.b_9") == "chatd://channel/a.b_9"


@given(handles)
def test_every_form_of_a_handle_parses_back_to_it(handle: str) -> None:
    for text in (
        links.channel_link(handle),
        "@" + handle,
        handle,
        f"  {links.channel_link(handle)}\n",
    ):
        assert links.parse_channel_ref(text) == handle


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "@",
        "chatd://channel/",
        "chatd://channel/ab",  # too short
        "chatd://channel/" + "a" * 33,  # too long
        "chatd://channel/News",  # handles are lowercase: not guessed at
        "chatd://channel/news/",
        "chatd://channel/news?x=1",
        "chatd://channel/@news",
        "chatd://join/news",
        "https://example.com/news",
        "@@news",
        "_news",
        "news\n\nmore",
        "ne ws",
        "n\u0435ws",  # a Cyrillic e
        "chatd://channel/news\x00",
    ],
)
def test_anything_else_is_invalid(bad: str) -> None:
    with pytest.raises(ChatProtoError) as exc:
        links.parse_channel_ref(bad)
    assert exc.value.code == ErrorCode.INVALID


@pytest.mark.parametrize("bad", ["", "ab", "News", "@news", "a b", "x" * 33])
def test_no_link_is_made_for_what_is_not_a_handle(bad: str) -> None:
    with pytest.raises(ChatProtoError):
        links.channel_link(bad)


@given(
    st.one_of(
        handles,
        st.text(max_size=40),
        st.text(alphabet="abcxyz019_.-A\n ", max_size=40),
    )
)
def test_is_handle_is_the_codec_field_rule(text: str) -> None:
    """``limits.is_handle`` (asked by links, ``chat`` and the bot framework) accepts exactly
    what the codec accepts in a handle field, so no client refuses what the wire takes or sends
    what it refuses."""
    try:
        msgspec.convert(text, Handle)
        codec_takes = True
    except msgspec.ValidationError:
        codec_takes = False
    assert is_handle(text) == codec_takes
