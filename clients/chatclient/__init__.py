"""chatclient: the Python SDK for chatd (bots use it too), and the ``chat`` terminal client."""

from chatclient.client import Client
from chatclient.errors import (
    AuthError,
    ChatClientError,
    ClientClosed,
    Conflict,
    ConnectionLost,
    Forbidden,
    InvocationTimeoutError,
    NotFound,
    RateLimited,
    RequestError,
)
from chatclient.events import (
    BotAdded,
    BotRemoved,
    Connected,
    Disconnected,
    Event,
    InvocationTimeout,
    Message,
    Presence,
    Receipt,
    SendFailed,
    Typing,
)
from chatclient.keystore import KeyStore

__all__ = [
    "AuthError",
    "BotAdded",
    "BotRemoved",
    "ChatClientError",
    "Client",
    "ClientClosed",
    "Conflict",
    "Connected",
    "ConnectionLost",
    "Disconnected",
    "Event",
    "Forbidden",
    "InvocationTimeout",
    "InvocationTimeoutError",
    "KeyStore",
    "Message",
    "NotFound",
    "Presence",
    "RateLimited",
    "Receipt",
    "RequestError",
    "SendFailed",
    "Typing",
]
