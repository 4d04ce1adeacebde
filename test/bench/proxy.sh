#!/bin/bash
# make bench-proxy: the proxy's headline benchmark, on network-namespace pods on this
# machine. Two pods on a bridge (inside a namespace of its own; the host's links and rules
# are never touched), proxy-init's real iptables rules in both, and three paths from the
# client pod to the same nginx app in the server pod, HTTP/1.1 keep-alive, 100-byte bodies:
#
#   direct  wrk -> app                                   (a port proxy-init ignores)
#   nginx   wrk -> nginx -> nginx -> app                 (two-hop reverse-proxy chain)
#   l5d     wrk -> outbound proxy -> inbound proxy -> app (transparent, through iptables)
#   l5d-mesh wrk -> outbound proxy =mTLS, HTTP/2=> inbound proxy -> app
#
# l5d runs the proxies without a control plane (plaintext HTTP/1 forwarding). l5d-mesh is
# the meshed path, in a second pair of pods whose proxies have identities from benchcp
# (proxy/internal/benchcp: Identity and Destination, in the node namespace): the client
# proxy learns from the server address's profile the server proxy's identity and the
# HTTP/2 hint, and upgrades. The server proxy's metrics must show inbound requests with
# tls="true" and the client's identity before anything is measured.
# For each path: max throughput (wrk, REPEATS rounds taking the paths in turn, median), CPU seconds per 10,000
# requests spent by the two proxies, proxy RSS idle and under load, latency percentiles at
# fixed rates (fortio, when available) and gRPC unary throughput and CPU (ghz, when
# available; the grpcapp on 9090 in the server pods, and on 9091 for direct). The gRPC
# requests of l5d-mesh must also show at the server proxy with tls="true" and the client's
# identity before they are measured. Many connections (IDLE, default 1,000 and 10,000):
# test/bench/idleconns opens that many keep-alive client connections through nginx and
# l5d-mesh, one request each, then holds them idle while the RSS growth of the pair is
# read (bytes per connection; nginx's are a second chain, 9004 -> 9003 -> app, whose
# worker_connections fit them, so that the first chain's RSS stays comparable). Large
# bodies (BIG=1): wrk POSTs 1 MiB to test/bench/bodyapp (8082 in the server pods), which
# reads it all and answers 1 MiB (the nginx hops stream both ways, as the proxies do); CPU
# of the pair per MiB carried. Ratios are printed against direct and against nginx, and a last
# table gathers every l5d-mesh/nginx ratio (throughput, CPU per request, max RSS, latency
# percentiles at each rate, gRPC throughput and CPU, RSS per idle connection, CPU per MiB).
# Needs root, nginx, wrk, iproute2, iptables (Debian packages).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
REPEATS=${REPEATS:-5} # REPEATS=0 skips the throughput rows (wrk) and every row measured in rounds
DUR=${DUR:-10s}
CONNS=${CONNS:-32}
RATES=${RATES-"1000 5000"} # RATES="" skips the latency rows
RATE_DUR=${RATE_DUR:-10s}
# PATHS: the throughput paths to run (nginx is always run: the ratios are against it).
PATHS=${PATHS:-"direct nginx l5d l5d-mesh"}
# GRPC=0 skips the gRPC rows (ghz).
GRPC=${GRPC:-1}
# IDLE: the numbers of idle client connections of the many-connections rows ("" skips them).
IDLE=${IDLE-"1000 10000"}
# IDLE_HOLD: seconds the idle connections are held, once all are open, before the RSS is read.
IDLE_HOLD=${IDLE_HOLD:-5}
# BIG=0 skips the large-body rows; BIG_CONNS: wrk connections for them.
BIG=${BIG:-1}
# SMALL=0 skips the 100-byte throughput rounds (to measure only other rows, e.g. BIG=1).
SMALL=${SMALL:-1}
BIG_CONNS=${BIG_CONNS:-8}
# BIG_TLS=0 skips the large-body rows' context chain, nginx-tls: the nginx chain with TLS
# 1.3 (TLS_AES_128_GCM_SHA256, the suite the meshed pair's Go TLS picks on AES hardware)
# between its two hops, 9006 -> 9005 -> body app. The meshed pair encrypts and decrypts
# every byte between its hops and the nginx chain does not: l5d-mesh/nginx-tls says how
# much of l5d-mesh/nginx is that. It is context only; the target stays l5d-mesh/nginx.
BIG_TLS=${BIG_TLS:-1}
# PROFILE=dir: CPU profiles of the two l5d-mesh proxies during the last throughput round
# (dir/client.prof, dir/server.prof, with dir/proxy to read them: go tool pprof dir/proxy dir/client.prof)
# and during the last large-body round (dir/big-client.prof, dir/big-server.prof, each
# followed by the heap then, dir/big-client.heap, and the proxy's memory by kind from
# /proc, dir/big-client.smaps: what the peak RSS of those rows is made of), and
# during l5d-mesh's first latency run at each rate (dir/client-lat-RATE.prof, ...).
PROFILE=${PROFILE:-}
# TRACE=dir: Go runtime traces of the two l5d-mesh proxies during its first latency run at
# each rate (dir/client-RATE.trace, dir/server-RATE.trace: go tool trace dir/client-1000.trace),
# and of the l5d-base pair's (dir/base-client-RATE.trace, ...).
TRACE=${TRACE:-}
# SYSCALLS=dir: during the first latency run at each rate of nginx, l5d-mesh and l5d-base,
# strace -c -f on each hop of the pair (dir/PATH-HOP-RATE.strace, HOP client or server) and
# each hop's threads' sleeps, printed per request after the run: system calls by kind,
# threads that slept, sleeps per request of each thread (a sleep ends in a wake-up). strace
# stops each hop at every system call, so that run's percentiles are not comparable, nor its
# sleeps (each stop counts as one); its system calls are. SYSCALLS_STRACE=0 leaves strace
# out (the threads' sleeps alone, undisturbed);
# SYSCALLS_PERF=1 also samples each hop with perf record -g at 4,999 Hz
# (dir/PATH-HOP-RATE.perf: perf report -i FILE --no-children --sort dso,sym), enough
# samples at 1,000 req/s where the proxies' own profiles have too few to rank.
SYSCALLS=${SYSCALLS:-}
SYSCALLS_STRACE=${SYSCALLS_STRACE:-1}
SYSCALLS_PERF=${SYSCALLS_PERF:-0}
# PROXY_BIN=file: run this proxy binary instead of building one (to compare builds in turn).
PROXY_BIN=${PROXY_BIN:-}
# PROXY_ENV="NAME=value ...": more environment for every proxy (e.g. LINKERD2_PROXY_CORES=2).
PROXY_ENV=${PROXY_ENV:-}
# BASE_BIN=file: a second meshed pair (pods of their own, path l5d-base) runs this proxy
# binary, measured in turn with l5d-mesh in every throughput and latency round (its gRPC
# rows right after l5d-mesh's), so that two builds are compared under the same load; the
# summary then gives l5d-mesh/l5d-base too.
BASE_BIN=${BASE_BIN:-}
# BASE_ENV="NAME=value ...": more environment for the l5d-base pair only (BASE_BIN may then
# be the same build, to compare settings: BASE_ENV=GOGC=200).
BASE_ENV=${BASE_ENV:-}
# SWAP=1 (with BASE_BIN): the two builds trade pods. The same build in both pairs gave
# l5d-mesh/l5d-base ratios of x0.84-0.93 throughput and x0.99-1.08 CPU per request on a
# loaded machine; comparing builds, run once without SWAP and once with it.
SWAP=${SWAP:-0}
# LAT_REPEATS: latency rounds (each rate, the paths in turn), medians of the rounds.
LAT_REPEATS=${LAT_REPEATS:-1}
# fortio's 16 connections send in step: at 1,000 req/s a burst of 16 requests every 16 ms,
# so that the latency rows measure how fast each hop works through a burst (the last
# request of one waits for the 15 before it at every hop). LAT_UNIFORM=1 spreads the
# connections' requests evenly in time instead (fortio -uniform): one request at a time
# reaches a mostly idle chain, whose wake-ups then show.
LAT_UNIFORM=${LAT_UNIFORM:-0}
[ "$(id -u)" = 0 ] || { echo "bench-proxy: needs root (network namespaces)"; exit 1; }
for c in nginx wrk ip iptables-legacy-restore setpriv bc; do
	command -v "$c" >/dev/null || { echo "bench-proxy: $c is missing (apt-get install nginx-light wrk iproute2 iptables util-linux bc)"; exit 1; }
done
if [ -n "$SYSCALLS" ]; then
	[ "$SYSCALLS_STRACE" = 0 ] || command -v strace >/dev/null || { echo "bench-proxy: SYSCALLS needs strace (apt-get install strace; or SYSCALLS_STRACE=0)"; exit 1; }
	[ "$SYSCALLS_PERF" = 0 ] || command -v perf >/dev/null || { echo "bench-proxy: SYSCALLS_PERF=1 needs perf (apt-get install linux-perf)"; exit 1; }
fi

tag=l5db$$
node=$tag-node cli=$tag-client srv=$tag-server mcli=$tag-mclient msrv=$tag-mserver bcli=$tag-bclient bsrv=$tag-bserver
pods="$cli $srv $mcli $msrv"
[ -n "$BASE_BIN" ] && pods+=" $bcli $bsrv"
work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for ns in $pods $node; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

echo "== building proxy and proxy-init"
# grpcnotrace: the proxy ships without grpc-go's x/net/trace and the templates it links (see proxy/cmd/proxy).
if [ -n "$PROXY_BIN" ]; then cp "$PROXY_BIN" "$work/proxy"; fi
if [ -n "$BASE_BIN" ]; then cp "$BASE_BIN" "$work/proxy-base"; fi
(cd "$root" && { [ -n "$PROXY_BIN" ] || CGO_ENABLED=0 go build -trimpath -tags grpcnotrace -o "$work/proxy" ./proxy/cmd/proxy; } && CGO_ENABLED=0 go build -trimpath -o "$work/proxy-init" ./proxy-init/cmd/proxy-init &&
	CGO_ENABLED=0 go build -trimpath -o "$work/grpcapp" ./test/bench/grpcapp &&
	CGO_ENABLED=0 go build -trimpath -o "$work/idleconns" ./test/bench/idleconns &&
	CGO_ENABLED=0 go build -trimpath -o "$work/bodyapp" ./test/bench/bodyapp &&
	CGO_ENABLED=0 go build -trimpath -o "$work/benchcp" ./proxy/internal/benchcp)

# Network: bridge in the node namespace, one veth per pod.
ip netns add "$node"
ip -n "$node" link set lo up
ip -n "$node" link add br0 type bridge
ip -n "$node" addr add 10.245.0.1/16 dev br0
ip -n "$node" link set br0 up
n=2
for ns in $pods; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$node" link add "veth$n" type veth peer name eth0 netns "$ns"
	ip -n "$node" link set "veth$n" master br0 up
	ip -n "$ns" addr add "10.245.0.$n/16" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via 10.245.0.1
	n=$((n + 1))
done
server=10.245.0.3 mserver=10.245.0.5 bserver=10.245.0.7
if [ "$SWAP" = 1 ]; then
	# The l5d-mesh build runs in the pods (and addresses) of l5d-base, and the other way
	# round: a run with SWAP=1 beside one without cancels what the pods themselves add.
	[ -n "$BASE_BIN" ] || { echo "bench-proxy: SWAP=1 needs BASE_BIN"; exit 1; }
	read -r mcli msrv mserver bcli bsrv bserver <<<"$bcli $bsrv $bserver $mcli $msrv $mserver"
fi
cid=client.bench.serviceaccount.identity.linkerd.cluster.local
sid=server.bench.serviceaccount.identity.linkerd.cluster.local
mkdir -m 755 "$work/cp"
ip netns exec "$node" "$work/benchcp" -ip 10.245.0.1 -dir "$work/cp" \
	-endpoint "$mserver:8080=$sid" -endpoint "$mserver:9090=$sid" -endpoint "$mserver:8082=$sid" \
	-endpoint "$bserver:8080=$sid" -endpoint "$bserver:9090=$sid" -endpoint "$bserver:8082=$sid" 2>"$work/benchcp.log" &
pids+=($!)

body=$(printf 'x%.0s' $(seq 100))
# The large-body app, 8082 in both server pods.
for ns in $srv $msrv $([ -n "$BASE_BIN" ] && echo "$bsrv"); do
	ip netns exec "$ns" "$work/bodyapp" -addr :8082 & pids+=($!)
done
# The nginx hops stream /big both ways (no request or response buffering, no temporary
# files), as the proxies do; the last hop sends it to the body app.
bighop() { echo "location = /big { client_max_body_size 2m; proxy_request_buffering off; proxy_buffering off; proxy_pass http://$1; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"; }
NGINX_CONNS=4096
nginx_in() { # netns name conf-body
	cat >"$work/$2.conf" <<CONF
worker_processes 1; daemon off; pid $work/$2.pid; error_log $work/$2.err; worker_rlimit_nofile $((NGINX_CONNS + 100));
events { worker_connections $NGINX_CONNS; }
http { access_log off; $3 }
CONF
	ip netns exec "$1" nginx -c "$work/$2.conf" &
	pids+=($!)
}
upstream() { # upstream listen [upstream of /big]
	echo "upstream up { server $1; keepalive 64; } upstream big { server ${3:-$1}; keepalive 16; }"
	echo "server { listen $2; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } $(bighop big) }"
}
nginx_in "$srv" app "server { listen 8080; listen 8081; location / { return 200 \"$body\"; } }"
nginx_in "$msrv" mapp "server { listen 8080; location / { return 200 \"$body\"; } }"
[ -n "$BASE_BIN" ] && nginx_in "$bsrv" bapp "server { listen 8080; location / { return 200 \"$body\"; } }"
nginx_in "$srv" p2 "$(upstream 127.0.0.1:8080 9002 127.0.0.1:8082)"
nginx_in "$cli" p1 "$(upstream $server:9002 127.0.0.1:9001)"
if [ "$BIG" != 0 ] && [ "$BIG_TLS" != 0 ]; then
	command -v openssl >/dev/null || { echo "bench-proxy: openssl is missing (apt-get install openssl), or BIG_TLS=0"; exit 1; }
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=nginx-tls \
		-keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
	suite="TLS_AES_128_GCM_SHA256"
	# t2 logs the protocol and suite of each TLS connection from t1 (the run prints them).
	nginx_in "$srv" t2 "log_format tls '\$ssl_protocol \$ssl_cipher'; upstream big { server 127.0.0.1:8082; keepalive 16; }
server { listen 9005 ssl; ssl_certificate $work/tls.crt; ssl_certificate_key $work/tls.key; ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites $suite;
  access_log $work/t2.access tls; $(bighop big) }"
	nginx_in "$cli" t1 "upstream tbig { server $server:9005; keepalive 16; }
server { listen 127.0.0.1:9006; location = /big { client_max_body_size 2m; proxy_request_buffering off; proxy_buffering off; proxy_pass https://tbig;
  proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_ssl_protocols TLSv1.3; proxy_ssl_conf_command Ciphersuites $suite; proxy_ssl_session_reuse on; } }"
fi
# The chain of the many-connections rows: as p1 -> p2, with room for the connections.
if [ -n "$IDLE" ]; then
	max=0; for n in $IDLE; do [ "$n" -gt "$max" ] && max=$n; done
	NGINX_CONNS=$((max + 1000))
	nginx_in "$srv" i2 "$(upstream 127.0.0.1:8080 9003)"
	nginx_in "$cli" i1 "$(upstream $server:9003 127.0.0.1:9004)"
	NGINX_CONNS=4096
fi
# gRPC: the app on 9090 (through the proxies) and 9091 (direct); nginx grpc_pass chain
# 9011 -> 9012 -> app. The mesh server pod runs it on 9090 too (benchcp's profile for
# $mserver:9090 names the server identity and the HTTP/2 hint, like 8080's).
for port in 9090 9091; do
	ip netns exec "$srv" "$work/grpcapp" -addr ":$port" & pids+=($!)
done
ip netns exec "$msrv" "$work/grpcapp" -addr ":9090" & pids+=($!)
if [ -n "$BASE_BIN" ]; then ip netns exec "$bsrv" "$work/grpcapp" -addr ":9090" & pids+=($!); fi
grpc_hop() { echo "upstream g { server $1; keepalive 64; } server { listen $2 http2; location / { grpc_pass grpc://g; } }"; }
nginx_in "$srv" g2 "$(grpc_hop 127.0.0.1:9090 9012)"
nginx_in "$cli" g1 "$(grpc_hop $server:9012 127.0.0.1:9011)"

for ns in $cli $srv; do
	ip netns exec "$ns" "$work/proxy-init" --iptables-mode nft --proxy-uid 2102 \
		--inbound-ports-to-ignore 4190,4191,8081,8082,9002,9003,9005,9091,9012 --outbound-ports-to-ignore 8081,8082,9002,9003,9005,9091,9012 --log-level warn
	ip netns exec "$ns" setpriv --reuid 2102 --regid 2102 --clear-groups env -i \
		LINKERD2_PROXY_LOG=warn LINKERD2_PROXY_ADMIN_LISTEN_ADDR=0.0.0.0:4191 GODEBUG=gctrace=1 $PROXY_ENV \
		"$work/proxy" 2>"$work/proxy-$ns.log" &
	pids+=($!)
done
for _ in $(seq 200); do [ -e "$work/cp/anchors.pem" ] && break; sleep 0.05; done
[ -e "$work/cp/anchors.pem" ] || { echo "bench-proxy: benchcp never started:"; cat "$work/benchcp.log"; exit 1; }
mpods="$mcli:$cid:proxy $msrv:$sid:proxy"
[ -n "$BASE_BIN" ] && mpods+=" $bcli:$cid:proxy-base $bsrv:$sid:proxy-base"
for pod in $mpods; do
	IFS=: read -r ns id bin <<<"$pod"
	env=$PROXY_ENV
	[ "$bin" = proxy-base ] && env+=" $BASE_ENV"
	ip netns exec "$ns" "$work/proxy-init" --iptables-mode nft --proxy-uid 2102 \
		--inbound-ports-to-ignore 4190,4191 --log-level warn
	# The environment the injector gives a meshed proxy (and gctrace, a line on stderr per
	# garbage collection, which run_once counts).
	ip netns exec "$ns" setpriv --reuid 2102 --regid 2102 --clear-groups env -i \
		LINKERD2_PROXY_LOG=warn LINKERD2_PROXY_ADMIN_LISTEN_ADDR=0.0.0.0:4191 \
		LINKERD2_PROXY_IDENTITY_DIR="$work/cp" \
		LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS="$(cat "$work/cp/anchors.pem")" \
		LINKERD2_PROXY_IDENTITY_TOKEN_FILE="$work/cp/token" \
		LINKERD2_PROXY_IDENTITY_LOCAL_NAME="$id" \
		LINKERD2_PROXY_IDENTITY_SVC_ADDR=10.245.0.1:8080 \
		LINKERD2_PROXY_IDENTITY_SVC_NAME=identity.linkerd.serviceaccount.identity.linkerd.cluster.local \
		LINKERD2_PROXY_DESTINATION_SVC_ADDR=10.245.0.1:8086 \
		LINKERD2_PROXY_DESTINATION_SVC_NAME=destination.linkerd.serviceaccount.identity.linkerd.cluster.local \
		LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS=10.245.0.0/16 GODEBUG=gctrace=1 \
		L5D_PROXY_PPROF=$([ -n "$PROFILE$TRACE" ] && echo true || echo false) $env \
		"$work/$bin" 2>"$work/proxy-$ns.log" &
	pids+=($!)
done
proxy_in() { # ns: the pid of the proxy running in it, once there is exactly one
	# (a proxy just started may still be setpriv or env, which exec it: an empty pid then
	# made every later CPU and system-call sum fail with "operand expected").
	local found
	for _ in $(seq 200); do
		found=()
		for p in $(pgrep -f "^$work/proxy(-base)?\$"); do
			if [ "$(ip netns identify "$p")" = "$1" ]; then found+=("$p"); fi
		done
		if [ "${#found[@]}" = 1 ]; then echo "${found[0]}"; return; fi
		sleep 0.05
	done
	echo "bench-proxy: ${#found[@]} proxies (${found[*]:-none}) in $1, not one" >&2; exit 1
}
cli_proxy=$(proxy_in "$cli") srv_proxy=$(proxy_in "$srv")
mcli_proxy=$(proxy_in "$mcli") msrv_proxy=$(proxy_in "$msrv")
bcli_proxy="" bsrv_proxy=""
[ -n "$BASE_BIN" ] && bcli_proxy=$(proxy_in "$bcli") bsrv_proxy=$(proxy_in "$bsrv")
for p in "$cli_proxy" "$srv_proxy" "$mcli_proxy" "$msrv_proxy" ${BASE_BIN:+"$bcli_proxy" "$bsrv_proxy"}; do
	[ -n "$p" ] || exit 1 # proxy_in said which
done

wait_ok() { # ns host port: polls until GET / answers 200
	for _ in $(seq 200); do
		if ip netns exec "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$2/$3 && printf 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 && head -1 <&3" 2>/dev/null | grep -q ' 200 '; then
			return 0
		fi
		sleep 0.05
	done
	echo "bench-proxy: $2:$3 never answered from $1"; exit 1
}
wait_ok "$cli" "$server" 8081
wait_ok "$cli" 127.0.0.1 9001
wait_ok "$cli" "$server" 8080
# The meshed path must really be meshed: inbound requests at the server proxy over TLS from
# the client's identity.
metrics() { ip netns exec "$1" timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4191 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3'; }
# meshed_inbound: the server proxy's inbound request counts (in server-ns) over mesh TLS
# from the client's identity, to target (host:port) when given.
meshed_inbound() { # server-ns [target]
	metrics "$1" | grep '^request_total{' | grep 'direction="inbound"' | grep "target_addr=\"${2:-}" | grep 'tls="true"' | grep "client_id=\"$cid\""
}
# await_meshed polls, running warm (a command) before each look, until the server proxy
# counts a meshed request (meshed_inbound); else it prints the proxies' state and exits.
await_meshed() { # what client-ns server-ns target warm...
	local what=$1 c=$2 s=$3 target=$4
	shift 4
	for _ in $(seq 100); do
		"$@"
		if meshed_inbound "$s" "$target" >/dev/null; then return; fi
		sleep 0.1
	done
	echo "bench-proxy: the $what path is NOT meshed: the server proxy saw no inbound request${target:+ to $target} with tls=\"true\" from $cid"
	metrics "$s" | grep -E '^(request_total|tcp_open_total)' || true
	echo "-- client proxy log:"; cat "$work/proxy-$c.log"; echo "-- server proxy log:"; cat "$work/proxy-$s.log"
	exit 1
}
verify_mesh() { # name client-ns server-ns server-ip
	local conns
	wait_ok "$2" "$4" 8080
	await_meshed "$1" "$2" "$3" "" wait_ok "$2" "$4" 8080
	# And HTTP/2 between the proxies: $CONNS client connections share the client proxy's few
	# connections to the server proxy (HTTP/1 would need one per concurrent request).
	ip netns exec "$2" wrk -t1 -c"$CONNS" -d1s "http://$4:8080/" >/dev/null
	conns=$(metrics "$3" | grep '^tcp_open_total{' | grep 'direction="inbound"' | grep 'peer="src"' | grep 'tls="true"' | grep "client_id=\"$cid\"" | awk '{s+=$NF} END {print s+0}')
	if [ "$conns" -ge "$CONNS" ]; then
		echo "bench-proxy: the $1 path is not multiplexed: $conns mesh TLS connections for $CONNS client connections"; exit 1
	fi
	echo "== $1 verified: $(meshed_inbound "$3" | head -1)"
	echo "   $CONNS concurrent client connections rode $conns mesh TLS connection(s) (HTTP/2)"
}
verify_mesh l5d-mesh "$mcli" "$msrv" "$mserver"
[ -n "$BASE_BIN" ] && verify_mesh l5d-base "$bcli" "$bsrv" "$bserver"
nginx_worker() { pgrep -P "$(cat "$work/$1.pid")" | head -1; }
p1=$(nginx_worker p1) p2=$(nginx_worker p2)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
# sysrw: read and write system calls so far as /proc/PID/io counts them: read, readv,
# write, writev and the like, but not recvfrom or sendto. nginx reads its sockets with
# recvfrom (and calls getsockopt once per upstream request), so its figures count only its
# writes: strace -c -f on the two nginx hops during a wrk round showed per request and hop
# 2 writev, 2 recvfrom, 1 getsockopt and 0.15 epoll_wait, about 10 system calls per request
# for the pair where these lines say 4.00; the proxies read with read, which is counted.
sysrw() { awk '/^sysc[rw]:/{s+=$2} END {print s}' "/proc/$1/io"; }
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
sleeps() { # times it slept (waited for input) so far, all its threads
	cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/{s+=$2} END {print s+0}'
}
gcs() { # pid: garbage collections so far of the proxy with that pid (its gctrace lines)
	grep -c '^gc ' "$work/proxy-$(ip netns identify "$1").log" || true
}
machine() { # CPU ticks of the whole machine so far: busy idle (the first line of /proc/stat)
	local _ user nice sys idle iowait irq softirq steal
	read -r _ user nice sys idle iowait irq softirq steal _ </proc/stat
	echo "$((user + nice + sys + irq + softirq + steal)) $((idle + iowait))"
}
children() { # CPU ticks of this shell's children that have ended (cutime + cstime): wrk's, once waited for
	local f
	read -r -a f <"/proc/$$/stat"
	echo $((f[15] + f[16]))
}
app_w=$(nginx_worker app) mapp_w=$(nginx_worker mapp) bapp_w=-
[ -n "$BASE_BIN" ] && bapp_w=$(nginx_worker bapp)
# The app's nginx worker behind each path.
declare -A APP=([direct]=$app_w [nginx]=$app_w [l5d]=$app_w [l5d-mesh]=$mapp_w [l5d-base]=$bapp_w)
# The two hops of each path (direct has none).
declare -A PAIR=([direct]="" [nginx]="$p1 $p2" [l5d]="$cli_proxy $srv_proxy" [l5d-mesh]="$mcli_proxy $msrv_proxy" [l5d-base]="$bcli_proxy $bsrv_proxy")
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

idle_cli=$(rss "$cli_proxy") idle_srv=$(rss "$srv_proxy")
idle_mcli=$(rss "$mcli_proxy") idle_msrv=$(rss "$msrv_proxy")
declare -A RPS CPU RSSMAX LAST_RPS LAST_CPU LAST_RSS LAST_SYS LAST_GC LAST_MACH
run_once() { # name url pidA pidB [client-ns]: one wrk run, appended to the path's samples
	local a1=0 a2=0 b1=0 b2=0 s1=0 s2=0 g1=0 g2=0 gc= m1 m2 w1 w2 c1 c2 q1 q2 z1 z2 app=${APP[$1]}
	[[ $1 == l5d* ]] && gc=1 # a pair of proxies, which log their collections
	[ -n "$3" ] && a1=$(cpu "$3") && a2=$(cpu "$4") && s1=$(($(sysrw "$3") + $(sysrw "$4")))
	[ -n "$gc" ] && g1=$(($(gcs "$3") + $(gcs "$4")))
	c1=$(cpu "$app") q1=$(sysrw "$app") z1=$(sleeps "$app") m1=$(machine) w1=$(children)
	out=$(ip netns exec "${5:-$cli}" wrk -t1 -c"$CONNS" -d"$DUR" "$2")
	w2=$(children) m2=$(machine) c2=$(cpu "$app") q2=$(sysrw "$app") z2=$(sleeps "$app")
	[ -n "$3" ] && b1=$(cpu "$3") && b2=$(cpu "$4") && s2=$(($(sysrw "$3") + $(sysrw "$4")))
	[ -n "$gc" ] && g2=$(($(gcs "$3") + $(gcs "$4")))
	reqs=$(awk '/requests in/{print $1}' <<<"$out")
	# The whole machine during the run, CPU-s per 10k requests: wrk, the app, each hop of
	# the pair (client side, server side) and the rest (the kernel's softirq work, anything
	# else running), and the idle share.
	local busy=$((${m2% *} - ${m1% *})) idle=$((${m2#* } - ${m1#* }))
	local wrk=$((w2 - w1)) appc=$((c2 - c1))
	LAST_MACH[$1]=$(awk -v w="$wrk" -v a="$appc" -v c="$((b1 - a1))" -v d="$((b2 - a2))" -v b="$busy" -v i="$idle" -v n="$reqs" -v s="$((q2 - q1))" -v z="$((z2 - z1))" \
		'BEGIN {k = 100 * n / 10000; printf "%.3f/%.3f/%.3f+%.3f/%.3f %.1f%% %.2f %.1f", w/k, a/k, c/k, d/k, (b-w-a-c-d)/k, 100*i/(b+i), s/n, n/z}')
	LAST_RPS[$1]=$(awk '/Requests\/sec/{print $2}' <<<"$out")
	RPS[$1]+=" ${LAST_RPS[$1]}"
	LAST_CPU[$1]=- LAST_SYS[$1]=- LAST_GC[$1]=-
	if [ -n "$3" ]; then
		LAST_CPU[$1]=$(echo "scale=4; ($b1-$a1+$b2-$a2)/100*10000/$reqs" | bc)
		LAST_SYS[$1]=$(echo "scale=2; ($s2-$s1)/$reqs" | bc)
		[ -n "$gc" ] && LAST_GC[$1]=$(echo "scale=2; ($g2-$g1)*10000/$reqs" | bc)
		CPU[$1]+=" ${LAST_CPU[$1]}"
		LAST_RSS[$1]=0
		for p in "$3" "$4"; do
			r=$(rss "$p")
			if [ "$r" -gt "${LAST_RSS[$1]}" ]; then LAST_RSS[$1]=$r; fi
			if [ "$r" -gt "${RSSMAX[$1]:-0}" ]; then RSSMAX[$1]=$r; fi
		done
	fi
}
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
# The paths take turns within each round, so that load from elsewhere on the machine
# falls on all of them alike; the ratios to nginx are medians of the per-round ratios.
[ "$REPEATS" = 0 ] || [ "$SMALL" = 0 ] || echo "== throughput: wrk -t1 -c$CONNS -d$DUR, $REPEATS rounds (direct, nginx, l5d, l5d-mesh in turn), medians"
declare -A ratio_rps ratio_cpu ratio_rss
on() { [[ " $PATHS " == *" $1 "* ]] || { [ "$1" = l5d-base ] && [ -n "$BASE_BIN" ]; }; }
profile() { # ns file: a CPU profile of the proxy in ns for DUR less a second, in the background
	local secs=$((${DUR%s} - 1))
	ip netns exec "$1" curl -s -o "$PROFILE/$2" "http://127.0.0.1:4191/debug/pprof/profile?seconds=$secs" &
	profiling+=($!)
}
# big_profile ns pid name: profile, then the proxy's heap and its memory by kind (anonymous,
# file-backed: the mapped binary) a second before the round ends, in the background.
big_profile() {
	profile "$1" "$3.prof"
	local cpu=${profiling[-1]}
	{
		while kill -0 "$cpu" 2>/dev/null; do sleep 0.1; done # the CPU profile, a sibling
		ip netns exec "$1" curl -s -o "$PROFILE/$3.heap" "http://127.0.0.1:4191/debug/pprof/heap"
		cat "/proc/$2/smaps_rollup" >"$PROFILE/$3.smaps"
	} &
	profiling+=($!)
}
profiling=()
if [ -n "$PROFILE" ]; then mkdir -p "$PROFILE" && cp "$work/proxy" "$PROFILE/proxy"; fi
if [ "$REPEATS" != 0 ] && [ "$SMALL" != 0 ]; then
	for round in $(seq "$REPEATS"); do
		if on direct; then run_once direct "http://$server:8081/" "" ""; else LAST_RPS[direct]=-; fi
		run_once nginx "http://127.0.0.1:9001/" "$p1" "$p2"
		if on l5d; then run_once l5d "http://$server:8080/" "$cli_proxy" "$srv_proxy"; else LAST_RPS[l5d]=- LAST_CPU[l5d]=- LAST_SYS[l5d]=- LAST_GC[l5d]=-; fi
		if on l5d-mesh; then
			# The base build, when there is one, runs before l5d-mesh in odd rounds and after it
			# in even ones (the profiles start only then: they must cover l5d-mesh's run).
			if on l5d-base && [ $((round % 2)) = 1 ]; then run_once l5d-base "http://$bserver:8080/" "$bcli_proxy" "$bsrv_proxy" "$bcli"; fi
			if [ -n "$PROFILE" ] && [ "$round" = "$REPEATS" ]; then profile "$mcli" client.prof; profile "$msrv" server.prof; fi
			run_once l5d-mesh "http://$mserver:8080/" "$mcli_proxy" "$msrv_proxy" "$mcli"
			if on l5d-base && [ $((round % 2)) = 0 ]; then run_once l5d-base "http://$bserver:8080/" "$bcli_proxy" "$bsrv_proxy" "$bcli"; fi
		else LAST_RPS[l5d-mesh]=- LAST_CPU[l5d-mesh]=- LAST_SYS[l5d-mesh]=- LAST_GC[l5d-mesh]=-; fi
		for p in l5d l5d-mesh l5d-base; do
			on "$p" || continue
			ratio_rps[$p]+=" $(echo "scale=4; ${LAST_RPS[$p]}/${LAST_RPS[nginx]}" | bc)"
			ratio_cpu[$p]+=" $(echo "scale=4; ${LAST_CPU[$p]}/${LAST_CPU[nginx]}" | bc)"
			ratio_rss[$p]+=" $(echo "scale=4; ${LAST_RSS[$p]}/${LAST_RSS[nginx]}" | bc)"
		done
		base=""
		if on l5d-base && on l5d-mesh; then
			base=" l5d-base ${LAST_RPS[l5d-base]}/${LAST_CPU[l5d-base]}/${LAST_SYS[l5d-base]}/${LAST_GC[l5d-base]}"
			ratio_rps[base]+=" $(echo "scale=4; ${LAST_RPS[l5d-mesh]}/${LAST_RPS[l5d-base]}" | bc)"
			ratio_cpu[base]+=" $(echo "scale=4; ${LAST_CPU[l5d-mesh]}/${LAST_CPU[l5d-base]}" | bc)"
		fi
		echo "round $round: req/s direct ${LAST_RPS[direct]} nginx ${LAST_RPS[nginx]} l5d ${LAST_RPS[l5d]} l5d-mesh ${LAST_RPS[l5d-mesh]};" \
			"CPU-s/10k nginx ${LAST_CPU[nginx]} l5d ${LAST_CPU[l5d]} l5d-mesh ${LAST_CPU[l5d-mesh]};" \
			"read+write syscalls/req (pair; not recvfrom: nginx's reads uncounted) nginx ${LAST_SYS[nginx]} l5d ${LAST_SYS[l5d]} l5d-mesh ${LAST_SYS[l5d-mesh]};" \
			"GCs/10k req (pair) l5d ${LAST_GC[l5d]} l5d-mesh ${LAST_GC[l5d-mesh]}${base:+; req/s/CPU-s/syscalls/GCs$base}"
		mach=""
		for p in direct nginx l5d l5d-mesh l5d-base; do
			[ -n "${LAST_MACH[$p]:-}" ] && mach+=" $p ${LAST_MACH[$p]}"
		done
		echo "  machine (CPU-s/10k req wrk/app/client+server hop/rest, idle share, app read+write syscalls/req (its writes only), app requests per sleep):$mach"
		LAST_MACH=()
	done
	for p in "${profiling[@]}"; do wait "$p"; done
	printf '%-9s %12s %10s %10s %24s %16s\n' path "requests/s" "x direct" "x nginx" "CPU-s/10k req (pair)" "max RSS KB"
	for p in direct nginx l5d l5d-mesh l5d-base; do
		on "$p" || [ "$p" = nginx ] || continue
		r=$(med "${RPS[$p]}") n=$(med "${RPS[nginx]}") xd=-
		if on direct; then xd=$(printf '%.2f' "$(echo "scale=3; $r/$(med "${RPS[direct]}")" | bc)"); fi
		c=-
		if [ -n "${CPU[$p]:-}" ]; then c=$(printf '%.4f' "$(med "${CPU[$p]}")"); fi
		printf '%-9s %12.0f %10s %10.2f %24s %16s\n' "$p" "$r" \
			"$xd" "$(echo "scale=3; $r/$n" | bc)" "$c" "${RSSMAX[$p]:-0}"
	done
	for p in l5d l5d-mesh l5d-base; do
		on "$p" || continue
		printf '%s vs nginx, median of per-round ratios: throughput x%.2f, CPU per request x%.2f, max RSS per process x%.2f\n' \
			"$p" "$(med "${ratio_rps[$p]}")" "$(med "${ratio_cpu[$p]}")" "$(med "${ratio_rss[$p]}")"
	done
	if on l5d-base && on l5d-mesh; then
		printf 'l5d-mesh vs l5d-base, median of per-round ratios: throughput x%.2f, CPU per request x%.2f\n' \
			"$(med "${ratio_rps[base]}")" "$(med "${ratio_cpu[base]}")"
	fi
else
	echo "== throughput (100-byte bodies): skipped (REPEATS=0 or SMALL=0)"
fi
echo "l5d proxy RSS idle: client ${idle_cli} KB, server ${idle_srv} KB; l5d-mesh: client ${idle_mcli} KB, server ${idle_msrv} KB"

ratio() { # a b: a/b to two places, or - when either is missing or b is zero
	if [ -z "$1" ] || [ -z "$2" ] || [ "$1" = - ] || [ "$2" = - ] || [ "$(echo "$2 == 0" | bc)" = 1 ]; then echo -; return; fi
	printf 'x%.2f' "$(echo "scale=4; $1/$2" | bc)"
}
fortio=$(command -v fortio || true)
[ -z "$fortio" ] && [ -x "$root/bin/tools/fortio" ] && fortio=$root/bin/tools/fortio
# LAT, LATS: [path,rate,percentile] = ms (median of the rounds), the rounds' figures;
# LATN, LATR: [rate,percentile] = l5d-mesh/nginx and l5d-mesh/l5d-base, one ratio per round.
declare -A LAT LATS LATN LATR
lat_mach=""
if [ -n "$fortio" ] && [ -n "$RATES" ]; then
	echo "== latency at fixed rates: fortio$([ "$LAT_UNIFORM" = 1 ] && echo " -uniform") -c 16 -t $RATE_DUR (ms), $LAT_REPEATS round(s), the paths in turn"
	printf '%-8s %6s %8s %8s %8s %10s\n' path qps p50 p99 p99.9 "achieved"
	# name|client-ns|url: l5d-mesh from the mesh client pod, as for throughput; the base
	# build before l5d-mesh in odd rounds, after it in even ones.
	# Odd rounds take the paths in this order, even rounds in the reverse one (so the base
	# build runs before l5d-mesh in odd rounds and after it in even ones), so that a drift in
	# the machine's load falls on nginx, l5d-mesh and l5d-base alike.
	paths() {
		printf '%s\n' "direct|$cli|http://$server:8081/" "nginx|$cli|http://127.0.0.1:9001/" "l5d|$cli|http://$server:8080/" \
			"l5d-base|$bcli|http://$bserver:8080/" "l5d-mesh|$mcli|http://$mserver:8080/" |
			if [ $(($1 % 2)) = 1 ]; then cat; else tac; fi
	}
	# What the machine did during one fortio run (lat_before, then lat_after name requests):
	# CPU-s per 10k requests of fortio, the app, each hop and the rest (the kernel's softirq
	# work, anything else running), the idle share, the hops' sleeps per request (each a
	# wake-up: the system call waits the scheduler and the netpoller end in) and, for the
	# proxies, their garbage collections during the run. The rest is the machine's busy time
	# (/proc/stat, sampled at each tick) less the processes' own (exact): on a mostly idle
	# machine it may read a few tenths below zero.
	lat_before() { # name
		local p
		LM_HOP=() LM_SLEEP=0 LM_GC=0
		for p in ${PAIR[$1]}; do
			LM_HOP+=("$(cpu "$p")") LM_SLEEP=$((LM_SLEEP + $(sleeps "$p")))
			[[ $1 == l5d* ]] && LM_GC=$((LM_GC + $(gcs "$p")))
		done
		LM_APP=$(cpu "${APP[$1]}") LM_MACH=$(machine) LM_KIDS=$(children)
	}
	lat_after() { # name requests: the machine line of the run
		local kids mach app i=0 p hop=() sl=0 gc=0
		kids=$(children) mach=$(machine) app=$(cpu "${APP[$1]}")
		for p in ${PAIR[$1]}; do
			hop+=($(($(cpu "$p") - LM_HOP[i]))) sl=$((sl + $(sleeps "$p")))
			[[ $1 == l5d* ]] && gc=$((gc + $(gcs "$p")))
			i=$((i + 1))
		done
		[ "${#hop[@]}" = 2 ] || hop=(0 0)
		awk -v f="$((kids - LM_KIDS))" -v a="$((app - LM_APP))" -v c="${hop[0]}" -v d="${hop[1]}" \
			-v b="$((${mach% *} - ${LM_MACH% *}))" -v i="$((${mach#* } - ${LM_MACH#* }))" -v n="$2" \
			-v s="$((sl - LM_SLEEP))" -v g="$((gc - LM_GC))" -v proxies="$([[ $1 == l5d* ]] && echo 1)" \
			'BEGIN {if (n <= 0) {print "-"; exit}; k = 100 * n / 10000
			printf "%.3f/%.3f/%.3f+%.3f/%.3f %.1f%% %.2f", f/k, a/k, c/k, d/k, (b-f-a-c-d)/k, 100*i/(b+i), s/n
			if (proxies) printf " %d", g; print ""}'
	}
	# SYSCALLS: strace -c -f on each hop of the pair for one run, and each thread's sleeps
	# (voluntary context switches) before and after it.
	STRACING=()
	thread_sleeps() { # pid: "tid sleeps" for each of its threads
		local t
		for t in /proc/"$1"/task/*; do
			awk -v t="${t##*/}" '/^voluntary_ctxt_switches/{print t, $2}' "$t/status" 2>/dev/null || true
		done
	}
	syscalls_start() { # name rate
		local p hop i=0 hops=(client server)
		mkdir -p "$SYSCALLS"
		for p in ${PAIR[$1]}; do
			hop=${hops[i]} i=$((i + 1))
			thread_sleeps "$p" >"$SYSCALLS/$1-$hop-$2.sleeps0"
			rm -f "$SYSCALLS/$1-$hop-$2.strace"
			if [ "$SYSCALLS_STRACE" = 1 ]; then
				strace -c -f -p "$p" -o "$SYSCALLS/$1-$hop-$2.strace" 2>/dev/null &
				STRACING+=($!)
			fi
			if [ "$SYSCALLS_PERF" = 1 ]; then
				perf record -q -F 4999 -g -p "$p" -o "$SYSCALLS/$1-$hop-$2.perf" >/dev/null 2>&1 &
				STRACING+=($!)
			fi
		done
	}
	syscalls_end() { # name rate requests: stop the straces, print per request figures
		local p hop i=0 hops=(client server) s
		for s in "${STRACING[@]}"; do kill -INT "$s" 2>/dev/null || true; wait "$s" 2>/dev/null || true; done
		STRACING=()
		for p in ${PAIR[$1]}; do
			hop=${hops[i]} i=$((i + 1))
			thread_sleeps "$p" >"$SYSCALLS/$1-$hop-$2.sleeps1"
			echo "  $1 $hop at $2 req/s, per request ($3 requests): system calls $([ -f "$SYSCALLS/$1-$hop-$2.strace" ] || echo -) $(awk -v n="$3" '
				$NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $NF != "syscall" && $(NF-1) ~ /^[0-9]+$/ {
					c = NF == 6 ? $(NF-2) : $(NF-1); x[$NF] = c; e[$NF] = NF == 6 ? $(NF-1) : 0; t += c }
				END {printf "%.2f:", t/n; for (k in x) if (x[k]/n >= 0.01) {
					printf " %s %.2f", k, x[k]/n; if (e[k]/n >= 0.01) printf " (%.2f failed)", e[k]/n}}' \
				"$SYSCALLS/$1-$hop-$2.strace" 2>/dev/null); threads $(awk -v n="$3" '
				NR == FNR {a[$1] = $2; next} {d = $2 - a[$1]; if (d > 0) {k++; t += d; l = l sprintf(" %.2f", d/n)}}
				END {printf "%d slept, sleeps %.2f (each:%s)", k, t/n, l}' \
				"$SYSCALLS/$1-$hop-$2.sleeps0" "$SYSCALLS/$1-$hop-$2.sleeps1")"
		done
	}
	for round in $(seq "$LAT_REPEATS"); do
		for rate in $RATES; do
			declare -A this=()
			for p in $(paths "$round"); do
				IFS='|' read -r name ns url <<<"$p"
				on "$name" || [ "$name" = nginx ] || continue
				tracing=()
				if [ -n "$TRACE" ] && [[ "$name" == l5d-mesh || "$name" == l5d-base ]] && [ "$round" = 1 ]; then
					mkdir -p "$TRACE"
					tpods="$mcli:client $msrv:server"
					[ "$name" = l5d-base ] && tpods="$bcli:base-client $bsrv:base-server"
					for t in $tpods; do
						ip netns exec "${t%%:*}" curl -s -o "$TRACE/${t#*:}-$rate.trace" \
							"http://127.0.0.1:4191/debug/pprof/trace?seconds=$((${RATE_DUR%s} - 1))" &
						tracing+=($!)
					done
				fi
				if [ -n "$PROFILE" ] && [ "$name" = l5d-mesh ] && [ "$round" = 1 ]; then
					for t in "$mcli:client" "$msrv:server"; do
						ip netns exec "${t%%:*}" curl -s -o "$PROFILE/${t#*:}-lat-$rate.prof" \
							"http://127.0.0.1:4191/debug/pprof/profile?seconds=$((${RATE_DUR%s} - 1))" &
						tracing+=($!)
					done
				fi
				if [ -n "$SYSCALLS" ] && [[ "$name" == nginx || "$name" == l5d-mesh || "$name" == l5d-base ]] && [ "$round" = 1 ]; then
					syscalls_start "$name" "$rate"
				fi
				lat_before "$name"
				out=$(ip netns exec "$ns" "$fortio" load -quiet $([ "$LAT_UNIFORM" = 1 ] && echo -uniform) -c 16 -qps "$rate" -t "$RATE_DUR" -p "50,99,99.9" "$url" 2>&1)
				lat_mach+=" $name $(lat_after "$name" "$(awk '/^All done/{print $3; exit}' <<<"$out")")"
				[ -n "$SYSCALLS" ] && [ -f "$SYSCALLS/$name-client-$rate.sleeps0" ] && [ "$round" = 1 ] && syscalls_end "$name" "$rate" "$(awk '/^All done/{print $3; exit}' <<<"$out")"
				# fortio interpolates its percentiles within histogram buckets; on an overloaded
				# machine that gives negative figures, which are no measurement: "-" instead.
				pct() { awk -v q="$1" '$1=="#" && $2=="target" && $3==q"%" {if ($4 < 0) print "-"; else printf "%.3f", $4*1000; exit}' <<<"$out"; }
				for t in "${tracing[@]}"; do wait "$t"; done
				for q in 50 99 99.9; do
					this[$name,$q]=$(pct $q)
					[ "${this[$name,$q]}" != - ] && [ -n "${this[$name,$q]}" ] && LATS[$name,$rate,$q]+=" ${this[$name,$q]}"
				done
				printf '%-8s %6s %8s %8s %8s %10s\n' "$name" "$rate" "${this[$name,50]}" "${this[$name,99]}" \
					"${this[$name,99.9]}" "$(awk '/All done/{print $(NF-1)}' <<<"$out" | tail -1)"
			done
			echo "  machine (CPU-s/10k req fortio/app/client+server hop/rest, idle share, hops' sleeps/req, GCs of the pair):$lat_mach"
			lat_mach=""
			for q in 50 99 99.9; do
				if on l5d-mesh; then
					r=$(ratio "${this[l5d-mesh,$q]}" "${this[nginx,$q]}")
					[ "$r" != - ] && LATN[$rate,$q]+=" ${r#x}"
				fi
				if on l5d-base && on l5d-mesh; then
					r=$(ratio "${this[l5d-mesh,$q]}" "${this[l5d-base,$q]}")
					[ "$r" != - ] && LATR[$rate,$q]+=" ${r#x}"
				fi
			done
		done
	done
	for k in "${!LATS[@]}"; do LAT[$k]=$(med "${LATS[$k]}"); done
	if [ "$LAT_REPEATS" -gt 1 ]; then
		echo "medians of $LAT_REPEATS rounds:"
		for rate in $RATES; do
			for name in direct nginx l5d l5d-mesh l5d-base; do
				on "$name" || [ "$name" = nginx ] || continue
				printf '%-8s %6s %8s %8s %8s\n' "$name" "$rate" "${LAT[$name,$rate,50]:--}" "${LAT[$name,$rate,99]:--}" "${LAT[$name,$rate,99.9]:--}"
			done
		done
	fi
elif [ -z "$RATES" ]; then
	echo "== latency: skipped (RATES=\"\")"
else
	echo "== latency: fortio not found (make bench-tools builds it into bin/tools)"
fi

declare -A GRPS GCPU GP99 gratio # [path] = medians; gratio: per-round l5d-mesh ratios
ghz=$(command -v ghz || true)
[ -z "$ghz" ] && [ -x "$root/bin/tools/ghz" ] && ghz=$root/bin/tools/ghz
if [ -n "$ghz" ] && [ "$GRPC" != 0 ]; then
	echo "== gRPC unary (grpc.health.v1.Health/Check): ghz -c $CONNS -z $DUR, $REPEATS rounds (the paths in turn), medians"
	g1=$(nginx_worker g1) g2=$(nginx_worker g2)
	declare -A GRPSS GCPUS GP99S GLAST_RPS GLAST_CPU
	grpc_once() { # name target pidA pidB [client-ns]: one ghz run, appended to the path's samples
		local a=0 b=0 out r n c=-
		[ -n "$3" ] && a=$(( $(cpu "$3") + $(cpu "$4") ))
		out=$(ip netns exec "${5:-$cli}" "$ghz" --insecure --call grpc.health.v1.Health/Check -c "$CONNS" -z "$DUR" "$2" 2>&1)
		[ -n "$3" ] && b=$(( $(cpu "$3") + $(cpu "$4") ))
		r=$(awk '/Requests\/sec:/{print $2}' <<<"$out")
		n=$(awk '/Count:/{print $2; exit}' <<<"$out")
		[ -n "$3" ] && c=$(echo "scale=4; ($b-$a)/100*10000/$n" | bc)
		GLAST_RPS[$1]=$r GLAST_CPU[$1]=$c
		GRPSS[$1]+=" $r" GP99S[$1]+=" $(awk '/99 % in/{print $4}' <<<"$out")"
		[ "$c" = - ] || GCPUS[$1]+=" $c"
	}
	if on l5d-mesh; then
		# The meshed gRPC path must really be meshed: inbound requests to the gRPC port at the
		# server proxy over TLS from the client's identity (short ghz runs to warm it up).
		ghz_warm() { ip netns exec "$mcli" "$ghz" --insecure --call grpc.health.v1.Health/Check -c 4 -n 100 "$mserver:9090" >/dev/null 2>&1 || true; }
		await_meshed "l5d-mesh gRPC" "$mcli" "$msrv" "$mserver:9090" ghz_warm
		echo "== l5d-mesh gRPC verified: $(meshed_inbound "$msrv" "$mserver:9090" | head -1)"
	fi
	# The paths take turns within each round (the base build before l5d-mesh in odd rounds,
	# after it in even ones), so that load from elsewhere falls on all of them alike; the
	# l5d-mesh ratios are medians of the per-round ratios.
	for round in $(seq "$REPEATS"); do
		if on direct; then grpc_once direct "$server:9091" "" ""; fi
		grpc_once nginx "127.0.0.1:9011" "$g1" "$g2"
		if on l5d; then grpc_once l5d "$server:9090" "$cli_proxy" "$srv_proxy"; fi
		if on l5d-mesh; then
			if on l5d-base && [ $((round % 2)) = 1 ]; then grpc_once l5d-base "$bserver:9090" "$bcli_proxy" "$bsrv_proxy" "$bcli"; fi
			grpc_once l5d-mesh "$mserver:9090" "$mcli_proxy" "$msrv_proxy" "$mcli"
			if on l5d-base && [ $((round % 2)) = 0 ]; then grpc_once l5d-base "$bserver:9090" "$bcli_proxy" "$bsrv_proxy" "$bcli"; fi
			gratio[rps]+=" $(echo "scale=4; ${GLAST_RPS[l5d-mesh]}/${GLAST_RPS[nginx]}" | bc)"
			gratio[cpu]+=" $(echo "scale=4; ${GLAST_CPU[l5d-mesh]}/${GLAST_CPU[nginx]}" | bc)"
			if on l5d-base; then
				gratio[brps]+=" $(echo "scale=4; ${GLAST_RPS[l5d-mesh]}/${GLAST_RPS[l5d-base]}" | bc)"
				gratio[bcpu]+=" $(echo "scale=4; ${GLAST_CPU[l5d-mesh]}/${GLAST_CPU[l5d-base]}" | bc)"
				o=$((round % 2)) # 1: the base build ran first in this round
				gratio[brps$o]+=" ${gratio[brps]##* }" gratio[bcpu$o]+=" ${gratio[bcpu]##* }"
			fi
		fi
		line="round $round: requests/s, CPU-s/10k (pair):"
		for p in direct nginx l5d l5d-mesh l5d-base; do
			[ -n "${GLAST_RPS[$p]:-}" ] && line+=" $p ${GLAST_RPS[$p]}/${GLAST_CPU[$p]}"
		done
		echo "$line"
	done
	printf '%-8s %12s %10s %10s %24s %10s\n' path "requests/s" "x direct" "x nginx" "CPU-s/10k req (pair)" "p99"
	for p in direct nginx l5d l5d-mesh l5d-base; do # the medians first: the rows divide by direct's and nginx's
		[ -n "${GRPSS[$p]:-}" ] || continue
		GRPS[$p]=$(med "${GRPSS[$p]}") GP99[$p]=$(med "${GP99S[$p]}")
		GCPU[$p]=$( [ -n "${GCPUS[$p]:-}" ] && med "${GCPUS[$p]}" || echo -)
	done
	for p in direct nginx l5d l5d-mesh l5d-base; do
		[ -n "${GRPS[$p]:-}" ] || continue
		printf '%-8s %12.0f %10s %10s %24s %10s\n' "$p" "${GRPS[$p]}" \
			"$(ratio "${GRPS[$p]}" "${GRPS[direct]:-}")" "$(ratio "${GRPS[$p]}" "${GRPS[nginx]:-}")" "${GCPU[$p]}" "${GP99[$p]}"
	done
	if on l5d-mesh; then
		printf 'l5d-mesh vs nginx, median of per-round ratios: throughput x%.2f, CPU per request x%.2f\n' "$(med "${gratio[rps]}")" "$(med "${gratio[cpu]}")"
	fi
	if on l5d-mesh && on l5d-base; then
		printf 'l5d-mesh vs l5d-base, median of per-round ratios: throughput x%.2f, CPU per request x%.2f\n' "$(med "${gratio[brps]}")" "$(med "${gratio[bcpu]}")"
		# The path right after nginx in a round tends to read higher throughput (README
		# "Performance"): the medians by order show how far, and an odd REPEATS leans one way.
		if [ -n "${gratio[brps0]:-}" ]; then
			printf '  by order: base build first (odd rounds) throughput x%.2f, CPU x%.2f; l5d-mesh first (even rounds) throughput x%.2f, CPU x%.2f\n' \
				"$(med "${gratio[brps1]}")" "$(med "${gratio[bcpu1]}")" "$(med "${gratio[brps0]}")" "$(med "${gratio[bcpu0]}")"
		fi
	fi
elif [ "$GRPC" = 0 ]; then
	echo "== gRPC: skipped (GRPC=0)"
else
	echo "== gRPC: ghz not found (make bench-tools builds it into bin/tools)"
fi

declare -A IDLEB # [path,n] = RSS growth of the pair per idle connection, bytes
if [ -n "$IDLE" ]; then
	echo "== many connections: idleconns -n N (one request each, then held idle ${IDLE_HOLD}s), RSS growth of the pair per connection"
	mkfifo "$work/hold"
	idle_row() { # name ns addr pidA pidB n
		local before after ipid
		before=$(($(rss "$4") + $(rss "$5")))
		ip netns exec "$2" "$work/idleconns" -addr "$3" -n "$6" <"$work/hold" >"$work/idle.out" 2>&1 &
		ipid=$!
		exec 7>"$work/hold" # the tool's standard input, closed below to let the connections go
		for _ in $(seq 1200); do
			grep -q '^ready' "$work/idle.out" && break
			kill -0 "$ipid" 2>/dev/null || break
			sleep 0.1
		done
		if ! grep -q '^ready' "$work/idle.out"; then
			echo "bench-proxy: $6 idle connections through $1 did not open:"; cat "$work/idle.out"; exit 1
		fi
		sleep "$IDLE_HOLD" # held idle, as the connections of a real client mostly are
		after=$(($(rss "$4") + $(rss "$5")))
		exec 7>&-
		wait "$ipid" || { echo "bench-proxy: idleconns through $1 failed:"; cat "$work/idle.out"; exit 1; }
		IDLEB[$1,$6]=$(((after - before) * 1024 / $6))
		printf '%-9s %8s %14s %14s %18s\n' "$1" "$6" "$before" "$after" "${IDLEB[$1,$6]}"
	}
	printf '%-9s %8s %14s %14s %18s\n' path conns "RSS before KB" "RSS after KB" "bytes/connection"
	for n in $IDLE; do
		idle_row nginx "$cli" 127.0.0.1:9004 "$(nginx_worker i1)" "$(nginx_worker i2)" "$n"
		if on l5d-base; then idle_row l5d-base "$bcli" "$bserver:8080" "$bcli_proxy" "$bsrv_proxy" "$n"; fi
		if on l5d-mesh; then idle_row l5d-mesh "$mcli" "$mserver:8080" "$mcli_proxy" "$msrv_proxy" "$n"; fi
	done
else
	echo "== many connections: skipped (IDLE=\"\")"
fi

declare -A BIGCPU BIGMIB big_ratio # [path] = CPU-ms of the pair per MiB carried, MiB/s carried; per-round ratios
if [ "$BIG" != 0 ]; then
	echo "== large bodies: wrk -c$BIG_CONNS -d$DUR, POST 1 MiB, 1 MiB response, $REPEATS rounds, medians"
	cat >"$work/big.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
	big_once() { # name ns url pidA pidB: one wrk run; sets BIG_LAST_CPU, BIG_LAST_MIB, BIG_LAST_SYS
		local a b s1 s2 out reqs r
		a=$(($(cpu "$4") + $(cpu "$5"))) s1=$(($(sysrw "$4") + $(sysrw "$5")))
		out=$(ip netns exec "$2" wrk -t1 -c"$BIG_CONNS" -d"$DUR" -s "$work/big.lua" "$3")
		b=$(($(cpu "$4") + $(cpu "$5"))) s2=$(($(sysrw "$4") + $(sysrw "$5")))
		reqs=$(awk '/requests in/{print $1}' <<<"$out")
		if grep -q 'Non-2xx' <<<"$out" || [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
			echo "bench-proxy: large bodies through $1 failed:"; echo "$out"
			for p in "$4" "$5"; do # the proxies' logs (not nginx's, whose workers log elsewhere)
				l=$work/proxy-$(ip netns identify "$p").log
				if [ -e "$l" ]; then echo "-- $l:"; grep -v '^gc ' "$l" | tail -20; fi
			done
			exit 1
		fi
		# Each request carries 2 MiB (1 MiB each way); CPU ticks are 1/100 s.
		BIG_LAST_CPU[$1]=$(echo "scale=4; ($b-$a)*10/($reqs*2)" | bc)
		BIG_LAST_MIB[$1]=$(echo "scale=2; $reqs*2/${DUR%s}" | bc)
		BIG_LAST_SYS[$1]=$(echo "scale=1; ($s2-$s1)/($reqs*2)" | bc)
		BIGCPUS[$1]+=" ${BIG_LAST_CPU[$1]}" BIGMIBS[$1]+=" ${BIG_LAST_MIB[$1]}" BIGSYSS[$1]+=" ${BIG_LAST_SYS[$1]}"
		for p in "$4" "$5"; do
			r=$(rss "$p")
			if [ "$r" -gt "${BIGRSS[$1]:-0}" ]; then BIGRSS[$1]=$r; fi
		done
	}
	# The paths take turns within each round (the base build before l5d-mesh in odd rounds,
	# after it in even ones); ratios are medians of the per-round ratios.
	declare -A BIGCPUS BIGMIBS BIGSYSS BIGRSS BIG_LAST_CPU BIG_LAST_MIB BIG_LAST_SYS
	profiling=()
	tls_hops=
	if [ "$BIG_TLS" != 0 ]; then tls_hops="$(nginx_worker t1) $(nginx_worker t2)"; fi
	for round in $(seq "$REPEATS"); do
		big_once nginx "$cli" "http://127.0.0.1:9001/big" "$p1" "$p2"
		if [ -n "$tls_hops" ]; then
			big_once nginx-tls "$cli" "http://127.0.0.1:9006/big" $tls_hops
			if [ "$round" = 1 ]; then echo "nginx-tls: its hops' TLS connections: $(sort "$work/t2.access" | uniq -c | xargs)"; fi
		fi
		if on l5d-mesh; then
			if on l5d-base && [ $((round % 2)) = 1 ]; then big_once l5d-base "$bcli" "http://$bserver:8082/big" "$bcli_proxy" "$bsrv_proxy"; fi
			if [ -n "$PROFILE" ] && [ "$round" = "$REPEATS" ]; then big_profile "$mcli" "$mcli_proxy" big-client; big_profile "$msrv" "$msrv_proxy" big-server; fi
			big_once l5d-mesh "$mcli" "http://$mserver:8082/big" "$mcli_proxy" "$msrv_proxy"
			for p in "${profiling[@]}"; do wait "$p"; done
			profiling=()
			if on l5d-base && [ $((round % 2)) = 0 ]; then big_once l5d-base "$bcli" "http://$bserver:8082/big" "$bcli_proxy" "$bsrv_proxy"; fi
			big_ratio[cpu]+=" $(echo "scale=4; ${BIG_LAST_CPU[l5d-mesh]}/${BIG_LAST_CPU[nginx]}" | bc)"
			big_ratio[mib]+=" $(echo "scale=4; ${BIG_LAST_MIB[l5d-mesh]}/${BIG_LAST_MIB[nginx]}" | bc)"
			if [ -n "$tls_hops" ]; then
				big_ratio[tcpu]+=" $(echo "scale=4; ${BIG_LAST_CPU[l5d-mesh]}/${BIG_LAST_CPU[nginx-tls]}" | bc)"
				big_ratio[tmib]+=" $(echo "scale=4; ${BIG_LAST_MIB[l5d-mesh]}/${BIG_LAST_MIB[nginx-tls]}" | bc)"
			fi
			if on l5d-base; then
				big_ratio[bcpu]+=" $(echo "scale=4; ${BIG_LAST_CPU[l5d-mesh]}/${BIG_LAST_CPU[l5d-base]}" | bc)"
				big_ratio[bmib]+=" $(echo "scale=4; ${BIG_LAST_MIB[l5d-mesh]}/${BIG_LAST_MIB[l5d-base]}" | bc)"
			fi
		fi
		line="round $round: MiB/s, CPU-ms/MiB, read+write syscalls/MiB (pair):"
		for p in nginx nginx-tls l5d-mesh l5d-base; do
			[ -n "${BIG_LAST_CPU[$p]:-}" ] && line+=" $p ${BIG_LAST_MIB[$p]}/${BIG_LAST_CPU[$p]}/${BIG_LAST_SYS[$p]}"
		done
		echo "$line"
	done
	printf '%-9s %14s %22s %26s %12s\n' path "MiB/s carried" "CPU-ms per MiB (pair)" "read+write syscalls/MiB" "max RSS KB"
	for p in nginx nginx-tls l5d-mesh l5d-base; do
		[ -n "${BIGCPUS[$p]:-}" ] || continue
		BIGCPU[$p]=$(med "${BIGCPUS[$p]}") BIGMIB[$p]=$(med "${BIGMIBS[$p]}")
		printf '%-9s %14s %22s %26s %12s\n' "$p" "${BIGMIB[$p]}" "${BIGCPU[$p]}" "$(med "${BIGSYSS[$p]}")" "${BIGRSS[$p]}"
	done
	if on l5d-mesh; then
		printf 'l5d-mesh vs nginx, median of per-round ratios: CPU per MiB x%.2f, MiB/s x%.2f\n' "$(med "${big_ratio[cpu]}")" "$(med "${big_ratio[mib]}")"
		if [ -n "$tls_hops" ]; then
			printf 'context: l5d-mesh vs nginx-tls (TLS between its hops), median of per-round ratios: CPU per MiB x%.2f, MiB/s x%.2f\n' "$(med "${big_ratio[tcpu]}")" "$(med "${big_ratio[tmib]}")"
		fi
	fi
	if on l5d-mesh && on l5d-base; then
		printf 'l5d-mesh vs l5d-base, median of per-round ratios: CPU per MiB x%.2f, MiB/s x%.2f\n' "$(med "${big_ratio[bcpu]}")" "$(med "${big_ratio[bmib]}")"
	fi
else
	echo "== large bodies: skipped (BIG=0)"
fi

# One table of every l5d-mesh/nginx ratio measured above (below 1 is better than nginx for
# CPU, RSS and latency; above 1 is better for throughput). "-" when the figure was not measured.
echo "== summary: l5d-mesh / nginx"
printf '%-40s %10s\n' figure ratio
medx() { if [ -n "${1// /}" ]; then printf 'x%.2f' "$(med "$1")"; else echo -; fi; } # - when not measured
printf '%-40s %10s\n' "throughput (wrk, median per-round)" "$(medx "${ratio_rps[l5d-mesh]:-}")"
printf '%-40s %10s\n' "CPU per request (wrk, median per-round)" "$(medx "${ratio_cpu[l5d-mesh]:-}")"
printf '%-40s %10s\n' "max RSS per process (wrk)" "$(ratio "${RSSMAX[l5d-mesh]:-}" "${RSSMAX[nginx]:-}")"
for rate in $RATES; do
	for q in 50 99 99.9; do
		printf '%-40s %10s\n' "latency p$q at $rate req/s (median per-round)" "$(medx "${LATN[$rate,$q]:-}")"
	done
done
printf '%-40s %10s\n' "gRPC throughput (ghz, median per-round)" "$(medx "${gratio[rps]:-}")"
printf '%-40s %10s\n' "gRPC CPU per request (ghz, median per-round)" "$(medx "${gratio[cpu]:-}")"
for n in $IDLE; do
	printf '%-40s %10s\n' "RSS per idle connection, $n conns" "$(ratio "${IDLEB[l5d-mesh,$n]:-}" "${IDLEB[nginx,$n]:-}")"
done
printf '%-40s %10s\n' "large bodies: CPU per MiB (median per-round)" "$(medx "${big_ratio[cpu]:-}")"
printf '%-40s %10s\n' "large bodies: MiB/s (median per-round)" "$(medx "${big_ratio[mib]:-}")"
printf '%-40s %10s\n' "context: CPU per MiB vs nginx-tls" "$(medx "${big_ratio[tcpu]:-}")"
if on l5d-base && on l5d-mesh; then
	echo "== summary: l5d-mesh / l5d-base (BASE_BIN), medians of per-round ratios"
	printf '%-40s %10s\n' figure ratio
	printf '%-40s %10s\n' "throughput (wrk)" "$(medx "${ratio_rps[base]:-}")"
	printf '%-40s %10s\n' "CPU per request (wrk)" "$(medx "${ratio_cpu[base]:-}")"
	for n in $IDLE; do
		printf '%-40s %10s\n' "RSS per idle connection, $n conns" "$(ratio "${IDLEB[l5d-mesh,$n]:-}" "${IDLEB[l5d-base,$n]:-}")"
	done
	for rate in $RATES; do
		for q in 50 99 99.9; do
			printf '%-40s %10s\n' "latency p$q at $rate req/s" "$(medx "${LATR[$rate,$q]:-}")"
		done
	done
	printf '%-40s %10s\n' "gRPC throughput (ghz)" "$(medx "${gratio[brps]:-}")"
	printf '%-40s %10s\n' "gRPC CPU per request (ghz)" "$(medx "${gratio[bcpu]:-}")"
	printf '%-40s %10s\n' "large bodies: CPU per MiB" "$(medx "${big_ratio[bcpu]:-}")"
	printf '%-40s %10s\n' "large bodies: MiB/s" "$(medx "${big_ratio[bmib]:-}")"
fi
