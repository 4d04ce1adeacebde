package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/proxy-init/iptables"
	"github.com/l5d-go/l5d/test/netns"
)

func TestValidatorPassesOnlyWhenTrafficIsRedirected(t *testing.T) {
	n := netns.New(t)
	// The validator runs as another user: its directory must be open to them.
	dir, err := os.MkdirTemp("", "l5d-validator-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "linkerd-network-validator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}
	validate := func(p *netns.Pod) (int, string) {
		var errb bytes.Buffer
		// As an application user: the proxy's uid is exempt from redirection.
		cmd := netns.AsUser(exec.Command(bin, "--timeout", "5s"), 1000, 1000)
		cmd.Stderr = &errb
		err := p.Run(cmd)
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, errb.String()
		case errors.As(err, &ee):
			return ee.ExitCode(), errb.String()
		default:
			t.Fatalf("running the validator: %v", err)
			return -1, ""
		}
	}

	bare := n.Pod(t, "bare")
	code, out := validate(bare)
	if code != 1 || !strings.Contains(out, "linkerd-cni plugin did not configure this pod's network") {
		t.Fatalf("without the rules: exit %d, want 1 with a message naming linkerd-cni:\n%s", code, out)
	}

	meshed := n.Pod(t, "meshed")
	backends, err := iptables.ModeBackends(iptables.ModeLegacy, true)
	if err != nil {
		t.Fatal(err)
	}
	in := &iptables.Installer{Config: iptables.DefaultConfig(), Backends: backends, Wait: true, NetNS: meshed.Path()}
	if err := in.Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, out := validate(meshed); code != 0 {
		t.Fatalf("with the rules: exit %d, want 0:\n%s", code, out)
	}
}

func TestBadFlagsAreRefused(t *testing.T) {
	for _, args := range [][]string{{"--timeout", "0s"}, {"--connect-addr", "192.0.2.1"}, {"--log-level", "loud"}} {
		var errb bytes.Buffer
		if code := run(args, &errb); code != 2 || !strings.Contains(errb.String(), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("%q: exit %d, want 2 naming the flag: %s", args, code, errb.String())
		}
	}
}
