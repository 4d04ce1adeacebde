package install

import (
	"fmt"
	"os"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// ValueOptions are Helm's value flags, as `helm install` and Linkerd's install commands
// take them: -f/--values files, then --set, then --set-string, then --set-file, each in
// order, later ones winning.
type ValueOptions struct {
	// Files are YAML values files (-f/--values).
	Files []string
	// Sets are --set expressions (key=value[,key=value]), values typed as Helm types them.
	Sets []string
	// StringSets are --set-string expressions, values kept as strings.
	StringSets []string
	// FileSets are --set-file expressions (key=path): the key is set to the file's content.
	FileSets []string
}

// MergeInto applies the options over base and returns the merged values. base may be
// modified.
func (v ValueOptions) MergeInto(base map[string]any) (map[string]any, error) {
	if base == nil {
		base = map[string]any{}
	}
	for _, f := range v.Files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--values: %w", err)
		}
		file := map[string]any{}
		if err := yaml.Unmarshal(data, &file); err != nil {
			return nil, fmt.Errorf("--values %s: %w", f, err)
		}
		base = chartutil.CoalesceTables(file, base)
	}
	for _, s := range v.Sets {
		if err := strvals.ParseInto(s, base); err != nil {
			return nil, fmt.Errorf("--set %q: %w", s, err)
		}
	}
	for _, s := range v.StringSets {
		if err := strvals.ParseIntoString(s, base); err != nil {
			return nil, fmt.Errorf("--set-string %q: %w", s, err)
		}
	}
	for _, s := range v.FileSets {
		read := func(path []rune) (any, error) {
			b, err := os.ReadFile(string(path))
			if err != nil {
				return nil, err
			}
			return string(b), nil
		}
		if err := strvals.ParseIntoFile(s, base, read); err != nil {
			return nil, fmt.Errorf("--set-file %q: %w", s, err)
		}
	}
	return base, nil
}
