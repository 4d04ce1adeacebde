#!/usr/bin/env bash
# make demo: a whole mesh on this machine. Builds what is missing, starts a local cluster
# (test/localcluster: etcd, kube-apiserver, controller-manager, scheduler, kube-proxy and a
# real node: Debian's containerd with runc and the real kubelet, whose pods are containers
# from l5d's own OCI images, built from bin/ and served by the cluster's registry), installs
# l5d the way the Linkerd docs tell a user to (control plane, then the viz extension with its
# Prometheus, and the jaeger extension unless L5D_DEMO_JAEGER=0), deploys the demo
# application meshed (its traffic starts a sampled trace per request), and prints its golden
# metrics until Ctrl-C; then removes everything it started. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export PATH=/usr/local/go/bin:$PATH
run_dir=${L5D_DEMO_DIR:-/var/lib/l5d-demo}
interval=${L5D_DEMO_INTERVAL:-10s}
# L5D_DEMO_ROUNDS: stop after this many metric tables (0: until Ctrl-C), for scripted runs.
rounds=${L5D_DEMO_ROUNDS:-0}
# L5D_DEMO_JAEGER=0 leaves the jaeger extension out.
jaeger=${L5D_DEMO_JAEGER:-1}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31mdemo: %s\033[0m\n' "$*" >&2; exit 1; }
began=$(date +%s)
elapsed() { echo "$(( $(date +%s) - began ))s"; }

[ "$(id -u)" = 0 ] || die "run as root (the node's network namespace, containerd and the kubelet)"

say "installing what this machine lacks"
# containerd and runc run the node's containers; iptables and iproute2 its network.
tools/debian-deps.sh iptables iproute2 git containerd runc

say "building l5d, the demo application and the Kubernetes binaries"
# The images carry Prometheus (tools/prometheus/build.sh) and Jaeger (tools/jaeger/build.sh)
# as the viz and jaeger extensions name them; both are built into a cache on first use.
make --no-print-directory kube-bins prometheus-bin jaeger-bin cni-plugins build
kube_bin=${L5D_KUBE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/l5d/kube-v1.34.4}
plugins=$(tools/cni-plugins/build.sh 2>/dev/null | tail -1)
rm -rf "$run_dir"
mkdir -p "$run_dir"
export PATH=$root/bin:$kube_bin:$PATH

say "starting a local cluster with a real node (logs in $run_dir/logs); building l5d's images from bin/ into its registry"
l5d-cluster up -run-dir "$run_dir" -cni-plugins "$plugins" -kubelet -l5d-images "$root" \
  >"$run_dir/cluster.out" 2>"$run_dir/cluster.err" &
cluster=$!
cleanup() {
  trap - EXIT INT TERM
  say "cleaning up"
  kill -TERM "$cluster" 2>/dev/null || true
  wait "$cluster" 2>/dev/null || true
  echo "stopped; logs stay in $run_dir"
}
trap cleanup EXIT
trap 'exit 0' INT TERM
for _ in $(seq 600); do
  grep -q '^export KUBECONFIG=' "$run_dir/cluster.out" 2>/dev/null && break
  kill -0 "$cluster" 2>/dev/null || { cat "$run_dir/cluster.err" >&2; die "the cluster did not start"; }
  sleep 0.5
done
export KUBECONFIG
KUBECONFIG=$(sed -n 's/^export KUBECONFIG=//p' "$run_dir/cluster.out")
[ -n "$KUBECONFIG" ] || die "the cluster did not come up within 5 minutes (see $run_dir/cluster.err)"
kubectl get nodes -o wide
echo "cluster up after $(elapsed)"

say "linkerd check --pre"
linkerd check --pre
say "linkerd install --crds | kubectl apply -f -"
linkerd install --crds | kubectl apply -f -
say "linkerd install | kubectl apply -f -"
linkerd install | kubectl apply -f -
say "linkerd check"
linkerd check --wait 5m
echo "control plane ready after $(elapsed)"
say "linkerd viz install | kubectl apply -f -"
linkerd viz install | kubectl apply -f -
say "linkerd viz check"
linkerd viz check --wait 5m
if [ "$jaeger" != 0 ]; then
  say "linkerd jaeger install | kubectl apply -f -"
  linkerd jaeger install | kubectl apply -f -
  say "linkerd jaeger check"
  linkerd jaeger check --wait 5m
fi

say "deploying the demo application (namespace l5d-demo, annotated linkerd.io/inject: enabled)"
kubectl apply -f test/demo/app.yaml
kubectl -n l5d-demo rollout status deploy --timeout 5m
kubectl -n l5d-demo get pods -o wide
linkerd check --proxy -n l5d-demo --wait 2m
linkerd viz check --proxy -n l5d-demo --wait 2m
echo "demo ready after $(elapsed)"

cat <<EOF

The mesh is running. In another shell:
  export KUBECONFIG=$KUBECONFIG PATH=$root/bin:$kube_bin:\$PATH
  kubectl -n l5d-demo get pods                       # every pod 2/2: app + l5d proxy
  linkerd check --proxy -n l5d-demo
  linkerd viz check --proxy -n l5d-demo              # Prometheus scrapes every demo proxy
  linkerd viz list -n l5d-demo
  linkerd viz stat deploy -n l5d-demo                # golden metrics from Prometheus (metrics-api)
  linkerd viz edges deploy -n l5d-demo               # who calls whom, with mTLS identities
  linkerd diagnostics proxy-metrics -n l5d-demo deploy/web | grep ^request_total
  linkerd identity -n l5d-demo deploy/web | grep Subject:
  linkerd authz -n l5d-demo deploy/web
  linkerd jaeger dashboard                           # traces: web -> catalog/ratings, every proxy's span
  kubectl get --raw '/api/v1/namespaces/linkerd-jaeger/services/jaeger:ui/proxy/jaeger/api/traces?service=linkerd-proxy&limit=1'
The node is a real one (kubelet and containerd), so the usual kubectl works on the pods:
  kubectl -n l5d-demo logs -f deploy/web -c web          # the app's log; -c linkerd-proxy the proxy's
  kubectl -n linkerd logs deploy/linkerd-destination -c linkerd-init   # proxy-init's iptables rules
  kubectl -n l5d-demo port-forward deploy/web 8080:8080  # then open http://localhost:8080/
  kubectl run nginx --image nginx:latest                 # the walkthrough's nginx (Debian's nginx package)
  kubectl exec nginx -- nginx -T                         # exec: its configuration
Logs of the cluster itself (kubelet, containerd, API server): $run_dir/logs/. Ctrl-C here stops and removes it all.
EOF

say "golden metrics per deployment from linkerd viz stat (Prometheus, through metrics-api), every $interval (Ctrl-C to stop)"
stat_rounds() {
  local n=0
  while [ "$rounds" -eq 0 ] || [ "$n" -lt "$rounds" ]; do
    sleep "$interval"
    printf '\n%s\n' "$(date -u +%T)"
    linkerd viz stat deploy -n l5d-demo -t 1m || true
    n=$((n + 1))
  done
}
stat_rounds &
wait $! || true
