"""chatd serves the web app: security headers, Subresource Integrity, cache-busting names, the
same-origin WebSocket; and the committed bundle is exactly what the lock rebuilds."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import RunningServer
from playwright.async_api import Browser
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from chatd import web

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "clients" / "web"
STATIC = ROOT / "chatd" / "web" / "static"


async def get(server: RunningServer, path: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.app.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.app.port}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    writer.close()
    return status, headers, body


async def test_the_app_is_served_with_csp_sri_and_hashed_names(chatd: RunningServer) -> None:
    status, headers, html = await get(chatd, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    csp = headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp  # no inline script, no other origin
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-cache"
    assert b"<script>" not in html  # no inline script at all
    scripts = re.findall(rb'src="(/app-[0-9a-f]{16}\.js)" integrity="(sha384-[^"]+)"', html)
    assert len(scripts) == 1
    path, sri = scripts[0]
    status, headers, js = await get(chatd, path.decode())
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert sri.decode() == "sha384-" + base64.b64encode(hashlib.sha384(js).digest()).decode()
    assert path.decode()[5:21] == hashlib.sha256(js).hexdigest()[:16]  # the name is the content
    assert (await get(chatd, "/app-0000000000000000.js"))[0] == 404
    assert (await get(chatd, "/../pyproject.toml"))[0] == 404


async def test_the_pages_own_origin_may_open_the_socket_and_no_other(chatd: RunningServer) -> None:
    proto = [Subprotocol("chatd.v1")]
    own = Origin(f"http://127.0.0.1:{chatd.app.port}")
    ws = await connect(chatd.url, subprotocols=proto, origin=own)
    await ws.close()
    with pytest.raises(InvalidStatus) as refused:
        await connect(chatd.url, subprotocols=proto, origin=Origin("http://127.0.0.1:1"))
    assert refused.value.response.status_code == 403


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clients/web copied, installed from package-lock.json (npm ci) and built: the app into
    ``out/`` and the vector tests into ``clients/web/dist-test/``."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("no node/npm here: the committed bundle is served as it is")
    root = tmp_path_factory.mktemp("web")
    src = root / "clients" / "web"
    shutil.copytree(WEB, src, ignore=shutil.ignore_patterns("node_modules", "dist-test"))
    (root / "protocol").symlink_to(ROOT / "protocol")  # the vectors, at ../../protocol
    run(src, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
    run(src, node, "build.mjs", "--out", str(root / "out"))
    run(src, node, "build.mjs", "--tests")
    return root


def run(cwd: Path, *cmd: str) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_committed_bundle_is_exactly_what_the_lock_builds(rebuilt: Path) -> None:
    built = {p.name: p.read_bytes() for p in (rebuilt / "out").iterdir()}
    committed = {p.name: p.read_bytes() for p in STATIC.iterdir()}
    assert built.keys() == committed.keys(), "rebuild the bundle: cd clients/web && npm run build"
    assert [n for n in built if built[n] != committed[n]] == []
    assert web.serve("/") is not None


def test_every_vector_passes_under_nodes_test_runner(rebuilt: Path) -> None:
    report = run(rebuilt / "clients" / "web", "node", "--test", "dist-test/")
    assert "# fail 0" in report and "# pass 0" not in report


async def test_every_vector_passes_in_chromium(
    rebuilt: Path, chatd: RunningServer, browser: Browser
) -> None:
    """The same tests, in the page: Chromium's WebCrypto and the bundled libraries."""
    vectors = {
        str(p.relative_to(ROOT / "protocol" / "vectors")): json.loads(p.read_text())
        for p in (ROOT / "protocol" / "vectors").rglob("*.json")
    }
    bundle = (rebuilt / "clients" / "web" / "dist-test" / "browser" / "vectors.js").read_text()
    ctx = await browser.new_context(bypass_csp=True)  # a secure context of the app's origin
    page = await ctx.new_page()
    await page.goto(chatd.http + "/")
    await page.evaluate("v => { window.VECTORS = v }", vectors)
    await page.add_script_tag(content=bundle)
    results = await page.evaluate("runVectorTests()")
    assert len(results) == 21
    assert [r for r in results if r["error"] is not None] == []
