"""The byte strings devices sign (SPEC.md "Signed payloads"), byte by byte, and Ed25519 use."""

from __future__ import annotations

import struct

import pytest
from chatproto import auth
from chatproto.e2e.primitives import SigningKey, is_valid_public_key, verify
from chatproto.errors import ErrorCode, SignatureError
from chatproto.limits import MAX_ID
from hypothesis import given
from hypothesis import strategies as st

servers = st.text(max_size=64)
keys32 = st.binary(min_size=32, max_size=32)
accounts = st.integers(1, MAX_ID)

KEY = SigningKey(bytes(range(32)))
OTHER = SigningKey(bytes(range(32, 64)))


def _u16(n: int) -> bytes:
    return struct.pack(">H", n)


def _parse_fields(rest: bytes, count: int) -> tuple[list[bytes], bytes]:
    fields = []
    for _ in range(count):
        (n,) = struct.unpack(">H", rest[:2])
        fields.append(rest[2 : 2 + n])
        rest = rest[2 + n :]
    return fields, rest


# --------------------------------------------------------------------------- layout


def test_login_payload_is_context_nul_then_length_prefixed_server_nonce_key() -> None:
    nonce, key = bytes(range(0xA0, 0xC0)), KEY.public_key
    payload = auth.login_payload("chat.example.org", nonce, key)
    expected = (
        b"chatd-login-v1"
        + b"\x00"
        + b"\x00\x10"
        + b"chat.example.org"
        + b"\x00\x20"
        + nonce
        + b"\x00\x20"
        + key
    )
    assert payload == expected
    assert len(payload) == 14 + 1 + 2 + 16 + 2 + 32 + 2 + 32


def test_device_approval_payload_is_context_nul_server_u64_account_key() -> None:
    key = OTHER.public_key
    payload = auth.device_approval_payload("chat.example.org", 0x0102030405, key)
    expected = (
        b"chatd-device-approval-v1"
        + b"\x00"
        + b"\x00\x10"
        + b"chat.example.org"
        + b"\x00\x00\x00\x01\x02\x03\x04\x05"
        + b"\x00\x20"
        + key
    )
    assert payload == expected


def test_the_server_name_is_utf8_and_its_prefix_counts_bytes() -> None:
    payload = auth.login_payload("é", bytes(32), bytes(32))
    assert payload[15:19] == b"\x00\x02\xc3\xa9"


@given(server=servers, nonce=keys32, key=keys32)
def test_login_payload_parses_back_to_its_inputs(server: str, nonce: bytes, key: bytes) -> None:
    payload = auth.login_payload(server, nonce, key)
    assert payload.startswith(auth.LOGIN_CONTEXT + b"\x00")
    fields, rest = _parse_fields(payload[len(auth.LOGIN_CONTEXT) + 1 :], 3)
    assert rest == b""
    assert fields == [server.encode(), nonce, key]


@given(server=servers, account=accounts, key=keys32)
def test_device_approval_payload_parses_back_to_its_inputs(
    server: str, account: int, key: bytes
) -> None:
    payload = auth.device_approval_payload(server, account, key)
    body = payload[len(auth.DEVICE_APPROVAL_CONTEXT) + 1 :]
    (server_bytes,), rest = _parse_fields(body, 1)
    assert server_bytes == server.encode()
    assert struct.unpack(">Q", rest[:8])[0] == account
    (key_bytes,), rest = _parse_fields(rest[8:], 1)
    assert (key_bytes, rest) == (key, b"")


@given(server=servers, nonce=keys32, key=keys32, account=accounts)
def test_a_login_payload_is_never_a_device_approval_payload(
    server: str, nonce: bytes, key: bytes, account: int
) -> None:
    login = auth.login_payload(server, nonce, key)
    approval = auth.device_approval_payload(server, account, key)
    assert login != approval
    assert not login.startswith(auth.DEVICE_APPROVAL_CONTEXT)
    assert not approval.startswith(auth.LOGIN_CONTEXT + b"\x00")


def test_the_contexts_are_the_spec_strings() -> None:
    assert auth.LOGIN_CONTEXT == b"chatd-login-v1"
    assert auth.DEVICE_APPROVAL_CONTEXT == b"chatd-device-approval-v1"


# --------------------------------------------------------------------------- signatures


def test_a_login_signature_verifies_for_its_own_connection_only() -> None:
    nonce_1, nonce_2 = bytes([1]) * 32, bytes([2]) * 32
    sig = KEY.sign(auth.login_payload("s", nonce_1, KEY.public_key))
    verify(KEY.public_key, sig, auth.login_payload("s", nonce_1, KEY.public_key))
    with pytest.raises(SignatureError):  # replayed on a connection with another nonce
        verify(KEY.public_key, sig, auth.login_payload("s", nonce_2, KEY.public_key))
    with pytest.raises(SignatureError):  # replayed on another server
        verify(KEY.public_key, sig, auth.login_payload("t", nonce_1, KEY.public_key))


def test_a_signature_does_not_verify_under_another_key() -> None:
    payload = auth.login_payload("s", bytes(32), KEY.public_key)
    with pytest.raises(SignatureError) as err:
        verify(OTHER.public_key, KEY.sign(payload), payload)
    assert err.value.code == ErrorCode.AUTH_FAILED


@pytest.mark.parametrize("bit", [0, 7, 100, 511])
def test_a_flipped_signature_bit_does_not_verify(bit: int) -> None:
    payload = auth.device_approval_payload("s", 1, OTHER.public_key)
    sig = bytearray(KEY.sign(payload))
    sig[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SignatureError):
        verify(KEY.public_key, bytes(sig), payload)


@pytest.mark.parametrize("public_key", [b"", bytes(31), bytes(33)])
def test_a_malformed_public_key_is_a_signature_error(public_key: bytes) -> None:
    assert not is_valid_public_key(public_key)
    with pytest.raises(SignatureError):
        verify(public_key, bytes(64), b"m")


def test_a_short_signature_is_a_signature_error() -> None:
    with pytest.raises(SignatureError):
        verify(KEY.public_key, KEY.sign(b"m")[:63], b"m")


def test_signing_keys_are_32_byte_seeds_with_32_byte_public_keys() -> None:
    fresh = SigningKey.generate()
    assert len(fresh.seed) == 32
    assert len(fresh.public_key) == 32
    assert SigningKey(fresh.seed).public_key == fresh.public_key
    assert is_valid_public_key(fresh.public_key)
    assert len(fresh.sign(b"m")) == 64


def test_ed25519_signatures_are_deterministic() -> None:
    assert KEY.sign(b"m") == SigningKey(KEY.seed).sign(b"m")
    assert KEY.sign(b"m") != KEY.sign(b"n")
