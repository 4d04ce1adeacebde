//go:build tools

// Package jaeger pins the Jaeger all-in-one program (collector with an OTLP receiver,
// in-memory storage, query API and UI in one process) that build.sh compiles for the
// jaeger extension and its tests.
package jaeger

import _ "github.com/jaegertracing/jaeger/cmd/all-in-one"
