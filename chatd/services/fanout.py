"""Publishing committed messages and ephemeral events: encode the frame once and publish it
through this node's hub, which delivers it to its own connections at once and hands it to the
broker for every other node's hub."""

from __future__ import annotations

from chatproto import codec
from chatproto import frames as F

from chatd import envelope
from chatd.hub import Hub
from chatd.store.base import StoredMessage


def deliver_frame(m: StoredMessage) -> bytes:
    """The ``deliver`` frame of a stored message (an empty ``to`` is left out of the bytes)."""
    return codec.encode(
        F.Deliver(
            conv=m.conv,
            seq=m.seq,
            ts=m.ts,
            sender=m.sender,
            device=m.device,
            cmid=m.cmid,
            kind=m.kind,
            body=m.body,
            to=list(m.to),
            fc=m.fc,
        )
    )


def publish_message(
    hub: Hub,
    m: StoredMessage,
    origin: int = 0,
    *,
    skip: tuple[int, ...] = (),
    frame: bytes | None = None,
) -> None:
    """Fan a committed message out to every watcher except connection ``origin`` and the
    connections of the bots it is withheld from (SPEC.md 16.3) and of ``skip``; with the count
    of removals it follows (``envelope.REMOVALS``), if any."""
    if frame is None:
        frame = deliver_frame(m)
    if m.withheld or m.removals or skip:
        payload = envelope.withheld_payload(m.withheld + skip, frame, m.removals)
        hub.publish_conv(m.conv, envelope.WITHHELD, m.seq, origin, payload)
        return
    hub.publish_conv(m.conv, envelope.MESSAGE, m.seq, origin, frame)


def publish_committed(hub: Hub, m: StoredMessage, origin: int = 0, *, repeat: bool) -> None:
    """Publish a message that was just committed; a ``repeat`` (a resend or replay answered
    from the store) only when other nodes exist: the node that stored it may have died before
    publishing it, and receivers drop seqs they already have."""
    if not repeat or hub.remote:
        publish_message(hub, m, origin)


def publish_event(hub: Hub, conv: int, frame: F.Frame, origin: int) -> None:
    hub.publish(envelope.conv_topic(conv), envelope.EVENT, 0, origin, codec.encode(frame))


def publish_to_account(hub: Hub, account: int, frame: F.Frame, origin: int = 0) -> None:
    hub.publish(envelope.account_topic(account), envelope.EVENT, 0, origin, codec.encode(frame))


def publish_to_device(hub: Hub, device: int, frame: F.Frame, origin: int = 0) -> None:
    hub.publish(envelope.device_topic(device), envelope.EVENT, 0, origin, codec.encode(frame))
