// Command linkerd-await blocks until the pod's proxy is ready, then runs the command given
// after "--" (if any) and exits with its status. As the proxy container's postStart hook it
// holds the application containers back until the proxy can serve them; as a wrapper it
// makes a Job's command start after the proxy and, with --shutdown, asks the proxy to exit
// (POST /shutdown) when the command ends, so that the Job completes.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("linkerd-await", flag.ContinueOnError)
	admin := fs.String("port", "4191", "the proxy's admin port on localhost")
	timeout := fs.Duration("timeout", 0, "give up after this long (0: wait forever)")
	shutdown := fs.Bool("shutdown", false, "ask the proxy to shut down (POST /shutdown) after the command exits")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	base := "http://127.0.0.1:" + *admin
	ctx := context.Background()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	if err := await(ctx, base+"/ready"); err != nil {
		fmt.Fprintf(os.Stderr, "linkerd-await: the proxy did not become ready: %v\n", err)
		return 1
	}
	code := 0
	if cmdArgs := fs.Args(); len(cmdArgs) > 0 {
		cmd := exec.Command(cmdArgs[0], cmdArgs[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else {
				fmt.Fprintf(os.Stderr, "linkerd-await: running %s: %v\n", cmdArgs[0], err)
				code = 127
			}
		}
	}
	if *shutdown {
		resp, err := http.Post(base+"/shutdown", "text/plain", nil)
		if err != nil {
			fmt.Fprintf(os.Stderr, "linkerd-await: asking the proxy to shut down: %v\n", err)
		} else {
			resp.Body.Close()
		}
	}
	return code
}

// await polls url until it answers 200 or ctx ends.
func await(ctx context.Context, url string) error {
	c := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
