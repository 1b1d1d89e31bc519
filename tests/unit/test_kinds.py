"""The message-kind registry, typed contents and which kinds a client may send."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from chatproto import kinds
from chatproto.errors import ErrorCode, ProtocolError
from chatproto.limits import MAX_BODY_BYTES, MAX_KIND_CHARS
from hypothesis import given, settings
from hypothesis import strategies as st

MI = msgspec.inspect

SPEC_KINDS = {
    "text",
    "reaction",
    "edit",
    "delete",
    "deleted",
    "receipt",
    "payment.transfer",
    "payment.request",
    "miniapp.invoke",
    "miniapp.result",
    "share",
    "forward",
    "attachment",
    "system",
    "payment.receipt",
}
SERVER_ONLY = {"system", "payment.receipt", "deleted", "withheld"}
E2E_ONLY = {"attachment"}


def _strategy(t: MI.Type) -> st.SearchStrategy[Any]:
    if isinstance(t, MI.IntType):
        lo = t.ge if t.ge is not None else -(2**63)
        hi = t.le if t.le is not None else 2**63 - 1
        return st.integers(lo, hi)
    if isinstance(t, MI.StrType):
        if t.pattern is not None:
            return st.from_regex(t.pattern.replace("\\Z", "$"), fullmatch=True)
        hi = t.max_length if t.max_length is not None else 50
        return st.text(min_size=t.min_length or 0, max_size=min(hi, 50))
    if isinstance(t, MI.BoolType):
        return st.booleans()
    if isinstance(t, MI.BytesType):
        lo = t.min_length or 0
        return st.binary(min_size=lo, max_size=t.max_length if t.max_length is not None else 64)
    if isinstance(t, MI.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, MI.UnionType):
        return st.one_of(*(_strategy(u) for u in t.types))
    if isinstance(t, MI.DictType):
        return st.dictionaries(_strategy(t.key_type), _strategy(t.value_type), max_size=4)
    if isinstance(t, MI.NoneType):
        return st.none()
    if isinstance(t, MI.ListType):
        return st.lists(_strategy(t.item_type), max_size=2)
    if isinstance(t, MI.StructType):
        return _content_strategy(t.cls)  # type: ignore[arg-type]
    raise AssertionError(f"no strategy for {t!r}: extend tests/unit/test_kinds.py")


def _content_strategy(cls: type[kinds.Content]) -> st.SearchStrategy[kinds.Content]:
    info = MI.type_info(cls)
    assert isinstance(info, MI.StructType)
    required = {f.name: _strategy(f.type) for f in info.fields if f.required}
    optional = {f.name: _strategy(f.type) for f in info.fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional).map(lambda kw: cls(**kw))


any_content = st.one_of(*(_content_strategy(c) for c in kinds.CONTENT_TYPES.values()))


# --------------------------------------------------------------------------- registry


OPAQUE_KINDS = {"e2e", "withheld"}
"""Registered kinds with no content type: the body is ciphertext (protocol/E2E.md)."""


def test_the_registry_holds_exactly_the_kinds_the_spec_lists() -> None:
    assert set(kinds.KINDS) == SPEC_KINDS | OPAQUE_KINDS
    assert set(kinds.CONTENT_TYPES) == SPEC_KINDS
    assert set(kinds.OPAQUE_KINDS) == OPAQUE_KINDS


def test_e2e_is_sendable_and_decode_content_refuses_its_ciphertext() -> None:
    assert kinds.client_may_send("e2e")
    with pytest.raises(ProtocolError) as err:
        kinds.decode_content("e2e", b"\x01ciphertext")
    assert err.value.code == ErrorCode.UNKNOWN_FRAME


@pytest.mark.parametrize("kind", sorted(SPEC_KINDS))
def test_each_kind_maps_to_the_content_type_that_names_it(kind: str) -> None:
    assert kind == kinds.CONTENT_TYPES[kind].KIND
    assert len(kind) <= MAX_KIND_CHARS


def test_system_payment_receipts_tombstones_and_withheld_are_the_only_server_only_kinds() -> None:
    assert SERVER_ONLY == kinds.SERVER_ONLY_KINDS


# --------------------------------------------------------------------------- client_may_send


@pytest.mark.parametrize("kind", sorted((SPEC_KINDS | OPAQUE_KINDS) - SERVER_ONLY - E2E_ONLY))
def test_a_client_may_send_every_registered_kind_but_the_server_only_ones(kind: str) -> None:
    assert kinds.client_may_send(kind)
    assert kinds.client_may_send(kind, inside_e2e=True)


@pytest.mark.parametrize("kind", sorted(E2E_ONLY))
def test_an_attachment_is_sendable_only_inside_e2e(kind: str) -> None:
    """Its content holds the file's key: a plain one would hand the server the file."""
    assert not kinds.client_may_send(kind)
    assert kinds.client_may_send(kind, inside_e2e=True)


@pytest.mark.parametrize("kind", sorted(SERVER_ONLY))
def test_a_client_may_not_send_server_only_kinds(kind: str) -> None:
    assert not kinds.client_may_send(kind)


@pytest.mark.parametrize("kind", ["x-poll", "x-a", "x-system", "x-payment.v2"])
def test_a_client_may_send_experimental_x_kinds(kind: str) -> None:
    assert kinds.client_may_send(kind)


@pytest.mark.parametrize(
    "kind", ["", "x-", "x", "X-poll", "Text", "texts", "payment", "poll", "system ", " text"]
)
def test_a_client_may_not_send_unregistered_kinds(kind: str) -> None:
    assert not kinds.client_may_send(kind)


@given(kind=st.text(max_size=MAX_KIND_CHARS))
def test_client_may_send_is_registered_non_system_or_x_prefixed(kind: str) -> None:
    expected = (kind in SPEC_KINDS | OPAQUE_KINDS and kind not in SERVER_ONLY | E2E_ONLY) or (
        kind.startswith("x-") and len(kind) > 2
    )
    assert kinds.client_may_send(kind) == expected


# --------------------------------------------------------------------------- contents


@settings(max_examples=300)
@given(content=any_content)
def test_every_content_round_trips_through_its_body(content: kinds.Content) -> None:
    kind, body = kinds.encode_content(content)
    assert kind == content.KIND
    decoded = kinds.decode_content(kind, body)
    assert decoded == content
    assert type(decoded) is type(content)


@given(content=any_content)
def test_content_bodies_are_msgpack_maps_without_default_fields(content: kinds.Content) -> None:
    _, body = kinds.encode_content(content)
    raw = msgspec.msgpack.decode(body)
    assert isinstance(raw, dict)
    for field in MI.type_info(type(content)).fields:
        default = field.default
        if field.default_factory is not msgspec.NODEFAULT:
            default = field.default_factory()
        if not field.required and getattr(content, field.name) == default:
            assert field.encode_name not in raw
        else:
            assert field.encode_name in raw


def test_an_unknown_kind_body_is_unknown_frame() -> None:
    with pytest.raises(ProtocolError) as err:
        kinds.decode_content("x-poll", b"\x80")
    assert err.value.code == ErrorCode.UNKNOWN_FRAME


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("text", msgspec.msgpack.encode({})),
        ("text", msgspec.msgpack.encode({"text": 1})),
        ("text", msgspec.msgpack.encode(["hi"])),
        ("text", msgspec.msgpack.encode({"text": "x" * 16_001})),
        ("reaction", msgspec.msgpack.encode({"target": 0, "emoji": "x"})),
        ("reaction", msgspec.msgpack.encode({"target": 1, "emoji": ""})),
        ("delete", msgspec.msgpack.encode({"target": 2**53})),
        (
            "payment.transfer",
            msgspec.msgpack.encode({"transfer_id": "t", "amount": 1, "currency": "usd"}),
        ),
        (
            "payment.transfer",
            msgspec.msgpack.encode({"transfer_id": "t", "amount": 1, "currency": "USD\n"}),
        ),
        (
            "payment.request",
            msgspec.msgpack.encode({"request_id": "r", "amount": 0, "currency": "USD"}),
        ),
        (
            "miniapp.invoke",
            msgspec.msgpack.encode(
                {"invocation_id": "i", "app": "a", "action": "b", "params": {"k": [1]}}
            ),
        ),
        ("system", msgspec.msgpack.encode({"event": "exploded", "actor": 1})),
        ("text", b""),
        ("text", b"\xc1"),
        ("text", b"\x81\xa4text" + b"\x91" * 100_000 + b"\x01"),
        ("share", b"\x82\xa5title\xa1t\xa1z" + b"\x91" * 100_000 + b"\x01"),
    ],
)
def test_a_bad_body_is_bad_field(kind: str, body: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        kinds.decode_content(kind, body)
    assert err.value.code == ErrorCode.BAD_FIELD


@settings(max_examples=300)
@given(kind=st.sampled_from(sorted(SPEC_KINDS)), body=st.binary(max_size=256))
def test_random_bodies_never_raise_anything_but_protocol_error(kind: str, body: bytes) -> None:
    code = None
    try:
        kinds.decode_content(kind, body)
    except ProtocolError as exc:
        code = exc.code
    assert code in (None, ErrorCode.BAD_FIELD)


def test_unknown_content_fields_are_ignored() -> None:
    body = msgspec.msgpack.encode({"text": "hi", "formatting": [1, 2]})
    assert kinds.decode_content("text", body) == kinds.Text(text="hi")


def test_a_content_over_the_body_limit_cannot_be_encoded() -> None:
    big = kinds.MiniappInvoke(
        invocation_id="i", app="a", action="b", params={f"k{i}": "v" * 200 for i in range(400)}
    )
    with pytest.raises(ProtocolError) as err:
        kinds.encode_content(big)
    assert err.value.code == ErrorCode.INVALID
    assert len(msgspec.msgpack.encode(big)) > MAX_BODY_BYTES
