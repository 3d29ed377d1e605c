"""Local Kafka + Redis for integration tests, via ``scripts/services.sh``.

Stdlib only. ``ensure_services()`` returns the endpoints to use:

* when both ``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` are set in the
  environment, they are used as they are and nothing is started;
* otherwise ``scripts/services.sh status`` is asked; if the services are not
  both up, ``scripts/services.sh start`` is run (it installs what is missing:
  Kafka jars via Maven, redis-server via apt) and ``started_here`` is True.

Ports follow the script's environment variables (``CONTENTSTREAM_KAFKA_PORT``,
``CONTENTSTREAM_REDIS_PORT``, ...), which subprocesses inherit.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parents[2]
SERVICES_SCRIPT: Path = REPO_ROOT / "scripts" / "services.sh"

# First start may resolve ~45 MB of jars with Maven and apt-get install Redis.
START_TIMEOUT_S: float = float(os.environ.get("CONTENTSTREAM_SERVICES_START_TIMEOUT", "900"))
STOP_TIMEOUT_S: float = 120.0


@dataclass(frozen=True)
class ServiceEndpoints:
    kafka_bootstrap: str
    redis_url: str
    started_here: bool


class ServicesError(RuntimeError):
    """``scripts/services.sh`` failed."""


def _default_kafka_bootstrap() -> str:
    return f"127.0.0.1:{os.environ.get('CONTENTSTREAM_KAFKA_PORT', '19092')}"


def _default_redis_url() -> str:
    return f"redis://127.0.0.1:{os.environ.get('CONTENTSTREAM_REDIS_PORT', '16379')}/0"


def _run_script(*args: str, timeout: float, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            ["bash", str(SERVICES_SCRIPT), *args],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServicesError(
            f"scripts/services.sh {' '.join(args)} timed out after {timeout:.0f}s"
        ) from exc
    if check and proc.returncode != 0:
        raise ServicesError(
            f"scripts/services.sh {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def _parse_endpoints(stdout: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"):
            found[key] = value
    return found


def services_up() -> bool:
    """True when ``scripts/services.sh status`` reports both services up."""
    return _run_script("status", timeout=60, check=False).returncode == 0


def ensure_services() -> ServiceEndpoints:
    """Return Kafka/Redis endpoints, starting the local services if needed."""
    env_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    env_redis = os.environ.get("REDIS_URL")
    if env_kafka and env_redis:
        return ServiceEndpoints(kafka_bootstrap=env_kafka, redis_url=env_redis, started_here=False)

    if services_up():
        return ServiceEndpoints(
            kafka_bootstrap=env_kafka or _default_kafka_bootstrap(),
            redis_url=env_redis or _default_redis_url(),
            started_here=False,
        )

    proc = _run_script("start", timeout=START_TIMEOUT_S)
    found = _parse_endpoints(proc.stdout)
    return ServiceEndpoints(
        kafka_bootstrap=env_kafka
        or found.get("KAFKA_BOOTSTRAP_SERVERS", _default_kafka_bootstrap()),
        redis_url=env_redis or found.get("REDIS_URL", _default_redis_url()),
        started_here=True,
    )


def stop_services(clean: bool = False) -> None:
    """Stop the local services (``clean`` also wipes their data)."""
    args = ["stop", "--clean"] if clean else ["stop"]
    _run_script(*args, timeout=STOP_TIMEOUT_S)
