#!/usr/bin/env bash
# Builds the real Helm CLI (helm.sh/helm/v3/cmd/helm, pinned in this directory's go.mod to the
# release deploy/go.mod renders the charts with) and l5d-charts (./charts, the packager of
# make charts) into the directory given as $1 (make helm: bin/tools). helm gets the version
# stamps Helm's own Makefile sets: `helm version` reports the release, and `helm template`/
# `helm lint` default to the Kubernetes version of the client-go Helm is built against
# (1.<client-go minor>) instead of 1.20. Prints helm's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTPUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$here"
helm_version=$(GOWORK=off go list -m -f '{{.Version}}' helm.sh/helm/v3)
client_go=$(GOWORK=off go list -m -f '{{.Version}}' k8s.io/client-go)
minor=$(echo "$client_go" | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
done
GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/helm" helm.sh/helm/v3/cmd/helm
GOWORK=off CGO_ENABLED=0 go build -trimpath -o "$out/l5d-charts" ./charts
echo "$out/helm"
