# syntax=docker/dockerfile:1
# Relier worker image: the wheel is built in one stage and installed into a venv that
# the runtime stage copies, so no compiler, pip cache or source tree ships.
#
#   docker build -t relier .                                   # python:3.12-slim, PyPI
#   docker build --build-arg BASE_IMAGE=my/base:tag .          # another base (needs python3 + venv)
#   docker build --build-arg PIP_OFFLINE=1 .                   # only wheels in docker/wheelhouse/
#   docker build --build-arg EXTRA_PACKAGES="fastapi uvicorn" .  # what the compose `api` needs
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ARG PIP_OFFLINE=0
ARG EXTRA_PACKAGES=""
WORKDIR /src
COPY docker/wheelhouse/ /wheelhouse/
COPY pyproject.toml README.md ./
COPY relier/ relier/
# uvloop and hiredis are named so that a build fails loudly if either cannot be had
# (both are optional at runtime, and silently slower without them).
RUN set -eu; \
    offline=""; [ "$PIP_OFFLINE" = 1 ] && offline="--no-index"; \
    python3 -m venv /opt/relier; \
    /opt/relier/bin/pip install --no-cache-dir --disable-pip-version-check $offline \
        --find-links /wheelhouse . uvloop hiredis $EXTRA_PACKAGES; \
    /opt/relier/bin/python -c "import uvloop, hiredis, relier"; \
    find /opt/relier -name '__pycache__' -prune -exec rm -rf {} +; \
    rm -rf /opt/relier/lib/python3*/site-packages/pip /opt/relier/bin/pip*

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="relier" \
      org.opencontainers.image.description="Relier worker: an asyncio task runtime that speaks Celery's protocol on Redis" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /opt/relier /opt/relier
# The bundled examples, so the compose stack (and `-A examples.tasks`) runs as shipped.
COPY examples/ /app/examples/
RUN useradd --uid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin relier
ENV PATH=/opt/relier/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RELIER_METRICS_HOST=0.0.0.0
WORKDIR /app
USER relier
# Healthy while a worker in this container heartbeats: the test Phoenix itself applies.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["relier", "health"]
ENTRYPOINT ["relier"]
CMD ["worker"]
