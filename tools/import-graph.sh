#!/bin/bash
# The import graph between l5d's components, the top-level modules of go.work, as the
# programs are built: `go list -deps` of every main package of every module, each
# package's own imports mapped to the components they live in. One line per arrow:
#   from -> to   <how many imports>   <one of them: importer => imported>
# pkg/ and proto/ are the shared homes every component may import, and deploy/ holds the
# charts the installers render; test/ is the whole-system test module (end-to-end tests,
# the demo's tools), which may import any component. Any other arrow is one component
# importing another's internals and is marked "!"; the exit status is 1 when there is one.
# Usage (from anywhere in the repository):
#   tools/import-graph.sh          the programs' imports
#   ROOT=DIR tools/import-graph.sh  the graph of another checkout (a git worktree)
#   tools/import-graph.sh -test    with every package's tests too (test/'s substrate, such
#                                  as test/kube, is then a shared home as well)
set -euo pipefail
root=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
prefix=github.com/l5d-go/l5d/
shared=" pkg proto deploy "
testflag=
if [ "${1:-}" = -test ]; then
	testflag=-test
	shared="$shared test "
fi
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for mod in $(cd "$root" && go work edit -json | awk -F'"' '/"DiskPath"/ {print $4}'); do
	mains=$(cd "$root/$mod" && go list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./...)
	pkgs=$mains
	[ -n "$testflag" ] && pkgs=$(cd "$root/$mod" && go list ./...)
	[ -z "$pkgs" ] && continue
	# shellcheck disable=SC2086
	(cd "$root/$mod" && go list -deps $testflag -f '{{.ImportPath}}{{range .Imports}} {{.}}{{end}}' $pkgs) >>"$edges"
done
sort -u "$edges" | awk -v prefix="$prefix" -v shared="$shared" '
	function comp(p) {
		sub(/ \[.*$/, "", p) # test variants: "a/b [a/b.test]"
		if (index(p, prefix) != 1) return ""
		p = substr(p, length(prefix) + 1)
		sub(/\/.*/, "", p)
		sub(/\.test$/, "", p)
		return p
	}
	{
		from = comp($1)
		if (from == "") next
		for (i = 2; i <= NF; i++) {
			to = comp($i)
			if (to == "" || to == from) continue
			k = from " -> " to
			if (!(k in n)) ex[k] = $1 " => " $i
			n[k]++
		}
	}
	END {
		bad = 0
		for (k in n) {
			split(k, a, " -> ")
			mark = (index(shared, " " a[2] " ") || a[1] == "test") ? " " : "!"
			if (mark == "!") bad++
			printf "%s\t%s %-28s %4d   %s\n", (mark == "!") k, mark, k, n[k], ex[k]
		}
		exit bad > 0
	}' | sort | cut -f2-
