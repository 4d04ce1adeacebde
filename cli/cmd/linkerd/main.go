// Command linkerd is the linkerd command-line interface of l5d.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/l5d-go/l5d/cli/command"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := command.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
