package atomicdir_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/l5d-go/l5d/test/node/internal/atomicdir"
)

var versionDir = regexp.MustCompile(`^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+$`)

func write(t *testing.T, dir string, files map[string]string, mode os.FileMode) bool {
	t.Helper()
	payload := map[string]atomicdir.File{}
	for p, s := range files {
		payload[p] = atomicdir.File{Data: []byte(s), Mode: mode}
	}
	changed, err := atomicdir.Write(dir, payload, -1)
	if err != nil {
		t.Fatalf("Write(%v): %v", files, err)
	}
	return changed
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if versionDir.MatchString(n) {
			n = "<version>"
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func TestWriteMakesTheKubeletLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	if !write(t, dir, map[string]string{"tls.crt": "cert", "sub/dir/key": "k"}, 0o440) {
		t.Error("the first write reported no change")
	}
	if got, want := names(t, dir), []string{"..data", "<version>", "sub", "tls.crt"}; !slices.Equal(got, want) {
		t.Errorf("directory holds %v, want %v", got, want)
	}
	ver, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil || !versionDir.MatchString(ver) {
		t.Fatalf("..data links to %q (%v), want a timestamped directory", ver, err)
	}
	for name, target := range map[string]string{"tls.crt": "..data/tls.crt", "sub": "..data/sub"} {
		if got, err := os.Readlink(filepath.Join(dir, name)); err != nil || got != target {
			t.Errorf("%s links to %q (%v), want %q", name, got, err, target)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "sub/dir/key"))
	if err != nil || string(b) != "k" {
		t.Errorf("sub/dir/key reads %q, %v", b, err)
	}
	info, err := os.Stat(filepath.Join(dir, "tls.crt"))
	if err != nil || info.Mode().Perm() != 0o440 {
		t.Errorf("tls.crt: %v, %v; want mode 0440", info, err)
	}
}

func TestWriteSwapsVersionsAndDropsRemovedKeys(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"a": "1", "b": "1"}, 0o644)
	first, _ := os.Readlink(filepath.Join(dir, "..data"))
	if write(t, dir, map[string]string{"a": "1", "b": "1"}, 0o644) {
		t.Error("rewriting the same content reported a change")
	}
	if now, _ := os.Readlink(filepath.Join(dir, "..data")); now != first {
		t.Errorf("rewriting the same content swapped ..data from %s to %s", first, now)
	}
	if !write(t, dir, map[string]string{"a": "1", "b": "1"}, 0o600) {
		t.Error("a mode change reported no change")
	}
	write(t, dir, map[string]string{"a": "2", "c": "2"}, 0o644)
	if got, want := names(t, dir), []string{"..data", "<version>", "a", "c"}; !slices.Equal(got, want) {
		t.Errorf("after the update the directory holds %v, want %v (one version, b gone)", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the first version directory is still there: %v", err)
	}
	write(t, dir, nil, 0o644)
	if got, want := names(t, dir), []string{"..data", "<version>"}; !slices.Equal(got, want) {
		t.Errorf("after emptying the directory holds %v, want %v", got, want)
	}
}

func TestWriteRefusesPathsOutsideTheDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"a": "1"}, 0o644)
	for _, p := range []string{"", "/etc/passwd", "../x", "..data", "a/../../x", "."} {
		_, err := atomicdir.Write(dir, map[string]atomicdir.File{p: {Data: []byte("x"), Mode: 0o644}}, -1)
		if err == nil {
			t.Errorf("Write accepted path %q", p)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a")); err != nil || string(b) != "1" {
		t.Errorf("a refused write changed the current version: %q, %v", b, err)
	}
}

func TestWriteFailureKeepsTheCurrentVersion(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"a": "1"}, 0o644)
	// "x" cannot be both a file and a directory.
	_, err := atomicdir.Write(dir, map[string]atomicdir.File{"x": {Data: []byte("f")}, "x/y": {Data: []byte("g")}}, -1)
	if err == nil {
		t.Fatal("Write accepted x as both a file and a directory")
	}
	if got, want := names(t, dir), []string{"..data", "<version>", "a"}; !slices.Equal(got, want) {
		t.Errorf("after the failed write the directory holds %v, want %v", got, want)
	}
}

// A reader that resolves ..data once reads one version's files, never a mix, while the
// writer swaps versions; a reader of a key's path reads a whole value (or, when the
// version it resolved is removed under it, nothing, and reads again).
func TestReadersNeverSeeAMix(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"a": "v0", "b": "v0"}, 0o644)
	const versions = 200
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	report := func(s string) {
		mu.Lock()
		problems = append(problems, s)
		mu.Unlock()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			ver, err := os.Readlink(filepath.Join(dir, "..data"))
			if err != nil {
				report("reading ..data: " + err.Error())
				continue
			}
			a, errA := os.ReadFile(filepath.Join(dir, ver, "a"))
			b, errB := os.ReadFile(filepath.Join(dir, ver, "b"))
			if errors.Is(errA, fs.ErrNotExist) || errors.Is(errB, fs.ErrNotExist) {
				continue // that version was removed meanwhile: resolve ..data again
			}
			if errA != nil || errB != nil || string(a) != string(b) {
				report(fmt.Sprintf("version %s: a=%q (%v) b=%q (%v)", ver, a, errA, b, errB))
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			a, err := os.ReadFile(filepath.Join(dir, "a"))
			if errors.Is(err, fs.ErrNotExist) {
				continue // resolved ..data just before its version was removed: read again
			}
			if err != nil || !strings.HasPrefix(string(a), "v") || len(a) < 2 {
				report(fmt.Sprintf("a reads %q, %v", a, err))
			}
		}
	}()
	for i := 1; i <= versions; i++ {
		v := fmt.Sprintf("v%d", i)
		write(t, dir, map[string]string{"a": v, "b": v}, 0o644)
	}
	close(done)
	wg.Wait()
	for _, p := range problems[:min(len(problems), 10)] {
		t.Error(p)
	}
}

// Paths come from Secret and ConfigMap keys and item paths: whatever they are, Write
// either refuses them or writes inside the directory.
func FuzzWriteStaysInsideTheDirectory(f *testing.F) {
	for _, seed := range []string{"a", "a/b", "../x", "..data", "/abs", "a/../../b", "", ".", "a//b/", "..2026_x", "x/..data"} {
		f.Add(seed)
	}
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, p string) {
		if strings.ContainsRune(p, 0) {
			return // not a file name at all
		}
		parent, err := os.MkdirTemp(root, "case-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(parent)
		dir := filepath.Join(parent, "vol")
		_, err = atomicdir.Write(dir, map[string]atomicdir.File{p: {Data: []byte("x"), Mode: 0o644}}, -1)
		entries, _ := os.ReadDir(parent)
		if len(entries) > 1 || (len(entries) == 1 && entries[0].Name() != "vol") {
			t.Fatalf("Write(%q) (error %v) wrote beside the directory: %v", p, err, entries)
		}
		if err != nil {
			return
		}
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || string(b) != "x" {
			t.Fatalf("Write(%q) succeeded but the file reads %q, %v", p, b, err)
		}
	})
}
