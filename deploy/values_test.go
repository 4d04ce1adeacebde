package deploy

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing"
)

// keyLine matches a YAML mapping key line: indentation, key, the rest of the line.
var keyLine = regexp.MustCompile(`^(\s*)([A-Za-z0-9_.-]+):(.*)$`)

// undocumented returns the keys of a values.yaml (dotted paths) that set a value and have
// no comment line directly above them nor above any of their parents.
func undocumented(values string) []string {
	type key struct {
		indent     int
		name       string
		documented bool
	}
	var stack []key
	var missing []string
	lines := strings.Split(values, "\n")
	for i, line := range lines {
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		indent := len(m[1])
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		documented := i > 0 && strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#")
		var names []string
		for _, k := range stack {
			documented = documented || k.documented
			names = append(names, k.name)
		}
		stack = append(stack, key{indent, m[2], documented})
		rest := strings.TrimSpace(m[3])
		if rest != "" && !strings.HasPrefix(rest, "#") && !documented {
			missing = append(missing, strings.Join(append(names, m[2]), "."))
		}
	}
	return missing
}

// TestValuesDocumented: every value in every chart's values.yaml has a comment saying what
// it does (on the line above it or above a parent key), as Helm users read values.yaml to
// learn a chart's values.
func TestValuesDocumented(t *testing.T) {
	files, err := fs.Glob(chartFiles, "charts/*/values.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no values.yaml among the embedded charts: %v", err)
	}
	for _, f := range files {
		data, err := chartFiles.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if missing := undocumented(string(data)); len(missing) > 0 {
			t.Errorf("%s: values without a comment: %s", path.Dir(f), strings.Join(missing, ", "))
		}
	}
	if got := undocumented("# -- doc\na: 1\nb: 2\nc:\n  # -- doc\n  d: 3\n  e: 4\n# -- doc\nf:\n  g: 5\n"); strings.Join(got, ",") != "b,c.e" {
		t.Errorf("undocumented finds %v, want [b c.e]", got)
	}
}
