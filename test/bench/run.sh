#!/bin/bash
# make bench: every Go benchmark suite, each run COUNT times (default 5), reported as the
# median of every metric per benchmark, with ratios to the suite's baseline benchmark in
# the same run. The proxy's headline side-by-side benchmark is `make bench-proxy`.
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${COUNT:-5}
ONLY=${ONLY:-} # run only the suites whose package matches this regexp, e.g. ONLY=policy
BENCHTIME=${BENCHTIME:-2s}

# suite: package, benchmark regexp, baseline benchmark name[, -benchtime]
suites=(
	"./identity/certify|Certify|SignOnly"
	"./injector/webhook|Admission|AdmissionUnmutated"
	"./destination/server|Fanout|EndpointFanout/streams=500|20x"
	"./policy/cmd/policy|PolicyFanout|PolicyFanout/streams=500|20x"
)

medians() { # reads `go test -bench` output; prints "name metric median" lines
	awk '/^Benchmark/ {
		name=$1; sub(/-[0-9]+$/, "", name)
		for (i = 3; i < NF; i += 2) print name, $(i+1), $i
	}' | sort -k1,1 -k2,2 -k3,3g | awk '
	{ key = $1 " " $2; v[key, ++n[key]] = $3 }
	END { for (k in n) { c = n[k]; m = (c % 2) ? v[k, (c+1)/2] : (v[k, c/2] + v[k, c/2+1]) / 2; print k, m, c } }' | sort
}

for s in "${suites[@]}"; do
	IFS='|' read -r pkg re base bt <<<"$s"
	[[ -z $ONLY || $pkg =~ $ONLY ]] || continue
	bt=${bt:-$BENCHTIME}
	echo "== $pkg (median of $COUNT runs, -benchtime $bt; baseline Benchmark$base)"
	out=$(go test -run '^$' -bench "$re|$base" -benchtime "$bt" -count "$COUNT" "$pkg" 2>/dev/null | grep -E '^Benchmark.*ns/op')
	res=$(medians <<<"$out")
	awk -v base="Benchmark$base" '
		{ val[$1, $2] = $3; names[$1] = 1; metrics[$2] = 1; runs[$1] = $4 }
		END {
			for (n in names) for (m in metrics) if ((n, m) in val) {
				ratio = ""
				if (n != base && (base, m) in val && val[base, m] != 0) ratio = sprintf("  (x%.2f of baseline)", val[n, m] / val[base, m])
				printf "  %-28s %12.4g %-8s%s\n", n, val[n, m], m, ratio
			}
		}' <<<"$res" | sort
done
