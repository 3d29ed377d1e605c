#!/usr/bin/env bash
# Validates the deployment assets offline:
#   1. helm lint --strict, with the default values and each deploy/helm/contentstream/ci/*.yaml
#   2. helm template of the same value sets, for the oldest and newest Kubernetes the chart
#      supports; built-in kinds validated with kubernetes-validate --strict, custom
#      resources (KEDA, Prometheus Operator) structure-checked here (no CRD schemas offline)
#   3. docker-compose.yml against the compose-spec schema (check-jsonschema)
#   4. Dockerfile with hadolint (any warning fails)
#   5. Prometheus configs with promtool, when promtool is installed
#
# Tools come from scripts/install_deploy_tools.sh (run it first; `make` does).
# Environment: CONTENTSTREAM_TOOLS_VENV, CONTENTSTREAM_TOOLS_BIN (as the installer),
#   CONTENTSTREAM_KUBE_VERSIONS (default "1.25.0 1.37.0"),
#   CONTENTSTREAM_RENDER_DIR (keep the rendered manifests there instead of a temp dir).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${HOME:-/root}/.cache/contentstream"
TOOLS_VENV="${CONTENTSTREAM_TOOLS_VENV:-$CACHE_ROOT/tools-venv}"
TOOLS_BIN="${CONTENTSTREAM_TOOLS_BIN:-$CACHE_ROOT/bin}"
HELM="$TOOLS_BIN/helm"
KUBE_VERSIONS="${CONTENTSTREAM_KUBE_VERSIONS:-1.25.0 1.37.0}"
CHART="$REPO_ROOT/deploy/helm/contentstream"

log() { printf '[check-deploy] %s\n' "$*" >&2; }
die() { printf '[check-deploy] ERROR: %s\n' "$*" >&2; exit 1; }

for tool in "$HELM" "$TOOLS_VENV/bin/check-jsonschema" "$TOOLS_VENV/bin/hadolint" \
            "$TOOLS_VENV/bin/kubernetes-validate"; do
    [[ -x "$tool" ]] || die "$tool missing: run scripts/install_deploy_tools.sh first"
done

if [[ -n "${CONTENTSTREAM_RENDER_DIR:-}" ]]; then
    RENDER_DIR="$CONTENTSTREAM_RENDER_DIR"
    mkdir -p "$RENDER_DIR"
else
    RENDER_DIR="$(mktemp -d)"
    trap 'rm -rf "$RENDER_DIR"' EXIT
fi

checks=0
ok() { checks=$((checks + 1)); log "ok: $*"; }

# Value sets: "default" plus every ci/*.yaml.
value_sets=(default)
for f in "$CHART"/ci/*.yaml; do
    [[ -e "$f" ]] && value_sets+=("$f")
done

values_args() {
    [[ "$1" == "default" ]] || printf -- '--values\n%s\n' "$1"
}

# ----------------------------------------------------------------- helm lint
for set_ in "${value_sets[@]}"; do
    mapfile -t args < <(values_args "$set_")
    "$HELM" lint --strict "$CHART" "${args[@]}" >"$RENDER_DIR/lint.out" 2>&1 \
        || { cat "$RENDER_DIR/lint.out" >&2; die "helm lint failed for values: $set_"; }
    ok "helm lint --strict ($(basename "$set_"))"
done

# ----------------------------------------------------------------- helm template + validate
for kube in $KUBE_VERSIONS; do
    for set_ in "${value_sets[@]}"; do
        mapfile -t args < <(values_args "$set_")
        name="$(basename "$set_" .yaml)-k8s-$kube"
        rendered="$RENDER_DIR/$name.yaml"
        "$HELM" template contentstream "$CHART" --namespace contentstream \
            --kube-version "$kube" "${args[@]}" >"$rendered" \
            || die "helm template failed for values $set_ (Kubernetes $kube)"
        # Split built-in kinds from custom resources, structure-check the latter.
        "$TOOLS_VENV/bin/python" - "$rendered" "$RENDER_DIR/$name.builtin.yaml" <<'PY'
import re
import sys

import yaml

CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
CUSTOM_GROUPS = {"keda.sh", "monitoring.coreos.com"}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def fail(doc, message):
    sys.exit(f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}: {message}")


def require(doc, cond, message):
    if not cond:
        fail(doc, message)


def check_custom(doc):
    require(doc, set(doc) <= {"apiVersion", "kind", "metadata", "spec"}, f"unexpected top-level keys {sorted(set(doc))}")
    meta, spec = doc.get("metadata"), doc.get("spec")
    require(doc, isinstance(meta, dict) and DNS1123.match(str(meta.get("name", ""))) and len(meta["name"]) <= 253, "metadata.name missing or not a DNS-1123 name")
    labels = meta.get("labels", {})
    require(doc, isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values()), "metadata.labels must map strings to strings")
    require(doc, isinstance(spec, dict) and spec, "spec must be a non-empty mapping")
    kind = doc["kind"]
    if kind == "ScaledObject":
        require(doc, isinstance(spec.get("scaleTargetRef"), dict) and spec["scaleTargetRef"].get("name"), "spec.scaleTargetRef.name required")
        require(doc, isinstance(spec.get("triggers"), list) and spec["triggers"], "spec.triggers must be a non-empty list")
        for trigger in spec["triggers"]:
            require(doc, trigger.get("type") and isinstance(trigger.get("metadata"), dict), "each trigger needs type and metadata")
            bad = [k for k, v in trigger["metadata"].items() if not isinstance(v, str)]
            require(doc, not bad, f"trigger metadata values must be strings (KEDA reads map[string]string): {bad}")
        for key in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
            require(doc, key not in spec or isinstance(spec[key], int), f"spec.{key} must be an integer")
    elif kind == "TriggerAuthentication":
        refs = spec.get("secretTargetRef")
        require(doc, isinstance(refs, list) and refs, "spec.secretTargetRef must be a non-empty list")
        for ref in refs:
            require(doc, set(ref) == {"parameter", "name", "key"} and all(isinstance(v, str) and v for v in ref.values()), f"bad secretTargetRef {ref}")
    elif kind == "ServiceMonitor":
        require(doc, isinstance(spec.get("selector"), dict), "spec.selector required")
        require(doc, isinstance(spec.get("endpoints"), list) and spec["endpoints"], "spec.endpoints must be a non-empty list")
        for endpoint in spec["endpoints"]:
            require(doc, endpoint.get("port") or endpoint.get("targetPort"), "each endpoint needs a port")
    elif kind == "PrometheusRule":
        require(doc, isinstance(spec.get("groups"), list) and spec["groups"], "spec.groups must be a non-empty list")
        for group in spec["groups"]:
            require(doc, group.get("name") and isinstance(group.get("rules"), list) and group["rules"], "each group needs a name and rules")
            for rule in group["rules"]:
                require(doc, ("alert" in rule) != ("record" in rule), f"rule needs exactly one of alert/record: {rule}")
                require(doc, isinstance(rule.get("expr"), str) and rule["expr"].strip(), "rule expr must be a non-empty string")


source, builtin_out = sys.argv[1], sys.argv[2]
with open(source) as fh:
    docs = [d for d in yaml.safe_load_all(fh) if d]
builtin = []
custom = 0
for doc in docs:
    key = (doc.get("apiVersion"), doc.get("kind"))
    group = str(key[0]).split("/")[0] if "/" in str(key[0]) else ""
    if key in CUSTOM_KINDS:
        check_custom(doc)
        custom += 1
    elif group in CUSTOM_GROUPS:
        fail(doc, f"custom resource {key} is not known to this check: add it to CUSTOM_KINDS")
    else:
        builtin.append(doc)
with open(builtin_out, "w") as fh:
    yaml.safe_dump_all(builtin, fh, sort_keys=False)
print(f"{len(builtin)} built-in, {custom} custom resources", file=sys.stderr)
PY
        "$TOOLS_VENV/bin/kubernetes-validate" --strict --quiet -k "$kube" "$RENDER_DIR/$name.builtin.yaml" \
            || die "kubernetes-validate failed for values $set_ (Kubernetes $kube); see $rendered"
        ok "helm template + kubernetes-validate --strict ($(basename "$set_"), Kubernetes $kube)"
    done
done

# A render that must fail: secrets never go into values.
if "$HELM" template contentstream "$CHART" --set kafka.sasl.password=hunter2 >/dev/null 2>&1; then
    die "the chart accepted kafka.sasl.password: values.schema.json must reject secrets in values"
fi
ok "values.schema.json rejects a password in values"

# ----------------------------------------------------------------- compose
"$TOOLS_VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$REPO_ROOT/docker-compose.yml" >&2 \
    || die "docker-compose.yml does not match the compose-spec schema"
ok "docker-compose.yml matches the compose-spec schema"

# ----------------------------------------------------------------- Dockerfile
"$TOOLS_VENV/bin/hadolint" --failure-threshold warning "$REPO_ROOT/Dockerfile" >&2 \
    || die "hadolint found problems in the Dockerfile"
ok "hadolint Dockerfile"

# ----------------------------------------------------------------- Prometheus
if command -v promtool >/dev/null 2>&1; then
    promtool check config "$REPO_ROOT/deploy/compose/prometheus.yml" >&2 || die "promtool: deploy/compose/prometheus.yml"
    promtool check rules "$CHART/files/alerts.yml" >&2 || die "promtool: the chart's files/alerts.yml"
    ok "promtool check config/rules"
else
    log "skipped: promtool not installed (scripts/services.sh install brings it)"
fi

log "all $checks deployment checks OK"
