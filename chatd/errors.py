"""One exception root for the server; every error that reaches the wire carries an ErrorCode."""

from __future__ import annotations

from chatproto.errors import ErrorCode


class ChatdError(Exception):
    """Root of the server's exceptions. ``code`` goes to the client in an ``Error`` frame."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str = "", code: ErrorCode | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class NotFound(ChatdError):
    """Missing, or not visible to the caller: both look the same from outside."""

    code = ErrorCode.NOT_FOUND


class Forbidden(ChatdError):
    code = ErrorCode.FORBIDDEN


class Conflict(ChatdError):
    code = ErrorCode.CONFLICT


class Invalid(ChatdError):
    code = ErrorCode.INVALID


class AuthFailed(ChatdError):
    code = ErrorCode.AUTH_FAILED


class HandleTaken(ChatdError):
    code = ErrorCode.HANDLE_TAKEN


class Unavailable(ChatdError):
    """The store cannot commit now; nothing was acknowledged."""

    code = ErrorCode.UNAVAILABLE


class RateLimited(ChatdError):
    """Refused for now by a quota (e.g. a full to-device queue); retry later. ``retry_after``
    (seconds), when the refusal knows it, goes to the client as ``error.retry_after`` (ms)."""

    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
