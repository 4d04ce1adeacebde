//go:build race

package app

// raceEnabled: the race detector is on (its instrumentation makes frames larger).
const raceEnabled = true
