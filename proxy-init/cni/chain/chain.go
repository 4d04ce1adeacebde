// Package chain adds a plugin to, and removes it from, the primary network configuration
// in a node's CNI configuration directory (/etc/cni/net.d), the way the container runtime
// reads it: the file that sorts first among *.conf, *.conflist and *.json is the network,
// and a chained plugin is an entry at the end of its "plugins" list. A single-plugin .conf
// file is turned into a .conflist holding the original plugin then the chained one. Every
// write replaces the file atomically (a temporary file renamed over it), so the runtime
// never reads half a file.
package chain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrNoPrimary is returned when the directory holds no network configuration yet (the
// primary plugin has not written it).
var ErrNoPrimary = errors.New("no CNI network configuration (*.conf, *.conflist, *.json) yet")

// Primary returns the path of the network configuration the runtime uses: the first file,
// in lexical order, ending in .conf, .conflist or .json.
func Primary(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("reading the CNI configuration directory: %w", err)
	}
	for _, e := range entries { // ReadDir sorts by name
		switch filepath.Ext(e.Name()) {
		case ".conf", ".conflist", ".json":
			if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
				return filepath.Join(dir, e.Name()), nil
			}
		}
	}
	return "", fmt.Errorf("%s: %w", dir, ErrNoPrimary)
}

// Insert makes the primary network configuration in dir end with plugin (a JSON object
// whose "type" names it): it is appended when absent and replaced when an entry of its type
// differs. It returns the file it wrote, or "" when the file already held plugin as it is.
func Insert(dir string, plugin map[string]any) (string, error) {
	typ, _ := plugin["type"].(string)
	if typ == "" {
		return "", errors.New("the plugin's configuration has no \"type\"")
	}
	path, err := Primary(dir)
	if err != nil {
		return "", err
	}
	conf, list, err := read(path)
	if err != nil {
		return "", err
	}
	plugins := entries(conf, list)
	i := slices.IndexFunc(plugins, func(p any) bool { return typeOf(p) == typ })
	if i >= 0 && jsonEqual(plugins[i], plugin) {
		return "", nil
	}
	if i >= 0 {
		plugins[i] = plugin
	} else {
		plugins = append(plugins, plugin)
	}
	out := conf
	if !list {
		// A .conf holds one plugin; its network's name and version move to the list.
		out = map[string]any{"cniVersion": conf["cniVersion"], "name": conf["name"]}
	}
	out["plugins"] = plugins
	dst := path
	if !list {
		dst = strings.TrimSuffix(path, filepath.Ext(path)) + ".conflist"
	}
	if err := write(dst, out); err != nil {
		return "", err
	}
	if dst != path {
		if err := os.Remove(path); err != nil {
			return "", fmt.Errorf("removing %s after converting it to %s: %w", path, dst, err)
		}
	}
	return dst, nil
}

// Remove takes every plugin of type typ out of the primary network configuration in dir.
// It returns the file it wrote, or "" when there was nothing to remove (or no
// configuration).
func Remove(dir, typ string) (string, error) {
	path, err := Primary(dir)
	if errors.Is(err, ErrNoPrimary) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	conf, list, err := read(path)
	if err != nil || !list {
		return "", err
	}
	plugins := entries(conf, true)
	kept := slices.DeleteFunc(slices.Clone(plugins), func(p any) bool { return typeOf(p) == typ })
	if len(kept) == len(plugins) {
		return "", nil
	}
	conf["plugins"] = kept
	return path, write(path, conf)
}

// read parses a configuration file; list says whether it is a list (has "plugins").
func read(path string) (map[string]any, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	conf := map[string]any{}
	if err := json.Unmarshal(data, &conf); err != nil {
		return nil, false, fmt.Errorf("%s is not a JSON object: %w", path, err)
	}
	_, list := conf["plugins"]
	if list {
		if _, ok := conf["plugins"].([]any); !ok {
			return nil, false, fmt.Errorf("%s: \"plugins\" is not a list", path)
		}
	}
	return conf, list, nil
}

// entries returns the plugins of a configuration: the list's, or the single plugin.
func entries(conf map[string]any, list bool) []any {
	if list {
		return conf["plugins"].([]any)
	}
	single := map[string]any{}
	for k, v := range conf {
		if k != "cniVersion" && k != "name" {
			single[k] = v
		}
	}
	return []any{single}
}

func typeOf(p any) string {
	m, _ := p.(map[string]any)
	s, _ := m["type"].(string)
	return s
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// write replaces path with conf, atomically.
func write(path string, conf map[string]any) error {
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return WriteFile(path, append(data, '\n'), 0o644)
}

// WriteFile replaces path with data atomically: a temporary file in the same directory is
// written, synced and renamed over it.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
