# syntax=docker/dockerfile:1.7
# Two images from one build (docker build --target worker|operator):
#   worker   - the SDK and its `itl-worker` entrypoint; no Kubernetes or Kopf libraries;
#   operator - the same distribution with the `operator` extra; runs `python -m workerpool_operator`.
# Both are slim, run as uid/gid 10001 with no shell needs beyond /bin/sh, and work with a
# read-only root filesystem (the Deployments mount an emptyDir on /tmp).
# The base is pinned by version; pin it by digest too in a release pipeline:
#   --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build: one wheel of this repository (both import packages) ---------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sdk ./sdk
COPY operator ./operator
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- worker-venv: the SDK's runtime dependencies only --------------------------------------
FROM ${PYTHON_IMAGE} AS worker-venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
# The wheel carries both import packages; the worker image needs no operator code. The otel
# extra lets a WorkerPool turn tracing on with OTEL_* variables alone (docs/observability.md).
RUN python -m venv /opt/venv \
 && wheel="$(ls /wheels/*.whl)" \
 && /opt/venv/bin/pip install "${wheel}[otel]" \
 && rm -rf /opt/venv/lib/python3.11/site-packages/workerpool_operator \
 && /opt/venv/bin/python -c "import itl_controlplane_sdk.workers"

# --- operator-venv: plus Kopf and the Kubernetes client -----------------------------------
FROM ${PYTHON_IMAGE} AS operator-venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN python -m venv /opt/venv \
 && wheel="$(ls /wheels/*.whl)" \
 && /opt/venv/bin/pip install "${wheel}[operator]" \
 && /opt/venv/bin/python -c "import workerpool_operator.handlers"

# --- runtime base: non-root user, no bytecode writes, unbuffered logs ----------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp

# --- worker image ----------------------------------------------------------------------------
FROM runtime AS worker
COPY --from=worker-venv /opt/venv /opt/venv
USER 10001:10001
# /health, /status and /metrics (HEALTH_CHECK_PORT).
EXPOSE 8001
CMD ["itl-worker"]

# --- operator image --------------------------------------------------------------------------
FROM runtime AS operator
COPY --from=operator-venv /opt/venv /opt/venv
USER 10001:10001
# Kopf's liveness endpoint (/healthz) and Prometheus metrics.
EXPOSE 8080 9090
CMD ["python", "-m", "workerpool_operator"]
