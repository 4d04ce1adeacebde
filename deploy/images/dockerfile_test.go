package images

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// dockerfile is what the final stage of one of deploy/docker's Dockerfiles says about its
// image.
type dockerfile struct {
	from       string
	debs       []string          // installed by apt-get install and not purged
	copies     map[string]string // image path -> package built into it
	user       string
	entrypoint []string
}

var (
	goBuildRe = regexp.MustCompile(`go build [^&]*?-o /out/(\S+) (\./\S+)`)
	copyRe    = regexp.MustCompile(`^COPY --from=build /out/(\S+) (\S+)$`)
)

// parseDockerfile reads the build stage's binaries and the final stage's instructions.
func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines.
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	built := map[string]string{}
	for _, m := range goBuildRe.FindAllStringSubmatch(text, -1) {
		built[m[1]] = strings.TrimPrefix(m[2], "./")
	}
	var d dockerfile
	var purged []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "FROM "):
			d = dockerfile{from: strings.Fields(line)[1], copies: map[string]string{}}
		case strings.HasPrefix(line, "RUN "):
			if _, after, ok := strings.Cut(line, "apt-get purge"); ok {
				purged = append(purged, packageArgs(after)...)
			}
			if _, after, ok := strings.Cut(line, "apt-get install"); ok {
				d.debs = append(d.debs, packageArgs(after)...)
			}
		case strings.HasPrefix(line, "COPY --from="):
			m := copyRe.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("%s: cannot read %q", path, line)
			}
			pkg, ok := built[m[1]]
			if !ok {
				t.Fatalf("%s: %q copies /out/%s, which no go build makes", path, line, m[1])
			}
			d.copies[m[2]] = pkg
		case strings.HasPrefix(line, "USER "):
			d.user = strings.TrimSpace(strings.TrimPrefix(line, "USER "))
		case strings.HasPrefix(line, "ENTRYPOINT "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "ENTRYPOINT ")), &d.entrypoint); err != nil {
				t.Fatalf("%s: ENTRYPOINT: %v", path, err)
			}
		}
	}
	d.debs = slices.DeleteFunc(d.debs, func(p string) bool { return slices.Contains(purged, p) })
	return d
}

// packageArgs returns the package names of an apt-get command line, up to the next "&&".
func packageArgs(s string) []string {
	s, _, _ = strings.Cut(s, "&&")
	var out []string
	for _, f := range strings.Fields(s) {
		if !strings.HasPrefix(f, "-") {
			out = append(out, f)
		}
	}
	return out
}

// makeBinaries reads the Makefile's BINARIES: bin name -> package directory.
func makeBinaries(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	_, rest, ok := strings.Cut(text, "\nBINARIES :=")
	if !ok {
		t.Fatal("Makefile has no BINARIES")
	}
	line, _, _ := strings.Cut(rest, "\n")
	out := map[string]string{}
	for _, f := range strings.Fields(line) {
		name, pkg, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("Makefile BINARIES: %q is not name=package", f)
		}
		out[name] = pkg
	}
	return out
}

// TestDockerfilesAgree: each image described by a Dockerfile under deploy/docker has, in the
// table, the same base, user, entrypoint, files (built from the same packages) and Debian
// packages; every Dockerfile is in the table, and every binary of the table is one make
// build builds.
func TestDockerfilesAgree(t *testing.T) {
	bins := makeBinaries(t)
	seen := map[string]bool{}
	for _, img := range All() {
		for _, f := range img.Files {
			if _, ok := bins[f.Bin]; !ok && toolScripts[f.Bin] == "" {
				t.Errorf("%s: binary %q is not in the Makefile's BINARIES", img.Name, f.Bin)
			}
		}
		if img.Dockerfile == "" {
			continue
		}
		seen[img.Dockerfile] = true
		t.Run(img.Name, func(t *testing.T) {
			d := parseDockerfile(t, filepath.Join("..", "docker", img.Dockerfile))
			switch {
			case strings.HasPrefix(d.from, "gcr.io/distroless/static"):
				if img.Base != Static {
					t.Errorf("base: Dockerfile %s, table %s", d.from, img.Base)
				}
			case strings.HasPrefix(d.from, "debian:"):
				if img.Base != Debian {
					t.Errorf("base: Dockerfile %s, table %s", d.from, img.Base)
				}
				for _, p := range d.debs {
					if !slices.Contains(img.Debs, p) {
						t.Errorf("Dockerfile installs %s, the table's packages %v do not", p, img.Debs)
					}
				}
			default:
				t.Errorf("unknown base %s", d.from)
			}
			if d.user != img.User {
				t.Errorf("user: Dockerfile %q, table %q", d.user, img.User)
			}
			if !slices.Equal(d.entrypoint, img.Entrypoint) {
				t.Errorf("entrypoint: Dockerfile %q, table %q", d.entrypoint, img.Entrypoint)
			}
			want := map[string]string{}
			for _, f := range img.Files {
				want[f.Path] = bins[f.Bin]
			}
			for p, pkg := range d.copies {
				if want[p] != pkg {
					t.Errorf("%s: Dockerfile builds it from %s, table from %q", p, pkg, want[p])
				}
			}
			for p := range want {
				if _, ok := d.copies[p]; !ok {
					t.Errorf("%s: in the table, not in the Dockerfile", p)
				}
			}
		})
	}
	files, err := filepath.Glob("../docker/Dockerfile.*")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			missing = append(missing, filepath.Base(f))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("Dockerfiles no image of the table names: %v", missing)
	}
}
