"""Request ids and the requests still waiting for their answer (SPEC.md 3).

Every client frame but ``typing`` carries an ``id`` the client chooses; the server answers each
exactly once with a frame whose ``re`` is that id. Answers and pushed events interleave, so a
client matches answers by ``re``, never by position. This module hands out ids and remembers,
per id, *why* the request was made (its ``Purpose``), so the core can route an answer to the
outbox, a sync, a gap fetch or back to the application.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chatproto.limits import MAX_U32

PurposeKind = Literal["app", "login", "send", "sync", "gap"]


@dataclass(frozen=True, slots=True)
class Purpose:
    """Why a request was made: who gets its answer.

    ``app``: the application (an ``Answer`` event). ``login``: a register/login/link (the
    connection's state changes). ``send``: the outbox entry ``cmid``. ``sync``: conversation
    ``conv`` catching up. ``gap``: a fetch filling a gap of ``conv``."""

    kind: PurposeKind
    conv: int = 0
    cmid: str = ""
    deadline: float | None = None
    """When the request counts as unanswered (``handle_timer``); None: never."""


class Requests:
    """The ids handed out on this connection and what each one waits for."""

    def __init__(self) -> None:
        self._last = 0
        self._waiting: dict[int, Purpose] = {}

    def next_id(self) -> int:
        """A fresh request id, 1 .. 2**32-1, not in use by a waiting request.

        Ids count up from 1 and wrap (SPEC.md 2: ``reqid`` is a non-zero u32); an id still
        waiting is skipped, so two outstanding requests never share one."""
        while True:
            self._last = self._last + 1 if self._last < MAX_U32 else 1
            if self._last not in self._waiting:
                return self._last

    def wait(self, rid: int, purpose: Purpose) -> None:
        """Remember that ``rid`` was written and waits for an answer."""
        self._waiting[rid] = purpose

    def answered(self, rid: int) -> Purpose | None:
        """The answer to ``rid`` arrived: what it was for (None: not ours, or answered)."""
        return self._waiting.pop(rid, None)

    def purpose(self, rid: int) -> Purpose | None:
        return self._waiting.get(rid)

    def expired(self, now: float) -> list[tuple[int, Purpose]]:
        """The requests whose deadline passed at ``now``; they stop waiting."""
        late = [
            (rid, p)
            for rid, p in self._waiting.items()
            if p.deadline is not None and p.deadline <= now
        ]
        for rid, _ in late:
            del self._waiting[rid]
        return late

    def next_deadline(self) -> float | None:
        deadlines = [p.deadline for p in self._waiting.values() if p.deadline is not None]
        return min(deadlines, default=None)

    def drop_all(self) -> list[tuple[int, Purpose]]:
        """The connection is gone: no waiting request will be answered on it."""
        out = list(self._waiting.items())
        self._waiting.clear()
        return out

    def __len__(self) -> int:
        return len(self._waiting)
