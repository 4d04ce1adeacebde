// Command pause is the process of a pod sandbox (the image registry.k8s.io/pause that
// containerd starts first in every pod, holding its namespaces): it does nothing but reap
// the zombies of a pod that shares its process namespace, and exits on SIGINT or SIGTERM.
// Built into that image by make images, so the local cluster's containerd needs no image from
// the Internet.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		if os.Args[1] == "-v" {
			fmt.Println("pause (l5d)")
			return
		}
		fmt.Fprintln(os.Stderr, "pause: takes no arguments (-v prints the version)")
		os.Exit(1)
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: warning: not running as PID 1")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			fmt.Fprintf(os.Stderr, "pause: shutting down, got signal %v\n", s)
			os.Exit(0)
		}
		// Reap every child that has exited.
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
