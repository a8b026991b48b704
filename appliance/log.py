"""Structured logging: one line per event, `key=value` pairs (logfmt), on stderr.

    2026-11-29T03:50:12.345Z level=info logger=appliance.runner msg=component.running component=appserver

Events are dotted names (`component.crashed`); their data go in `extra=fields(...)`.
Tracebacks stay on the event's line, escaped, so that one event is always one line.
"""

import logging
import sys
import time


def fields(**data) -> dict:
    """The `extra=` of a log call carrying structured data."""
    return {"fields": data}


def _quote(value) -> str:
    text = str(value)
    if text and not any(c in text for c in ' ="\\\n\r\t') and text.isprintable():
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


class LogfmtFormatter(logging.Formatter):
    """Formats a record as one logfmt line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        pairs = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            pairs["traceback"] = self.formatException(record.exc_info)
        body = " ".join(f"{k}={_quote(v)}" for k, v in pairs.items())
        return f"{stamp}.{int(record.msecs):03d}Z {body}"


def setup(level: str = "info", stream=None) -> None:
    """Send every logger's records to `stream` (stderr) as logfmt lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn narrates its own start and stop; the runner already logs those events.
    logging.getLogger("uvicorn").setLevel(max(root.level, logging.WARNING))
