#!/usr/bin/env bash
# debian-deps.sh PACKAGE...: installs the Debian packages a make target needs and this machine
# lacks. As root on Debian it runs apt-get; anywhere else it stops at once with one line
# saying what to run, so `make test` never fails minutes later for a missing program.
set -euo pipefail
need=()
for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "missing Debian packages: run as root: apt-get update && apt-get install -y ${need[*]}" >&2
	exit 1
fi
echo "installing Debian packages: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
