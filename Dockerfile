# syntax=docker/dockerfile:1.7
#
# contentstream worker / CLI image.
#
#   docker build -t contentstream:local .                      # builtin analyzers only
#   docker build -t contentstream:ml --build-arg WITH_ML=true . # + transformers, CPU torch
#   docker build -t contentstream:gpu --build-arg WITH_ML=true --build-arg TORCH_DEVICE=cuda .
#                                                  # + transformers, CUDA torch (linux/amd64)
#
# The GPU image needs no CUDA base image: PyPI's Linux x86_64 torch wheels are CUDA
# builds that bring the CUDA runtime, cuDNN and NCCL as nvidia-* wheels; only the driver
# comes from the host (NVIDIA Container Toolkit, or the Kubernetes device plugin). It is
# several GB larger than the CPU image, which keeps the CPU-only index.
#
# The builder stage compiles every wheel (it has a compiler for the few dependencies
# that may lack a wheel for this platform); the runtime stage installs those wheels
# offline and has no compiler, no pip cache and no source tree.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ARG WITH_ML=false
# cpu: torch from TORCH_INDEX_URL, CPU-only wheels (the default PyPI torch pulls in
# several GB of CUDA libraries). cuda: torch from PyPI itself, a CUDA build.
ARG TORCH_DEVICE=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY analyzers/ analyzers/
COPY streams/ streams/

RUN set -eux; \
    target=".[otel]"; set --; \
    case "${WITH_ML}:${TORCH_DEVICE}" in \
        true:cpu) target=".[ml,otel]"; set -- --extra-index-url "${TORCH_INDEX_URL}" ;; \
        true:cuda) target=".[ml,otel]" ;; \
        false:cpu) ;; \
        false:cuda) echo "TORCH_DEVICE=cuda needs WITH_ML=true (torch comes with the ml extra)" >&2; exit 1 ;; \
        *) echo "WITH_ML must be true or false and TORCH_DEVICE cpu or cuda, not '${WITH_ML}' and '${TORCH_DEVICE}'" >&2; exit 1 ;; \
    esac; \
    pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels "$@" "${target}"; \
    printf '%s\n' "${target}" > /wheels/.target; \
    printf '%s\n' "${TORCH_DEVICE}" > /wheels/.torch-device

# ------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

ARG WITH_ML=false
ARG TORCH_DEVICE=cpu
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="contentstream" \
      org.opencontainers.image.description="Streaming content analysis (language, sentiment, keywords, summary, entities) for Chinese and English text on Kafka" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}" \
      io.contentstream.with-ml="${WITH_ML}" \
      io.contentstream.torch-device="${TORCH_DEVICE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONTENTSTREAM_WEB_HOST=0.0.0.0 \
    CONTENTSTREAM_WEB_PORT=6066 \
    CONTENTSTREAM_LOG_FORMAT=json \
    HF_HOME=/var/lib/contentstream/.cache/huggingface

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 contentstream \
    && useradd --system --uid 10001 --gid contentstream --no-create-home \
        --home-dir /var/lib/contentstream --shell /usr/sbin/nologin contentstream \
    && install -d -o contentstream -g contentstream -m 0750 /var/lib/contentstream

# The wheels are bind-mounted from the builder, so they never become an image layer.
# Versions are pinned by what the builder resolved: --no-index allows nothing else.
# A cuda image must hold a CUDA build of torch (checked without a GPU: torch.version.cuda).
# hadolint ignore=DL3013
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    set -eux; \
    target="$(cat /wheels/.target)"; \
    pip install --no-cache-dir --no-index --find-links /wheels "contentstream${target#.}"; \
    contentstream --help > /dev/null; \
    if [ "$(cat /wheels/.torch-device)" = cuda ]; then \
        python -c "import sys, torch; sys.exit(torch.version.cuda is None)"; \
    fi

# Faust keeps its table state under the working directory.
WORKDIR /var/lib/contentstream
USER 10001:10001

EXPOSE 6066
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CONTENTSTREAM_WEB_PORT', '6066'), timeout=4).close()"]

ENTRYPOINT ["contentstream"]
CMD ["worker"]
