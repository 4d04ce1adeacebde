//go:build race

package h2

// raceEnabled: the race detector is on, and sync.Pool drops some of what it is given.
const raceEnabled = true
