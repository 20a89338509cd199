#!/usr/bin/env bash
# The Docker engine for the container tests: Debian's docker.io package.
#   docker-engine.sh install   install docker.io if dockerd is missing
#   docker-engine.sh start     start dockerd unless an engine already answers; prints
#                              "started" when this call started it, "running" otherwise
#   docker-engine.sh stop      stop the dockerd that `start` started (and nothing else)
# The package does not start its daemon here (no init system), so `start` runs it in
# the background with its own pid file and log under the state folder.
set -euo pipefail

state_dir=${MEMTEL_DOCKER_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/memtelemetry/dockerd}
pid_file=$state_dir/dockerd.pid
log_file=$state_dir/dockerd.log
start_timeout=${MEMTEL_DOCKERD_START_TIMEOUT:-60}

log() { printf 'docker-engine: %s\n' "$*" >&2; }

cd "$(dirname "$0")/.."
# shellcheck source=scripts/root.sh
source scripts/root.sh

engine_answers() { docker info >/dev/null 2>&1; }

install() {
  if command -v dockerd >/dev/null 2>&1; then
    return
  fi
  log "installing Debian's docker.io"
  apt_install docker.io iptables ca-certificates
}

# Poll until the engine answers, the daemon dies, or the timeout passes.
wait_for_engine() {
  local daemon=$1 deadline=$((SECONDS + start_timeout))
  until engine_answers; do
    if ! kill -0 "$daemon" 2>/dev/null || ((SECONDS >= deadline)); then
      log "dockerd did not come up within ${start_timeout}s; the end of its log:"
      tail -n 30 "$log_file" >&2
      return 1
    fi
    sleep 0.2 # the pause between two checks, not a wait for something
  done
}

start() {
  if engine_answers; then
    echo running
    return
  fi
  install
  mkdir -p "$state_dir"
  # What a daemon that died left behind; dockerd refuses to start beside it.
  if [ -f "$pid_file" ] && [ ! -d "/proc/$(cat "$pid_file")" ]; then
    rm -f "$pid_file"
  fi
  log "starting dockerd (log: $log_file)"
  : >"$log_file"
  # Its own pid file, so that `stop` ends this daemon and never another one.
  as_root dockerd --pidfile "$pid_file" >>"$log_file" 2>&1 </dev/null &
  wait_for_engine $!
  echo started
}

stop() {
  [ -f "$pid_file" ] || return 0
  local pid
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping the dockerd this script started (pid $pid)"
    as_root kill -TERM "$pid"
    # tail --pid returns as soon as the daemon is gone; timeout bounds the wait.
    if ! timeout 60 tail --pid="$pid" -f /dev/null; then
      log "dockerd did not stop within 60s; killing it"
      as_root kill -KILL "$pid"
    fi
  fi
  rm -f "$pid_file"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
