//go:build tools

// Package prometheus pins the Prometheus server that build.sh compiles for the viz extension
// and its tests.
package prometheus

import _ "github.com/prometheus/prometheus/cmd/prometheus"
