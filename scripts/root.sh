# Sourced by the scripts that install system packages or run dockerd:
#   as_root COMMAND...      runs COMMAND as root: directly when this is root, else
#                           through sudo; says what to do when neither is possible
#   apt_install PACKAGE...  installs Debian packages with apt-get, as root
# shellcheck shell=bash

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    printf '%s: root is needed to run `%s`, and this user is not root and sudo is not installed:\n' \
      "${0##*/}" "$*" >&2
    printf '  run it again as root, or install sudo and allow this user to use it\n' >&2
    return 1
  fi
}

# The package lists are refreshed once per script run, before its first install.
_apt_lists_fresh=false
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    printf '%s: apt-get is not here (this is not Debian or Ubuntu): install %s yourself\n' \
      "${0##*/}" "$*" >&2
    return 1
  fi
  printf '%s: installing system packages: %s\n' "${0##*/}" "$*" >&2
  if ! $_apt_lists_fresh; then
    as_root apt-get update -qq
    _apt_lists_fresh=true
  fi
  # Quiet when it works; the end of apt's and dpkg's output when it does not.
  local output
  output=$(mktemp "${TMPDIR:-/tmp}/apt-install.XXXXXX")
  if ! as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$@" >"$output" 2>&1; then
    tail -n 40 "$output" >&2
    rm -f "$output"
    return 1
  fi
  rm -f "$output"
}
