"""The Helm chart, rendered with the real helm: probes, grace period, secrets, scaling.

Needs the deployment tools (scripts/install_deploy_tools.sh: helm, kubernetes-validate);
skips with that instruction when they are missing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings
from streams.settings import env_names as setting_env_names

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "deploy" / "helm" / "contentstream"
ALL_FEATURES = CHART / "ci" / "all-features-values.yaml"
HPA_VALUES = CHART / "ci" / "hpa-values.yaml"
GPU_VALUES = CHART / "ci" / "gpu-values.yaml"
CACHE_ROOT = Path(os.environ.get("HOME", "/root")) / ".cache" / "contentstream"
TOOLS_VENV = Path(os.environ.get("CONTENTSTREAM_TOOLS_VENV", CACHE_ROOT / "tools-venv"))
HELM = Path(os.environ.get("CONTENTSTREAM_TOOLS_BIN", CACHE_ROOT / "bin")) / "helm"
KUBE_VERSION = "1.37.0"

Manifest = dict[str, Any]

pytestmark = pytest.mark.skipif(
    not HELM.is_file(), reason=f"{HELM} missing: run scripts/install_deploy_tools.sh first"
)


def _helm(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    """``helm template contentstream CHART ARGS...`` or ``helm ARGS... CHART``."""
    if args[0] == "template":
        command = [str(HELM), "template", "contentstream", str(chart), *args[1:]]
    else:
        command = [str(HELM), *args, str(chart)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _template_args(values: list[Path], sets: dict[str, str]) -> list[str]:
    args = ["template", "--namespace", "cs", "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["--values", str(path)]
    for key, value in sets.items():
        # --set turns "40.5" into a string; JSON literals keep numbers numbers.
        try:
            json.loads(value)
        except ValueError:
            args += ["--set", f"{key}={value}"]
        else:
            args += ["--set-json", f"{key}={value}"]
    return args


def render(*values: Path, **sets: str) -> dict[tuple[str, str], Manifest]:
    """Rendered manifests by (kind, name); ``sets`` keys use ``__`` for dots."""
    proc = _helm(*_template_args(list(values), _dotted(sets)))
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def render_error(*values: Path, **sets: str) -> str:
    proc = _helm(*_template_args(list(values), _dotted(sets)))
    assert proc.returncode != 0, "the chart rendered values it must reject"
    return proc.stderr


def _dotted(sets: dict[str, str]) -> dict[str, str]:
    return {key.replace("__", "."): value for key, value in sets.items()}


def one(manifests: dict[tuple[str, str], Manifest], kind: str) -> Manifest:
    found = [m for (k, _), m in manifests.items() if k == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def kinds(manifests: dict[tuple[str, str], Manifest]) -> set[str]:
    return {kind for kind, _ in manifests}


def container(manifests: dict[tuple[str, str], Manifest]) -> Manifest:
    containers = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Manifest = containers[0]
    return result


# ---------------------------------------------------------------------------- lint


@pytest.mark.parametrize(
    "values", [None, ALL_FEATURES, HPA_VALUES, GPU_VALUES], ids=["default", "all", "hpa", "gpu"]
)
def test_helm_lint_strict(values: Path | None) -> None:
    args = ["lint", "--strict"] + (["--values", str(values)] if values else [])
    proc = _helm(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


# ---------------------------------------------------------------------------- workers


def test_probes_hit_health_paths_on_the_web_port() -> None:
    manifests = render()
    worker = container(manifests)
    assert worker["args"] == ["worker"]
    assert worker["ports"] == [{"name": "http", "containerPort": 6066, "protocol": "TCP"}]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert worker["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    config = one(manifests, "ConfigMap")["data"]
    assert config["CONTENTSTREAM_WEB_PORT"] == "6066"
    assert config["CONTENTSTREAM_WEB_HOST"] == "0.0.0.0"
    service = one(manifests, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 6066, "targetPort": "http", "protocol": "TCP"}
    ]


def test_web_port_moves_container_service_and_settings_together() -> None:
    manifests = render(config__CONTENTSTREAM_WEB_PORT="9100")
    assert container(manifests)["ports"][0]["containerPort"] == 9100
    assert one(manifests, "Service")["spec"]["ports"][0]["port"] == 9100
    assert one(manifests, "ConfigMap")["data"]["CONTENTSTREAM_WEB_PORT"] == "9100"


@pytest.mark.parametrize(
    ("sets", "timeout"),
    [
        ({}, 25.0),
        ({"config__CONTENTSTREAM_SHUTDOWN_TIMEOUT_S": "60"}, 60.0),
        ({"config__CONTENTSTREAM_SHUTDOWN_TIMEOUT_S": "40.5"}, 40.5),
        ({"terminationGraceExtraSeconds": "1"}, 25.0),
    ],
)
def test_grace_period_outlasts_the_shutdown_deadline(sets: dict[str, str], timeout: float) -> None:
    manifests = render(**sets)
    grace = one(manifests, "Deployment")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    configured = float(one(manifests, "ConfigMap")["data"]["CONTENTSTREAM_SHUTDOWN_TIMEOUT_S"])
    assert configured == timeout
    assert isinstance(grace, int)
    assert grace > configured
    extra = int(sets.get("terminationGraceExtraSeconds", "10"))
    assert grace == math.ceil(timeout) + extra


def test_pods_run_as_non_root_with_a_read_only_root() -> None:
    manifests = render()
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = container(manifests)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    writable = {m["mountPath"] for m in container(manifests)["volumeMounts"]}
    assert {"/tmp", "/var/lib/contentstream"} <= writable


def test_config_changes_roll_the_pods() -> None:
    def checksum(**sets: str) -> str:
        deployment = one(render(**sets), "Deployment")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum() == checksum()
    assert checksum() != checksum(config__CONTENTSTREAM_LOG_LEVEL="DEBUG")


def test_anti_affinity_selects_the_workers_own_pods() -> None:
    manifests = render()
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    soft = one(manifests, "Deployment")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = soft["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod_labels.items()

    hard = one(render(ALL_FEATURES), "Deployment")["spec"]["template"]["spec"]["affinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard["podAntiAffinity"]
    none = one(render(podAntiAffinity="none"), "Deployment")["spec"]["template"]["spec"]
    assert "affinity" not in none


def test_pdb_and_service_select_the_worker_pods() -> None:
    manifests = render()
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert one(manifests, "Service")["spec"]["selector"].items() <= pod_labels.items()


# ---------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "values", [None, ALL_FEATURES, HPA_VALUES, GPU_VALUES], ids=["default", "all", "hpa", "gpu"]
)
def test_every_configured_variable_is_a_real_setting(values: Path | None) -> None:
    manifests = render(*([values] if values else []))
    known = setting_env_names()
    names = set(one(manifests, "ConfigMap")["data"])
    names |= {
        env["name"]
        for env in container(manifests).get("env", [])
        if env["name"].startswith(("CONTENTSTREAM_", "KAFKA_", "REDIS_"))
    }
    assert names - known == set(), f"not settings: {sorted(names - known)}"


def test_configmap_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    data = one(render(ALL_FEATURES), "ConfigMap")["data"]
    for name in list(os.environ):
        if name.startswith(("CONTENTSTREAM_", "KAFKA_", "REDIS_")):
            monkeypatch.delenv(name)
    # Secrets come from secretKeyRef at run time; fill them to validate the rest.
    for name, value in {**data, "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_compression_type == "zstd"
    assert settings.max_payload_bytes == 1_048_576  # rendered "1048576", not "1.048576e+06"
    assert settings.shutdown_timeout_s == 40.5


def test_an_unknown_compression_type_is_rejected() -> None:
    assert "compressionType" in render_error(kafka__compressionType='"brotli"')


def test_kafka_client_defaults_match_the_worker_defaults() -> None:
    data = one(render(), "ConfigMap")["data"]
    fields = Settings.model_fields
    assert data["KAFKA_COMPRESSION_TYPE"] == fields["kafka_compression_type"].default
    assert data["KAFKA_ISOLATION_LEVEL"] == fields["kafka_isolation_level"].default
    assert data["KAFKA_AUTO_OFFSET_RESET"] == fields["kafka_auto_offset_reset"].default


# ---------------------------------------------------------------------------- secrets


def test_no_secret_values_are_rendered() -> None:
    manifests = render(ALL_FEATURES)
    assert "Secret" not in kinds(manifests), "the chart must only reference existing Secrets"
    data = one(manifests, "ConfigMap")["data"]
    assert not [k for k in data if "PASSWORD" in k or "SECRET" in k]
    env = {e["name"]: e for e in container(manifests)["env"]}
    for name, secret, key in [
        ("KAFKA_SASL_PASSWORD", "contentstream-kafka-user", "password"),
        ("KAFKA_SASL_USERNAME", "contentstream-kafka-user", "username"),
        ("REDIS_PASSWORD", "contentstream-redis", "password"),
    ]:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": key}
        assert "value" not in env[name]


def test_tls_files_are_mounted_where_the_settings_point() -> None:
    manifests = render(ALL_FEATURES)
    data = one(manifests, "ConfigMap")["data"]
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in container(manifests)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    def files_of(volume: Manifest) -> dict[str, tuple[str, str]]:
        sources = volume.get("projected", {}).get("sources") or [{"secret": volume["secret"]}]
        files = {}
        for source in sources:
            secret = source["secret"]
            name = secret.get("name") or secret.get("secretName")
            for item in secret["items"]:
                files[item["path"]] = (name, item["key"])
        return files

    mounted: dict[str, tuple[str, str]] = {}
    for name, mount in mounts.items():
        if name in ("kafka-tls", "redis-tls"):
            assert mount["readOnly"] is True
            for path, ref in files_of(volumes[name]).items():
                mounted[f"{mount['mountPath']}/{path}"] = ref
    assert mounted[data["KAFKA_SSL_CAFILE"]] == ("kafka-cluster-ca", "ca.crt")
    assert mounted[data["KAFKA_SSL_CERTFILE"]] == ("contentstream-kafka-client", "tls.crt")
    assert mounted[data["KAFKA_SSL_KEYFILE"]] == ("contentstream-kafka-client", "tls.key")
    assert mounted[data["REDIS_SSL_CAFILE"]] == ("redis-ca", "ca.crt")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"kafka__sasl__password": "hunter2"}, "additional properties 'password' not allowed"),
        ({"redis__password": "hunter2"}, "additional properties 'password' not allowed"),
        ({"config__CONTENTSTREAM_KAFKA_PASSWORD": "x"}, "CONTENTSTREAM_KAFKA_PASSWORD"),
        ({"config__KAFKA_SASL_PASSWORD": "x"}, "KAFKA_SASL_PASSWORD"),
        ({"kafka__securityProtocol": "SASL_SSL"}, "mechanism"),
        (
            {"kafka__securityProtocol": "SASL_SSL", "kafka__sasl__mechanism": "PLAIN"},
            "passwordSecret",
        ),
        ({"redis__url": "redis://:hunter2@redis:6379/0"}, "redis.passwordSecret"),
        ({"kafka__tls__caSecret__name": "ca"}, "use SSL or SASL_SSL"),
        ({"replicaCount": "-1"}, "replicaCount"),
        ({"autoscaling__enabled": "true", "autoscaling__minReplicas": "0"}, "needs KEDA"),
    ],
)
def test_bad_values_are_rejected_with_a_reason(sets: dict[str, str], message: str) -> None:
    assert message in render_error(**sets)


def test_keda_with_sasl_needs_the_username_in_a_secret() -> None:
    error = render_error(
        ALL_FEATURES, kafka__sasl__usernameSecret__name="", kafka__sasl__username="plain-user"
    )
    assert "kafka.sasl.usernameSecret" in error


# ---------------------------------------------------------------------------- scaling


def test_fixed_replicas_without_autoscaling() -> None:
    manifests = render(replicaCount="3")
    assert one(manifests, "Deployment")["spec"]["replicas"] == 3
    assert not {"HorizontalPodAutoscaler", "ScaledObject"} & kinds(manifests)


def test_hpa_fallback_owns_the_replica_count() -> None:
    manifests = render(HPA_VALUES)
    deployment = one(manifests, "Deployment")
    assert "replicas" not in deployment["spec"]
    assert "ScaledObject" not in kinds(manifests)
    hpa = one(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert targets["cpu"]["averageUtilization"] == 75
    assert targets["memory"]["averageUtilization"] == 85


def test_keda_scales_on_the_consumer_groups_lag() -> None:
    manifests = render(ALL_FEATURES)
    deployment = one(manifests, "Deployment")
    assert "replicas" not in deployment["spec"]
    assert "HorizontalPodAutoscaler" not in kinds(manifests)
    scaled = one(manifests, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 12)
    (trigger,) = scaled["spec"]["triggers"]
    data = one(manifests, "ConfigMap")["data"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["consumerGroup"] == data["CONTENTSTREAM_APP_ID"]
    assert meta["topic"] == data["CONTENTSTREAM_INPUT_TOPIC"]
    assert meta["bootstrapServers"] == data["KAFKA_BOOTSTRAP_SERVERS"]
    assert meta["lagThreshold"] == "500"
    assert meta["allowIdleConsumers"] == "false"
    assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable")
    assert all(isinstance(v, str) for v in meta.values())
    auth = one(manifests, "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    params = {
        ref["parameter"]: (ref["name"], ref["key"]) for ref in auth["spec"]["secretTargetRef"]
    }
    assert params == {
        "username": ("contentstream-kafka-user", "username"),
        "password": ("contentstream-kafka-user", "password"),
        "ca": ("kafka-cluster-ca", "ca.crt"),
        "cert": ("contentstream-kafka-client", "tls.crt"),
        "key": ("contentstream-kafka-client", "tls.key"),
    }


def test_keda_on_plaintext_needs_no_trigger_authentication() -> None:
    manifests = render(autoscaling__enabled="true", autoscaling__keda__enabled="true")
    assert "TriggerAuthentication" not in kinds(manifests)
    (trigger,) = one(manifests, "ScaledObject")["spec"]["triggers"]
    assert "authenticationRef" not in trigger
    assert "sasl" not in trigger["metadata"]


# ---------------------------------------------------------------------------- monitoring


def test_monitoring_objects_are_optional_and_consistent() -> None:
    assert not {"ServiceMonitor", "PrometheusRule"} & kinds(render())
    manifests = render(ALL_FEATURES)
    monitor = one(manifests, "ServiceMonitor")
    service = one(manifests, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [
        p["name"] for p in service["spec"]["ports"]
    ]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # job="contentstream" comes from this Service label (the alerts select on it).
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "contentstream"

    rule = one(manifests, "PrometheusRule")
    shipped = yaml.safe_load((CHART / "files" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == shipped["groups"]


def test_chart_alerts_are_a_copy_of_the_shipped_alerts() -> None:
    shipped = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
    if not shipped.is_file():
        pytest.skip("deploy/prometheus/alerts.yml not written yet")
    chart_copy = CHART / "files" / "alerts.yml"
    assert yaml.safe_load(chart_copy.read_text()) == yaml.safe_load(shipped.read_text()), (
        "run: cp deploy/prometheus/alerts.yml deploy/helm/contentstream/files/alerts.yml"
    )


# ---------------------------------------------------------------------------- exposure


def pod_spec(manifests: dict[tuple[str, str], Manifest]) -> Manifest:
    spec: Manifest = one(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def test_network_policy_is_off_by_default() -> None:
    assert "NetworkPolicy" not in kinds(render())


def test_network_policy_admits_only_the_scrape_and_kafka_redis_dns() -> None:
    manifests = render(ALL_FEATURES)
    policy = one(manifests, "NetworkPolicy")["spec"]
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": 6066, "protocol": "TCP"}]
    assert ingress["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    dns, kafka, redis, extra = policy["egress"]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    # The port of every bootstrap server (kafka-N.kafka:9094), once.
    assert kafka == {
        "ports": [{"port": 9094, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
    }
    assert redis["ports"] == [
        {"port": 6380, "protocol": "TCP"}
    ]  # rediss://redis-master.redis:6380/0
    assert redis["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "redis"
    }
    assert extra["ports"] == [{"port": 443, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("sets", "kafka_ports", "redis_port"),
    [
        ({}, [9092], None),  # no redis.url: no Redis rule
        ({"redis__url": "redis://redis:6379/0"}, [9092], 6379),
        (
            {"redis__url": "redis://redis/0", "kafka__bootstrapServers": '"a:9092,b:9093,c:9092"'},
            [9092, 9093],
            6379,
        ),
        ({"networkPolicy__kafka__ports": "[19092]"}, [19092], None),
    ],
)
def test_network_policy_ports_follow_the_connection_settings(
    sets: dict[str, str], kafka_ports: list[int], redis_port: int | None
) -> None:
    manifests = render(networkPolicy__enabled="true", config__CONTENTSTREAM_WEB_PORT="9100", **sets)
    policy = one(manifests, "NetworkPolicy")["spec"]
    assert policy["ingress"][0]["ports"] == [{"port": 9100, "protocol": "TCP"}]
    egress = policy["egress"]
    assert [p["port"] for p in egress[1]["ports"]] == kafka_ports
    assert "to" not in egress[1]  # no broker peers given: any address, these ports only
    if redis_port is None:
        assert len(egress) == 2
    else:
        assert egress[2] == {"ports": [{"port": redis_port, "protocol": "TCP"}]}


def test_network_policy_without_ingress_peers_admits_nothing() -> None:
    policy = one(
        render(networkPolicy__enabled="true", networkPolicy__ingressFrom="[]"), "NetworkPolicy"
    )
    assert "Ingress" in policy["spec"]["policyTypes"]
    assert "ingress" not in policy["spec"]  # deny all, not allow all


def test_scratch_volumes_are_size_limited() -> None:
    volumes = {v["name"]: v for v in pod_spec(render())["volumes"]}
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "256Mi"}
    assert volumes["state"]["emptyDir"] == {"sizeLimit": "1Gi"}
    volumes = {v["name"]: v for v in pod_spec(render(ALL_FEATURES))["volumes"]}
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "128Mi", "medium": "Memory"}
    assert volumes["state"]["emptyDir"] == {"sizeLimit": "2Gi"}


def test_cpu_limit_is_optional() -> None:
    assert "cpu" not in container(render())["resources"]["limits"]
    resources = container(render(ALL_FEATURES))["resources"]
    assert resources["limits"]["cpu"] == "2"
    assert resources["limits"]["ephemeral-storage"] == "4Gi"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            {"resources__limits__cpu": "2", "config__CONTENTSTREAM_POOL_PROCESSES": "0"},
            "CONTENTSTREAM_POOL_PROCESSES is 0",
        ),
        ({"resources__limits__cpu": "two"}, "resources"),
        ({"resources__limit__cpu": "2"}, "additional properties 'limit' not allowed"),
        ({"scratchVolumes__tmp__sizeLimit": "lots"}, "scratchVolumes"),
        ({"scratchVolumes__state__medium": "Disk"}, "medium"),
        ({"networkPolicy__kafka__ports": "[0]"}, "ports"),
        ({"networkPolicy__ingressFrom": "[{}]"}, "ingressFrom"),
        ({"gpu__count": "-1"}, "count"),
        (
            {"gpu__count": "1", "config__CONTENTSTREAM_MODEL_DEVICE": "cpu"},
            "CONTENTSTREAM_MODEL_DEVICE is cpu",
        ),
        ({"tolerations": '[{"key": "a", "operator": "Maybe"}]'}, "operator"),
    ],
)
def test_bad_exposure_and_gpu_values_are_rejected(sets: dict[str, str], message: str) -> None:
    assert message in render_error(**sets)


# ---------------------------------------------------------------------------- GPU


def test_no_gpu_by_default() -> None:
    manifests = render()
    resources = container(manifests)["resources"]
    assert not [k for kind in resources.values() for k in kind if "gpu" in k]
    assert "nodeSelector" not in pod_spec(manifests)
    assert "tolerations" not in pod_spec(manifests)
    assert "CONTENTSTREAM_MODEL_DEVICE" not in one(manifests, "ConfigMap")["data"]


def test_gpu_values_request_gpus_on_gpu_nodes_and_run_models_on_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifests = render(GPU_VALUES)
    resources = container(manifests)["resources"]
    # Extended resources: requested and limited alike; the memory/CPU defaults stay.
    assert resources["limits"]["nvidia.com/gpu"] == 1
    assert resources["requests"]["nvidia.com/gpu"] == 1
    assert resources["requests"]["memory"] == "768Mi"
    pod = pod_spec(manifests)
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64", "nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    data = one(manifests, "ConfigMap")["data"]
    assert data["CONTENTSTREAM_MODEL_DEVICE"] == "cuda"
    for name in list(os.environ):
        if name.startswith(("CONTENTSTREAM_", "KAFKA_", "REDIS_")):
            monkeypatch.delenv(name)
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.model_device, settings.sentiment_backend) == ("cuda", "transformers")


def test_gpu_count_and_device_can_be_chosen() -> None:
    manifests = render(
        GPU_VALUES,
        gpu__count="2",
        gpu__resourceName="nvidia.com/mig-1g.18gb",
        config__CONTENTSTREAM_MODEL_DEVICE="cuda:1",
    )
    limits = container(manifests)["resources"]["limits"]
    assert limits["nvidia.com/mig-1g.18gb"] == 2
    assert "nvidia.com/gpu" not in limits
    assert one(manifests, "ConfigMap")["data"]["CONTENTSTREAM_MODEL_DEVICE"] == "cuda:1"


def test_gpu_values_pass_kubernetes_validate_strict() -> None:
    validate = TOOLS_VENV / "bin" / "kubernetes-validate"
    if not validate.is_file():
        pytest.skip(f"{validate} missing: run scripts/install_deploy_tools.sh first")
    proc = _helm(*_template_args([GPU_VALUES], {"networkPolicy.enabled": "true"}))
    assert proc.returncode == 0, proc.stderr
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as rendered:
        rendered.write(proc.stdout)
        rendered.flush()
        checked = subprocess.run(
            [str(validate), "--strict", "--quiet", "-k", KUBE_VERSION, rendered.name],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "nvidia.com/gpu" in proc.stdout and "kind: NetworkPolicy" in proc.stdout


# ---------------------------------------------------------------------------- NOTES, schema


def _render_notes(tmp_path: Path, *values: Path, **sets: str) -> str:
    """helm template does not render NOTES.txt: render it through a throw-away template."""
    chart = Path(tempfile.mkdtemp(dir=tmp_path)) / "chart"
    shutil.copytree(CHART, chart)
    (chart / "files" / "notes.txt").write_text((chart / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "notes-render.yaml").write_text(
        'notes: {{ tpl (.Files.Get "files/notes.txt") . | toJson }}\n'
    )
    proc = _helm(
        *_template_args(list(values), _dotted(sets)),
        "--show-only",
        "templates/notes-render.yaml",
        chart=chart,
    )
    assert proc.returncode == 0, proc.stderr
    notes: str = yaml.safe_load(proc.stdout)["notes"]
    return notes


def test_notes_warn_when_workers_outnumber_partitions(tmp_path: Path) -> None:
    assert "WARNING" not in _render_notes(tmp_path)
    notes = _render_notes(tmp_path, replicaCount="20")
    assert "WARNING: replicaCount (20) is more than the topic's 8 partitions" in notes
    scaled = _render_notes(tmp_path, ALL_FEATURES, autoscaling__maxReplicas="30")
    assert "autoscaling.maxReplicas (30) is more than the topic's" in scaled


def test_notes_name_the_gpus_and_the_network_policy(tmp_path: Path) -> None:
    plain = _render_notes(tmp_path)
    assert "GPUs:" not in plain and "NetworkPolicy:" not in plain
    notes = _render_notes(tmp_path, GPU_VALUES, networkPolicy__enabled="true")
    assert "GPUs: 1 nvidia.com/gpu per worker, models on cuda." in notes
    assert "NetworkPolicy: only the peers in networkPolicy.ingressFrom may reach port 6066" in notes


def test_schema_documents_the_partition_limit() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    for description in (
        schema["properties"]["replicaCount"]["description"],
        schema["properties"]["autoscaling"]["properties"]["maxReplicas"]["description"],
    ):
        assert "partition" in description
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) <= set(schema["properties"])


# ---------------------------------------------------------------------------- whole check


def test_check_deploy_script_passes(tmp_path: Path) -> None:
    """lint + render + kubernetes-validate --strict + compose schema + hadolint."""
    if not (TOOLS_VENV / "bin" / "kubernetes-validate").is_file():
        pytest.skip("tools venv missing: run scripts/install_deploy_tools.sh first")
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "check_deploy.sh")],
        env={**os.environ, "CONTENTSTREAM_RENDER_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "deployment checks OK" in proc.stderr
    rendered = (tmp_path / f"all-features-values-k8s-{KUBE_VERSION}.yaml").read_text()
    assert "kind: ScaledObject" in rendered
