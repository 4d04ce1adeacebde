package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuiltCLIUnknownCommand builds the linkerd binary and checks that an unknown
// subcommand of a command group exits 1 with Linkerd's message and prints nothing on
// stdout (which a script would pipe to kubectl apply).
func TestBuiltCLIUnknownCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "linkerd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "viz", "bogus")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("linkerd viz bogus: %v, want exit status 1", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
	want := "Error: unknown command \"bogus\" for \"linkerd viz\"\nRun 'linkerd viz --help' for usage.\n"
	if got := stderr.String(); !strings.HasPrefix(got, want) {
		t.Errorf("stderr %q, want %q", got, want)
	}
}
