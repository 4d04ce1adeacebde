#!/usr/bin/env bash
# Builds the real Prometheus server (github.com/prometheus/prometheus, pinned in this
# directory's go.mod) into a cache outside the repository, as test/kubebins/build.sh does for
# the Kubernetes binaries. Only the Kubernetes, file and HTTP service discoveries are linked
# (build tags remove_all_sd,enable_kubernetes_sd): the viz extension and the tests need no
# other. Prints the binary's path on its last line; does nothing when it is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^\(require\)\{0,1\}[[:space:]]*github.com\/prometheus\/prometheus \(v[^ ]*\).*/\2/p' "$here/go.mod")
[ -n "$version" ] || { echo "prometheus-bin: no github.com/prometheus/prometheus in $here/go.mod" >&2; exit 1; }
dir=${L5D_PROMETHEUS_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/l5d/prometheus-$version}
if [ -x "$dir/prometheus" ]; then
  echo "prometheus-bin: cached in $dir" >&2
  echo "$dir/prometheus"
  exit 0
fi
# Prometheus 3.x publishes its Go module as v0.3MM.P for release 3.MM.P.
minor=${version#v0.}; minor=${minor%%.*}; patch=${version##*.}
release=3.$((10#${minor} - 300)).$patch
mkdir -p "$dir"
cd "$here"
echo "prometheus-bin: building prometheus $release ($version) into $dir" >&2
GOWORK=off CGO_ENABLED=0 go build -trimpath -tags remove_all_sd,enable_kubernetes_sd \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release" \
  -o "$dir/prometheus.tmp" github.com/prometheus/prometheus/cmd/prometheus
mv "$dir/prometheus.tmp" "$dir/prometheus"
echo "$dir/prometheus"
