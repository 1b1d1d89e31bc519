"""Scenarios: a TOML file that says who talks to whom, how fast, for how long, against what.

```toml
name = "group50"
kind = "messaging"            # or "idle": hold `accounts` authenticated idle connections
accounts = 200                # accounts
devices_per_account = 1       # devices per account, each with its own key and connection
targets = ["ws://127.0.0.1:8765/ws"]   # clients spread round-robin over these
duration = 20                 # seconds of load (ramp included)
ramp_up = 2                   # offered rate grows linearly from 0 over this many seconds
churn_per_s = 0               # connections dropped and re-established per second (all workers)
seed = 1                      # member draw / size draw randomness

[message]
kind = "text"                 # any kind a client may send; "e2e": opaque end-to-end-sized bodies
size = { dist = "fixed", bytes = 100 }   # or {dist="uniform", min=, max=} or
                                         # {dist="choice", values=[..], weights=[..]}
                                         # (with kind "e2e": the plaintext size, see body_size)

[[conversations]]
type = "group"                # "direct" | "group" | "channel"
count = 4
size = 50                     # group/channel members (int or a size distribution as above)
rate_total = 150              # msgs/s over this block; or rate_per_sender = 0.5
senders = 0                   # group: members that send (0 = all); channel: admins only
```

Members are drawn from the account pool in consecutive blocks (wrapping around), so one account
can be in several conversations. Direct conversations pair accounts 2i, 2i+1 (wrapping).
Connection (client) ``i`` is device ``i % devices_per_account`` of account
``i // devices_per_account``.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatproto.e2e.payload import MAX_PADDED, bucket
from chatproto.e2e.sender_keys import OVERHEAD as E2E_OVERHEAD

BODY_HEADER = 28  # magic(4) run(4) intended_ns(8) msg id(8) sender client(4), see proto.py
E2E_KIND = "e2e"
E2E_MAX_PLAINTEXT = MAX_PADDED - 1  # the padding adds at least one byte (0x80)


def e2e_body_size(plaintext: int) -> int:
    """Size of the body a real client sends for a ``plaintext``-byte message: the plaintext plus
    at least one padding byte, padded to the smallest bucket (64, 128, ... 32 768, then 65 447),
    plus the sender-key overhead (89 bytes). A short text (100 bytes) gives 128 + 89 = 217."""
    if plaintext > E2E_MAX_PLAINTEXT:
        raise ValueError(f"an e2e plaintext of {plaintext} bytes is too large to pad")
    return bucket(plaintext) + E2E_OVERHEAD  # the SDK's own padding rule (chatproto)


def body_size(kind: str, drawn: int) -> int:
    """Body bytes sent for a drawn message size: the size itself, or with kind ``e2e`` the size
    of the sender-key ciphertext of that much plaintext."""
    return e2e_body_size(drawn) if kind == E2E_KIND else drawn


@dataclass(frozen=True)
class SizeDist:
    dist: str = "fixed"
    bytes: int = 100
    min: int = 0
    max: int = 0
    values: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()

    @classmethod
    def parse(cls, v: Any, default: int = 100) -> SizeDist:
        if v is None:
            return cls(bytes=default)
        if isinstance(v, int):
            return cls(bytes=v)
        if not isinstance(v, dict):
            raise ValueError(f"a size is an int or a table, not {v!r}")
        d = str(v.get("dist", "fixed"))
        if d == "fixed":
            return cls(bytes=int(v.get("bytes", default)))
        if d == "uniform":
            return cls(dist=d, min=int(v["min"]), max=int(v["max"]))
        if d == "choice":
            values = tuple(int(x) for x in v["values"])
            weights = tuple(float(x) for x in v.get("weights", [1.0] * len(values)))
            if len(values) != len(weights) or not values:
                raise ValueError("choice: values and weights of the same non-zero length")
            return cls(dist=d, values=values, weights=weights)
        raise ValueError(f"unknown size distribution {d!r}")

    def draw(self, rng: random.Random) -> int:
        if self.dist == "uniform":
            return rng.randint(self.min, self.max)
        if self.dist == "choice":
            return rng.choices(self.values, self.weights)[0]
        return self.bytes

    def largest(self) -> int:
        if self.dist == "uniform":
            return self.max
        if self.dist == "choice":
            return max(self.values)
        return self.bytes

    def as_dict(self) -> dict[str, Any]:
        if self.dist == "fixed":
            return {"dist": "fixed", "bytes": self.bytes}
        if self.dist == "uniform":
            return {"dist": "uniform", "min": self.min, "max": self.max}
        return {"dist": "choice", "values": list(self.values), "weights": list(self.weights)}


@dataclass(frozen=True)
class ConvBlock:
    type: str
    count: int
    size: SizeDist
    rate_total: float | None
    rate_per_sender: float | None
    senders: int = 0


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str
    accounts: int
    targets: tuple[str, ...]
    duration: float
    ramp_up: float
    churn_per_s: float
    seed: int
    message_kind: str
    message_size: SizeDist
    blocks: tuple[ConvBlock, ...] = field(default_factory=tuple)
    devices_per_account: int = 1

    @property
    def connections(self) -> int:
        """Connections a messaging run holds: one per device of every account."""
        return self.accounts * self.devices_per_account

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
        data = tomllib.loads(Path(path).read_text())
        for k, v in (overrides or {}).items():
            if v is not None:
                data[k] = v
        data.setdefault("name", Path(path).stem)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scenario:
        known = {
            "name", "kind", "accounts", "devices_per_account", "targets", "duration", "ramp_up", "churn_per_s",
            "seed", "message", "conversations",
        }  # fmt: skip
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown scenario keys {sorted(unknown)}")
        kind = str(d.get("kind", "messaging"))
        if kind not in ("messaging", "idle"):
            raise ValueError("kind is 'messaging' or 'idle'")
        targets = d.get("targets", ["ws://127.0.0.1:8765/ws"])
        if isinstance(targets, str):
            targets = [targets]
        msg = d.get("message", {})
        blocks = []
        for b in d.get("conversations", []):
            t = str(b["type"])
            if t not in ("direct", "group", "channel"):
                raise ValueError(f"conversation type {t!r}")
            rt, rs = b.get("rate_total"), b.get("rate_per_sender")
            if (rt is None) == (rs is None):
                raise ValueError(f"{t}: give exactly one of rate_total, rate_per_sender")
            blocks.append(
                ConvBlock(
                    type=t,
                    count=int(b.get("count", 1)),
                    size=SizeDist.parse(b.get("size"), 2),
                    rate_total=None if rt is None else float(rt),
                    rate_per_sender=None if rs is None else float(rs),
                    senders=int(b.get("senders", 0)),
                )
            )
        if kind == "messaging" and not blocks:
            raise ValueError("a messaging scenario needs [[conversations]]")
        devices = int(d.get("devices_per_account", 1))
        if devices < 1:
            raise ValueError("devices_per_account is at least 1")
        message_kind = str(msg.get("kind", "text"))
        message_size = SizeDist.parse(msg.get("size"), 100)
        if message_kind == E2E_KIND and message_size.largest() > E2E_MAX_PLAINTEXT:
            raise ValueError(f"e2e plaintext sizes are at most {E2E_MAX_PLAINTEXT} bytes")
        return cls(
            name=str(d["name"]),
            kind=kind,
            accounts=int(d.get("accounts", 2)),
            targets=tuple(str(t) for t in targets),
            duration=float(d.get("duration", 10)),
            ramp_up=float(d.get("ramp_up", 0)),
            churn_per_s=float(d.get("churn_per_s", 0)),
            seed=int(d.get("seed", 1)),
            message_kind=message_kind,
            message_size=message_size,
            blocks=tuple(blocks),
            devices_per_account=devices,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "accounts": self.accounts,
            "devices_per_account": self.devices_per_account,
            "targets": list(self.targets),
            "duration": self.duration,
            "ramp_up": self.ramp_up,
            "churn_per_s": self.churn_per_s,
            "seed": self.seed,
            "message": {"kind": self.message_kind, "size": self.message_size.as_dict()},
            "conversations": [
                {
                    "type": b.type,
                    "count": b.count,
                    "size": b.size.as_dict(),
                    **({"rate_total": b.rate_total} if b.rate_total is not None else {}),
                    **(
                        {"rate_per_sender": b.rate_per_sender}
                        if b.rate_per_sender is not None
                        else {}
                    ),
                    "senders": b.senders,
                }
                for b in self.blocks
            ],
        }


@dataclass(frozen=True)
class ConvPlan:
    """One conversation to create: ``members[0]`` creates it (owner; the channel's poster)."""

    block: int
    type: str
    members: tuple[int, ...]  # account indexes into the pool
    senders: tuple[int, ...]


def plan_conversations(s: Scenario) -> list[ConvPlan]:
    """Deterministic (``seed``) membership of every conversation of the scenario."""
    rng = random.Random(s.seed)
    plans: list[ConvPlan] = []
    cursor = 0
    n = s.accounts
    for bi, b in enumerate(s.blocks):
        for _ in range(b.count):
            size = 2 if b.type == "direct" else max(2, b.size.draw(rng))
            if size > n:
                raise ValueError(f"a {b.type} of {size} members needs at least {size} accounts")
            members = tuple((cursor + k) % n for k in range(size))
            cursor = (cursor + size) % n
            if b.type == "channel":
                senders: tuple[int, ...] = members[:1]
            elif b.senders:
                senders = members[: b.senders]
            else:
                senders = members
            plans.append(ConvPlan(bi, b.type, members, senders))
    return plans


def block_rate(b: ConvBlock, routes: int) -> float:
    """msgs/s offered by a block with ``routes`` (sender, conversation) pairs."""
    if b.rate_total is not None:
        return b.rate_total
    assert b.rate_per_sender is not None
    return b.rate_per_sender * routes
