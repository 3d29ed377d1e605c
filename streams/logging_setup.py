"""Logging: JSON lines for machines, plain text for people.

One configuration for the whole process, Faust's, mode's and aiokafka's lines included.
Faust's Worker replaces the root logger's handlers when it starts (mode's
``setup_logging``), so the worker applies this configuration again afterwards
(:func:`configure_logging` in ``ContentWorker.start_runtime``); :func:`logging_config`
is the same configuration as a ``logging.config.dictConfig`` dictionary, which can be
handed to the Faust Worker (``logging_config=``) so that its own setup produces it.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.settings import Settings

# Attributes a LogRecord always has; anything else was passed with ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# The context fields contentstream passes with ``extra=`` (dead letters, stuck partitions).
CONTEXT_KEYS = ("event_id", "topic", "partition", "offset", "stage", "error_code")
# Faust, mode and aiokafka are chatty at INFO; their warnings still show.
NOISY_LOGGERS = ("faust", "mode", "aiokafka")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode("utf-8")


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = [f"{k}={getattr(record, k)}" for k in CONTEXT_KEYS if hasattr(record, k)]
        if not context:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the context
        return f"{first} [{' '.join(context)}]{newline}{rest}"


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
