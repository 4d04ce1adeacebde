package command

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestUnknownCommandFails checks that an unknown subcommand or flag, at any level of the
// tree, fails with Linkerd's message and a non-zero exit and writes nothing to stdout, so
// that `linkerd viz install | kubectl apply -f -` cannot feed help text to kubectl.
func TestUnknownCommandFails(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"viz", "install"}, []string{`Error: unknown command "install" for "linkerd viz"`, "Run 'linkerd viz --help' for usage."}},
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
