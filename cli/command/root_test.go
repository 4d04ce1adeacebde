package command

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/test/kube"
)

// TestUnknownCommandFails checks that an unknown subcommand or flag, at any level of the
// tree, fails with Linkerd's message and a non-zero exit and writes nothing to stdout, so
// that `linkerd viz install | kubectl apply -f -` cannot feed help text to kubectl.
func TestUnknownCommandFails(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"viz", "instal"}, []string{`Error: unknown command "instal" for "linkerd viz"`, "Did you mean this?\n\tinstall", "Run 'linkerd viz --help' for usage."}},
		{[]string{"viz", "install", "--bogus"}, []string{"Error: unknown flag: --bogus", "Run 'linkerd viz install --help' for usage."}},
		{[]string{"viz", "check", "--bogus"}, []string{"Error: unknown flag: --bogus", "Run 'linkerd viz check --help' for usage."}},
		{[]string{"viz", "stats"}, []string{`Error: unknown command "stats" for "linkerd viz"`, "Did you mean this?\n\tstat", "Run 'linkerd viz --help' for usage."}},
		{[]string{"diagnostics", "bogus"}, []string{`Error: unknown command "bogus" for "linkerd diagnostics"`, "Run 'linkerd diagnostics --help' for usage."}},
		{[]string{"completion", "bogus"}, []string{`Error: unknown command "bogus" for "linkerd completion"`}},
		{[]string{"bogus"}, []string{`Error: unknown command "bogus" for "linkerd"`, "Run 'linkerd --help' for usage."}},
		{[]string{"viz", "--bogus"}, []string{"Error: unknown flag: --bogus", "Run 'linkerd viz --help' for usage."}},
		{[]string{"viz", "stat", "deploy", "--bogus"}, []string{"Error: unknown flag: --bogus", "Run 'linkerd viz stat --help' for usage."}},
		{[]string{"install", "--ha=maybe"}, []string{`Error: invalid argument "maybe" for "--ha" flag`, "Run 'linkerd install --help' for usage."}},
	} {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), tc.args, &out, &errOut)
		if code != 1 {
			t.Errorf("%q: exit %d, want 1", tc.args, code)
		}
		if out.Len() != 0 {
			t.Errorf("%q: stdout %q, want nothing", tc.args, out.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut.String(), w) {
				t.Errorf("%q: stderr %q lacks %q", tc.args, errOut.String(), w)
			}
		}
	}
}

// TestCommandGroupHelp checks that a command group run alone or with --help still prints
// its help and succeeds.
func TestCommandGroupHelp(t *testing.T) {
	for _, args := range [][]string{{}, {"viz"}, {"viz", "--help"}, {"diagnostics"}, {"help", "viz"}} {
		var out, errOut bytes.Buffer
		if code := Main(context.Background(), args, &out, &errOut); code != 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut.String())
		}
		if !strings.Contains(out.String(), "Available Commands:") {
			t.Errorf("%q: no help on stdout: %q", args, out.String())
		}
	}
}

// TestInstallCarriesCLIVersion checks that a CLI built as version X installs a control
// plane that reports X (linkerd-config's app.kubernetes.io/version, read by linkerd version
// and linkerd check) and runs images and injects proxies tagged X, so that linkerd check's
// version checks pass; --set linkerdVersion still overrides it.
func TestInstallCarriesCLIVersion(t *testing.T) {
	const v = "v9.9.9-test"
	old := Version
	Version = v
	t.Cleanup(func() { Version = old })

	c := kube.Shared(t)
	kc := c.Kubeconfig()
	ns := "l5d-version"
	crds, _, err := run(t, "", "install", "--crds")
	if err != nil {
		t.Fatal(err)
	}
	install, _, err := run(t, "", "install", "-L", ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"app.kubernetes.io/version: \"" + v + "\"",
		"/proxy:" + v + "\n",
		"/identity:" + v + "\n",
		"-proxy-version=" + v + "\n",
		"-proxy-init-version=" + v + "\n",
		"linkerd.io/proxy-version: \"" + v + "\"",
		"linkerd/proxy-injector " + v + "\n",
	} {
		if !strings.Contains(install, want) {
			t.Errorf("install output lacks %q", want)
		}
	}
	if strings.Contains(install, ":dev\n") || strings.Contains(install, "version: dev") {
		t.Error("install output still names version dev")
	}
	c.Apply(t, "default", crds)
	c.Apply(t, ns, install)
	out, _, err := run(t, "", "version", "--kubeconfig", kc, "-L", ns)
	if err != nil || out != "Client version: "+v+"\nServer version: "+v+"\n" {
		t.Errorf("version after install: %q %v", out, err)
	}

	pinned, _, err := run(t, "", "install", "-L", ns, "--set", "linkerdVersion=edge-1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pinned, "app.kubernetes.io/version: \"edge-1.2.3\"") || strings.Contains(pinned, v) {
		t.Error("--set linkerdVersion does not override the CLI's version")
	}
}

// TestInjectManualCarriesVersion checks that `linkerd inject --manual` injects the proxy
// and proxy-init images that l5d installs: those of the installed control plane when it
// reads the cluster, else the chart's at the CLI's version, so that linkerd check's
// data-plane version check compares like with like.
func TestInjectManualCarriesVersion(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v9.9.9-test"
	out, _, err := run(t, "", "inject", "--manual", "--identity-trust-anchors-file", "testdata/anchors.pem", "testdata/workloads.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"image: ghcr.io/l5d-go/proxy:v9.9.9-test\n", "image: ghcr.io/l5d-go/proxy-init:v9.9.9-test\n", "linkerd.io/proxy-version: v9.9.9-test\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("inject --manual lacks %q", want)
		}
	}
	if strings.Contains(out, "stable-2.12.2") {
		t.Error("inject --manual still injects Linkerd's stable-2.12.2 images")
	}

	c := kube.Shared(t)
	ns := "l5d-manual"
	Version = "v7.7.7"
	crds, _, err := run(t, "", "install", "--crds")
	if err != nil {
		t.Fatal(err)
	}
	install, _, err := run(t, "", "install", "-L", ns, "--set", "imageRegistry=registry.example/l5d")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", crds)
	c.Apply(t, ns, install)
	Version = "v9.9.9-test"
	out, _, err = run(t, "", "inject", "--manual", "--kubeconfig", c.Kubeconfig(), "-L", ns, "testdata/workloads.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"image: registry.example/l5d/proxy:v7.7.7\n", "image: registry.example/l5d/proxy-init:v7.7.7\n", "linkerd.io/proxy-version: v7.7.7\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("inject --manual against the cluster lacks %q", want)
		}
	}
}
