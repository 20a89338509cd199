# One file, three images: `--target producer-api`, `--target consumer-worker` and
# `--target memtel-agent`, on
# debian:bookworm-slim with Debian's Python 3.11, running as the non-root user `app`.
# The dependencies are installed from the pinned, hashed lock file
# requirements/runtime.txt into a virtualenv; that layer is rebuilt only when the lock
# file changes. Build from the repository root: docker build --target producer-api .
#
# EXTRA_CA_CERTS (optional, PEM text): certificates to trust in addition to Debian's,
# for a build host that reaches PyPI through a TLS-intercepting proxy.

ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS base
ARG EXTRA_CA_CERTS=""
COPY docker/install-ca-certs.sh /usr/local/sbin/install-ca-certs
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates \
 && install-ca-certs \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
WORKDIR /app

FROM base AS dependencies
COPY requirements/runtime.txt /tmp/runtime.txt
# Exactly the pinned wheels, each checked against its hash; nothing resolved here.
RUN python3 -m venv /opt/venv \
 && pip install -q --no-compile --no-deps --require-hashes -r /tmp/runtime.txt \
 && rm /tmp/runtime.txt

# The project itself, as a wheel without its dependencies (they are pinned above), so
# that its packages and its distribution metadata (the API reports its version) are
# installed as `pip install` would. Only the build backend is fetched for this step.
FROM dependencies AS project
WORKDIR /src
COPY pyproject.toml README.md ./
COPY telemetry_common/ ./telemetry_common/
COPY producer_api/ ./producer_api/
COPY consumer_worker/ ./consumer_worker/
COPY memtel_agent/ ./memtel_agent/
RUN pip wheel -q --no-deps --wheel-dir /wheels . \
 && pip install -q --no-compile --no-deps /wheels/*.whl \
 && rm -rf /src /wheels

FROM project AS producer-api
WORKDIR /app
USER app
ENV API_HOST=0.0.0.0 \
    API_PORT=5050
EXPOSE 5050
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-m", "producer_api.healthcheck"]
CMD ["python", "-m", "producer_api"]

FROM project AS consumer-worker
WORKDIR /app
USER app
# Metrics (and /healthz) on 9102, reachable from outside the container.
ENV WORKER_HEALTH_FILE=/tmp/consumer-worker.health \
    WORKER_METRICS_HOST=0.0.0.0
EXPOSE 9102
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "consumer_worker.healthcheck", "--max-age", "30"]
CMD ["python", "-m", "consumer_worker"]

# Reports the memory of the machine it runs on. In a container /proc/meminfo is the
# host's (the kernel is shared), so the agent reports the Docker host; Compose gives it
# the host's name too (`uts: host`), the default machine id. Its buffer of readings the
# API has not taken yet lives on a volume, so a restart loses none.
FROM project AS memtel-agent
WORKDIR /app
RUN install -d -o app -g app /var/lib/memtel-agent
USER app
ENV AGENT_BUFFER_DIR=/var/lib/memtel-agent \
    AGENT_HEALTH_FILE=/tmp/memtel-agent.health
VOLUME /var/lib/memtel-agent
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "memtel_agent.healthcheck"]
CMD ["python", "-m", "memtel_agent"]
