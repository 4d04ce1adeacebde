#!/bin/bash
# Loopback side-by-side: wrk -> nginx chain (2 reverse proxies) -> nginx app, and
# wrk -> l5d outbound -> l5d inbound -> the same app; HTTP/1.1 keep-alive, 100-byte bodies.
# Prints requests/s, CPU seconds per 10,000 requests for the two proxies together, and RSS.
# Needs nginx and wrk (Debian packages). Ports 1808x/1809x/1819x/1829x on 127.0.0.1.
# This is a quick developer check; the headline benchmark (netns pods) is make bench-proxy.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
DUR=${DUR:-10s}
CONNS=${CONNS:-32}

nginx_conf() { # name listen body
	cat >"$dir/$1.conf" <<CONF
worker_processes 1; daemon off; pid $dir/$1.pid; error_log $dir/$1.err;
events { worker_connections 1024; }
http { access_log off; $3 server { listen 127.0.0.1:$2; $4 } }
CONF
	nginx -c "$dir/$1.conf" & pids+=($!)
}
body=$(printf 'x%.0s' $(seq 100))
nginx_conf app 18080 "" "location / { return 200 \"$body\"; }"
nginx_conf p2 18082 "upstream up { server 127.0.0.1:18080; keepalive 64; }" \
	'location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }'
nginx_conf p1 18081 "upstream up { server 127.0.0.1:18082; keepalive 64; }" \
	'location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }'

(cd "$here" && CGO_ENABLED=0 go build -trimpath -tags grpcnotrace -o "$dir/proxy" ./proxy/cmd/proxy)
LINKERD2_PROXY_INBOUND_LISTEN_ADDR=127.0.0.1:18091 LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR=127.0.0.1:18191 \
	LINKERD2_PROXY_ADMIN_LISTEN_ADDR=127.0.0.1:18291 L5D_PROXY_INBOUND_ORIG_DST=127.0.0.1:18080 \
	"$dir/proxy" 2>"$dir/in.log" & pids+=($!); in_pid=$!
LINKERD2_PROXY_INBOUND_LISTEN_ADDR=127.0.0.1:18092 LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR=127.0.0.1:18090 \
	LINKERD2_PROXY_ADMIN_LISTEN_ADDR=127.0.0.1:18290 L5D_PROXY_OUTBOUND_ORIG_DST=127.0.0.1:18091 \
	"$dir/proxy" 2>"$dir/out.log" & pids+=($!); out_pid=$!

for port in 18080 18081 18090; do
	for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
done
worker() { pgrep -P "$(cat "$dir/$1.pid")" | head -1; }
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
measure() { # name port pid1 pid2
	local a1 a2 b1 b2 out reqs
	a1=$(cpu "$3"); a2=$(cpu "$4")
	out=$(wrk -t1 -c"$CONNS" -d"$DUR" "http://127.0.0.1:$2/")
	b1=$(cpu "$3"); b2=$(cpu "$4")
	reqs=$(awk '/requests in/{print $1}' <<<"$out")
	printf '%-6s rps=%-9s cpu_s_per_10k_pair=%-6s rss_kb=%s,%s\n' "$1" \
		"$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
		"$(echo "scale=3; ($b1-$a1+$b2-$a2)/100*10000/$reqs" | bc)" \
		"$(awk '/VmRSS/{print $2}' "/proc/$3/status")" "$(awk '/VmRSS/{print $2}' "/proc/$4/status")"
}
measure nginx 18081 "$(worker p1)" "$(worker p2)"
measure l5d 18090 "$out_pid" "$in_pid"
