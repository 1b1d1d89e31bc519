"""Media throughput, server CPU per MB and memory bounds: a large (sparse) file sent with the SDK
through a real chatd (encrypt + tus upload, then download + digest check + decrypt), against
``curl`` of the same file from ``python -m http.server`` (the reference), measured in the same
run. chatd and http.server are pinned to core 0; the SDK and curl to core 1.

    .venv/bin/python loadtest/bench_media.py [--mb 1024] [--json out.json]

Reports: upload and download MB/s (of the file's plaintext size), server CPU seconds per MB
(utime + stime from /proc/PID/stat), server peak RSS (VmHWM), and the SDK process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chatclient import Client, Message
from chatproto import kinds

TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def spawn(cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    """A server process pinned to core 0."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    os.sched_setaffinity(proc.pid, {0})
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(30)


async def wait_port(port: int) -> None:
    for _ in range(400):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


async def bench_chatd(work: Path, src: Path, mb: float) -> dict[str, Any]:
    port = free_port()
    env = {
        **os.environ,
        "CHATD_MEDIA__MAX_FILE_BYTES": str(4 * 1024**3),
        "CHATD_MEDIA__MAX_BYTES_PER_DAY": str(16 * 1024**3),
        "CHATD_MEDIA__MAX_STORED_BYTES": str(16 * 1024**3),
        "CHATD_LOG__LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "chatd", "serve", "--port", str(port), "--db", str(work / "b.db")]
    proc = spawn(cmd, env=env)
    try:
        await wait_port(port)
        url = f"ws://127.0.0.1:{port}/ws"
        async with Client(url) as a, Client(url) as b:
            await a.register("alice", "Alice")
            await b.register("bob", "Bob")
            conv = (await a.create("group", "Bench", [b.account])).conv
            c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            await a.send_file(conv, src)
            up_s, up_cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - c0
            m: Message | None = None
            while m is None:
                for ev in b.events_nowait():
                    if isinstance(ev, Message) and isinstance(ev.content, kinds.Attachment):
                        m = ev
                await asyncio.sleep(0.01)
            c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            await b.download(m, work / "out.bin")
            down_s, down_cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - c0
        same = _same(src, work / "out.bin")
        return {
            "upload_mb_s": round(mb / up_s, 1),
            "download_mb_s": round(mb / down_s, 1),
            "server_cpu_ms_per_mb_upload": round(up_cpu / mb * 1000, 2),
            "server_cpu_ms_per_mb_download": round(down_cpu / mb * 1000, 2),
            "server_peak_rss_mb": round(peak_rss_mb(proc.pid), 1),
            "round_trip_identical": same,
        }
    finally:
        stop(proc)


def _same(a: Path, b: Path) -> bool:
    with a.open("rb") as x, b.open("rb") as y:
        while True:
            p, q = x.read(1 << 20), y.read(1 << 20)
            if p != q:
                return False
            if not p:
                return True


async def bench_reference(work: Path, src: Path, mb: float) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    proc = spawn(cmd, cwd=src.parent)
    try:
        await wait_port(port)
        c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        curl = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-o", str(work / "ref.bin"), f"http://127.0.0.1:{port}/{src.name}"
        )
        await curl.wait()
        secs, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - c0
        return {
            "download_mb_s": round(mb / secs, 1),
            "server_cpu_ms_per_mb_download": round(cpu / mb * 1000, 2),
            "server_peak_rss_mb": round(peak_rss_mb(proc.pid), 1),
        }
    finally:
        stop(proc)


async def run(mb: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        work = Path(tmp)
        src_dir = work / "files"
        src_dir.mkdir()
        src = src_dir / "big.bin"
        with src.open("wb") as f:  # sparse-ish: 1 MiB of data every 16 MiB, holes between
            f.truncate(mb * 1024 * 1024)
            for off in range(0, mb * 1024 * 1024, 16 * 1024 * 1024):
                f.seek(off)
                f.write(os.urandom(1024 * 1024))
        ref = await bench_reference(work, src, mb)
        chatd = await bench_chatd(work, src, mb)
        client_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {
            "file_mb": mb,
            "chatd": chatd,
            "http_server_and_curl": ref,
            "sdk_peak_rss_mb": round(client_rss, 1),
        }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--mb", type=int, default=1024)
    p.add_argument("--json")
    a = p.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed for the reference")
    os.sched_setaffinity(0, {1} if os.cpu_count() and os.cpu_count() > 1 else {0})  # type: ignore[operator]
    result = asyncio.run(run(a.mb))
    print(json.dumps(result, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
