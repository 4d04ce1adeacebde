package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// entry is one file system object of a layer: a regular file (Data), a directory, a symbolic
// link or a hard link (Link), owned by UID:GID with permission bits Mode.
type entry struct {
	Path     string // relative, cleaned, no leading "/"
	Type     byte   // tar.TypeReg, tar.TypeDir, tar.TypeSymlink or tar.TypeLink
	Mode     int64
	UID, GID int
	Data     []byte
	Link     string
	// Xattrs are extended attributes (security.capability for file capabilities).
	Xattrs map[string][]byte
}

// tree collects the entries of one layer; adding a path twice keeps the first one unless
// both are directories (a directory shared by several packages).
type tree struct {
	entries map[string]*entry
}

func newTree() *tree { return &tree{entries: map[string]*entry{}} }

// cleanPath makes p relative and clean; it fails on paths that leave the root.
func cleanPath(p string) (string, error) {
	c := path.Clean("/" + p)
	if c == "/" {
		return "", nil
	}
	if strings.Contains(p, "\x00") {
		return "", fmt.Errorf("path %q holds a NUL byte", p)
	}
	return strings.TrimPrefix(c, "/"), nil
}

// add puts e into the tree with its parent directories (0755, root). A later entry for a
// path already present is ignored, except that a directory's mode and owner follow the
// last explicit directory entry.
func (t *tree) add(e entry) error {
	p, err := cleanPath(e.Path)
	if err != nil {
		return err
	}
	if p == "" {
		return nil // the root itself
	}
	e.Path = p
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if _, ok := t.entries[d]; !ok {
			t.entries[d] = &entry{Path: d, Type: tar.TypeDir, Mode: 0o755}
		}
	}
	if old, ok := t.entries[p]; ok {
		if old.Type == tar.TypeDir && e.Type == tar.TypeDir {
			*old = e
		}
		return nil
	}
	t.entries[p] = &e
	return nil
}

// file adds a regular file.
func (t *tree) file(p string, mode int64, data []byte) error {
	return t.add(entry{Path: p, Type: tar.TypeReg, Mode: mode, Data: data})
}

// dir adds a directory owned by uid:gid.
func (t *tree) dir(p string, mode int64, uid, gid int) error {
	return t.add(entry{Path: p, Type: tar.TypeDir, Mode: mode, UID: uid, GID: gid})
}

// symlink adds a symbolic link p -> target.
func (t *tree) symlink(p, target string) error {
	return t.add(entry{Path: p, Type: tar.TypeSymlink, Mode: 0o777, Link: target})
}

// tarBytes writes the tree as an uncompressed tar stream: entries sorted by path, every
// time stamp mtime, no user or group names, so the same tree gives the same bytes.
func (t *tree) tarBytes(mtime time.Time) ([]byte, error) {
	paths := make([]string, 0, len(t.entries))
	for p := range t.entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		e := t.entries[p]
		h := &tar.Header{
			Typeflag: e.Type,
			Name:     e.Path,
			Mode:     e.Mode,
			Uid:      e.UID,
			Gid:      e.GID,
			ModTime:  mtime,
			Format:   tar.FormatPAX,
		}
		if len(e.Xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = string(v)
			}
		}
		switch e.Type {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeReg:
			h.Size = int64(len(e.Data))
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = e.Link
		default:
			return nil, fmt.Errorf("%s: unsupported tar entry type %q", e.Path, e.Type)
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar header of %s: %w", e.Path, err)
		}
		if e.Type == tar.TypeReg {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, fmt.Errorf("tar data of %s: %w", e.Path, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing tar: %w", err)
	}
	return buf.Bytes(), nil
}

// layer turns the tree into an OCI layer (gzip; Go's compressor is deterministic).
func (t *tree) layer(mtime time.Time) (v1.Layer, error) {
	b, err := t.tarBytes(mtime)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
