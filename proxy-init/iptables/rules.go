package iptables

import (
	"strconv"
	"strings"
)

// Rule comments. Each rule is tagged so that a person reading iptables-save can tell what
// installed it and why.
const (
	CommentIgnoreInboundPorts   = "proxy-init/ignore-inbound-ports"
	CommentIgnoreInboundSubnet  = "proxy-init/ignore-inbound-subnet"
	CommentRedirectInboundPorts = "proxy-init/redirect-inbound-ports-to-proxy-port"
	CommentRedirectAllIncoming  = "proxy-init/redirect-all-incoming-to-proxy-port"
	CommentInstallPrerouting    = "proxy-init/install-proxy-init-prerouting"
	CommentRedirectLocal        = "proxy-init/redirect-non-loopback-local-traffic"
	CommentIgnoreProxyUser      = "proxy-init/ignore-proxy-user-id"
	CommentIgnoreProxyGroup     = "proxy-init/ignore-proxy-group-id"
	CommentIgnoreLoopback       = "proxy-init/ignore-loopback"
	CommentIgnoreOutboundPorts  = "proxy-init/ignore-outbound-ports"
	CommentIgnoreOutboundSubnet = "proxy-init/ignore-outbound-subnet"
	CommentRedirectAllOutgoing  = "proxy-init/redirect-all-outgoing-to-proxy-port"
	CommentInstallOutput        = "proxy-init/install-proxy-init-output"
)

// Rule is one nat-table rule: the chain it is appended to and its arguments, in the order
// iptables-save prints them, so that String matches iptables-save's output line.
type Rule struct {
	Chain string
	Args  []string
}

// String renders the rule as an iptables-save / iptables-restore line, e.g.
// `-A PROXY_INIT_OUTPUT -o lo -m comment --comment "proxy-init/ignore-loopback" -j RETURN`.
// Comment text is double-quoted, as iptables-save writes it.
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString("-A ")
	b.WriteString(r.Chain)
	for i, a := range r.Args {
		b.WriteByte(' ')
		if i > 0 && r.Args[i-1] == "--comment" {
			b.WriteString(strconv.Quote(a))
			continue
		}
		b.WriteString(a)
	}
	return b.String()
}

// Target returns the rule's jump target (the argument after -j), or "".
func (r Rule) Target() string {
	for i := len(r.Args) - 2; i >= 0; i-- {
		if r.Args[i] == "-j" {
			return r.Args[i+1]
		}
	}
	return ""
}

func rule(chain string, args ...string) Rule { return Rule{Chain: chain, Args: args} }

func comment(text string) []string { return []string{"-m", "comment", "--comment", text} }

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Rules returns the rules of both proxy-init chains for family f, PROXY_INIT_REDIRECT's
// first, in the order they are evaluated. It does not include the jumps (see Jumps).
func (c Config) Rules(f Family) []Rule {
	return append(c.redirectRules(f), c.outputRules(f)...)
}

// redirectRules are PROXY_INIT_REDIRECT's rules: inbound connections.
func (c Config) redirectRules(f Family) []Rule {
	var rs []Rule
	for _, group := range multiport(c.InboundPortsToIgnore) {
		rs = append(rs, rule(RedirectChain, cat(
			[]string{"-p", "tcp", "-m", "multiport", "--dports", group},
			comment(CommentIgnoreInboundPorts),
			[]string{"-j", "RETURN"})...))
	}
	for _, p := range c.subnetsOf(f) {
		rs = append(rs, rule(RedirectChain, cat(
			[]string{"-s", p.String()},
			comment(CommentIgnoreInboundSubnet),
			[]string{"-j", "RETURN"})...))
	}
	to := []string{"-j", "REDIRECT", "--to-ports", strconv.Itoa(int(c.InboundProxyPort))}
	if len(c.PortsToRedirect) == 0 {
		rs = append(rs, rule(RedirectChain, cat(
			[]string{"-p", "tcp"}, comment(CommentRedirectAllIncoming), to)...))
	}
	for _, group := range multiport(c.PortsToRedirect) {
		rs = append(rs, rule(RedirectChain, cat(
			[]string{"-p", "tcp", "-m", "multiport", "--dports", group},
			comment(CommentRedirectInboundPorts), to)...))
	}
	return rs
}

// outputRules are PROXY_INIT_OUTPUT's rules: outbound connections.
func (c Config) outputRules(f Family) []Rule {
	var rs []Rule
	ret := []string{"-j", "RETURN"}
	// The proxy's own connections to a local address that is not loopback (the pod's
	// IP: a request to a Service the pod itself backs) go to its inbound side, as any
	// other meshed client's do, instead of straight to the application.
	loopback := "127.0.0.1/32"
	if f == IPv6 {
		loopback = "::1/128"
	}
	toInbound := []string{"-j", RedirectChain}
	if c.ProxyUID != NoID {
		rs = append(rs, rule(OutputChain, cat(
			[]string{"!", "-d", loopback, "-o", "lo", "-m", "owner", "--uid-owner", strconv.FormatInt(c.ProxyUID, 10)},
			comment(CommentRedirectLocal), toInbound)...))
	}
	if c.ProxyGID != NoID {
		rs = append(rs, rule(OutputChain, cat(
			[]string{"!", "-d", loopback, "-o", "lo", "-m", "owner", "--gid-owner", strconv.FormatInt(c.ProxyGID, 10)},
			comment(CommentRedirectLocal), toInbound)...))
	}
	if c.ProxyUID != NoID {
		rs = append(rs, rule(OutputChain, cat(
			[]string{"-m", "owner", "--uid-owner", strconv.FormatInt(c.ProxyUID, 10)},
			comment(CommentIgnoreProxyUser), ret)...))
	}
	if c.ProxyGID != NoID {
		rs = append(rs, rule(OutputChain, cat(
			[]string{"-m", "owner", "--gid-owner", strconv.FormatInt(c.ProxyGID, 10)},
			comment(CommentIgnoreProxyGroup), ret)...))
	}
	rs = append(rs, rule(OutputChain, cat([]string{"-o", "lo"}, comment(CommentIgnoreLoopback), ret)...))
	for _, group := range multiport(c.OutboundPortsToIgnore) {
		rs = append(rs, rule(OutputChain, cat(
			[]string{"-p", "tcp", "-m", "multiport", "--dports", group},
			comment(CommentIgnoreOutboundPorts), ret)...))
	}
	for _, p := range c.subnetsOf(f) {
		rs = append(rs, rule(OutputChain, cat(
			[]string{"-d", p.String()}, comment(CommentIgnoreOutboundSubnet), ret)...))
	}
	rs = append(rs, rule(OutputChain, cat(
		[]string{"-p", "tcp"}, comment(CommentRedirectAllOutgoing),
		[]string{"-j", "REDIRECT", "--to-ports", strconv.Itoa(int(c.OutboundProxyPort))})...))
	return rs
}

// Jumps returns the two rules that send traffic into the proxy-init chains: PREROUTING to
// PROXY_INIT_REDIRECT and OUTPUT to PROXY_INIT_OUTPUT.
func Jumps() []Rule {
	return []Rule{
		rule("PREROUTING", cat(comment(CommentInstallPrerouting), []string{"-j", RedirectChain})...),
		rule("OUTPUT", cat(comment(CommentInstallOutput), []string{"-j", OutputChain})...),
	}
}
