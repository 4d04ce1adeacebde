package manifest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maxURLBytes bounds a manifest fetched from a URL.
const maxURLBytes = 64 << 20

// Read returns the manifests named by inputs, in order, as one multi-document YAML/JSON
// stream: "-" is stdin, an http:// or https:// URL is fetched with client, a file is read, and
// a directory contributes its .yaml, .yml and .json files in name order (its
// subdirectories' too when recursive), as `linkerd inject` and `kubectl apply -f` take them.
// An input that cannot be read, a URL answering other than 200, or a directory without
// manifests is an error naming it.
func Read(ctx context.Context, inputs []string, recursive bool, stdin io.Reader, client *http.Client) ([]byte, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("no input: give files, directories, URLs or - for stdin")
	}
	var docs [][]byte
	for _, in := range inputs {
		b, err := readOne(ctx, in, recursive, stdin, client)
		if err != nil {
			return nil, err
		}
		docs = append(docs, b...)
	}
	var out bytes.Buffer
	for i, d := range docs {
		if i > 0 {
			out.WriteString("\n---\n")
		}
		out.Write(d)
	}
	return out.Bytes(), nil
}

func readOne(ctx context.Context, in string, recursive bool, stdin io.Reader, client *http.Client) ([][]byte, error) {
	switch {
	case in == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		return [][]byte{b}, nil
	case strings.HasPrefix(in, "http://") || strings.HasPrefix(in, "https://"):
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, in, nil)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", in, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetching %s: %s", in, resp.Status)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxURLBytes+1))
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", in, err)
		}
		if len(b) > maxURLBytes {
			return nil, fmt.Errorf("fetching %s: larger than %d bytes", in, maxURLBytes)
		}
		return [][]byte{b}, nil
	}
	st, err := os.Stat(in)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	if !st.IsDir() {
		b, err := os.ReadFile(in)
		if err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		return [][]byte{b}, nil
	}
	var files []string
	err = filepath.WalkDir(in, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != in && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("input directory %s: %w", in, err)
	}
	if len(files) == 0 {
		hint := ""
		if !recursive {
			hint = " (use -r to read its subdirectories)"
		}
		return nil, fmt.Errorf("input directory %s holds no .yaml, .yml or .json files%s", in, hint)
	}
	sort.Strings(files)
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		out = append(out, b)
	}
	return out, nil
}
