"""docker-compose.yml's HTTP API service: the workers' settings, a mounted keys file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from streams.api import KeyRing, load_keys_file
from streams.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_api_service_runs_the_api_with_the_workers_settings_and_a_keys_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    api = services["api"]
    assert api["command"] == ["api"]
    env = api["environment"]
    worker_env = services["worker-1"]["environment"]
    assert {k: v for k, v in env.items() if k in worker_env} == worker_env
    for name in list(os.environ):
        if name.startswith(("CONTENTSTREAM_", "KAFKA_", "REDIS_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    settings = Settings()
    (mount,) = api["volumes"]
    source, target, _ = mount.split(":")
    assert Path(target) == settings.api_keys_file
    ring = KeyRing(load_keys_file(REPO_ROOT / source))
    demo = ring.authenticate("Bearer demo-key-change-me")
    assert demo is not None and demo.name == "demo"
    (port,) = api["ports"]
    assert port == f"127.0.0.1:{settings.api_port}:{settings.api_port}"
    assert str(settings.api_port) in " ".join(api["healthcheck"]["test"])
