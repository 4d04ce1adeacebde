// Command proxy-init is the l5d init container: it installs the nat-table rules that send a
// pod's inbound TCP connections to the proxy's inbound port (4143) and its outbound ones to
// the proxy's outbound port (4140), exempting the proxy's own user (2102), with Linkerd's
// flags. --simulate prints the iptables-restore input instead of applying it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/l5d-go/l5d/pkg/logging"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/proxy-init/iptables"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// portListFlag collects a repeatable, comma-separated port list flag.
type portListFlag struct{ list proxyconf.Ports }

func (f *portListFlag) String() string { return f.list.String() }

func (f *portListFlag) Set(s string) error {
	l, err := proxyconf.ParsePorts(s)
	if err != nil {
		return err
	}
	f.list = proxyconf.JoinPorts(f.list, l)
	return nil
}

// subnetListFlag collects a repeatable, comma-separated CIDR list flag.
type subnetListFlag struct{ list []string }

func (f *subnetListFlag) String() string { return strings.Join(f.list, ",") }

func (f *subnetListFlag) Set(s string) error {
	if _, err := proxyconf.ParseNetworks(s); err != nil {
		return err
	}
	f.list = append(f.list, s)
	return nil
}

// run is proxy-init with its arguments; it returns the exit code: 0 on success, 1 when
// the rules could not be installed, 2 for bad flags.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxy-init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		inPort, outPort   int
		uid, gid          int64
		redirect          portListFlag
		inIgnore          portListFlag
		outIgnore         portListFlag
		skipSubnets       subnetListFlag
		simulate, useWait bool
		netnsPath         string
		closeWait         int
		binPath, savePath string
		mode              string
		ipv6              bool
	)
	intVar := func(p *int, name, short string, def int, usage string) {
		fs.IntVar(p, name, def, usage)
		if short != "" {
			fs.IntVar(p, short, def, "shorthand for --"+name)
		}
	}
	intVar(&inPort, "incoming-proxy-port", "p", iptables.DefaultInboundProxyPort, "port inbound TCP connections are redirected to (the proxy's inbound listener)")
	intVar(&outPort, "outgoing-proxy-port", "o", iptables.DefaultOutboundProxyPort, "port outbound TCP connections are redirected to (the proxy's outbound listener)")
	fs.Int64Var(&uid, "proxy-uid", iptables.DefaultProxyUID, "user id the proxy runs as; its connections are never redirected (-1: none)")
	fs.Int64Var(&uid, "u", iptables.DefaultProxyUID, "shorthand for --proxy-uid")
	fs.Int64Var(&gid, "proxy-gid", iptables.NoID, "group id whose connections are never redirected (-1: none)")
	fs.Var(&redirect, "ports-to-redirect", "inbound ports and ranges to redirect, comma-separated (default: all)")
	fs.Var(&redirect, "r", "shorthand for --ports-to-redirect")
	fs.Var(&inIgnore, "inbound-ports-to-ignore", "inbound ports and ranges never redirected, e.g. 4190,4191,8000-9000")
	fs.Var(&outIgnore, "outbound-ports-to-ignore", "outbound ports and ranges never redirected, e.g. 25,587,8000-9000")
	fs.Var(&skipSubnets, "subnets-to-ignore", "CIDR subnets whose connections (to or from) are never redirected, e.g. 10.0.0.0/8,fd00::/8")
	fs.BoolVar(&simulate, "simulate", false, "print the iptables-restore input that would be applied and change nothing")
	fs.StringVar(&netnsPath, "netns", "", "path of the network namespace to configure (default: the current one)")
	fs.BoolVar(&useWait, "use-wait-flag", false, "pass -w to iptables-restore so it waits for the xtables lock")
	fs.BoolVar(&useWait, "w", false, "shorthand for --use-wait-flag")
	fs.IntVar(&closeWait, "timeout-close-wait-secs", 0, "set net.netfilter.nf_conntrack_tcp_timeout_close_wait to this many seconds (0: leave it)")
	fs.StringVar(&mode, "iptables-mode", iptables.ModeLegacy, "iptables backend: legacy or nft")
	fs.StringVar(&binPath, "firewall-bin-path", "", "iptables binary, overriding --iptables-mode; its -restore sibling applies the rules (default iptables-<mode>)")
	fs.StringVar(&savePath, "firewall-save-bin-path", "", "iptables-save binary (default: the iptables binary followed by -save)")
	fs.BoolVar(&ipv6, "ipv6", true, "also install the rules for IPv6 with ip6tables")
	logCfg := logging.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "proxy-init: unexpected arguments %q\n", fs.Args())
		return 2
	}
	log, err := logCfg.New(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "proxy-init: %v\n", err)
		return 2
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "proxy-init: "+format+"\n", a...)
		return 2
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"incoming-proxy-port", inPort}, {"outgoing-proxy-port", outPort}} {
		if p.v < 1 || p.v > 65535 {
			return usageErr("--%s %d: must be a TCP port, 1-65535", p.name, p.v)
		}
	}
	prefixes, err := proxyconf.ParseNetworks(skipSubnets.String())
	if err != nil {
		return usageErr("--subnets-to-ignore: %v", err)
	}
	if closeWait < 0 {
		return usageErr("--timeout-close-wait-secs %d: must not be negative", closeWait)
	}
	if binPath == "" {
		if binPath, err = iptables.ModeBinary(mode); err != nil {
			return usageErr("--iptables-mode: %v", err)
		}
	}
	if savePath == "" {
		savePath = binPath + "-save"
	}
	backends, err := iptables.PathBackends(binPath, savePath, ipv6)
	if err != nil {
		return usageErr("%v", err)
	}
	inst := &iptables.Installer{
		Config: iptables.Config{
			InboundProxyPort:      uint16(inPort),
			OutboundProxyPort:     uint16(outPort),
			ProxyUID:              uid,
			ProxyGID:              gid,
			PortsToRedirect:       redirect.list,
			InboundPortsToIgnore:  inIgnore.list,
			OutboundPortsToIgnore: outIgnore.list,
			SubnetsToIgnore:       prefixes,
		},
		Backends:             backends,
		Wait:                 useWait,
		NetNS:                netnsPath,
		CloseWaitTimeoutSecs: closeWait,
		Log:                  log,
	}
	if err := inst.Config.Validate(); err != nil {
		return usageErr("%v", err)
	}
	if uid == iptables.NoID && gid == iptables.NoID {
		log.Warn("no --proxy-uid or --proxy-gid: the proxy's own outbound connections will be redirected back to it")
	}
	if simulate {
		if err := inst.Simulate(ctx, stdout); err != nil {
			fmt.Fprintf(stderr, "proxy-init: %v\n", err)
			return 1
		}
		return 0
	}
	if err := inst.Apply(ctx); err != nil {
		fmt.Fprintf(stderr, "proxy-init: %v\n", err)
		return 1
	}
	log.Info("proxy-init rules installed")
	return 0
}
