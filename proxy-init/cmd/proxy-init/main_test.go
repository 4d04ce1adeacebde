package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/test/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// asMainEnv makes the test binary run as proxy-init itself, for tests that need another
// process (another user).
const asMainEnv = "L5D_PROXY_INIT_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	if left, err := netns.Leftovers(); err != nil || len(left) > 0 {
		fmt.Fprintf(os.Stderr, "network namespaces left behind: %v %v\n", left, err)
		code = 1
	}
	os.Exit(code)
}

func TestFlagErrorsNameTheProblem(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--inbound-ports-to-ignore", "80,abc"}, "abc"},
		{[]string{"--outbound-ports-to-ignore", "9000-8000"}, "9000-8000"},
		{[]string{"--subnets-to-ignore", "10.0.0.0/33"}, "10.0.0.0/33"},
		{[]string{"--incoming-proxy-port", "70000"}, "incoming-proxy-port"},
		{[]string{"--iptables-mode", "ebpf"}, "ebpf"},
		{[]string{"stray"}, "unexpected arguments"},
	} {
		var out, errb bytes.Buffer
		code := run(t.Context(), tc.args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 naming %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

func TestSimulateThenApplyInANamespace(t *testing.T) {
	n := netns.New(t)
	p := n.Pod(t, "p")
	args := []string{"--netns", p.Path(), "--iptables-mode", "nft", "--inbound-ports-to-ignore", "4190,4191",
		"--outbound-ports-to-ignore", "443,8000-8100", "--proxy-uid", "2102", "--log-level", "error"}
	var sim, errb bytes.Buffer
	if code := run(t.Context(), append(args, "--simulate"), &sim, &errb); code != 0 {
		t.Fatalf("simulate: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(sim.String(), "--to-ports 4140") || !strings.Contains(sim.String(), "--dports 443,8000:8100") {
		t.Fatalf("simulation lacks the expected rules:\n%s", sim.String())
	}
	if saved := iptablesSave(t, p); strings.Contains(saved, "PROXY_INIT") {
		t.Fatal("--simulate changed the rules")
	}
	if code := run(t.Context(), args, &bytes.Buffer{}, &errb); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errb.String())
	}
	saved := iptablesSave(t, p)
	if !strings.Contains(saved, "-j REDIRECT --to-ports 4143") {
		t.Fatalf("rules not installed:\n%s", saved)
	}
	if code := run(t.Context(), args, &bytes.Buffer{}, &errb); code != 0 {
		t.Fatalf("second apply: exit %d: %s", code, errb.String())
	}
	if again := iptablesSave(t, p); stripCounters(again) != stripCounters(saved) {
		t.Fatalf("running twice changed the rules:\nfirst:\n%s\nsecond:\n%s", saved, again)
	}
}

// TestWithoutPermissionFailsClearly runs proxy-init inside a pod as an unprivileged user.
func TestWithoutPermissionFailsClearly(t *testing.T) {
	n := netns.New(t)
	p := n.Pod(t, "p")
	bin := copyTestBinary(t)
	var stdout, stderr bytes.Buffer
	cmd := netns.AsUser(exec.Command(bin, "--iptables-mode", "legacy", "--log-level", "error"), 65534, 65534)
	cmd.Env = []string{asMainEnv + "=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := p.Run(cmd)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "NET_ADMIN") || !strings.Contains(stderr.String(), "iptables-legacy") {
		t.Fatalf("stderr does not name the cause:\n%s", stderr.String())
	}
	if saved := iptablesSaveWith(t, p, "iptables-legacy-save"); strings.Contains(saved, "PROXY_INIT") {
		t.Fatalf("rules installed:\n%s", saved)
	}
	t.Logf("proxy-init as uid 65534: %s", stderr.String())
}

// injectedInitArgs returns the arguments the proxy injector gives linkerd-init with its
// default values and iptablesMode mode.
func injectedInitArgs(t *testing.T, mode string) []string {
	t.Helper()
	v := inject.DefaultValues()
	v.IdentityTrustAnchorsPEM = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"
	v.IptablesMode = mode
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", Annotations: map[string]string{inject.AnnotationInject: "enabled"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
	}
	out, _, err := v.InjectPod(inject.Namespace{Name: "n"}, inject.Owner{}, pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range out.Spec.InitContainers {
		if c.Name == inject.InitContainerName {
			return c.Args
		}
	}
	t.Fatal("the injector added no linkerd-init container")
	return nil
}

// TestInitContainerAsInjected runs proxy-init as the injected linkerd-init container does:
// the arguments the proxy injector gives it (for each iptablesMode), uid 65534, only the
// NET_ADMIN and NET_RAW capabilities, and a private xtables lock file (the container's /run
// is an emptyDir). The rules must land in the mode's backend.
func TestInitContainerAsInjected(t *testing.T) {
	n := netns.New(t)
	bin := copyTestBinary(t)
	lockDir := filepath.Dir(bin) // made 0755 by copyTestBinary; the lock file needs 0777
	if err := os.Chmod(lockDir, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"legacy", "nft"} {
		t.Run(mode, func(t *testing.T) {
			p := n.Pod(t, mode)
			var stdout, stderr bytes.Buffer
			args := injectedInitArgs(t, mode)
			if !strings.Contains(strings.Join(args, " "), "--iptables-mode "+mode) {
				t.Fatalf("injected linkerd-init arguments %q lack --iptables-mode %s", args, mode)
			}
			cmd := netns.AsUser(exec.Command(bin, args...), 65534, 65534)
			cmd.SysProcAttr.AmbientCaps = []uintptr{unix.CAP_NET_ADMIN, unix.CAP_NET_RAW}
			cmd.Env = []string{asMainEnv + "=1", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
				"XTABLES_LOCKFILE=" + filepath.Join(lockDir, "xtables-"+mode+".lock")}
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := p.Run(cmd); err != nil {
				t.Fatalf("proxy-init as uid 65534 with NET_ADMIN and NET_RAW: %v\n%s", err, stderr.String())
			}
			other := map[string]string{"legacy": "nft", "nft": "legacy"}[mode]
			if saved := iptablesSaveWith(t, p, "iptables-"+other+"-save"); strings.Contains(saved, "PROXY_INIT") {
				t.Errorf("rules went to the %s backend, not %s:\n%s", other, mode, saved)
			}
			for _, bin := range []string{"iptables-" + mode + "-save", "ip6tables-" + mode + "-save"} {
				saved := iptablesSaveWith(t, p, bin)
				for _, want := range []string{
					"-A PREROUTING -m comment --comment \"proxy-init/install-proxy-init-prerouting\" -j PROXY_INIT_REDIRECT",
					"-A PROXY_INIT_REDIRECT -p tcp -m multiport --dports 4190,4191,4567,4568 ",
					"-j REDIRECT --to-ports 4143",
					"-A PROXY_INIT_OUTPUT -m owner --uid-owner 2102 ",
					"-A PROXY_INIT_OUTPUT -p tcp -m multiport --dports 4567,4568 ",
					"-j REDIRECT --to-ports 4140",
				} {
					if !strings.Contains(saved, want) {
						t.Errorf("%s lacks %q:\n%s", bin, want, saved)
					}
				}
			}
		})
	}
}

// copyTestBinary copies the test binary where any user may run it.
func copyTestBinary(t *testing.T) string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir is <tmp>/<test name><n>/<seq>, both made 0700.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "proxy-init")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

func stripCounters(save string) string {
	var lines []string
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.Index(l, " ["); strings.HasPrefix(l, ":") && i > 0 {
			l = l[:i]
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

func TestMissingFirewallBinaryFails(t *testing.T) {
	n := netns.New(t)
	p := n.Pod(t, "p")
	var errb bytes.Buffer
	code := run(t.Context(), []string{"--netns", p.Path(), "--firewall-bin-path", "/nonexistent/iptables", "--ipv6=false"}, &bytes.Buffer{}, &errb)
	if code == 0 || !strings.Contains(errb.String(), "/nonexistent/iptables") {
		t.Fatalf("exit %d, stderr %q: want a failure naming the binary", code, errb.String())
	}
}

func iptablesSave(t *testing.T, p *netns.Pod) string {
	return iptablesSaveWith(t, p, "iptables-nft-save")
}

func iptablesSaveWith(t *testing.T, p *netns.Pod, bin string) string {
	var out bytes.Buffer
	cmd := exec.Command(bin, "-t", "nat")
	cmd.Stdout = &out
	if err := p.Run(cmd); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
