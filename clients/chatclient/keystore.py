"""The device's key and cursors in one JSON file, mode 0600, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from chatproto.e2e.primitives import SigningKey


@dataclass
class KeyStore:
    """What a device must remember: its private key, who it is, and how far it has read."""

    path: Path | None = None
    seed: bytes = b""
    account: int = 0
    device: int = 0
    handle: str = ""
    cursors: dict[int, int] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path) -> KeyStore:
        """Load ``path``, or start a new store there with a fresh key (saved on first login)."""
        p = Path(path)
        if not p.exists():
            return cls(path=p, seed=SigningKey.generate().seed)
        data = json.loads(p.read_text())
        return cls(
            path=p,
            seed=bytes.fromhex(data["seed"]),
            account=int(data.get("account", 0)),
            device=int(data.get("device", 0)),
            handle=str(data.get("handle", "")),
            cursors={int(k): int(v) for k, v in data.get("cursors", {}).items()},
        )

    @classmethod
    def memory(cls) -> KeyStore:
        """A store that lives only in memory (tests, throwaway bots)."""
        return cls(path=None, seed=SigningKey.generate().seed)

    @property
    def key(self) -> SigningKey:
        return SigningKey(self.seed)

    @property
    def registered(self) -> bool:
        return self.device != 0

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "seed": self.seed.hex(),
            "account": self.account,
            "device": self.device,
            "handle": self.handle,
            "cursors": {str(k): v for k, v in sorted(self.cursors.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keystore-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
