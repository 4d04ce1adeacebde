package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/l5d-go/l5d/proxy-init/netns"
)

// Installer installs a Config's rules with a set of backends.
type Installer struct {
	// Config is the rules to install.
	Config Config
	// Backends lists the families to configure and their binaries (see ModeBackends and
	// PathBackends).
	Backends []Backend
	// Wait passes -w to iptables-restore, so that it waits for the xtables lock instead of
	// failing when another program holds it.
	Wait bool
	// NetNS, when set, is the path of the network namespace to configure; otherwise the
	// caller's namespace is configured.
	NetNS string
	// CloseWaitTimeoutSecs, when positive, is written to the namespace's
	// net.netfilter.nf_conntrack_tcp_timeout_close_wait after the rules are installed.
	CloseWaitTimeoutSecs int
	// Log receives progress; nil logs nothing.
	Log *slog.Logger
}

// closeWaitSysctl is the conntrack setting CloseWaitTimeoutSecs writes.
const closeWaitSysctl = "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close_wait"

// Plan is what installing means for one backend.
type Plan struct {
	Backend Backend
	// Before is the table's state when the plan was made.
	Before State
	// Rules are the rules the proxy-init chains will hold.
	Rules []Rule
	// Input is fed to `Backend.Restore --noflush`.
	Input []byte
}

func (in *Installer) log() *slog.Logger {
	if in.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return in.Log
}

// Apply installs the rules in every backend, or changes nothing and returns an error that
// names the cause: a binary that is missing, a permission or kernel backend that is
// lacking, input the backend rejects. If one family fails after others were changed, those
// are put back as they were (an error in doing so is reported too).
func (in *Installer) Apply(ctx context.Context) error {
	if err := in.check(); err != nil {
		return err
	}
	return netns.Do(in.NetNS, func() error { return in.apply(ctx) })
}

func (in *Installer) check() error {
	if err := in.Config.Validate(); err != nil {
		return err
	}
	if len(in.Backends) == 0 {
		return errors.New("no iptables backend to configure")
	}
	return nil
}

func (in *Installer) apply(ctx context.Context) error {
	log := in.log()
	for _, b := range in.Backends {
		for _, bin := range []string{b.Save, b.Restore} {
			if err := lookPath(bin); err != nil {
				return fmt.Errorf("%s: %w", b.Family, err)
			}
		}
	}
	if in.CloseWaitTimeoutSecs < 0 {
		return fmt.Errorf("close-wait timeout %d is negative", in.CloseWaitTimeoutSecs)
	}
	plans := make([]Plan, 0, len(in.Backends))
	for _, b := range in.Backends {
		p, err := in.plan(ctx, b)
		if err != nil {
			return err
		}
		if p.Before.OtherBackend != "" {
			log.Warn("rules of the other iptables backend exist in this namespace and still apply to packets",
				"family", b.Family.String(), "iptables-save", p.Before.OtherBackend)
		}
		if err := in.restore(ctx, b, p.Input, true); err != nil {
			return fmt.Errorf("%s: checking the rules with %s --test: %w", b.Family, b.Restore, err)
		}
		plans = append(plans, p)
	}
	for i, p := range plans {
		if err := in.restore(ctx, p.Backend, p.Input, false); err != nil {
			err = fmt.Errorf("%s: installing the rules with %s: %w", p.Backend.Family, p.Backend.Restore, err)
			return errors.Join(err, in.rollback(ctx, plans[:i]))
		}
		for _, r := range p.Rules {
			log.Info("installed rule", "family", p.Backend.Family.String(), "rule", r.String())
		}
	}
	if in.CloseWaitTimeoutSecs > 0 {
		v := strconv.Itoa(in.CloseWaitTimeoutSecs)
		if err := os.WriteFile(closeWaitSysctl, []byte(v+"\n"), 0); err != nil {
			err = fmt.Errorf("setting net.netfilter.nf_conntrack_tcp_timeout_close_wait=%s: %w", v, err)
			return errors.Join(err, in.rollback(ctx, plans))
		}
		log.Info("set conntrack close-wait timeout", "seconds", in.CloseWaitTimeoutSecs)
	}
	for _, p := range plans {
		if err := in.verify(ctx, p); err != nil {
			return errors.Join(fmt.Errorf("after installing: %w", err), in.rollback(ctx, plans))
		}
	}
	return nil
}

// Remove takes proxy-init's chains and jumps out of every backend's nat table, leaving
// other rules alone; a table without them is left as it is, so removing is idempotent.
// Config is not used. Each family is removed in one iptables-restore transaction; an
// error names the family and the command that failed.
func (in *Installer) Remove(ctx context.Context) error {
	if len(in.Backends) == 0 {
		return errors.New("no iptables backend to configure")
	}
	return netns.Do(in.NetNS, func() error {
		var errs []error
		for _, b := range in.Backends {
			st, err := in.read(ctx, b)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			input := RemoveInput(st)
			if input == nil {
				continue
			}
			if err := in.restore(ctx, b, input, false); err != nil {
				errs = append(errs, fmt.Errorf("%s: removing the rules with %s: %w", b.Family, b.Restore, err))
				continue
			}
			in.log().Info("removed the proxy-init rules", "family", b.Family.String())
		}
		return errors.Join(errs...)
	})
}

// Check reports whether every backend's nat table holds the rules Config gives and both
// jumps: nil when it does, otherwise an error naming the family and what is missing.
func (in *Installer) Check(ctx context.Context) error {
	if err := in.check(); err != nil {
		return err
	}
	return netns.Do(in.NetNS, func() error {
		for _, b := range in.Backends {
			if err := in.verify(ctx, Plan{Backend: b, Rules: in.Config.Rules(b.Family)}); err != nil {
				return err
			}
		}
		return nil
	})
}

// plan reads backend b's current state and renders the restore input.
func (in *Installer) plan(ctx context.Context, b Backend) (Plan, error) {
	before, err := in.read(ctx, b)
	if err != nil {
		return Plan{}, err
	}
	rules := in.Config.Rules(b.Family)
	return Plan{Backend: b, Before: before, Rules: rules, Input: RestoreInput(rules, before)}, nil
}

// read runs `save -t nat` and parses it.
func (in *Installer) read(ctx context.Context, b Backend) (State, error) {
	out, stderr, err := run(ctx, b.Save, []string{"-t", "nat"}, nil)
	if err != nil {
		return State{}, fmt.Errorf("%s: reading the current rules: %w", b.Family, err)
	}
	st, err := ParseSave(out)
	if err != nil {
		return State{}, fmt.Errorf("%s: reading the current rules from %s: %w", b.Family, b.Save, err)
	}
	if st.OtherBackend == "" {
		st.OtherBackend = otherBackendWarning(stderr)
	}
	return st, nil
}

// restore feeds input to `restore --noflush`, with --test when test is set.
func (in *Installer) restore(ctx context.Context, b Backend, input []byte, test bool) error {
	args := []string{"--noflush"}
	if test {
		args = append(args, "--test")
	}
	if in.Wait {
		args = append(args, "-w")
	}
	_, _, err := run(ctx, b.Restore, args, input)
	return err
}

// rollback puts the tables of plans back as they were before.
func (in *Installer) rollback(ctx context.Context, plans []Plan) error {
	var errs []error
	for _, p := range plans {
		if err := in.restore(ctx, p.Backend, RollbackInput(p.Before), false); err != nil {
			errs = append(errs, fmt.Errorf("%s: restoring the previous rules failed, the table may hold a partial configuration: %w", p.Backend.Family, err))
			continue
		}
		in.log().Warn("restored the previous rules", "family", p.Backend.Family.String())
	}
	return errors.Join(errs...)
}

// verify reads the table back and checks the chains hold as many rules as planned and both
// jumps exist.
func (in *Installer) verify(ctx context.Context, p Plan) error {
	after, err := in.read(ctx, p.Backend)
	if err != nil {
		return err
	}
	want := map[string]int{}
	for _, r := range p.Rules {
		want[r.Chain]++
	}
	for _, chain := range []string{RedirectChain, OutputChain} {
		if got := len(after.Chains[chain]); got != want[chain] {
			return fmt.Errorf("%s: %s holds %d rules instead of %d", p.Backend.Family, chain, got, want[chain])
		}
	}
	for from := range jumpFrom {
		if !after.Jumps[from] {
			return fmt.Errorf("%s: %s does not jump to %s", p.Backend.Family, from, jumpFrom[from])
		}
	}
	return nil
}

// Simulate writes to w, for every backend, the exact input Apply would feed to
// iptables-restore, and changes nothing. The current rules are read if possible, so that
// jumps already present are left out as Apply would; if they cannot be read (no binary, no
// permission) a comment says so and the input assumes none are installed.
func (in *Installer) Simulate(ctx context.Context, w io.Writer) error {
	if err := in.check(); err != nil {
		return err
	}
	return netns.Do(in.NetNS, func() error {
		var b bytes.Buffer
		for _, be := range in.Backends {
			args := "--noflush"
			if in.Wait {
				args += " -w"
			}
			fmt.Fprintf(&b, "# %s: %s %s\n", be.Family, be.Restore, args)
			st, err := in.read(ctx, be)
			if err != nil {
				fmt.Fprintf(&b, "# could not read the current rules, assuming none: %s\n", oneLine(err.Error()))
				st = State{}
			}
			b.Write(RestoreInput(in.Config.Rules(be.Family), st))
		}
		if in.CloseWaitTimeoutSecs > 0 {
			fmt.Fprintf(&b, "# then: sysctl net.netfilter.nf_conntrack_tcp_timeout_close_wait=%d\n", in.CloseWaitTimeoutSecs)
		}
		_, err := w.Write(b.Bytes())
		return err
	})
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// CommandError is a failed run of an iptables binary.
type CommandError struct {
	Command string // the binary and its arguments
	Err     error  // how it ended
	Stderr  string // what it printed on stderr, trimmed
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Command, e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	if h := hint(e.Stderr); h != "" {
		msg += " (" + h + ")"
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// hint explains the usual causes of an iptables failure.
func hint(stderr string) string {
	s := strings.ToLower(stderr)
	switch {
	case strings.Contains(s, "permission denied") || strings.Contains(s, "operation not permitted") || strings.Contains(s, "must be root"):
		return "proxy-init needs the NET_ADMIN and NET_RAW capabilities: run it as root or add them"
	case strings.Contains(s, "xtables lock"):
		return "another program holds the xtables lock: pass --use-wait-flag to wait for it"
	case strings.Contains(s, "table does not exist") || strings.Contains(s, "protocol not supported") ||
		strings.Contains(s, "could not fetch rule set generation id") || strings.Contains(s, "address family not supported"):
		return "the kernel lacks this iptables backend: try the other --iptables-mode (legacy or nft)"
	case strings.Contains(s, "couldn't load match") || strings.Contains(s, "couldn't load target") ||
		strings.Contains(s, "no chain/target/match"):
		return "the kernel lacks a netfilter module the rules need (nat, REDIRECT, owner, multiport or comment)"
	}
	return ""
}

// lookPath checks that bin can be run.
func lookPath(bin string) error {
	if _, err := exec.LookPath(bin); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("iptables binary %q not found (install the iptables package, or choose binaries with --iptables-mode or --firewall-bin-path): %w", bin, err)
		}
		return fmt.Errorf("iptables binary %q cannot be run: %w", bin, err)
	}
	return nil
}

// run runs bin with args, feeding it stdin, and returns its standard output and error.
func run(ctx context.Context, bin string, args []string, stdin []byte) (stdout, stderr []byte, err error) {
	if err := lookPath(bin); err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, errb.Bytes(), &CommandError{
			Command: strings.Join(append([]string{bin}, args...), " "),
			Err:     err,
			Stderr:  oneLine(errb.String()),
		}
	}
	return out.Bytes(), errb.Bytes(), nil
}
