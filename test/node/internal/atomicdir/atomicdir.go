// Package atomicdir replaces the whole content of a directory at once, in the layout the
// kubelet uses for Secret, ConfigMap, downward API and projected volumes:
//
//	dir/..2026_12_02_01_02_03.123456789/   the files of the current version
//	dir/..data -> ..2026_12_02_01_02_03.123456789
//	dir/key    -> ..data/key              one link per top-level name
//
// A new version is written to a fresh timestamped directory and published by renaming a
// temporary link over ..data, so a reader that resolves ..data once sees every file of one
// version; the previous directory is removed after the swap.
package atomicdir

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DataLink is the name of the link to the current version's directory.
const DataLink = "..data"

// tmpLink is the name the next DataLink is made under before being renamed over it.
const tmpLink = "..data_tmp"

// File is one file of a version: its content and permission bits.
type File struct {
	Data []byte
	Mode os.FileMode
}

// Write makes dir hold exactly files (keyed by relative path, "a/b" for a file in a
// subdirectory) and reports whether anything changed: when the current version already
// holds the same paths, contents and modes nothing is written. With group >= 0 the files
// belong to that group. Paths must be relative, stay inside dir and not start with "..";
// a bad path or a failed write leaves the current version in place.
func Write(dir string, files map[string]File, group int) (bool, error) {
	clean := make(map[string]File, len(files))
	for p, f := range files {
		c, err := checkPath(p)
		if err != nil {
			return false, err
		}
		clean[c] = f
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("making %s: %w", dir, err)
	}
	if cur, err := os.Readlink(filepath.Join(dir, DataLink)); err == nil {
		if same, err := holds(filepath.Join(dir, cur), clean); err == nil && same {
			return false, nil
		}
	}

	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, fmt.Errorf("making a version directory in %s: %w", dir, err)
	}
	if err := fill(ts, clean, group); err != nil {
		os.RemoveAll(ts)
		return false, err
	}
	tmp := filepath.Join(dir, tmpLink)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		os.RemoveAll(ts)
		return false, fmt.Errorf("removing a stale %s: %w", tmpLink, err)
	}
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		os.RemoveAll(ts)
		return false, fmt.Errorf("linking the new version: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, DataLink)); err != nil {
		os.Remove(tmp)
		os.RemoveAll(ts)
		return false, fmt.Errorf("publishing the new version: %w", err)
	}

	top := map[string]bool{}
	for p := range clean {
		first, _, _ := strings.Cut(p, "/")
		top[first] = true
	}
	for name := range top {
		link, target := filepath.Join(dir, name), DataLink+"/"+name
		if got, err := os.Readlink(link); err == nil && got == target {
			continue
		}
		if err := os.RemoveAll(link); err != nil {
			return true, fmt.Errorf("replacing %s: %w", link, err)
		}
		if err := os.Symlink(target, link); err != nil {
			return true, fmt.Errorf("linking %s: %w", link, err)
		}
	}
	return true, prune(dir, filepath.Base(ts), top)
}

// checkPath is p cleaned, or an error when p would leave the directory or clash with the
// layout's own names.
func checkPath(p string) (string, error) {
	c := filepath.Clean(p)
	switch {
	case p == "" || c == ".":
		return "", errors.New("an empty file path")
	case filepath.IsAbs(c):
		return "", fmt.Errorf("file path %q is absolute, want a relative path", p)
	case strings.HasPrefix(c, ".."):
		return "", fmt.Errorf("file path %q starts with \"..\", want a path inside the directory", p)
	}
	return c, nil
}

// fill writes files under dir.
func fill(dir string, files map[string]File, group int) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for p, f := range files {
		path := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		if err := os.WriteFile(path, f.Data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		if group >= 0 {
			if err := os.Chown(path, -1, group); err != nil {
				return fmt.Errorf("writing %s: %w", p, err)
			}
		}
		if err := os.Chmod(path, f.Mode&os.ModePerm); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return nil
}

// holds reports whether the directory ver has exactly files.
func holds(ver string, files map[string]File) (bool, error) {
	n := 0
	same := true
	err := filepath.WalkDir(ver, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !same {
			return err
		}
		rel, err := filepath.Rel(ver, path)
		if err != nil {
			return err
		}
		want, ok := files[rel]
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !ok || !info.Mode().IsRegular() || info.Mode().Perm() != want.Mode&os.ModePerm {
			same = false
			return nil
		}
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		same = bytes.Equal(got, want.Data)
		n++
		return nil
	})
	return same && n == len(files), err
}

// prune removes the version directories other than keep and the top-level links no
// longer in top. Other entries (which the layout never makes) are left alone.
func prune(dir, keep string, top map[string]bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == DataLink || name == keep || top[name]:
		case strings.HasPrefix(name, ".."):
			errs = append(errs, os.RemoveAll(filepath.Join(dir, name)))
		case e.Type()&fs.ModeSymlink != 0:
			if t, err := os.Readlink(filepath.Join(dir, name)); err == nil && strings.HasPrefix(t, DataLink+"/") {
				errs = append(errs, os.Remove(filepath.Join(dir, name)))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("removing the previous version: %w", err)
	}
	return nil
}
