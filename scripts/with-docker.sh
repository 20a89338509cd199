#!/usr/bin/env bash
# Runs a command with everything the container tests need, from a bare machine:
#   1. a Docker engine (Debian's docker.io; started here if none runs, stopped at the end)
#   2. Docker Compose v2 as a CLI plugin (built once from its Go module)
#   3. the base image debian:bookworm-slim (made with debootstrap when missing)
#   4. the project's images, built by `docker compose build` from its Dockerfiles
# then `"$@"`, with MEMTEL_TEST_RUN set to an id of this run. On exit it removes what
# the run created: the Compose projects memtel-test-$MEMTEL_TEST_RUN(-cluster, -topology) and any container,
# network or volume labelled memtelemetry.test-run=$MEMTEL_TEST_RUN. Images stay, so
# that the next run reuses them. Each step prints its duration.
#   usage: scripts/with-docker.sh [--no-images] COMMAND [ARGS...]
# --no-images skips step 4, for a command that runs none of the project's images.
set -euo pipefail
cd "$(dirname "$0")/.."

build_images=true
if [ "${1:-}" = --no-images ]; then
  build_images=false
  shift
fi

# Every service but Kowl, whose published image is pulled, never built. The agent is
# in a profile; naming it builds it all the same.
BUILT_SERVICES=(kafka redis producer-api consumer-worker agent)
# The production-shaped topology's own images (Kafka 4 and HAProxy): their services
# exist only with the cluster files.
CLUSTER_FILES=(-f docker-compose.yml -f docker-compose.redis-cluster.yml -f docker-compose.cluster.yml)
CLUSTER_BUILT_SERVICES=(kafka-1 haproxy)
BUILT_IMAGES=(memtelemetry/kafka:3.9.2 memtelemetry/redis:7.0
  memtelemetry/producer-api:0.2.0 memtelemetry/consumer-worker:0.2.0
  memtelemetry/memtel-agent:0.2.0 memtelemetry/kafka:4.1.2 memtelemetry/haproxy:2.6)

run_started=$SECONDS
step_started=$SECONDS
step() {
  printf '\n== %s\n' "$*"
  step_started=$SECONDS
}
done_step() { printf '== done in %ss\n' "$((SECONDS - step_started))"; }

export MEMTEL_TEST_RUN=${MEMTEL_TEST_RUN:-$(date +%s)-$$}
project=memtel-test-$MEMTEL_TEST_RUN
engine_started_here=false

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if docker info >/dev/null 2>&1; then
    printf '\n== cleaning up run %s\n' "$MEMTEL_TEST_RUN"
    # The tier's projects: the default stack, the one on the Redis Cluster, and the
    # production-shaped topology.
    for name in "$project" "$project-cluster" "$project-topology"; do
      if [ -n "$(docker ps -aq --filter "label=com.docker.compose.project=$name")" ]; then
        docker compose -p "$name" down --volumes --remove-orphans --timeout 30 || status=1
      fi
      docker volume ls -q --filter "label=com.docker.compose.project=$name" |
        xargs -r docker volume rm >/dev/null || status=1
    done
    local label=label=memtelemetry.test-run=$MEMTEL_TEST_RUN
    docker ps -aq --filter "$label" | xargs -r docker rm -f -v >/dev/null || status=1
    docker network ls -q --filter "$label" | xargs -r docker network rm >/dev/null || status=1
    docker volume ls -q --filter "$label" | xargs -r docker volume rm >/dev/null || status=1
  fi
  if $engine_started_here; then
    bash scripts/docker-engine.sh stop || status=1
  fi
  printf '\n== total %ss (exit %s)\n' "$((SECONDS - run_started))" "$status"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "Docker engine"
# A separate assignment, so that an engine that cannot start stops this script here.
engine=$(bash scripts/docker-engine.sh start)
if [ "$engine" = started ]; then
  engine_started_here=true
  echo "started dockerd for this run; it is stopped at the end"
else
  echo "using the Docker engine that already runs"
fi
done_step

step "Docker Compose plugin"
bash scripts/compose-plugin.sh
done_step

step "base image"
bash scripts/base-image.sh
done_step

build_images() {
step "images: ${BUILT_SERVICES[*]} ${CLUSTER_BUILT_SERVICES[*]}"
first_build=false
for image in "${BUILT_IMAGES[@]}"; do
  docker image inspect "$image" >/dev/null 2>&1 || first_build=true
done
# A host that reaches the package indexes through a TLS-intercepting proxy has its
# extra CA certificates here; the builds trust them too.
shopt -s nullglob
extra_certs=(/usr/local/share/ca-certificates/*.crt)
shopt -u nullglob
if [ -z "${EXTRA_CA_CERTS:-}" ] && ((${#extra_certs[@]})); then
  EXTRA_CA_CERTS=$(cat "${extra_certs[@]}")
  export EXTRA_CA_CERTS
  echo "passing ${#extra_certs[@]} extra CA certificate file(s) of this host to the builds"
fi
build_log=$(mktemp "${TMPDIR:-/tmp}/memtel-build.XXXXXX")
if ! { docker compose --progress plain build "${BUILT_SERVICES[@]}" &&
  docker compose "${CLUSTER_FILES[@]}" --progress plain build "${CLUSTER_BUILT_SERVICES[@]}"; } \
  >"$build_log" 2>&1; then
  tail -n 60 "$build_log"
  rm -f "$build_log"
  exit 1
fi
rm -f "$build_log"
if $first_build; then
  echo "first build (at least one image was missing): $((SECONDS - step_started))s"
else
  echo "rebuild with every image present (layer cache): $((SECONDS - step_started))s"
fi
done_step
}
if $build_images; then
  build_images
fi

step "$*"
"$@"
done_step
