"""Fail fast, in one line, when Kafka cannot be reached or refuses us."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from schemas.errors import ContentStreamError
from streams.settings import Settings


class ConnectionFailed(SystemExit):
    """Exit status 2 with the cause already printed."""


@asynccontextmanager
async def fail_fast(settings: Settings, *, timeout_s: float = 10.0) -> AsyncIterator[None]:
    """Check the connection first (aiokafka's own bootstrap error hides SASL and TLS
    causes), then run the block; any failure becomes one line and exit status 2."""
    from streams.security import check_kafka_connection, describe_connection_error

    try:
        await check_kafka_connection(settings, timeout_s=timeout_s)
        yield
    except ContentStreamError as exc:
        print(f"contentstream: {exc.message}", file=sys.stderr)
        raise ConnectionFailed(2) from exc
    except Exception as exc:
        print(f"contentstream: {describe_connection_error(exc, settings)}", file=sys.stderr)
        raise ConnectionFailed(2) from exc
