#!/usr/bin/env bash
# Builds the real Jaeger all-in-one program (github.com/jaegertracing/jaeger/cmd/all-in-one,
# pinned in this directory's go.mod: collector with an OTLP receiver on 4317, in-memory
# storage, query API and UI on 16686) into a cache outside the repository, as
# tools/prometheus/build.sh does for Prometheus. The jaeger extension's chart names the
# image jaegertracing/all-in-one, which the local cluster maps to this binary. The UI is
# the module's placeholder page (the real one is built with npm outside the Go module);
# the query API (/api/traces, /api/services) is complete. Prints the binary's path on its
# last line; does nothing when it is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^\(require\)\{0,1\}[[:space:]]*github.com\/jaegertracing\/jaeger \(v[^ ]*\).*/\2/p' "$here/go.mod")
[ -n "$version" ] || { echo "jaeger-bin: no github.com/jaegertracing/jaeger in $here/go.mod" >&2; exit 1; }
dir=${L5D_JAEGER_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/l5d/jaeger-$version}
if [ -x "$dir/all-in-one" ]; then
  echo "jaeger-bin: cached in $dir" >&2
  echo "$dir/all-in-one"
  exit 0
fi
mkdir -p "$dir"
cd "$here"
echo "jaeger-bin: building jaeger all-in-one $version into $dir" >&2
GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
  -o "$dir/all-in-one.tmp" github.com/jaegertracing/jaeger/cmd/all-in-one
mv "$dir/all-in-one.tmp" "$dir/all-in-one"
echo "$dir/all-in-one"
