"""Publishing committed messages and ephemeral events: encode the frame once, hand it to the
broker, which hands it to every node's hub."""

from __future__ import annotations

from chatproto import codec
from chatproto import frames as F

from chatd import envelope
from chatd.broker.base import Broker
from chatd.store.base import StoredMessage


def deliver_frame(m: StoredMessage) -> bytes:
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
        )
    )


def publish_message(broker: Broker, m: StoredMessage, origin: int = 0) -> None:
    """Fan a committed message out to every watcher except connection ``origin``."""
    broker.publish(
        envelope.conv_topic(m.conv),
        envelope.pack(envelope.MESSAGE, m.seq, origin, deliver_frame(m)),
    )


def publish_event(broker: Broker, conv: int, frame: F.Frame, origin: int) -> None:
    broker.publish(
        envelope.conv_topic(conv), envelope.pack(envelope.EVENT, 0, origin, codec.encode(frame))
    )


def publish_to_account(broker: Broker, account: int, frame: F.Frame, origin: int = 0) -> None:
    broker.publish(
        envelope.account_topic(account),
        envelope.pack(envelope.EVENT, 0, origin, codec.encode(frame)),
    )


def publish_to_device(broker: Broker, device: int, frame: F.Frame, origin: int = 0) -> None:
    broker.publish(
        envelope.device_topic(device),
        envelope.pack(envelope.EVENT, 0, origin, codec.encode(frame)),
    )
