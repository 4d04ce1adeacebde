// Package workload parses the workload a proxy names in PortSpec.workload: the JSON
// {"ns":"…","pod":"…"} of current proxies or the "ns:pod" form of older ones.
package workload

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Workload is a pod.
type Workload struct {
	Namespace string `json:"ns"`
	Pod       string `json:"pod"`
}

// Parse parses a workload string.
func Parse(s string) (Workload, error) {
	s = strings.TrimSpace(s)
	if len(s) > 1024 {
		return Workload{}, fmt.Errorf("workload is %d bytes long", len(s))
	}
	var w Workload
	if strings.HasPrefix(s, "{") {
		if err := json.Unmarshal([]byte(s), &w); err != nil {
			return Workload{}, fmt.Errorf("workload %q: %w", s, err)
		}
	} else {
		ns, pod, ok := strings.Cut(s, ":")
		if !ok {
			return Workload{}, fmt.Errorf(`workload %q: want {"ns":"…","pod":"…"} or ns:pod`, s)
		}
		w = Workload{Namespace: ns, Pod: pod}
	}
	if !name(w.Namespace) || !name(w.Pod) {
		return Workload{}, fmt.Errorf("workload %q: namespace and pod must be DNS names", s)
	}
	return w, nil
}

func name(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
