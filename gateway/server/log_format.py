"""Logging set-up: one JSON object a line on stdout (CloudWatch reads them whole), or text."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

# Attributes every LogRecord has; anything else came in through ``extra=`` and is kept.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName", "color_message"}


def encodable(line: str) -> str:
    """``line`` as text any UTF-8 stream can write: lone surrogates become ``\\udXXX`` escapes.

    A line that cannot be encoded is not written at all (the handler reports a logging
    error instead), and the audit line of a change must never be lost that way.
    """
    if line.isascii():
        return line
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return line.encode("utf-8", "backslashreplace").decode("utf-8")
    return line


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """What a log call passed in ``extra=``: the structured part of the line."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}


class TextFormatter(logging.Formatter):
    """Human-readable lines that still carry the structured fields, as JSON at the end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = extras(record)
        return encodable(f"{line} {json.dumps(fields, default=str, ensure_ascii=False)}" if fields else line)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(extras(record))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        line = json.dumps(payload, default=str, ensure_ascii=False)
        if encodable(line) is line:
            return line
        # JSON escapes a lone surrogate as \\udXXX: still one valid JSON object a line.
        return json.dumps(payload, default=str, ensure_ascii=True)


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the gateway and the server under it."""
    formatter = {"()": "gateway.server.log_format.JsonFormatter" if fmt == "json" else "gateway.server.log_format.TextFormatter"}
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "loggers": {
            "gateway": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
    }

