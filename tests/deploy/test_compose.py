"""docker-compose.yml: schema-valid, and wired the way the workers need it.

There is no Docker daemon in CI, so these are static checks: the compose-spec schema
(check-jsonschema, from the tools venv), every worker variable being a real setting with
a valid value, the start-up order, and the consistency of topics, ports, Prometheus and
Grafana provisioning.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import re
import shutil
import subprocess
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings
from streams.settings import env_names as setting_env_names

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
CACHE_ROOT = Path(os.environ.get("HOME", "/root")) / ".cache" / "contentstream"
TOOLS_VENV = Path(os.environ.get("CONTENTSTREAM_TOOLS_VENV", CACHE_ROOT / "tools-venv"))
WORKERS = ("worker-1", "worker-2")
# Files other engineers own; mounted by compose, checked only once they exist.
FOREIGN_MOUNTS = ("deploy/prometheus/alerts.yml", "deploy/grafana/dashboards")

Service = dict[str, Any]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def published(mapping: str) -> tuple[str, str, str]:
    """(host address, host port, container port) of a short-syntax port mapping."""
    parts = mapping.split(":")
    assert len(parts) == 3, f"{mapping!r}: name the host address (127.0.0.1:HOST:CONTAINER)"
    host_ip, host_port, container_port = parts
    return host_ip, host_port, container_port


def contentstream_services(compose: dict[str, Any]) -> dict[str, Service]:
    """Services that run the contentstream image (built here or tagged contentstream)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if "build" in service or str(service.get("image", "")).startswith("contentstream:")
    }


def test_compose_file_matches_the_compose_spec() -> None:
    checker = TOOLS_VENV / "bin" / "check-jsonschema"
    if not checker.is_file():
        pytest.skip(f"{checker} missing: run scripts/install_deploy_tools.sh first")
    proc = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_worker_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    services = contentstream_services(compose)
    assert set(WORKERS) <= set(services)
    known = setting_env_names()
    for name, service in services.items():
        env = service["environment"]
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables that are no setting: {sorted(unknown)}"


def test_worker_settings_validate(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("CONTENTSTREAM_", "KAFKA_", "REDIS_")):
            monkeypatch.delenv(name)
    for name, value in compose["services"]["worker-1"]["environment"].items():
        monkeypatch.setenv(name, str(value))
    settings = Settings()
    assert settings.web_host == "0.0.0.0"
    assert settings.bootstrap_servers == ["kafka:9092"]
    assert settings.redis_url == "redis://redis:6379/0"


def test_two_workers_share_one_consumer_group(compose: dict[str, Any]) -> None:
    services = compose["services"]
    envs = [services[w]["environment"] for w in WORKERS]
    assert envs[0] == envs[1]
    assert envs[0]["CONTENTSTREAM_APP_ID"]
    host_ports = {published(p)[1] for w in WORKERS for p in services[w]["ports"]}
    assert len(host_ports) == len(WORKERS), "each worker needs its own host port"
    for worker in WORKERS:
        (mapping,) = services[worker]["ports"]
        assert published(mapping)[2] == str(envs[0]["CONTENTSTREAM_WEB_PORT"])
        assert services[worker]["command"] == ["worker"]


def test_workers_start_after_topics_kafka_and_redis(compose: dict[str, Any]) -> None:
    for worker in WORKERS:
        depends = compose["services"][worker]["depends_on"]
        assert depends["topics"]["condition"] == "service_completed_successfully"
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in compose["services"]["kafka"]
    assert "healthcheck" in compose["services"]["redis"]


def test_stop_grace_period_outlasts_the_shutdown_deadline(compose: dict[str, Any]) -> None:
    for worker in WORKERS:
        service = compose["services"][worker]
        grace = service["stop_grace_period"]
        match = re.fullmatch(r"(\d+)s", grace)
        assert match, f"unexpected stop_grace_period {grace!r}"
        deadline = float(service["environment"]["CONTENTSTREAM_SHUTDOWN_TIMEOUT_S"])
        assert int(match.group(1)) > deadline


def test_topics_job_creates_the_workers_topics(compose: dict[str, Any]) -> None:
    topics = compose["services"]["topics"]
    worker_env = compose["services"]["worker-1"]["environment"]
    for key in (
        "CONTENTSTREAM_INPUT_TOPIC",
        "CONTENTSTREAM_OUTPUT_TOPIC",
        "CONTENTSTREAM_DEAD_LETTER_TOPIC",
        "CONTENTSTREAM_TOPIC_PARTITIONS",
        "CONTENTSTREAM_TOPIC_REPLICATION_FACTOR",
    ):
        assert topics["environment"][key] == worker_env[key]
    script = "\n".join(topics["command"])
    assert "kafka-topics.sh --bootstrap-server kafka:9092 --create --if-not-exists" in script
    for key in ("INPUT_TOPIC", "OUTPUT_TOPIC", "DEAD_LETTER_TOPIC"):
        # $$ is compose's escape: the shell in the container expands the variable.
        assert f'"$$CONTENTSTREAM_{key}"' in script
    assert '--partitions "$$CONTENTSTREAM_TOPIC_PARTITIONS"' in script
    assert topics["restart"] == "no"
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert topics["image"] == compose["services"]["kafka"]["image"]


def test_kafka_is_a_valid_single_node_kraft_broker(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    advertised = dict(item.split("://", 1) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    worker_bootstrap = compose["services"]["worker-1"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"]
    assert advertised["PLAINTEXT"] == worker_bootstrap
    host_port = advertised["HOST"].rsplit(":", 1)[1]
    ports = [published(p)[1:] for p in compose["services"]["kafka"]["ports"]]
    assert (host_port, host_port) in ports
    protocol_map = dict(
        p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    for listener in env["KAFKA_LISTENERS"].split(","):
        assert listener.split("://")[0] in protocol_map


def _mounts(service: Service) -> dict[str, str]:
    """container path -> host path (relative to the repository) of bind mounts."""
    result = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            result[target] = source[2:]
    return result


def test_prometheus_scrapes_the_workers_and_loads_the_alerts(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    mounts = _mounts(prometheus)
    config_path = "/etc/prometheus/prometheus.yml"
    assert f"--config.file={config_path}" in prometheus["command"]
    config = yaml.safe_load((REPO_ROOT / mounts[config_path]).read_text())
    port = compose["services"]["worker-1"]["environment"]["CONTENTSTREAM_WEB_PORT"]
    targets = [
        target
        for job in config["scrape_configs"]
        if job["job_name"] == "contentstream"
        for group in job["static_configs"]
        for target in group["targets"]
    ]
    assert sorted(targets) == [f"{worker}:{port}" for worker in WORKERS]
    # rule_files are relative to the config file: the alerts mount must match a glob.
    alerts_target = next(t for t, s in mounts.items() if s == "deploy/prometheus/alerts.yml")
    globs = [posixpath.join(posixpath.dirname(config_path), g) for g in config["rule_files"]]
    assert any(fnmatch(alerts_target, g) for g in globs)


def test_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (scripts/services.sh install brings it)")
    proc = subprocess.run(
        [promtool, "check", "config", str(REPO_ROOT / "deploy" / "compose" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = _mounts(grafana)
    provisioning = REPO_ROOT / mounts["/etc/grafana/provisioning"]
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["uid"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert [published(p)[1:] for p in compose["services"]["prometheus"]["ports"]] == [
        ("9090", "9090")
    ]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "contentstream.yml").read_text())[
        "providers"
    ]
    dashboards_target = next(t for t, s in mounts.items() if s == "deploy/grafana/dashboards")
    assert provider["options"]["path"] == dashboards_target
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_target}/contentstream.json"


def test_own_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source in _mounts(service).values():
            if source in FOREIGN_MOUNTS:
                continue
            assert (REPO_ROOT / source).exists(), f"{name} mounts missing ./{source}"


def test_dashboard_uses_the_provisioned_datasource() -> None:
    dashboard = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "contentstream.json"
    if not dashboard.is_file():
        pytest.skip("deploy/grafana/dashboards/contentstream.json not written yet")
    text = dashboard.read_text()
    uids = {
        ref.get("uid")
        for ref in _datasource_refs(json.loads(text))
        if isinstance(ref, dict) and ref.get("type", "prometheus") == "prometheus"
    }
    assert uids <= {"prometheus", None} | {u for u in uids if str(u).startswith("${")}


def _datasource_refs(node: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append(value)
            found.extend(_datasource_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_datasource_refs(item))
    return found


# ---------------------------------------------------------------------------- exposure


def test_every_port_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    # Kafka and Redis have no authentication here; nothing may listen on other interfaces.
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            assert isinstance(mapping, str), f"{name}: use the short port syntax"
            assert published(mapping)[0] == "127.0.0.1", f"{name} publishes {mapping!r}"
    assert "ports" not in compose["services"]["redis"]


def test_grafana_admin_password_comes_from_the_environment_and_anonymous_is_off(
    compose: dict[str, Any],
) -> None:
    env = compose["services"]["grafana"]["environment"]
    # ${VAR:?message}: compose refuses to start without it; there is no default to guess.
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"])
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    for name, service in compose["services"].items():
        text = yaml.safe_dump(service.get("environment", {}))
        assert ":-admin" not in text, f"{name} falls back to a default admin password"


def test_prometheus_exposes_no_lifecycle_or_admin_api(compose: dict[str, Any]) -> None:
    # --web.enable-lifecycle lets anyone who reaches the port shut Prometheus down.
    command = compose["services"]["prometheus"]["command"]
    assert not [
        flag
        for flag in command
        if flag.startswith(("--web.enable-lifecycle", "--web.enable-admin-api"))
    ]
