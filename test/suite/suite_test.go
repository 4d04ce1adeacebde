package suite

import (
	"errors"
	"slices"
	"testing"
)

func TestUndoRunsLastFirstOnce(t *testing.T) {
	var got []int
	var u Undo
	for i := range 3 {
		u.Add(func() { got = append(got, i) })
	}
	u.Run()
	u.Run()
	if want := []int{2, 1, 0}; !slices.Equal(got, want) {
		t.Fatalf("steps ran as %v, want %v", got, want)
	}
}

func TestNeedReturnsTheSetUp(t *testing.T) {
	v := 7
	sh := Shared[*int]{Name: "x", s: &v}
	if got := sh.Need(t); got != &v {
		t.Fatalf("Need gave %v, want the set-up", got)
	}
}

// fatalRecorder records what Need does to a test instead of ending it.
type fatalRecorder struct {
	testing.TB
	skipped, failed string
}

func (r *fatalRecorder) Helper()                        {}
func (r *fatalRecorder) Skip(args ...any)               { r.skipped = args[0].(string) }
func (r *fatalRecorder) Fatalf(format string, _ ...any) { r.failed = format }

func TestNeedSkipsOrFails(t *testing.T) {
	r := &fatalRecorder{}
	(&Shared[*int]{skipWhy: "x: -short"}).Need(r)
	if r.skipped != "x: -short" {
		t.Fatalf("not skipped with the reason: %+v", r)
	}
	r = &fatalRecorder{}
	(&Shared[*int]{Name: "x", err: errors.New("no cluster")}).Need(r)
	if r.failed == "" {
		t.Fatalf("a failed set-up did not fail the test")
	}
}
