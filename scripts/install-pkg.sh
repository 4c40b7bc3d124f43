#!/usr/bin/env bash
# install-pkg.sh installs Debian packages when they are missing: as root directly,
# otherwise with passwordless sudo; it says what to install by hand when it cannot.
#
#   scripts/install-pkg.sh redis-server protobuf-compiler
set -euo pipefail

log() { printf 'install-pkg.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

[[ $# -gt 0 ]] || die "usage: $0 PACKAGE..."
sudo=()
if [[ $(id -u) -ne 0 ]]; then
	if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo=(sudo -n)
	else
		die "$* is not installed: run 'sudo apt-get install -y $*'"
	fi
fi
command -v apt-get >/dev/null || die "$* is not installed and there is no apt-get here: install it yourself"
# An apt that has never been updated knows no packages (apt-cache show fails).
if ! apt-cache show "$@" >/dev/null 2>&1; then
	log "apt does not know $*; running apt-get update"
	"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q >&2 || die "apt-get update failed"
fi
log "installing $* with apt-get"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@" >&2 ||
	die "apt-get install $* failed"
