"""Provisioning: register the scenario's accounts (real Ed25519 device keys, chatd.v1 register
handshake), link their extra devices (``devices_per_account``: ``link_device``, approved by the
first device's key), and create its conversations, pipelined; save it to a JSON file to reuse
across runs.

Accounts register, then extra devices link, on their own connections (up to ``concurrency`` at a
time) and disconnect, so
that creating conversations does not fan ``joined`` system messages out to thousands of live
connections; then each owner logs in once and pipelines its ``create_conv`` (256 members at
most) and ``invite`` requests (the rest of a big channel).

The file holds device key seeds: it is test data for a test deployment, never real keys.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey

from .proto import Client, Stats, gather_limited, with_id
from .scenario import ConvPlan, Scenario, plan_conversations

MAX_CREATE_MEMBERS = 256
PIPELINE = 1000


@dataclass
class Device:
    device: int
    seed: bytes


@dataclass
class Account:
    i: int
    handle: str
    account: int
    device: int  # the first device (registered with the account)
    seed: bytes
    linked: list[Device] = field(default_factory=list)  # devices added with link_device

    def devices(self, n: int) -> list[Device]:
        """The account's first ``n`` devices, the registering one first."""
        return [Device(self.device, self.seed), *self.linked][:n]


@dataclass
class Conversation:
    conv: int
    type: str
    members: list[int]  # account indexes
    senders: list[int]
    block: int


@dataclass
class Provisioning:
    scenario: str
    tag: str
    accounts: list[Account]
    convs: list[Conversation]
    seconds: float = 0.0

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps(
                {
                    "version": 2,
                    "scenario": self.scenario,
                    "tag": self.tag,
                    "seconds": round(self.seconds, 3),
                    "accounts": [
                        {
                            "i": a.i,
                            "handle": a.handle,
                            "account": a.account,
                            "device": a.device,
                            "seed": a.seed.hex(),
                            "linked": [
                                {"device": d.device, "seed": d.seed.hex()} for d in a.linked
                            ],
                        }
                        for a in self.accounts
                    ],
                    "convs": [
                        {
                            "conv": c.conv,
                            "type": c.type,
                            "members": c.members,
                            "senders": c.senders,
                            "block": c.block,
                        }
                        for c in self.convs
                    ],
                }
            )
        )

    @classmethod
    def load(cls, path: str | Path) -> Provisioning:
        d = json.loads(Path(path).read_text())
        return cls(
            scenario=d["scenario"],
            tag=d["tag"],
            accounts=[
                Account(
                    a["i"],
                    a["handle"],
                    a["account"],
                    a["device"],
                    bytes.fromhex(a["seed"]),
                    [Device(x["device"], bytes.fromhex(x["seed"])) for x in a.get("linked", [])],
                )
                for a in d["accounts"]
            ],
            convs=[
                Conversation(c["conv"], c["type"], c["members"], c["senders"], c["block"])
                for c in d["convs"]
            ],
            seconds=d.get("seconds", 0.0),
        )

    def check(self, s: Scenario) -> None:
        if len(self.accounts) < s.accounts:
            raise SystemExit(
                f"provisioning has {len(self.accounts)} accounts, scenario wants {s.accounts}"
            )
        short = [
            a.i for a in self.accounts[: s.accounts] if 1 + len(a.linked) < s.devices_per_account
        ]
        if short:
            raise SystemExit(
                f"provisioning has fewer than {s.devices_per_account} devices for"
                f" {len(short)} account(s); provision again"
            )
        want = len(plan_conversations(s)) if s.kind == "messaging" else 0
        if len(self.convs) != want:
            raise SystemExit(f"provisioning has {len(self.convs)} conversations, scenario {want}")


def url_for(targets: tuple[str, ...] | list[str], i: int) -> str:
    return targets[i % len(targets)]


async def register_accounts(
    targets: tuple[str, ...] | list[str], n: int, tag: str, concurrency: int = 200
) -> list[Account]:
    stats = Stats()

    async def one(i: int) -> Account:
        c = Client(i, url_for(targets, i), stats)
        handle = f"l{tag}_{i}"
        await c.open(register_handle=handle)
        await c.close()
        return Account(i, handle, c.account, c.device, c.key.seed)

    return await gather_limited([one(i) for i in range(n)], concurrency)


async def link_devices(
    targets: tuple[str, ...] | list[str],
    accounts: list[Account],
    devices_per_account: int,
    concurrency: int = 200,
) -> None:
    """Give every account ``devices_per_account`` devices: each missing one links a fresh key
    with ``link_device`` on its own connection, approved by the account's first device."""
    stats = Stats()
    todo = [
        (a, d) for a in accounts for d in range(1 + len(a.linked), devices_per_account)
    ]  # fmt: skip

    async def one(a: Account, d: int) -> tuple[Account, int, Device]:
        conn = a.i * devices_per_account + d
        c = Client(conn, url_for(targets, conn), stats, account=a.account)
        await c.open(link=(a.handle, a.device, SigningKey(a.seed)))
        await c.close()
        return a, d, Device(c.device, c.key.seed)

    done = await gather_limited([one(a, d) for a, d in todo], concurrency)
    for a, _d, dev in sorted(done, key=lambda x: (x[0].i, x[1])):
        a.linked.append(dev)


async def create_conversations(
    targets: tuple[str, ...] | list[str], accounts: list[Account], plans: list[ConvPlan]
) -> list[Conversation]:
    by_owner: dict[int, list[tuple[int, ConvPlan]]] = {}
    for k, p in enumerate(plans):
        by_owner.setdefault(p.members[0], []).append((k, p))
    out: list[Conversation | None] = [None] * len(plans)
    stats = Stats()

    async def owner(i: int, mine: list[tuple[int, ConvPlan]]) -> None:
        a = accounts[i]
        c = Client(i, url_for(targets, i), stats, seed=a.seed, device=a.device)
        await c.open()
        try:
            futs = []
            for k, p in mine:
                others = [accounts[m].account for m in p.members[1:]]
                futs.append(
                    (
                        k,
                        p,
                        others[MAX_CREATE_MEMBERS:],
                        c.request_nowait(
                            with_id(
                                F.CreateConv,
                                kind=p.type,
                                title="" if p.type == "direct" else f"chatload {p.type}",
                                members=others[:MAX_CREATE_MEMBERS],
                            )
                        ),
                    )
                )
            for k, p, rest, fut in futs:
                info = await asyncio.wait_for(fut, 120)
                if not isinstance(info, F.Conv):
                    raise RuntimeError(f"create_conv failed: {info!r}")
                conv = info.info.conv
                for start in range(0, len(rest), PIPELINE):
                    batch = [
                        c.request_nowait(with_id(F.Invite, conv=conv, account=acc))
                        for acc in rest[start : start + PIPELINE]
                    ]
                    for r in await asyncio.gather(*batch):
                        if isinstance(r, F.Error) and r.code != 22:  # CONFLICT: already in
                            raise RuntimeError(f"invite failed: {r!r}")
                out[k] = Conversation(conv, p.type, list(p.members), list(p.senders), p.block)
        finally:
            await c.close()

    await gather_limited([owner(i, m) for i, m in by_owner.items()], 100)
    return [c for c in out if c is not None]


async def provision(s: Scenario, targets: tuple[str, ...] | None = None) -> Provisioning:
    t0 = time.monotonic()
    tg = targets or s.targets
    tag = os.urandom(3).hex()
    accounts = await register_accounts(tg, s.accounts, tag)
    if s.devices_per_account > 1:
        await link_devices(tg, accounts, s.devices_per_account)
    plans = plan_conversations(s) if s.kind == "messaging" else []
    convs = await create_conversations(tg, accounts, plans)
    return Provisioning(s.name, tag, accounts, convs, time.monotonic() - t0)


def provisioning_summary(p: Provisioning) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for c in p.convs:
        kinds[c.type] = kinds.get(c.type, 0) + 1
    return {
        "accounts": len(p.accounts),
        "devices": sum(1 + len(a.linked) for a in p.accounts),
        "conversations": kinds,
        "seconds": round(p.seconds, 2),
        "accounts_per_s": round(len(p.accounts) / p.seconds, 1) if p.seconds else None,
    }
