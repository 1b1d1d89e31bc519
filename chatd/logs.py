"""Structured logs: JSON lines when stderr is not a terminal, readable text otherwise.

Extra fields given with ``extra={...}`` become JSON keys (or ``key=value`` in text). Fields given
to ``configure`` (the node id) are on every line, so the lines of several nodes can be merged
and still told apart."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping

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
