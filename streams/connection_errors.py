"""Fail fast, in one line, when Kafka cannot be reached or refuses us."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from streams.settings import Settings


class ConnectionFailed(SystemExit):
    """Exit status 2 with the cause already printed."""


def describe(exc: BaseException, settings: Settings) -> str:
    try:
        from streams.security import describe_connection_error

        return describe_connection_error(exc, settings)  # type: ignore[call-arg]
    except (ImportError, TypeError):
        return f"cannot connect to Kafka at {settings.kafka_bootstrap_servers}: {exc}"


@asynccontextmanager
async def fail_fast(settings: Settings) -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        print(f"contentstream: {describe(exc, settings)}", file=sys.stderr)
        raise ConnectionFailed(2) from exc
