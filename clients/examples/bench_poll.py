"""How many mini-app invocations per second one bot process answers, round trip.

Starts chatd (a child process, a fresh SQLite file) and ``poll_bot.py`` (another child process),
then ``--users`` SDK clients in this process, each in its own conversation with the bot (a
direct one, or with ``--where group`` a group the bot was added to, where its access is
``addressed``: invocations are addressed to it and encrypted under the addressed sender key),
each invoking ``poll.vote`` and waiting for its ``miniapp.result`` before the next (closed loop).
Every invocation is end-to-end encrypted both ways; the bot answers with a result and edits the
poll's tally message (two sends). Prints invocations/s, the round-trip p50/p99 and the CPU each
process used (from /proc).

    .venv/bin/python clients/examples/bench_poll.py --users 10 --seconds 10 \
        --server-cpus 0 --bot-cpus 1 --users-cpus 1

chatd's per-connection rate limit caps what one connection may send (``[limits]
bot_frames_per_second``, 500 by default for a bot account's connections, 50 for users'): at two
sends per vote, one bot answers at most ~250 votes/s under the defaults (more in a burst).
``--frames-per-second`` raises both for the run (default: 100,000) to measure the bot itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from chatclient import Client, Message
from chatproto import kinds

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_for(text: bytes, proc: asyncio.subprocess.Process) -> None:
    """Until ``proc`` prints a line containing ``text``."""
    assert proc.stdout is not None
    while True:
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError("the process exited")
        if text in line:
            return


def pinned(cpus: str) -> list[str]:
    """``taskset -c CPUS`` as a command prefix (nothing when no CPUs are given)."""
    if not cpus:
        return []
    taskset = shutil.which("taskset")
    if taskset is None:
        raise SystemExit("taskset is needed to pin processes (util-linux)")
    return [taskset, "-c", cpus]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(args: argparse.Namespace) -> None:
    if args.users_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.users_cpus.split(",")})
    tmp = Path(tempfile.mkdtemp(prefix="bench_poll_"))
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    env = {**os.environ, "CHATD_LIMITS__FRAMES_PER_SECOND": str(args.frames_per_second)}
    env["CHATD_LIMITS__FRAME_BURST"] = str(args.frames_per_second)
    env["CHATD_LIMITS__BOT_FRAMES_PER_SECOND"] = str(args.frames_per_second)
    env["CHATD_LIMITS__BOT_FRAME_BURST"] = str(args.frames_per_second)
    server = await asyncio.create_subprocess_exec(
        *pinned(args.server_cpus),
        *(sys.executable, "-m", "chatd", "serve", "--port", str(port), "--db", str(tmp / "c.db")),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    bot_proc: asyncio.subprocess.Process | None = None
    try:
        for _ in range(400):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        bot_proc = await asyncio.create_subprocess_exec(
            *pinned(args.bot_cpus),
            sys.executable,
            str(HERE / "poll_bot.py"),
            "--url",
            url,
            cwd=tmp,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(30):
            await wait_for(b"serving", bot_proc)
        async with contextlib.AsyncExitStack() as stack:
            users = []
            for i in range(args.users):
                c = await stack.enter_async_context(Client(url))
                await c.register(f"user{i}", f"User {i}")
                users.append(c)
            bot = await users[0].lookup("poll_bot")
            if args.where == "group":
                convs = []
                for i, c in enumerate(users):
                    conv = (await c.create("group", f"Poll {i}")).conv
                    await c.add_bot(conv, bot)  # access "addressed"
                    convs.append(conv)
            else:
                convs = [await c.direct(bot) for c in users]
            polls = [
                str((await c.send_text(v, "/poll Q? | A | B")).seq)
                for c, v in zip(users, convs, strict=True)
            ]
            latencies: list[float] = []
            unanswered: list[str] = []
            stop_at = 0.0

            streams = [c.events().__aiter__() for c in users]
            counts = [0] * len(users)  # invocation ids never repeat: a repeat is a retry

            async def vote(i: int) -> None:
                c, conv, poll, events = users[i], convs[i], polls[i], streams[i]
                while time.monotonic() < stop_at:
                    n = counts[i] = counts[i] + 1
                    inv = f"{i}-{n}"
                    t0 = time.perf_counter()
                    params: dict[str, str | int | bool] = {"poll": poll, "option": 1 + n % 2}
                    invoke = kinds.MiniappInvoke(
                        invocation_id=inv, app="poll", action="vote", params=params
                    )
                    try:
                        async with asyncio.timeout(10):
                            await c.send(conv, invoke)
                            while True:
                                ev = await anext(events)
                                if (
                                    isinstance(ev, Message)
                                    and isinstance(ev.content, kinds.MiniappResult)
                                    and ev.content.invocation_id == inv
                                ):
                                    break
                    except TimeoutError:
                        unanswered.append(inv)
                        continue
                    latencies.append(time.perf_counter() - t0)

            # Warm up (sender keys exchanged, first results), then measure.
            stop_at = time.monotonic() + 1.0
            await asyncio.gather(*(vote(i) for i in range(args.users)))
            latencies.clear()
            unanswered.clear()
            started = time.monotonic()
            cpu0 = {name: cpu_seconds(p.pid) for name, p in (("server", server), ("bot", bot_proc))}
            own0 = time.process_time()
            stop_at = started + args.seconds
            await asyncio.gather(*(vote(i) for i in range(args.users)))
            elapsed = time.monotonic() - started
            cpu = {
                name: cpu_seconds(p.pid) - cpu0[name]
                for name, p in (("server", server), ("bot", bot_proc))
            }
            cpu["users"] = time.process_time() - own0
        latencies.sort()
        busy = ", ".join(f"{name} {100 * used / elapsed:.0f}%" for name, used in cpu.items())
        print(
            f"where={args.where} users={args.users} invocations={len(latencies)} in"
            f" {elapsed:.1f}s: {len(latencies) / elapsed:.0f}/s round trip,"
            f" p50 {latencies[len(latencies) // 2] * 1000:.1f} ms,"
            f" p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms,"
            f" {len(unanswered)} unanswered within 10 s; CPU of a core: {busy}"
        )
    finally:
        if bot_proc is not None and bot_proc.returncode is None:
            bot_proc.terminate()
            await bot_proc.wait()
        server.terminate()
        await server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--frames-per-second", type=float, default=100_000.0)
    parser.add_argument("--where", choices=("direct", "group"), default="direct")
    parser.add_argument("--server-cpus", default="", help="taskset CPU list for chatd")
    parser.add_argument("--bot-cpus", default="", help="taskset CPU list for the bot")
    parser.add_argument("--users-cpus", default="", help="CPU list for this process")
    asyncio.run(main(parser.parse_args()))
