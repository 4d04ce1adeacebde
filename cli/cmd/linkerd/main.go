// Command linkerd is the linkerd command-line interface of l5d.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/l5d-go/l5d/cli/command"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := command.Root(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(command.ExitCode(err))
	}
}
