#!/usr/bin/env bash
# Docker Compose v2 as a CLI plugin (`docker compose`). When `docker compose version`
# already works (a plugin of the system's or the user's own), that one is used and
# nothing is built or installed. Otherwise it is built from its official Go module: the
# Go module proxy is reachable where release downloads are not. The binary is cached
# per version and built only once.
#   ~/.cache/memtelemetry/compose-$COMPOSE_VERSION/docker-compose   the build
#   ~/.cache/memtelemetry/$GO_TOOLCHAIN/                            Go, when none fits
#   ~/.docker/cli-plugins/docker-compose                           where docker finds it
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/root.sh
source scripts/root.sh

COMPOSE_VERSION=${COMPOSE_VERSION:-v2.40.3}
# The Go that this Compose's go.mod asks for at least (`go 1.24.9`).
GO_MINIMUM=${GO_MINIMUM:-1.24.9}
GO_TOOLCHAIN=go$GO_MINIMUM
GOPROXY_URL=${GOPROXY_URL:-https://proxy.golang.org}
module=github.com/docker/compose/v2
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/memtelemetry
cache_dir=$cache_root/compose-$COMPOSE_VERSION
plugin_dir=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

log() { printf 'compose-plugin: %s\n' "$*" >&2; }

if docker compose version >/dev/null 2>&1; then
  docker compose version >&2
  exit 0
fi

# True when the `go` on PATH is at least GO_MINIMUM.
go_fits() {
  local version
  version=$(go env GOVERSION 2>/dev/null) || return 1
  version=${version#go}
  [ "$(printf '%s\n%s\n' "$GO_MINIMUM" "$version" | sort -V | head -n 1)" = "$GO_MINIMUM" ]
}

# A Go toolchain of at least GO_MINIMUM on PATH: the one installed (also from its
# release archive, in /usr/local/go), else the toolchain the module proxy serves
# (golang.org/toolchain, what `go` itself downloads for GOTOOLCHAIN), unpacked once.
# Debian's golang package is older than Compose needs on bookworm, so it is not used.
go_toolchain() {
  command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
  go_fits && return
  local arch toolchain_dir=$cache_root/$GO_TOOLCHAIN
  if [ ! -x "$toolchain_dir/bin/go" ]; then
    case "$(uname -m)" in
      x86_64) arch=amd64 ;;
      aarch64 | arm64) arch=arm64 ;;
      *)
        log "no Go toolchain for $(uname -m) here: install Go $GO_MINIMUM or newer"
        exit 1
        ;;
    esac
    local missing=()
    command -v curl >/dev/null 2>&1 || missing+=(curl ca-certificates)
    command -v unzip >/dev/null 2>&1 || missing+=(unzip)
    if ((${#missing[@]})); then
      apt_install "${missing[@]}"
    fi
    local name=v0.0.1-$GO_TOOLCHAIN.linux-$arch
    log "fetching the Go toolchain $GO_TOOLCHAIN from $GOPROXY_URL (once)"
    local staging
    staging=$(mktemp -d "$cache_root/$GO_TOOLCHAIN.staging.XXXXXX")
    curl -fsSL --retry 3 -o "$staging/go.zip" \
      "$GOPROXY_URL/golang.org/toolchain/@v/$name.zip"
    unzip -q "$staging/go.zip" -d "$staging"
    rm -rf "$toolchain_dir"
    # The archive holds one folder, golang.org/toolchain@<version>, the GOROOT.
    mv "$staging/golang.org/toolchain@$name" "$toolchain_dir"
    rm -rf "$staging"
  fi
  PATH=$toolchain_dir/bin:$PATH
  # This toolchain builds; it never switches to another one.
  export GOTOOLCHAIN=local
  go_fits
}

if [ ! -x "$cache_dir/docker-compose" ]; then
  mkdir -p "$cache_root"
  go_toolchain
  log "building Docker Compose $COMPOSE_VERSION from $module with $(go env GOVERSION) (once; a few minutes)"
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

# Only where no plugin answered above; a file there that is not this build is someone's
# own, and stays.
if [ -e "$plugin_dir/docker-compose" ] && ! cmp -s "$cache_dir/docker-compose" "$plugin_dir/docker-compose"; then
  log "$plugin_dir/docker-compose is there but \`docker compose version\` fails; it is left as it is:"
  log "remove it to use the one built here ($cache_dir/docker-compose)"
  exit 1
fi
mkdir -p "$plugin_dir"
install -m 0755 "$cache_dir/docker-compose" "$plugin_dir/docker-compose"
docker compose version >&2
