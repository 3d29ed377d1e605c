"""The chart's HTTP API: its own Deployment, Service, optional Ingress and HPA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_helm import CHART, HELM, render, render_error

from streams.settings import env_names as setting_env_names

API_VALUES = CHART / "ci" / "api-values.yaml"

pytestmark = pytest.mark.skipif(
    not HELM.is_file(), reason=f"{HELM} missing: run scripts/install_deploy_tools.sh first"
)


def by_name(manifests: dict[tuple[str, str], Any], kind: str, suffix: str = "-api") -> Any:
    found = [m for (k, n), m in manifests.items() if k == kind and n.endswith(suffix)]
    assert len(found) == 1, f"expected one {kind} *{suffix}, got {len(found)}"
    return found[0]


def test_no_api_by_default() -> None:
    names = {name for _, name in render()}
    assert not any(name.endswith("-api") for name in names)


def test_api_runs_the_same_image_with_the_api_command_and_its_keys() -> None:
    manifests = render(API_VALUES)
    api = by_name(manifests, "Deployment")
    worker = by_name(manifests, "Deployment", suffix="contentstream")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    (worker_container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["api"] and container["image"] == worker_container["image"]
    assert container["envFrom"] == worker_container["envFrom"]  # the workers' settings
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["CONTENTSTREAM_API_KEYS_FILE"] == mounts["api-keys"] + "/api-keys.yaml"
    assert env["CONTENTSTREAM_API_HOST"] == "0.0.0.0" and env["CONTENTSTREAM_API_PORT"] == "8080"
    assert env["CONTENTSTREAM_API_REQUESTS_PER_S"] == "100"
    assert set(env) - {"POD_NAME"} <= setting_env_names()
    (volume,) = [v for v in api["spec"]["template"]["spec"]["volumes"] if v["name"] == "api-keys"]
    assert volume["secret"]["secretName"] == "contentstream-api-keys"
    assert {
        p["httpGet"]["path"] for p in (container["livenessProbe"], container["readinessProbe"])
    } == {
        "/healthz",
        "/readyz",
    }
    assert "replicas" not in api["spec"]  # the HPA owns it


def test_worker_selectors_never_pick_the_api_pods() -> None:
    manifests = render(API_VALUES)
    api_labels = by_name(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    worker_service = by_name(manifests, "Service", suffix="contentstream")
    pdb = by_name(manifests, "PodDisruptionBudget", suffix="contentstream")
    for selector in (worker_service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert not selector.items() <= api_labels.items()
    service = by_name(manifests, "Service")
    assert service["spec"]["selector"].items() <= api_labels.items()
    assert service["spec"]["ports"][0]["port"] == 80


def test_ingress_and_hpa_point_at_the_api() -> None:
    manifests = render(API_VALUES)
    ingress = by_name(manifests, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == by_name(manifests, "Service")["metadata"]["name"]
    hpa = by_name(manifests, "HorizontalPodAutoscaler")
    assert (
        hpa["spec"]["scaleTargetRef"]["name"]
        == by_name(manifests, "Deployment")["metadata"]["name"]
    )
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"api__enabled": "true"}, "api.keysSecret.name"),
        (
            {
                "api__enabled": "true",
                "api__keysSecret__name": "k",
                "api__config": '{"CONTENTSTREAM_API_PORT": 1}',
            },
            "set by the chart",
        ),
        ({"api__port": "0"}, "port"),
        ({"api__config": '{"lowercase": 1}'}, "'lowercase' does not match pattern"),
    ],
)
def test_bad_api_values_are_rejected(sets: dict[str, str], message: str) -> None:
    assert message in render_error(**sets)


def test_api_values_file_is_checked_by_check_deploy() -> None:
    # scripts/check_deploy.sh lints, renders and validates every ci/*.yaml.
    assert API_VALUES.is_file() and API_VALUES.parent == Path(CHART / "ci")
