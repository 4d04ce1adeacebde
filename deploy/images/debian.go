package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// debCache fetches Debian packages with `apt-get download` into a directory outside the
// repository (default ~/.cache/l5d/debs) and reads their file systems with dpkg-deb. The
// version is the one apt would install on this machine (Debian 12 here), so a package that
// is cached is not fetched again.
type debCache struct {
	dir string
}

// DefaultDebCache is the directory the .deb files are cached in: $XDG_CACHE_HOME/l5d/debs
// (or ~/.cache/l5d/debs).
func DefaultDebCache() (string, error) {
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the Debian packages: %w", err)
	}
	return filepath.Join(c, "l5d", "debs"), nil
}

// fetch returns the paths of pkgs' .deb files in the cache, downloading the missing ones;
// apt is asked once for all of them (it is slow to start).
func (c debCache) fetch(ctx context.Context, pkgs ...string) (map[string]string, error) {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("debian cache: %w", err)
	}
	// --print-uris names the files apt would fetch, one a line: 'URI' FILE SIZE HASH.
	args := append([]string{"download", "--print-uris"}, pkgs...)
	out, err := exec.CommandContext(ctx, "apt-get", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-get download --print-uris %s: %w%s", strings.Join(pkgs, " "), err, stderrOf(err))
	}
	paths := map[string]string{}
	var missing []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 3 {
			continue
		}
		file, size := filepath.Base(fields[1]), fields[2]
		pkg, _, _ := strings.Cut(file, "_")
		p := filepath.Join(c.dir, file)
		paths[pkg] = p
		if st, err := os.Stat(p); err != nil || strconv.FormatInt(st.Size(), 10) != size {
			missing = append(missing, pkg)
		}
	}
	for _, pkg := range pkgs {
		if _, ok := paths[pkg]; !ok {
			return nil, fmt.Errorf("apt-get download --print-uris %s: no package file (is the package known to apt? run apt-get update)", pkg)
		}
	}
	if len(missing) == 0 {
		return paths, nil
	}
	tmp, err := os.MkdirTemp(c.dir, ".download-")
	if err != nil {
		return nil, fmt.Errorf("debian cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "apt-get", append([]string{"download", "-q"}, missing...)...)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apt-get download %s: %w: %s", strings.Join(missing, " "), err, bytes.TrimSpace(out))
	}
	for _, pkg := range missing {
		p := paths[pkg]
		if err := os.Rename(filepath.Join(tmp, filepath.Base(p)), p); err != nil {
			return nil, fmt.Errorf("apt-get download %s: %w", pkg, err)
		}
	}
	return paths, nil
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// usrMerged maps the top-level directories Debian 12 packages still ship files in to their
// merged place under /usr, as a Debian 12 system lays them out.
var usrMerged = []string{"bin", "sbin", "lib", "lib64"}

// skipped reports whether a package path is documentation a container does not need.
func skipped(p string) bool {
	for _, d := range []string{"usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/lintian/", "usr/share/locale/", "usr/share/bug/"} {
		if strings.HasPrefix(p+"/", d) {
			return true
		}
	}
	return false
}

// mergeUsr rewrites a path under /bin, /sbin, /lib or /lib64 to its /usr twin.
func mergeUsr(p string) string {
	for _, d := range usrMerged {
		if p == d || strings.HasPrefix(p, d+"/") {
			return "usr/" + p
		}
	}
	return p
}

// addDeb unpacks the file system of the .deb at debPath into t (no maintainer scripts run),
// merged-/usr and without documentation.
func addDeb(ctx context.Context, t *tree, debPath string) error {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", debPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w", debPath, err)
	}
	tr := tar.NewReader(stdout)
	var readErr error
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("reading %s: %w", debPath, err)
			break
		}
		p, err := cleanPath(h.Name)
		if err != nil {
			readErr = fmt.Errorf("%s: %w", debPath, err)
			break
		}
		p = mergeUsr(p)
		if p == "" || skipped(p) {
			continue
		}
		e := entry{Path: p, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid}
		switch h.Typeflag {
		case tar.TypeDir:
			e.Type = tar.TypeDir
		case tar.TypeReg:
			e.Type = tar.TypeReg
			if e.Data, err = io.ReadAll(tr); err != nil {
				readErr = fmt.Errorf("reading %s from %s: %w", p, debPath, err)
			}
		case tar.TypeSymlink:
			e.Type, e.Link = tar.TypeSymlink, h.Linkname
			if path.IsAbs(h.Linkname) {
				e.Link = "/" + mergeUsr(strings.TrimPrefix(path.Clean(h.Linkname), "/"))
			}
		case tar.TypeLink:
			l, err := cleanPath(h.Linkname)
			if err != nil {
				readErr = fmt.Errorf("%s: %w", debPath, err)
			}
			e.Type, e.Link = tar.TypeLink, mergeUsr(l)
		default:
			continue // devices and fifos are not shipped by the packages used here
		}
		if readErr != nil {
			break
		}
		if err := t.add(e); err != nil {
			readErr = fmt.Errorf("%s: %w", debPath, err)
			break
		}
	}
	if readErr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return readErr
	}
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", debPath, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

// debianTree unpacks pkgs (fetched into cache) into one tree laid out as a merged-/usr
// Debian 12 system: /bin, /sbin, /lib and /lib64 are links into /usr.
func debianTree(ctx context.Context, cache debCache, pkgs []string) (*tree, error) {
	t := newTree()
	for _, d := range usrMerged {
		if err := t.symlink(d, "usr/"+d); err != nil {
			return nil, err
		}
		if err := t.dir("usr/"+d, 0o755, 0, 0); err != nil {
			return nil, err
		}
	}
	debs, err := cache.fetch(ctx, pkgs...)
	if err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		if err := addDeb(ctx, t, debs[p]); err != nil {
			return nil, err
		}
	}
	return t, nil
}
