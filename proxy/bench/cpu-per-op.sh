#!/bin/bash
# CPU time per operation of Go benchmarks, two test binaries compared: each benchmark runs
# OPS times in a process of its own, the binaries alternating for ROUNDS rounds, and the
# process's user+system CPU seconds divided by OPS is printed per run, then the medians.
# CPU time is far steadier than ns/op on a machine others load. Allocations per op come
# from -benchmem.
#   go test -c -o /tmp/base.test ./app   (at the base revision)
#   go test -c -o /tmp/new.test ./app
#   proxy/bench/cpu-per-op.sh /tmp/base.test /tmp/new.test '^BenchmarkMeshChainHTTP1$'
# Environment: ROUNDS (5), OPS (20000), DIR (where the binaries run; proxy/app).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 BASE.test NEW.test BENCH-REGEXP..." >&2; exit 2; }
base=$1 new=$2
shift 2
ROUNDS=${ROUNDS:-5} OPS=${OPS:-20000}
DIR=${DIR:-$(cd "$(dirname "$0")/../app" && pwd)}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
TIMEFORMAT='%U %S'
for bench in "$@"; do
	for ((i = 0; i < ROUNDS; i++)); do
		for side in base new; do
			bin=$base
			[ "$side" = new ] && bin=$new
			t=$({ time (cd "$DIR" && "$bin" -test.run '^$' -test.bench "$bench" -test.benchtime "${OPS}x" -test.benchmem >"$out.run"); } 2>&1)
			allocs=$(awk '/allocs\/op/ {print $(NF-1)}' "$out.run" | tail -1)
			echo "$bench $side $(awk -v t="$t" -v n="$OPS" 'BEGIN {split(t, a, " "); printf "%.1f", (a[1] + a[2]) / n * 1e6}') ${allocs:-?}"
		done
	done | tee -a "$out"
done
echo "# medians: benchmark side cpu-us/op allocs/op"
median() { # column: the median of that column per benchmark and side
	sort -k1,1 -k2,2 -k"$1,$1"n "$out" | awk -v c="$1" '
		{ key = $1 " " $2; v[key, ++n[key]] = $c }
		END { for (k in n) print k, v[k, int((n[k] + 1) / 2)] }' | sort
}
join -j1 <(median 3 | awk '{print $1 "|" $2, $3}') <(median 4 | awk '{print $1 "|" $2, $3}') | tr '|' ' ' 
rm -f "$out.run"
