"""Web Push rules as plain code (SPEC.md 21.2-19.4): the endpoint allow-list, the public-address
check, the per-device windows (time passed in), and the payload's fixed size."""

from __future__ import annotations

import pytest
from chatproto import push as payload
from chatproto.errors import ProtocolError

from chatd.core.push import (
    DEFAULT_PUSH_SERVICES,
    PushRefused,
    Windows,
    address_allowed,
    check_endpoint,
    loopback_origin,
)
from chatd.settings import ConfigError, load_settings

GOOD = [
    "https://fcm.googleapis.com/fcm/send/dGVzdA:APA91b",
    "https://updates.push.services.mozilla.com/wpush/v2/gAAAAA",
    "https://web.push.apple.com/QGuQyavXutnMH",
    "https://wns2-by3p.notify.windows.com/w/?token=BQYAAA",
    "https://fcm.googleapis.com:443/x",
]


@pytest.mark.parametrize("url", GOOD)
def test_the_browsers_push_services_are_accepted(url: str) -> None:
    e = check_endpoint(url, DEFAULT_PUSH_SERVICES)
    assert e.secure and e.audience.startswith("https://") and "/" not in e.audience[8:]


@pytest.mark.parametrize(
    "url",
    [
        "http://fcm.googleapis.com/x",
        "https://127.0.0.1/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://2130706433/x",
        "https://0x7f.1/x",
        "https://127.1/x",
        "https://localhost/x",
        "https://push.localhost/x",
        "https://fcm.googleapis.com:8443/x",
        "https://a@fcm.googleapis.com/x",
        "https://fcm.googleapis.com.evil.example/x",
        "https://xfcm.googleapis.com/x",
        "https://fcm.googleapis.com/x#f",
        "https://fcm.googleapis.com/\x00",
        "https://fcm.googleapis.com/" + "a" * 1024,
        "ftp://fcm.googleapis.com/x",
        "",
    ],
)
def test_anything_else_is_refused(url: str) -> None:
    with pytest.raises(PushRefused):
        check_endpoint(url, DEFAULT_PUSH_SERVICES)


def test_loopback_test_origins_are_exact() -> None:
    allowed = ("http://127.0.0.1:8080",)
    assert not check_endpoint("http://127.0.0.1:8080/push/x", (), allowed).secure
    for url in ("http://127.0.0.1:80801/x", "http://127.0.0.1:8081/x", "http://localhost:8080/x"):
        with pytest.raises(PushRefused):
            check_endpoint(url, (), allowed)
    for bad in (
        "http://10.0.0.1:80",
        "https://127.0.0.1:1",
        "http://localhost:80",
        "http://127.0.0.1",
    ):
        with pytest.raises(ValueError, match=r"expected|loopback|origin"):
            loopback_origin(bad)
    with pytest.raises(ConfigError, match="insecure_endpoints"):
        load_settings(
            None, environ={}, flags={"push": {"insecure_endpoints": "http://10.1.2.3:80"}}
        )


def test_only_public_addresses_are_connected_to() -> None:
    for a in (
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fc00::1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::ffff:10.0.0.1",
        "x",
    ):
        assert not address_allowed(a), a
    for a in ("142.250.74.10", "2a00:1450:4001:80b::200a"):
        assert address_allowed(a), a


def test_one_push_per_window_and_a_cap_per_hour() -> None:
    w = Windows(interval=60, per_hour=3)
    t = 3600.0 * 100
    assert w.claim(1, t)
    assert not w.claim(1, t + 59)  # inside the window
    assert w.claim(2, t + 1)  # another device has its own
    assert w.claim(1, t + 61)
    w.reset(1)  # the device connected: its window ends at once
    assert w.claim(1, t + 62)
    w.reset(1)
    assert not w.claim(1, t + 63)  # but the hour's cap (3) holds
    assert w.claim(1, t + 3600)  # a new hour


def test_the_payload_says_only_something_new() -> None:
    assert payload.decode(payload.encode(None)) is None
    assert payload.decode(payload.encode(2**53 - 1)) == 2**53 - 1
    assert len(payload.encode(None)) == len(payload.encode(2**53 - 1)) == 64
    with pytest.raises(ProtocolError):
        payload.decode(b'{"t":"old"}')
