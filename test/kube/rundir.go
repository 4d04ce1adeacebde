package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// runRoot is the well-known directory holding one subdirectory per live control plane. A
// run directory holds an "owner" pid file (the test binary) and pids/<component>.pid; when
// its owner is gone, the next run kills whatever is left and removes the directory.
func runRoot() string {
	return filepath.Join(os.TempDir(), "l5d-kube")
}

// orphanGrace is how long a run directory without an owner file is left alone: it may be
// being created by another test binary right now.
const orphanGrace = 2 * time.Minute

// newRunDir reclaims leftovers of dead runs and creates a run directory owned by this process.
func newRunDir() (string, error) {
	root := runRoot()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", root, err)
	}
	reclaimStale(root)
	dir, err := os.MkdirTemp(root, "run-")
	if err != nil {
		return "", fmt.Errorf("creating run directory: %w", err)
	}
	if err := writePidFile(filepath.Join(dir, "owner"), os.Getpid()); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// reclaimStale kills the processes of run directories whose owner has died and removes the
// directories. Errors are ignored: reclaiming is best effort and must not fail a test run.
func reclaimStale(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "run-") {
			continue
		}
		dir := filepath.Join(root, e.Name())
		owner, err := readPidFile(filepath.Join(dir, "owner"))
		if err != nil {
			info, statErr := e.Info()
			if statErr != nil || time.Since(info.ModTime()) < orphanGrace {
				continue
			}
		} else if owner.alive() {
			continue
		}
		killRecorded(dir)
		_ = os.RemoveAll(dir)
	}
}

// killRecorded SIGKILLs the process group of every pid file in dir/pids whose process is
// still the recorded one.
func killRecorded(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "pids", "*.pid"))
	for _, f := range files {
		r, err := readPidFile(f)
		if err != nil || !r.alive() {
			continue
		}
		_ = syscall.Kill(-r.pid, syscall.SIGKILL)
		_ = syscall.Kill(r.pid, syscall.SIGKILL)
	}
}
