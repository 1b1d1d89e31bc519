"""Signed public posts (SPEC.md 20.4, ``chatproto.posts``): the vectors in
``protocol/vectors/posts.json`` verify and every refused one does not; any change to a signed
post after signing is caught; the directory's words are what SPEC.md 20.2 says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from chatproto import frames as F
from chatproto import posts
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ChatProtoError, SignatureError
from hypothesis import given
from hypothesis import strategies as st

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "protocol/vectors/posts.json").read_text("utf-8")
)
KEY = bytes.fromhex(VECTORS["device_key"])


def _post(form: dict[str, Any]) -> F.Post:
    def back(v: Any) -> Any:
        if isinstance(v, dict) and set(v) == {"$bytes"}:
            return bytes.fromhex(v["$bytes"])
        return v

    return msgspec.convert({k: back(v) for k, v in form.items()}, F.Post)


@pytest.mark.parametrize("v", VECTORS["accepted"], ids=lambda v: v["name"])
def test_accepted_vectors_have_their_payload_and_verify(v: dict[str, Any]) -> None:
    p = _post(v["post"])
    assert posts.payload_of(v["server"], p).hex() == v["payload"]
    assert p.sig.hex() == v["sig"]
    posts.verify_post(KEY, v["server"], p)


@pytest.mark.parametrize("v", VECTORS["refused"], ids=lambda v: v["name"])
def test_refused_vectors_do_not_verify(v: dict[str, Any]) -> None:
    with pytest.raises(SignatureError):
        posts.verify_post(KEY, v["server"], _post(v["post"]))


SIGNER = SigningKey(bytes(range(32)))
BASE = F.Post(
    channel=7, seq=3, ver=0, ts=1, author=1, device=5, kind="text", content=b"hi", sig=bytes(64)
)


@given(
    field=st.sampled_from(["channel", "seq", "ver", "ts", "author", "device"]),
    delta=st.integers(1, 1000),
)
def test_changing_any_number_after_signing_is_refused(field: str, delta: int) -> None:
    p = msgspec.structs.replace(BASE, sig=posts.sign_post(SIGNER, "s", BASE))
    posts.verify_post(SIGNER.public_key, "s", p)
    bad = msgspec.structs.replace(p, **{field: getattr(p, field) + delta})
    with pytest.raises(SignatureError):
        posts.verify_post(SIGNER.public_key, "s", bad)


@given(content=st.binary(max_size=64))
def test_changing_the_content_after_signing_is_refused(content: bytes) -> None:
    p = msgspec.structs.replace(BASE, sig=posts.sign_post(SIGNER, "s", BASE))
    bad = msgspec.structs.replace(p, content=content)
    if content == p.content:
        posts.verify_post(SIGNER.public_key, "s", bad)
    else:
        with pytest.raises(SignatureError):
            posts.verify_post(SIGNER.public_key, "s", bad)


def test_a_tombstone_with_content_is_refused_even_when_signed() -> None:
    t = msgspec.structs.replace(BASE, ver=1, kind=posts.TOMBSTONE, content=b"x")
    t = msgspec.structs.replace(t, sig=posts.sign_post(SIGNER, "s", t))
    with pytest.raises(ChatProtoError):
        posts.verify_post(SIGNER.public_key, "s", t)


def test_words_are_folded_normalized_and_split() -> None:
    assert posts.words("Daily NEWS\u2014from \uff34\uff4f\uff4b\uff59\uff4f, Stra\u00dfe!") == [
        "daily",
        "news",
        "from",
        "tokyo",
        "strasse",
    ]
    assert posts.channel_terms("daily_news", "Daily News", "news") == [
        "daily_news",
        "daily",
        "news",
    ]
    assert posts.query_words("a news daily news") == ["daily", "news", "a"]
    assert posts.query_words("!!!") == []
    p = "new"
    assert p < "news" < posts.prefix_bound(p) and posts.prefix_bound(p) < "nex"
