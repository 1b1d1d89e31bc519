"""Structured logs: JSON lines when stderr is not a terminal, readable text otherwise.

Extra fields given with ``extra={...}`` become JSON keys (or ``key=value`` in text). Fields given
to ``configure`` (the node id) are on every line, so the lines of several nodes can be merged
and still told apart. Everything else Python would print to stderr goes through the same
handler once ``configure`` has run, so that with JSON every line is JSON: warnings (logger
``py.warnings``, with ``category`` and ``source``), uncaught exceptions in the main thread and
in other threads, and "exception ignored" reports (unraisable exceptions)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from types import TracebackType
from typing import TextIO

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def __init__(self, fields: Mapping[str, object] | None = None) -> None:
        super().__init__()
        self._fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **self._fields,
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, fields: Mapping[str, object] | None = None) -> None:
        super().__init__()
        self._fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in {**self._fields, **_extras(record)}.items())
        line = f"{time.strftime('%H:%M:%S')} {record.levelname:<7} {record.getMessage()} {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line.rstrip()


def configure(level: str, fmt: str, node: str | None = None) -> None:
    """Log to stderr at ``level``; ``node`` (the node id) becomes a field of every line."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    fields = {"node": node} if node else {}
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(fields) if use_json else TextFormatter(fields))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # websockets logs every failed handshake at INFO; keep its noise at WARNING.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, root.level))
    warnings.showwarning = _show_warning
    sys.excepthook = _uncaught
    threading.excepthook = _uncaught_in_thread
    sys.unraisablehook = _unraisable


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A Python warning (a library's deprecation, say) as one log line, not plain text."""
    logging.getLogger("py.warnings").warning(
        str(message), extra={"category": category.__name__, "source": f"{filename}:{lineno}"}
    )


def _uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("chatd").critical("uncaught exception", exc_info=(kind, exc, tb))


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        logging.getLogger("chatd").critical(
            "uncaught exception in a thread",
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            extra={"thread_name": args.thread.name if args.thread else None},
        )


def _unraisable(args: sys.UnraisableHookArgs) -> None:
    exc = args.exc_value
    logging.getLogger("chatd").error(
        args.err_msg or "exception ignored",
        exc_info=(args.exc_type, exc, args.exc_traceback) if exc is not None else None,
        extra={"object": repr(args.object)},
    )
