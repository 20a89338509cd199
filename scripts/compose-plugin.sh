#!/usr/bin/env bash
# Docker Compose v2 as a CLI plugin (`docker compose`), built from its official Go
# module with the Go toolchain: the module proxy is reachable where release downloads
# are not. The binary is cached per version and built only once.
#   ~/.cache/memtelemetry/compose-$COMPOSE_VERSION/docker-compose   the build
#   ~/.docker/cli-plugins/docker-compose                           where docker finds it
set -euo pipefail

COMPOSE_VERSION=${COMPOSE_VERSION:-v2.40.3}
module=github.com/docker/compose/v2
cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/memtelemetry/compose-$COMPOSE_VERSION
plugin_dir=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

log() { printf 'compose-plugin: %s\n' "$*" >&2; }

if [ ! -x "$cache_dir/docker-compose" ]; then
  # Go installed from its release archive lives in /usr/local/go, maybe not on PATH.
  command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
  command -v go >/dev/null 2>&1 || {
    log "the Go toolchain (go) is needed to build Docker Compose"
    exit 1
  }
  log "building Docker Compose $COMPOSE_VERSION from $module (once; a few minutes)"
  started=$SECONDS
  # `go install module@version` refuses a module with replace directives, so the
  # module is downloaded and built in its own folder, which honours them.
  source_dir=$(go mod download -json "$module@$COMPOSE_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$source_dir" ] || {
    log "go mod download gave no source folder"
    exit 1
  }
  mkdir -p "$cache_dir"
  (
    cd "$source_dir"
    # The module cache is read-only and has no vendor folder: resolve from go.mod/go.sum.
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
      -ldflags "-s -w -X $module/internal.Version=$COMPOSE_VERSION" \
      -o "$cache_dir/docker-compose.partial" ./cmd
  )
  mv "$cache_dir/docker-compose.partial" "$cache_dir/docker-compose"
  log "built in $((SECONDS - started))s"
fi

mkdir -p "$plugin_dir"
if ! cmp -s "$cache_dir/docker-compose" "$plugin_dir/docker-compose"; then
  install -m 0755 "$cache_dir/docker-compose" "$plugin_dir/docker-compose"
fi
docker compose version >&2
