"""A chatd.v1 server reduced to what the client core's tests need, in memory and in step.

It keeps each conversation's messages (seq from 1, a cmid stored once per device and
conversation, SPEC.md 7.3), answers ``sync`` and ``fetch`` by SPEC.md 7.4/7.5, and holds what
each side wrote in FIFO queues that the test moves one frame at a time, so a test decides
exactly what is delivered, lost with a dropped connection, or refused. No sockets, no clock.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field

from chatproto import codec
from chatproto import frames as F
from chatproto.client import ClientProtocol, Gap
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ErrorCode

SERVER = "chat.test"
ME, MY_DEVICE, OTHER, OTHER_DEVICE = 7, 70, 8, 80


@dataclass
class Stored:
    seq: int
    sender: int
    device: int
    cmid: str
    kind: str
    body: bytes


@dataclass
class Server:
    convs: dict[int, list[Stored]] = field(default_factory=dict)
    to_server: deque[bytes] = field(default_factory=deque)
    to_client: deque[bytes] = field(default_factory=deque)
    refuse_next_sends: int = 0
    """Answer this many sends with ``RATE_LIMITED`` (not processed)."""
    refused: set[str] = field(default_factory=set)
    """The cmids ever refused so."""

    def store(self, conv: int, device: int, cmid: str, kind: str, body: bytes) -> Stored:
        """Append a message (a known (device, conv, cmid) returns the stored one)."""
        msgs = self.convs.setdefault(conv, [])
        for m in msgs:
            if m.device == device and m.cmid == cmid:
                return m
        sender = ME if device == MY_DEVICE else OTHER
        m = Stored(len(msgs) + 1, sender, device, cmid, kind, body)
        msgs.append(m)
        return m

    def push(self, frame: F.Frame) -> None:
        self.to_client.append(codec.encode(frame))

    def deliver(self, conv: int, m: Stored) -> F.Deliver:
        return F.Deliver(
            conv=conv,
            seq=m.seq,
            ts=m.seq,
            sender=m.sender,
            device=m.device,
            cmid=m.cmid,
            kind=m.kind,
            body=m.body,
        )

    def other_sends(self, conv: int, *, live: bool = True) -> Stored:
        """Another device sends to ``conv``; ``live=False``: its live delivery is lost."""
        m = self.store(conv, OTHER_DEVICE, os.urandom(6).hex(), "text", b"from the other")
        if live:
            self.push(self.deliver(conv, m))
        return m

    def step(self) -> bool:
        """Process the next frame the client wrote (False: none)."""
        if not self.to_server:
            return False
        frame = codec.decode_client(self.to_server.popleft())
        match frame:
            case F.Send() if self.refuse_next_sends:
                self.refuse_next_sends -= 1
                self.refused.add(frame.cmid)
                self.push(F.Error(re=frame.id, code=ErrorCode.RATE_LIMITED))
            case F.Send():
                m = self.store(frame.conv, MY_DEVICE, frame.cmid, frame.kind, frame.body)
                if (m.kind, m.body) != (frame.kind, frame.body):
                    self.push(F.Error(re=frame.id, code=ErrorCode.CONFLICT))
                else:
                    self.push(
                        F.Ack(re=frame.id, conv=frame.conv, cmid=frame.cmid, seq=m.seq, ts=m.seq)
                    )
            case F.Sync():
                msgs = self.convs.get(frame.conv, [])
                for m in msgs[frame.after :]:
                    self.push(self.deliver(frame.conv, m))
                self.push(F.Synced(re=frame.id, conv=frame.conv, seq=len(msgs)))
            case F.Fetch():
                msgs = [
                    m
                    for m in self.convs.get(frame.conv, [])
                    if frame.after < m.seq and (frame.before is None or m.seq < frame.before)
                ]
                page = msgs[: frame.limit]
                self.push(
                    F.Messages(
                        re=frame.id,
                        conv=frame.conv,
                        messages=[
                            F.Message(
                                seq=m.seq,
                                ts=m.seq,
                                sender=m.sender,
                                device=m.device,
                                cmid=m.cmid,
                                kind=m.kind,
                                body=m.body,
                            )
                            for m in page
                        ],
                        more=len(msgs) > len(page),
                    )
                )
            case F.Login():
                self.push(
                    F.Welcome(
                        re=frame.id, account=ME, device=MY_DEVICE, handle="meg", server_time=1
                    )
                )
            case _:
                self.push(F.Ok(re=frame.id))
        return True

    def drop(self) -> None:
        """The connection drops: whatever was on the wire either way is lost."""
        self.to_server.clear()
        self.to_client.clear()


KEY = SigningKey.generate()


def connect(core: ClientProtocol, server: Server, now: float = 0.0) -> None:
    """Open a connection and log in (challenge, login, welcome), by hand."""
    core.connection_made(now)
    core.receive_data(
        codec.encode(F.Challenge(server=SERVER, nonce=os.urandom(32), expires_in_ms=10_000)), now
    )
    core.login(MY_DEVICE, KEY)
    pump(core, server, now)


def pump(core: ClientProtocol, server: Server, now: float = 0.0) -> list[object]:
    """Move every frame both ways until nothing is left, filling gaps as an application does;
    returns the core's events."""
    events: list[object] = []
    while True:
        server.to_server.extend(core.data_to_send())
        moved = server.step()
        while server.to_client:
            core.receive_data(server.to_client.popleft(), now)
            moved = True
        got = core.events_received()
        for ev in got:
            if isinstance(ev, Gap):
                core.fill_gap(ev.conv)
        events += got
        server.to_server.extend(core.data_to_send())
        if not moved and not server.to_server:
            return events
