"""The committed test vectors (protocol/vectors/) against the reference codec, both ways."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from chatproto import auth, codec, kinds
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey, verify
from chatproto.errors import ProtocolError

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"


def _load(name: str) -> Any:
    """A vector file without its ``format`` header (a list of vectors, or the named parts)."""
    doc = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    assert doc.pop("format").startswith(f"chatd.v1 test vectors, {name}: ")
    return doc.pop("vectors") if "vectors" in doc else doc


FRAMES = _load("frames.json")
DECODE_ONLY = _load("decode_only.json")
INVALID = _load("invalid.json")
AUTH = _load("auth.json")
KINDS = _load("kinds.json")


def _from_json_form(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {k: _from_json_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json_form(v) for v in value]
    return value


def _to_json_form(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value, builtin_types=(bytes,))
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, dict):
        return {k: _to_json_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json_form(v) for v in value]
    return value


def _union(direction: str) -> Any:
    return F.ClientFrame if direction == "client" else F.ServerFrame


def _decode(direction: str, data: bytes) -> F.Frame:
    return codec.decode_client(data) if direction == "client" else codec.decode_server(data)


def _frame_of(vector: dict[str, Any]) -> F.Frame:
    frame: F.Frame = msgspec.convert(
        _from_json_form(vector["decoded"]), _union(vector["direction"])
    )
    return frame


def _tag(cls: type[F.Frame]) -> str:
    return str(cls.__struct_config__.tag)


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


# --------------------------------------------------------------------------- coverage


def test_vector_names_are_unique_in_every_file() -> None:
    for vectors in (FRAMES, DECODE_ONLY, INVALID, KINDS, AUTH["login_payload"]):
        names = _ids(vectors)
        assert len(names) == len(set(names))


def test_every_frame_type_has_a_vector_in_its_direction() -> None:
    seen = {(v["direction"], v["decoded"]["t"]) for v in FRAMES}
    expected = {("client", _tag(c)) for c in F.CLIENT_FRAMES}
    expected |= {("server", _tag(c)) for c in F.SERVER_FRAMES}
    assert expected - seen == set()
    assert seen - expected == set()


def test_every_optional_field_has_a_vector_with_it_and_one_without_it() -> None:
    for cls in (*F.CLIENT_FRAMES, *F.SERVER_FRAMES):
        info = msgspec.inspect.type_info(cls)
        decoded = [v["decoded"] for v in FRAMES if v["decoded"]["t"] == _tag(cls)]
        for field in info.fields:
            if field.required:
                continue
            assert any(field.encode_name in d for d in decoded), (cls.__name__, field.name)
            assert any(field.encode_name not in d for d in decoded), (cls.__name__, field.name)


def test_every_registered_kind_has_a_content_vector() -> None:
    assert {v["kind"] for v in KINDS} == set(kinds.KINDS - kinds.OPAQUE_KINDS)


def test_every_system_event_has_a_content_vector() -> None:
    events = {v["content"]["event"] for v in KINDS if v["kind"] == "system"}
    assert events == {
        "created",
        "joined",
        "left",
        "removed",
        "role",
        "renamed",
        "bot_access",
        "deleted",
    }


def test_committed_vectors_are_what_the_generator_writes_today() -> None:
    spec = importlib.util.spec_from_file_location("_chatd_vector_gen", VECTORS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for name, text in gen.build().items():
        assert (VECTORS / name).read_text(encoding="utf-8") == text, name


# --------------------------------------------------------------------------- frames


@pytest.mark.parametrize("vector", FRAMES, ids=_ids(FRAMES))
def test_decoding_the_vector_hex_gives_the_decoded_form(vector: dict[str, Any]) -> None:
    frame = _decode(vector["direction"], bytes.fromhex(vector["hex"]))
    assert _to_json_form(frame) == vector["decoded"]
    assert frame == _frame_of(vector)


@pytest.mark.parametrize("vector", FRAMES, ids=_ids(FRAMES))
def test_encoding_the_decoded_frame_gives_the_vector_hex_exactly(vector: dict[str, Any]) -> None:
    assert codec.encode(_frame_of(vector)).hex() == vector["hex"]


@pytest.mark.parametrize("vector", FRAMES, ids=_ids(FRAMES))
def test_a_frame_is_refused_in_the_other_direction(vector: dict[str, Any]) -> None:
    other = "server" if vector["direction"] == "client" else "client"
    with pytest.raises(ProtocolError) as err:
        _decode(other, bytes.fromhex(vector["hex"]))
    assert err.value.code == 2  # UNKNOWN_FRAME: frame names are unique across directions


@pytest.mark.parametrize("vector", FRAMES, ids=_ids(FRAMES))
def test_the_encoding_is_one_msgpack_map_with_t_first(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    raw = msgspec.msgpack.decode(data)
    assert isinstance(raw, dict)
    assert next(iter(raw)) == "t"
    assert list(raw) == list(vector["decoded"])


@pytest.mark.parametrize("vector", DECODE_ONLY, ids=_ids(DECODE_ONLY))
def test_non_canonical_encodings_decode_to_the_same_frame(vector: dict[str, Any]) -> None:
    frame = _decode(vector["direction"], bytes.fromhex(vector["hex"]))
    assert _to_json_form(frame) == vector["decoded"]
    assert codec.encode(frame).hex() != vector["hex"]


@pytest.mark.parametrize("vector", INVALID, ids=_ids(INVALID))
def test_invalid_vectors_are_rejected_with_their_error_code(vector: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as err:
        _decode(vector["direction"], bytes.fromhex(vector["hex"]))
    assert int(err.value.code) == vector["code"]


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("vector", AUTH["login_payload"], ids=_ids(AUTH["login_payload"]))
def test_login_payload_vector(vector: dict[str, Any]) -> None:
    inputs = vector["inputs"]
    payload = auth.login_payload(
        inputs["server"], bytes.fromhex(inputs["nonce"]), bytes.fromhex(inputs["device_key"])
    )
    assert payload.hex() == vector["payload"]
    _check_signature(vector, payload)


@pytest.mark.parametrize(
    "vector", AUTH["device_approval_payload"], ids=_ids(AUTH["device_approval_payload"])
)
def test_device_approval_payload_vector(vector: dict[str, Any]) -> None:
    inputs = vector["inputs"]
    payload = auth.device_approval_payload(
        inputs["server"], inputs["account"], bytes.fromhex(inputs["device_key"])
    )
    assert payload.hex() == vector["payload"]
    _check_signature(vector, payload)


@pytest.mark.parametrize(
    "vector", AUTH["bot_approval_payload"], ids=_ids(AUTH["bot_approval_payload"])
)
def test_bot_approval_payload_vector(vector: dict[str, Any]) -> None:
    inputs = vector["inputs"]
    payload = auth.bot_approval_payload(
        inputs["server"], inputs["handle"], bytes.fromhex(inputs["device_key"])
    )
    assert payload.hex() == vector["payload"]
    _check_signature(vector, payload)


def _check_signature(vector: dict[str, Any], payload: bytes) -> None:
    key = SigningKey(bytes.fromhex(vector["seed"]))
    assert key.public_key.hex() == vector["public_key"]
    signature = bytes.fromhex(vector["signature"])
    verify(key.public_key, signature, payload)
    assert key.sign(payload) == signature  # Ed25519 is deterministic


def test_login_vector_device_key_is_the_signing_key() -> None:
    for vector in AUTH["login_payload"]:
        assert vector["inputs"]["device_key"] == vector["public_key"]


def test_ed25519_matches_rfc_8032_test_1() -> None:
    """Section 7.1, TEST 1: pins our primitive to the standard, not only to itself."""
    key = SigningKey(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    )
    assert key.public_key.hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert key.sign(b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555f"
        "b8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


# --------------------------------------------------------------------------- kinds


@pytest.mark.parametrize("vector", KINDS, ids=_ids(KINDS))
def test_kind_body_vector_decodes_to_its_content(vector: dict[str, Any]) -> None:
    content = kinds.decode_content(vector["kind"], bytes.fromhex(vector["hex"]))
    assert _to_json_form(content) == vector["content"]


@pytest.mark.parametrize("vector", KINDS, ids=_ids(KINDS))
def test_kind_content_vector_encodes_to_its_body_exactly(vector: dict[str, Any]) -> None:
    content = msgspec.convert(
        _from_json_form(vector["content"]), kinds.CONTENT_TYPES[vector["kind"]]
    )
    assert kinds.encode_content(content) == (vector["kind"], bytes.fromhex(vector["hex"]))
