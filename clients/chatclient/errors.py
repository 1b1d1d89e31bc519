"""One exception root for the SDK; server refusals are raised as typed exceptions by code."""

from __future__ import annotations

from chatproto.errors import ErrorCode


class ChatClientError(Exception):
    """Root of every exception the SDK raises."""


class ConnectionLost(ChatClientError):
    """The connection dropped before the server answered; the request may be retried."""


class ClientClosed(ChatClientError):
    """The client was closed."""


class InvocationTimeoutError(ChatClientError):
    """A mini-app invocation got no ``miniapp.result`` within its timeout (``Client.invoke``);
    an ``InvocationTimeout`` event says so on the event stream too."""

    def __init__(self, invocation_id: str, waited: float) -> None:
        super().__init__(f"no result for invocation {invocation_id} after {waited:.1f} s")
        self.invocation_id = invocation_id
        self.waited = waited


class RequestError(ChatClientError):
    """The server refused a request with ``code``; ``retry_after`` is the seconds the server
    said to wait before the same request may pass (``RATE_LIMITED``; None: not said)."""

    def __init__(self, code: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{_name(code)}: {message}")
        self.code = code
        self.server_message = message
        self.retry_after = retry_after


class AuthError(RequestError):
    """Login failed, or the server closed the connection for policy reasons: do not retry."""


class NotFound(RequestError):
    pass


class Forbidden(RequestError):
    pass


class Conflict(RequestError):
    pass


class RateLimited(RequestError):
    pass


def _name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"E{code}"


_BY_CODE: dict[int, type[RequestError]] = {
    ErrorCode.AUTH_FAILED: AuthError,
    ErrorCode.SUSPENDED: AuthError,
    ErrorCode.AUTH_REQUIRED: AuthError,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.FORBIDDEN: Forbidden,
    ErrorCode.CONFLICT: Conflict,
    ErrorCode.HANDLE_TAKEN: Conflict,
    ErrorCode.RATE_LIMITED: RateLimited,
}


def error_for(code: int, message: str, retry_after_ms: int = 0) -> RequestError:
    wait = retry_after_ms / 1000 if retry_after_ms else None
    return _BY_CODE.get(code, RequestError)(code, message, wait)
