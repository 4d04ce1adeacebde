// Command echo-advanced is the echo server of the Gateway API conformance suite's mesh tests
// (package test/echo), built into the image registry.k8s.io/gateway-api/echo-advanced as
// /usr/local/bin/server with /usr/local/bin/client linking to it. Run as "client" (by that
// name or with "client" as first argument) it is the echo client:
//
//	server --port=8080 --grpc=7070 --tcp=9090 --port=8443 --tls=8443 --crt=/cert.crt --key=/cert.key
//	client http://echo/path --method=GET -H name:value --count=10
//
// Without a port flag the server serves Istio echo's defaults: HTTP on 8080, gRPC on 7070
// and TCP on 9090.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/l5d-go/l5d/test/demo/serve"
	"github.com/l5d-go/l5d/test/echo"
)

func main() {
	args := os.Args[1:]
	client := filepath.Base(os.Args[0]) == "client"
	if !client && len(args) > 0 && args[0] == "client" {
		client, args = true, args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if client {
		r, err := echo.ParseClientArgs(args)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := echo.Do(ctx, os.Stdout, r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := runServer(ctx, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// ports is a repeatable port flag.
type ports []int

func (p *ports) String() string { return fmt.Sprint([]int(*p)) }

func (p *ports) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q is not a TCP port", s)
		}
		*p = append(*p, n)
	}
	return nil
}

func runServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	var s echo.Server
	fs.Var((*ports)(&s.HTTPPorts), "port", "HTTP port (repeatable; HTTPS when also given to --tls)")
	fs.Var((*ports)(&s.GRPCPorts), "grpc", "gRPC port (repeatable)")
	fs.Var((*ports)(&s.TCPPorts), "tcp", "TCP echo port (repeatable)")
	fs.Var((*ports)(&s.TLSPorts), "tls", "port of --port or --grpc that serves TLS (repeatable)")
	fs.StringVar(&s.Cert, "crt", "", "TLS certificate (PEM)")
	fs.StringVar(&s.Key, "key", "", "TLS key (PEM)")
	fs.StringVar(&s.Version, "version", "", "version reported as ServiceVersion")
	fs.StringVar(&s.Cluster, "cluster", "", "cluster reported as Cluster")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(s.HTTPPorts)+len(s.GRPCPorts)+len(s.TCPPorts) == 0 {
		// Istio's echo serves its default ports when given none, as the conformance
		// suite's consumer namespace expects (its echo-v1 has no arguments).
		s.HTTPPorts, s.GRPCPorts, s.TCPPorts = []int{8080}, []int{7070}, []int{9090}
	}
	s.Log = serve.Logger("echo")
	return s.Run(ctx)
}
