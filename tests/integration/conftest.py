"""Fixtures for integration tests (real Kafka / Redis)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# --------------------------------------------------------------------------
# Local services (Kafka + Redis) — see tests/integration/services.py and
# scripts/services.sh. No __init__.py files: this directory is put on sys.path
# so that `import services` works under any pytest import mode.
# --------------------------------------------------------------------------
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from services import ServiceEndpoints, ensure_services, stop_services  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs real Kafka/Redis (scripts/services.sh)")


@pytest.fixture(scope="session")
def services() -> Iterator[ServiceEndpoints]:
    """Kafka + Redis endpoints; started for the session when not already up.

    Services this fixture started are stopped (and wiped, unless
    CONTENTSTREAM_SERVICES_KEEP_DATA=1) at session end; services found running,
    or given by KAFKA_BOOTSTRAP_SERVERS / REDIS_URL, are left alone.
    """
    endpoints = ensure_services()
    try:
        yield endpoints
    finally:
        if endpoints.started_here:
            stop_services(clean=os.environ.get("CONTENTSTREAM_SERVICES_KEEP_DATA") != "1")


# --------------------------------------------------------------------------
# (other fixtures below)
# --------------------------------------------------------------------------
