# syntax=docker/dockerfile:1
# One file, two images: `--target producer-api` and `--target consumer-worker`.
# They share the base and the dependency layer, which is rebuilt only when
# pyproject.toml changes.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app app

FROM base AS dependencies
COPY pyproject.toml ./
# The runtime dependencies, exactly as pinned in pyproject.toml (tomllib is in 3.11+).
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip install --no-compile -r requirements.txt \
 && rm requirements.txt

FROM dependencies AS producer-api
COPY telemetry_common/ ./telemetry_common/
COPY producer_api/ ./producer_api/
USER app
ENV API_HOST=0.0.0.0 \
    API_PORT=5050
EXPOSE 5050
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-m", "producer_api.healthcheck"]
CMD ["python", "-m", "producer_api"]

FROM dependencies AS consumer-worker
COPY telemetry_common/ ./telemetry_common/
COPY consumer_worker/ ./consumer_worker/
USER app
ENV WORKER_HEALTH_FILE=/tmp/consumer-worker.health
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "consumer_worker.healthcheck", "--max-age", "30"]
CMD ["python", "-m", "consumer_worker"]
