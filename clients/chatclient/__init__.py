"""chatclient: the Python SDK for chatd (bots use it too), and the ``chat`` terminal client."""

from chatclient.client import Client
from chatclient.errors import (
    AuthError,
    ChatClientError,
    ClientClosed,
    Conflict,
    ConnectionLost,
    Forbidden,
    NotFound,
    RateLimited,
    RequestError,
)
from chatclient.events import Connected, Disconnected, Event, Message, Presence, Receipt, Typing
from chatclient.keystore import KeyStore

__all__ = [
    "AuthError",
    "ChatClientError",
    "Client",
    "ClientClosed",
    "Conflict",
    "Connected",
    "ConnectionLost",
    "Disconnected",
    "Event",
    "Forbidden",
    "KeyStore",
    "Message",
    "NotFound",
    "Presence",
    "RateLimited",
    "Receipt",
    "RequestError",
    "Typing",
]
