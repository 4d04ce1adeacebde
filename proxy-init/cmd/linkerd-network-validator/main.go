// Command linkerd-network-validator is the init container the injector adds instead of
// linkerd-init when the linkerd-cni plugin installs the redirect rules. It checks that they
// are in place, as Linkerd's network validator does: it listens on the proxy's outbound
// port, connects as the application would to an address outside the pod (a documentation
// address by default, which no packet reaches), and expects the connection to land on its
// own listener, proven by a random token read back. It exits 0 when it does; otherwise it
// exits 1 with a message saying the pod's network was not configured by the CNI plugin, so
// the pod fails to start instead of running unmeshed. It must not run as the proxy's user,
// whose connections are exempt.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/l5d-go/l5d/pkg/logging"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// Defaults: the proxy's outbound port, and TEST-NET-1 (RFC 5737), never routed anywhere.
const (
	defaultListen  = "0.0.0.0:4140"
	defaultConnect = "192.0.2.1:20001"
)

// run is the command with its arguments; it returns 0 when redirection works, 1 when it
// does not, 2 for bad flags.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("linkerd-network-validator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen-addr", defaultListen, "address to listen on: the proxy's outbound port, where redirected connections land")
	connect := fs.String("connect-addr", defaultConnect, "address outside the pod to connect to; redirection must take the connection to --listen-addr")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the redirected connection")
	logCfg := logging.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log, err := logCfg.New(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "linkerd-network-validator: %v\n", err)
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "linkerd-network-validator: --timeout %v: must be positive\n", *timeout)
		return 2
	}
	if _, _, err := net.SplitHostPort(*connect); err != nil {
		fmt.Fprintf(stderr, "linkerd-network-validator: --connect-addr %q: %v\n", *connect, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := validate(ctx, *listen, *connect, log); err != nil {
		msg := fmt.Sprintf("linkerd-network-validator: %v: the pod's traffic is not redirected to the proxy, so "+
			"the linkerd-cni plugin did not configure this pod's network; check that the linkerd-cni DaemonSet "+
			"runs on this pod's node and that its plugin is in the node's CNI configuration, then delete the pod", err)
		fmt.Fprintln(stderr, msg)
		writeTerminationMessage(msg)
		return 1
	}
	log.Info("redirection works: a connection to the outside landed on the proxy's outbound port",
		"connect-addr", *connect, "listen-addr", *listen)
	return 0
}

// validate listens on listen, connects to connect and checks that the connection it gets
// is its own, by a random token the listener sends.
func validate(ctx context.Context, listen, connect string, log *slog.Logger) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	defer ln.Close()
	raw := make([]byte, 16)
	rand.Read(raw)
	token := []byte(hex.EncodeToString(raw))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write(token)
			c.Close()
		}
	}()
	log.Debug("connecting", "connect-addr", connect)
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", connect)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("connecting to %s did not reach %s in time", connect, listen)
		}
		return fmt.Errorf("connecting to %s: %w", connect, err)
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("reading from the connection to %s: %w", connect, err)
	}
	if !bytes.Equal(got, token) {
		return fmt.Errorf("the connection to %s reached something other than the listener on %s", connect, listen)
	}
	return nil
}

// terminationLog is where the kubelet reads a container's termination message from, by
// default; it mounts the file, so the validator writes it only when it exists.
const terminationLog = "/dev/termination-log"

func writeTerminationMessage(msg string) {
	f, err := os.OpenFile(terminationLog, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, msg)
}
