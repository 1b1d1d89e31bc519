"""The chatd.v1 client core, sans-I/O: what every client must get right, written once.

``ClientProtocol`` (protocol.py) holds one device's connection state, login steps, request ids
and their answers, cursors per conversation with the receive rule and the sync/live boundary
(cursors.py), and the outbox with its resends by cmid (outbox.py). It takes bytes and time and
gives events (events.py) and bytes; it never touches a socket, a clock or an event loop, so
the SDK (``chatclient``), the load tester (``chatload``) and a browser client drive the same
rules, and the tests drive them with time passed in by hand.
"""

from chatproto.client.cursors import Cursors, Received
from chatproto.client.events import (
    Acked,
    AckedAgain,
    Answer,
    BadFrame,
    Challenged,
    Delivery,
    Duplicate,
    Event,
    Gap,
    Item,
    LoggedIn,
    LoginFailed,
    Own,
    Pushed,
    SendDeferred,
    SendFailed,
    Synced,
    SyncFailed,
    Unanswered,
)
from chatproto.client.outbox import Entry, Outbox, new_cmid
from chatproto.client.protocol import (
    ClientProtocol,
    NotConnected,
    Policy,
    Signer,
    State,
    WrongServer,
    retryable,
)
from chatproto.client.requests import Purpose, Requests

__all__ = [
    "Acked",
    "AckedAgain",
    "Answer",
    "BadFrame",
    "Challenged",
    "ClientProtocol",
    "Cursors",
    "Delivery",
    "Duplicate",
    "Entry",
    "Event",
    "Gap",
    "Item",
    "LoggedIn",
    "LoginFailed",
    "NotConnected",
    "Outbox",
    "Own",
    "Policy",
    "Purpose",
    "Pushed",
    "Received",
    "Requests",
    "SendDeferred",
    "SendFailed",
    "Signer",
    "State",
    "SyncFailed",
    "Synced",
    "Unanswered",
    "WrongServer",
    "new_cmid",
    "retryable",
]
