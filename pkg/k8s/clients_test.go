package k8s

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

func TestRegisterFlags(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg := RegisterFlags(fs)
	if err := fs.Parse([]string{"-kubeconfig", "/etc/kube/config"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Kubeconfig != "/etc/kube/config" {
		t.Errorf("Kubeconfig = %q", cfg.Kubeconfig)
	}
}

func TestRESTConfigErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("apiVersion: [unterminated"), 0o600); err != nil {
		t.Fatal(err)
	}
	noContext := filepath.Join(dir, "empty")
	if err := os.WriteFile(noContext, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Outside a pod there is no in-cluster configuration.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"not in cluster", Config{}, "not running in a Kubernetes pod and -kubeconfig is not set"},
		{"missing file", Config{Kubeconfig: filepath.Join(dir, "nope")}, "-kubeconfig: stat " + filepath.Join(dir, "nope")},
		{"malformed file", Config{Kubeconfig: garbage}, "-kubeconfig " + garbage},
		{"no cluster in file", Config{Kubeconfig: noContext}, "-kubeconfig " + noContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.Clients()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestPermissionString(t *testing.T) {
	for _, tt := range []struct {
		p    Permission
		want string
	}{
		{Permission{Verb: "list", Resource: "pods"}, "list pods in all namespaces"},
		{Permission{Verb: "watch", Group: "discovery.k8s.io", Resource: "endpointslices"}, "watch endpointslices.discovery.k8s.io in all namespaces"},
		{Permission{Verb: "create", Resource: "serviceaccounts/token", Namespace: "linkerd"}, "create serviceaccounts/token in namespace linkerd"},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestLogToSlog(t *testing.T) {
	var buf bytes.Buffer
	LogToSlog(slog.New(slog.NewJSONHandler(&buf, nil)))
	defer LogToSlog(slog.Default())
	klog.ErrorS(errors.New("watch closed"), "reflector failed", "resource", "pods")
	klog.Flush()
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatalf("client-go log is not a JSON slog line: %v: %q", err, buf.String())
	}
	if line["msg"] != "reflector failed" || line["resource"] != "pods" || line["level"] != "ERROR" {
		t.Errorf("client-go log line = %v", line)
	}
}
