"""A push service for tests: RFC 8030's receiving side on loopback, which checks every push the
way a browser's push service and the browser would.

The browser's own push service cannot be reached from here, so each test subscription is made
here as a browser makes one: a P-256 key pair and a 16-byte auth secret (RFC 8291), behind an
endpoint URL of this server. Each POST is checked (RFC 8292: the VAPID JWT's ES256 signature
under the key the ``Authorization`` header names, which must be the chatd server's, its ``aud``
this origin, its ``exp`` within 24 hours; RFC 8030: ``TTL``; RFC 8188: ``aes128gcm``), then
decrypted with the subscription's private key through http_ece, and recorded with what it held.
A test can script the answers per subscription (a 503 with ``Retry-After``, a 410...).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from dataclasses import dataclass, field

import http_ece  # type: ignore[import-untyped]
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Subscription:
    """What a browser's ``PushManager.subscribe`` gives, and the private half it keeps."""

    token: str
    endpoint: str
    key: ec.EllipticCurvePrivateKey
    auth: bytes

    @property
    def p256dh(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )


@dataclass
class Push:
    """One push as it arrived: the decrypted plaintext, the raw body, the headers, the claims."""

    token: str
    plaintext: bytes
    body: bytes
    headers: dict[str, str]
    claims: dict[str, object]
    vapid_key: bytes
    at: float = field(default_factory=time.monotonic)


class TestPushService:
    """``await start()``, ``subscribe()``, then read ``pushes`` / ``wait_for``."""

    __test__ = False

    def __init__(self) -> None:
        self.pushes: list[Push] = []
        self.requests: list[tuple[str, int]] = []
        """Every POST (token, the status answered), valid or not."""
        self.rejected: list[str] = []
        """Why each refused POST was refused (a test asserts this stays empty)."""
        self.answers: dict[str, list[tuple[int, dict[str, str]]]] = {}
        """Scripted answers per token, used in order (then 201)."""
        self._subs: dict[str, Subscription] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._arrived = asyncio.Event()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/push/{token}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def subscribe(self) -> Subscription:
        token = base64.urlsafe_b64encode(os.urandom(12)).decode()
        sub = Subscription(
            token,
            f"{self.origin}/push/{token}",
            ec.generate_private_key(ec.SECP256R1()),
            os.urandom(16),
        )
        self._subs[token] = sub
        return sub

    def of(self, sub: Subscription) -> list[Push]:
        return [p for p in self.pushes if p.token == sub.token]

    async def wait_for(self, sub: Subscription, n: int, timeout: float = 20.0) -> list[Push]:
        """The first ``n`` pushes of ``sub``, once they have arrived (AssertionError at the
        deadline)."""
        deadline = time.monotonic() + timeout
        while len(self.of(sub)) < n:
            left = deadline - time.monotonic()
            assert left > 0, f"{len(self.of(sub))} pushes of {n} arrived; rejected: {self.rejected}"
            self._arrived.clear()
            try:
                async with asyncio.timeout(min(left, 0.5)):
                    await self._arrived.wait()
            except TimeoutError:
                pass
        return self.of(sub)[:n]

    async def _receive(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        scripted = self.answers.get(token)
        status, headers = scripted.pop(0) if scripted else (201, {})
        self.requests.append((token, status))
        body = await request.read()
        try:
            push = self._check(token, request, body)
        except AssertionError as exc:
            self.rejected.append(str(exc))
            self._arrived.set()
            return web.Response(status=400, text=str(exc))
        if status == 201:
            self.pushes.append(push)
        self._arrived.set()
        return web.Response(status=status, headers=headers)

    def _check(self, token: str, request: web.Request, body: bytes) -> Push:
        sub = self._subs.get(token)
        assert sub is not None, "unknown subscription"
        h = request.headers
        assert h.get("Content-Encoding") == "aes128gcm", "RFC 8291 needs aes128gcm"
        assert h.get("TTL", "").isdigit(), "RFC 8030 5.2: TTL is required"
        scheme, _, params = h.get("Authorization", "").partition(" ")
        assert scheme.lower() == "vapid", "RFC 8292: vapid authorization"
        fields = dict(p.strip().split("=", 1) for p in params.split(","))
        jwt, k = fields["t"], b64d(fields["k"])
        claims = verify_jwt(jwt, k)
        assert claims.get("aud") == self.origin, f"aud {claims.get('aud')!r}"
        exp = claims.get("exp")
        assert isinstance(exp, int) and time.time() < exp <= time.time() + 86_400, "exp"
        sub_claim = claims.get("sub")
        assert isinstance(sub_claim, str) and sub_claim.startswith(("mailto:", "https:")), "sub"
        plaintext = http_ece.decrypt(
            body, private_key=sub.key, auth_secret=sub.auth, version="aes128gcm"
        )
        return Push(token, plaintext, body, dict(h), claims, k)


def verify_jwt(jwt: str, public: bytes) -> dict[str, object]:
    """The claims of an ES256 JWT signed by the P-256 key ``public`` (AssertionError if not)."""
    head, payload, sig = jwt.split(".")
    header = json.loads(b64d(head))
    assert header.get("alg") == "ES256", f"alg {header.get('alg')!r}"
    raw = b64d(sig)
    assert len(raw) == 64, "ES256 signatures are r || s, 64 bytes"
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
    der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    try:
        key.verify(der, f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError("the VAPID JWT's signature does not verify") from None
    claims: dict[str, object] = json.loads(b64d(payload))
    return claims
