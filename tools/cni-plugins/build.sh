#!/usr/bin/env bash
# Builds the standard CNI plugins the local cluster's CNI mode runs as the node's primary
# network (bridge, host-local, loopback from github.com/containernetworking/plugins, pinned
# in this directory's go.mod) into a cache outside the repository, as
# tools/prometheus/build.sh does for Prometheus. Prints the directory holding them on its
# last line; does nothing when they are already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^\(require\)\{0,1\}[[:space:]]*github.com\/containernetworking\/plugins \(v[^ ]*\).*/\2/p' "$here/go.mod")
[ -n "$version" ] || { echo "cni-plugins: no github.com/containernetworking/plugins in $here/go.mod" >&2; exit 1; }
dir=${L5D_CNI_PLUGINS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/l5d/cni-plugins-$version}
plugins=(main/bridge ipam/host-local main/loopback)
missing=()
for p in "${plugins[@]}"; do [ -x "$dir/$(basename "$p")" ] || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "cni-plugins: cached in $dir" >&2
  echo "$dir"
  exit 0
fi
mkdir -p "$dir"
cd "$here"
for p in "${missing[@]}"; do
  name=$(basename "$p")
  echo "cni-plugins: building $name $version into $dir" >&2
  GOWORK=off CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$version" \
    -o "$dir/$name.tmp" "github.com/containernetworking/plugins/plugins/$p"
  mv "$dir/$name.tmp" "$dir/$name"
done
echo "$dir"
