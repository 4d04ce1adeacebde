package iptables

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// State is what a family's nat table holds now, as far as proxy-init is concerned, read
// from `iptables-save -t nat`.
type State struct {
	// Chains maps each proxy-init chain that exists to its rules, as iptables-save lines.
	Chains map[string][]string
	// Jumps maps a built-in chain (PREROUTING, OUTPUT) to whether it already jumps to its
	// proxy-init chain, with or without proxy-init's comment.
	Jumps map[string]bool
	// JumpLines maps a built-in chain to its rules that jump to its proxy-init chain, as
	// iptables-save lines, so that they can be deleted exactly as they were written.
	JumpLines map[string][]string
	// OtherBackend is set when iptables-save warned that tables of the other backend
	// (legacy or nft) exist too: rules there still apply to packets, and are not replaced.
	OtherBackend string
}

// jumpFrom maps each built-in chain to the proxy-init chain it jumps to.
var jumpFrom = map[string]string{"PREROUTING": RedirectChain, "OUTPUT": OutputChain}

// ParseSave reads the output of `iptables-save -t nat` (or ip6tables-save).
func ParseSave(out []byte) (State, error) {
	st := State{Chains: map[string][]string{}, Jumps: map[string]bool{}, JumpLines: map[string][]string{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	inNat, sawNat := false, false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			if w := otherBackendWarning([]byte(line)); w != "" {
				st.OtherBackend = w
			}
		case strings.HasPrefix(line, "*"):
			inNat = line == "*nat"
			sawNat = sawNat || inNat
		case !inNat:
		case line == "COMMIT":
			inNat = false
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if name == RedirectChain || name == OutputChain {
				if st.Chains[name] == nil {
					st.Chains[name] = []string{}
				}
			}
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if len(f) < 2 {
				return State{}, fmt.Errorf("iptables-save line %q has no chain", line)
			}
			chain := f[1]
			if chain == RedirectChain || chain == OutputChain {
				st.Chains[chain] = append(st.Chains[chain], line)
			}
			if to, ok := jumpFrom[chain]; ok && len(f) >= 4 && f[len(f)-2] == "-j" && f[len(f)-1] == to {
				st.Jumps[chain] = true
				st.JumpLines[chain] = append(st.JumpLines[chain], line)
			}
		default:
			return State{}, fmt.Errorf("unexpected iptables-save line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return State{}, fmt.Errorf("reading iptables-save output: %w", err)
	}
	if !sawNat && len(bytes.TrimSpace(out)) > 0 && !onlyComments(out) {
		return State{}, fmt.Errorf("iptables-save output has no nat table")
	}
	return st, nil
}

// otherBackendWarning returns the warning iptables-nft-save prints on stderr when legacy
// tables exist too, or "".
func otherBackendWarning(stderr []byte) string {
	for _, l := range strings.Split(string(stderr), "\n") {
		if strings.Contains(l, "Warning:") && strings.Contains(l, "tables present") {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
		}
	}
	return ""
}

func onlyComments(out []byte) bool {
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// RestoreInput renders the input for `iptables-restore --noflush` that installs rules
// (from Config.Rules) given the current state: it declares both proxy-init chains, which
// creates them or empties them, appends the rules, and appends each jump of Jumps that the
// state lacks, so that applying it any number of times leaves the same rules.
func RestoreInput(rules []Rule, st State) []byte {
	var b strings.Builder
	b.WriteString("*nat\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n", RedirectChain, OutputChain)
	jumps := map[string]Rule{}
	for _, j := range Jumps() {
		jumps[j.Target()] = j
	}
	// Rules are grouped by chain, each chain's jump right after its rules, so the text
	// reads in the order packets meet it.
	for _, chain := range []string{RedirectChain, OutputChain} {
		for _, r := range rules {
			if r.Chain == chain {
				b.WriteString(r.String())
				b.WriteByte('\n')
			}
		}
		if j := jumps[chain]; !st.Jumps[j.Chain] {
			b.WriteString(j.String())
			b.WriteByte('\n')
		}
	}
	b.WriteString("COMMIT\n")
	return []byte(b.String())
}

// RollbackInput renders the input for `iptables-restore --noflush` that puts a table
// changed by RestoreInput(…, before) back as it was: the proxy-init chains get their old
// rules back (or are deleted if they did not exist) and jumps that were added are removed.
func RollbackInput(before State) []byte {
	var b strings.Builder
	b.WriteString("*nat\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n", RedirectChain, OutputChain)
	for _, chain := range []string{RedirectChain, OutputChain} {
		for _, line := range before.Chains[chain] {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	for _, j := range Jumps() {
		if !before.Jumps[j.Chain] {
			b.WriteString("-D" + strings.TrimPrefix(j.String(), "-A"))
			b.WriteByte('\n')
		}
	}
	for _, chain := range []string{RedirectChain, OutputChain} {
		if _, existed := before.Chains[chain]; !existed {
			fmt.Fprintf(&b, "-X %s\n", chain)
		}
	}
	b.WriteString("COMMIT\n")
	return []byte(b.String())
}

// Installed reports whether the table holds anything of proxy-init's: a chain or a jump.
func (st State) Installed() bool { return len(st.Chains) > 0 || len(st.JumpLines) > 0 }

// RemoveInput renders the input for `iptables-restore --noflush` that takes everything of
// proxy-init's out of a table in state st: every jump to a proxy-init chain is deleted as
// iptables-save printed it, and the chains that exist are emptied and deleted. Chains and
// rules of other programs are left alone. It returns nil when st holds nothing of
// proxy-init's, so that removing twice is not an error.
func RemoveInput(st State) []byte {
	if !st.Installed() {
		return nil
	}
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, chain := range []string{RedirectChain, OutputChain} {
		if _, ok := st.Chains[chain]; ok {
			fmt.Fprintf(&b, ":%s - [0:0]\n", chain)
		}
	}
	for _, from := range []string{"PREROUTING", "OUTPUT"} {
		for _, line := range st.JumpLines[from] {
			b.WriteString("-D" + strings.TrimPrefix(line, "-A"))
			b.WriteByte('\n')
		}
	}
	for _, chain := range []string{RedirectChain, OutputChain} {
		if _, ok := st.Chains[chain]; ok {
			fmt.Fprintf(&b, "-X %s\n", chain)
		}
	}
	b.WriteString("COMMIT\n")
	return []byte(b.String())
}
