"""chatproto: the chatd wire protocol, sans-I/O.

Bytes in, typed frames out, and back (``codec``); the frame types (``frames``); the message-kind
registry and typed contents (``kinds``); the byte strings devices sign (``auth``); stable error
codes (``errors``); the client core (``client``: login steps, request ids, cursors, the outbox,
as a state machine every client drives). Nothing here does I/O: no asyncio, no sockets, no database. The server
(``chatd``), the SDK (``chatclient``) and the load tester all speak the protocol through it.
"""

from chatproto.errors import ChatProtoError, ErrorCode, ProtocolError

PROTOCOL_VERSION = "chatd.v1"
"""The WebSocket subprotocol a client must offer."""

WS_PATH = "/ws"

__all__ = ["PROTOCOL_VERSION", "WS_PATH", "ChatProtoError", "ErrorCode", "ProtocolError"]
