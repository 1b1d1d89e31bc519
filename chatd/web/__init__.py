"""The web client (clients/web/), served at ``/`` on the same port as ``/ws``, with no Node at run
time: ``npm run build`` in clients/web writes the bundle into ``chatd/web/static/`` (package
data, committed), and this module serves exactly the files found there.

Every answer carries a Content-Security-Policy that allows scripts, styles and connections from
this origin only (no inline script, no third-party origin), ``frame-ancestors 'none'`` and
``X-Frame-Options: DENY``. ``index.html`` (built with the bundle's Subresource Integrity hash)
is never cached; the bundle's name holds its content hash, so it is cached for good.
``sw.js``, the Web Push service worker (SPEC.md 21), keeps its name (a service worker is
registered by URL) and is revalidated like ``index.html``; it is same-origin, plain and small,
since a service worker cannot carry Subresource Integrity (``worker-src 'self'``).

A browser's WebSocket carries an ``Origin``: the page chatd serves has this server's own origin,
so ``allow_same_origin`` lets a handshake whose ``Origin`` names the host it was sent to through
(SPEC.md 1), besides the configured ``[server] origins``.
"""

from __future__ import annotations

import importlib.resources
import mimetypes
from http import HTTPStatus
from typing import Final
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Origin

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none'; "
    "form-action 'none'; "
    "frame-ancestors 'none'"
)
_SECURITY: Final = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
_FIXED: Final = frozenset({"index.html", "sw.js"})
"""Files whose names stay the same from build to build: never cached without asking."""
_TYPES: Final = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def _load() -> dict[str, tuple[bytes, str, str]]:
    """path -> (body, content type, cache control), for every file of the built bundle."""
    files: dict[str, tuple[bytes, str, str]] = {}
    root = importlib.resources.files(__name__).joinpath("static")
    if not root.is_dir():
        return files
    for entry in root.iterdir():
        name = entry.name
        if not entry.is_file() or name.startswith("."):
            continue
        ext = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        ctype = _TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/html"):
            ctype = "text/html; charset=utf-8"
        # index.html names the hashed bundle: always revalidated; hashed files never change.
        # sw.js (the Web Push service worker) keeps its name, so it is revalidated too.
        cache = "no-cache" if name in _FIXED else "public, max-age=31536000, immutable"
        files["/" + name] = (entry.read_bytes(), ctype, cache)
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


_FILES: Final = _load()


def serve(path: str) -> Response | None:
    """The answer for ``path`` if it is a file of the web app, else None."""
    found = _FILES.get(path)
    if found is None:
        return None
    body, ctype, cache = found
    headers = Headers(
        [
            ("Content-Type", ctype),
            ("Content-Length", str(len(body))),
            ("Cache-Control", cache),
            *_SECURITY,
        ]
    )
    return Response(HTTPStatus.OK.value, HTTPStatus.OK.phrase, headers, body)


def allow_same_origin(ws: ServerConnection, request: Request) -> None:
    """Accept this handshake's ``Origin`` if it names the host the request was sent to (the
    page chatd itself served), whatever ``[server] origins`` lists. Nothing else changes: an
    ``Origin`` of another host is still refused unless configured."""
    origin = request.headers.get("Origin")
    host = request.headers.get("Host")
    allowed = ws.protocol.origins
    if origin is None or host is None or allowed is None:
        return
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return
    if netloc and netloc.lower() == host.lower():
        ws.protocol.origins = [*allowed, Origin(origin)]
