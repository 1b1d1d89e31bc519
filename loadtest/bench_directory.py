#!/usr/bin/env python3
"""Directory benchmark (issue 19): ``search_channels`` latency at N public channels.

Starts ``chatd serve`` itself (``chatload.procstat.LocalServer``: a temporary SQLite file, the
frame limit raised, the search budget off so that the run measures the index, not the limit),
creates ``--channels`` public channels over the wire (titles and descriptions of words drawn
from a fixed vocabulary with a Zipf-like skew, so some words are in thousands of channels and
most in a few), then times ``--queries`` searches one after the other from one connection:
one-word prefixes of 3 to 6 letters, whole words and two-word queries, each taking its first
page (20). Prints and writes p50/p99/max per query type. Like every load tool it speaks only the
wire (the SDK's ``client.channels``).

    .venv/bin/python loadtest/bench_directory.py --channels 100000 --queries 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from chatclient import Client
from chatload.procstat import LocalServer


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(4, 10))))
    return sorted(words)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    vocab = vocabulary(rng, args.vocab)
    weights = [1 / (i + 1) for i in range(len(vocab))]  # Zipf-like: word i in ~1/i of titles
    os.environ["CHATD_LIMITS__SEARCHES_PER_MINUTE"] = "0"
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalServer(Path(tmp), cpu=None, synchronous="NORMAL")
        try:
            await server.wait_ready()
            async with Client(server.url, encrypt=False, request_timeout=120) as c:
                await c.register("directory_owner", "Owner")
                started = time.monotonic()
                made = 0
                while made < args.channels:
                    batch = min(500, args.channels - made)
                    await asyncio.gather(
                        *(
                            c.channels.create(
                                f"ch{made + i}",
                                " ".join(rng.choices(vocab, weights, k=3)).title(),
                                " ".join(rng.choices(vocab, weights, k=8)),
                            )
                            for i in range(batch)
                        )
                    )
                    made += batch
                create_s = time.monotonic() - started
                print(f"{made} channels created in {create_s:.1f} s", flush=True)
                kinds: dict[str, list[float]] = {"prefix": [], "word": [], "two_words": []}
                sizes: dict[str, list[int]] = {k: [] for k in kinds}
                for q in range(args.queries):
                    kind = list(kinds)[q % 3]
                    w = rng.choices(vocab, weights)[0]
                    if kind == "prefix":
                        query = w[: rng.randint(3, min(6, len(w)))]
                    elif kind == "word":
                        query = w
                    else:
                        query = f"{w} {rng.choices(vocab, weights)[0][:4]}"
                    t0 = time.perf_counter()
                    items, _ = await c.channels.search(query)
                    kinds[kind].append((time.perf_counter() - t0) * 1000)
                    sizes[kind].append(len(items))
        finally:
            server.stop()
    result: dict[str, Any] = {
        "channels": args.channels,
        "queries": args.queries,
        "vocabulary": args.vocab,
        "create_seconds": round(create_s, 1),
        "backend": "sqlite",
    }
    for kind, ms in kinds.items():
        result[kind] = {
            "p50_ms": round(percentile(ms, 50), 2),
            "p99_ms": round(percentile(ms, 99), 2),
            "max_ms": round(max(ms), 2),
            "mean_results": round(sum(sizes[kind]) / len(sizes[kind]), 1),
        }
        print(f"{kind:>9}: {result[kind]}")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=1500)
    p.add_argument("--vocab", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    result = asyncio.run(run(args))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
