package localcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ImageName returns the program name an image reference or a command path stands for: its
// last path element without tag or digest. "ghcr.io/l5d-go/proxy:v1.2@sha256:ab..",
// "proxy:latest", "localhost:5000/proxy" and "/usr/lib/linkerd/proxy" all give "proxy".
// It fails, naming ref, when no name is left or the name could not be a file name.
func ImageName(ref string) (string, error) {
	s := strings.TrimSpace(ref)
	if i := strings.IndexByte(s, '@'); i >= 0 {
		s = s[:i] // digest
	}
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:] // registry and repository path; a registry's ":port" is before the last '/'
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		s = s[:i] // tag
	}
	switch {
	case s == "", s == ".", s == "..":
		return "", fmt.Errorf("localcluster: image %q names no program", ref)
	case strings.ContainsAny(s, "\x00\\"):
		return "", fmt.Errorf("localcluster: image %q: program name %q holds a forbidden character", ref, s)
	}
	return s, nil
}

// ErrNoImage is wrapped by the errors of an image resolver when no directory holds the
// program.
var ErrNoImage = errors.New("no executable for the image")

// Images returns an image resolver for test/node: it maps an image reference (or a command
// path) to the executable named ImageName(ref) in the first of dirs that has one, as an
// absolute path. The repository's bin/ holds the l5d images (identity, destination,
// policy, injector, proxy, proxy-init, linkerd-await) under exactly the names the charts'
// l5d.image helper gives them; demo apps are demo-*. Errors wrap ErrNoImage and name the
// image and the directories searched.
func Images(dirs ...string) func(image string) (string, error) {
	abs := make([]string, 0, len(dirs))
	for _, d := range dirs {
		if a, err := filepath.Abs(d); err == nil {
			abs = append(abs, a)
		} else {
			abs = append(abs, d)
		}
	}
	return func(image string) (string, error) {
		name, err := ImageName(image)
		if err != nil {
			return "", err
		}
		for _, d := range abs {
			p := filepath.Join(d, name)
			st, err := os.Stat(p)
			if err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return p, nil
			}
		}
		return "", fmt.Errorf("localcluster: image %q: %w %q in %s", image, ErrNoImage, name, strings.Join(abs, ", "))
	}
}

// PodBinaries copies the regular files of the directories dirs (such as bin/) into a new
// directory under the system's temporary one that every container user can read and
// execute (the proxy runs as uid 2102; a checkout under /root is not reachable to it), for
// Options.BinDirs, and returns it. The caller removes it.
func PodBinaries(dirs ...string) (string, error) {
	out, err := os.MkdirTemp("", "l5d-pod-bin-")
	if err != nil {
		return "", fmt.Errorf("localcluster: %w", err)
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return out, fmt.Errorf("localcluster: %w", err)
	}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			return out, fmt.Errorf("localcluster: no binaries in %s (make build): %v", dir, err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return out, fmt.Errorf("localcluster: copying a pod binary: %w", err)
			}
			if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o755); err != nil {
				return out, fmt.Errorf("localcluster: copying a pod binary: %w", err)
			}
		}
	}
	return out, nil
}
