"""Logging: JSON lines for machines, plain text for people.

One configuration for the whole process, Faust's, mode's and aiokafka's lines included.
Faust's Worker replaces the root logger's handlers when it starts (mode's
``setup_logging``), so the worker applies this configuration again afterwards
(:func:`configure_logging` in ``ContentWorker.start_runtime``); :func:`logging_config`
is the same configuration as a ``logging.config.dictConfig`` dictionary, which can be
handed to the Faust Worker (``logging_config=``) so that its own setup produces it.

Log lines carry text from outside (event ids, topics, exception messages): both formats
mask the passwords of URLs (:mod:`streams.redaction`), and the text format escapes
control characters, so an id holding a newline cannot forge a line of its own and one
holding ANSI escapes cannot rewrite an operator's terminal.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.redaction import mask_credentials
from streams.settings import Settings

# Attributes a LogRecord always has; anything else was passed with ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# The context fields contentstream passes with ``extra=`` (dead letters, stuck partitions).
CONTEXT_KEYS = ("event_id", "topic", "partition", "offset", "stage", "error_code")
# Faust, mode and aiokafka are chatty at INFO; their warnings still show.
NOISY_LOGGERS = ("faust", "mode", "aiokafka")

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: each one
# becomes a visible escape (\n, \x1b, \u2028) in a text line.
_CONTROL_ESCAPES: dict[int, str] = {
    code: repr(chr(code))[1:-1] for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


def escape_control(text: str) -> str:
    """``text`` on one line: control characters written as Python escapes."""
    if text.isprintable():
        return text  # the common case, and str.isprintable is C-fast
    return text.translate(_CONTROL_ESCAPES)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_credentials(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = mask_credentials(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = mask_credentials(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = mask_credentials(record.exc_text)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode("utf-8")


class TextFormatter(logging.Formatter):
    """One line per record, then any traceback indented below it.

    Everything on the record's line is escaped, so it is the record's only line; the
    traceback lines are indented, so none of them can pass for a record either.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        context = [f"{k}={getattr(record, k)}" for k in CONTEXT_KEYS if hasattr(record, k)]
        if context:
            line = f"{line} [{' '.join(context)}]"
        line = escape_control(mask_credentials(line))
        below: list[str] = []
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            below.append(record.exc_text)
        if record.stack_info:
            below.append(self.formatStack(record.stack_info))
        for block in below:
            for text in mask_credentials(block).split("\n"):
                line += f"\n    {escape_control(text)}"
        return line


def uses_json(settings: Settings) -> bool:
    """``auto`` means text on a terminal, JSON lines otherwise (containers, files)."""
    if settings.log_format != "auto":
        return settings.log_format == "json"
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return True


def logging_config(settings: Settings) -> dict[str, Any]:
    """The process's logging as a ``dictConfig`` dictionary (also Faust's ``logging_config``)."""
    level = logging.getLevelName(settings.log_level)
    noisy_level = logging.getLevelName(max(logging.WARNING, level))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "contentstream": {"()": JsonFormatter if uses_json(settings) else TextFormatter}
        },
        "handlers": {
            "contentstream": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "contentstream",
            }
        },
        "root": {"level": settings.log_level, "handlers": ["contentstream"]},
        "loggers": {name: {"level": noisy_level} for name in NOISY_LOGGERS},
    }


def configure_logging(settings: Settings) -> None:
    """Make every logger of the process write in the configured format (idempotent)."""
    # dictConfig replaces the root handlers, e.g. the colour handler Faust installed.
    logging.config.dictConfig(logging_config(settings))
