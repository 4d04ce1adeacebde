// Command app is the program of test/kubelet's images. What it does depends on its first
// argument:
//
//	app serve          prints "serving", answers every HTTP request on :8080 with
//	                   "hello from <hostname>", and prints "tick N" every 100ms
//	app crash-once DIR exits 1 after printing "first run" unless DIR/ran exists (which
//	                   it creates); otherwise prints "second run" and serves
//	app streams        writes "to stdout" to stdout and "to stderr" to stderr, exits 3
//	app get URL        prints the body of an HTTP GET of URL; exits 1 if it fails
//	app whoami         prints "uid=U capeff=HEX capbnd=HEX rootfs=rw|ro"
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: app serve|crash-once DIR|streams|get URL")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve()
	case "crash-once":
		if len(os.Args) < 3 {
			fmt.Fprintln(os.Stderr, "usage: app crash-once DIR")
			os.Exit(2)
		}
		marker := filepath.Join(os.Args[2], "ran")
		if _, err := os.Stat(marker); err != nil {
			fmt.Println("first run")
			if err := os.WriteFile(marker, nil, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
			os.Exit(1)
		}
		fmt.Println("second run")
		serve()
	case "get":
		if len(os.Args) < 3 {
			fmt.Fprintln(os.Stderr, "usage: app get URL")
			os.Exit(2)
		}
		resp, err := http.Get(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		if _, err := io.Copy(os.Stdout, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			fmt.Fprintln(os.Stderr, resp.Status, err)
			os.Exit(1)
		}
	case "whoami":
		whoami()
	case "streams":
		fmt.Fprintln(os.Stdout, "to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
		os.Exit(3)
	default:
		fmt.Fprintf(os.Stderr, "app: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}

func serve() {
	host, _ := os.Hostname()
	fmt.Println("serving")
	go func() {
		for i := 1; ; i++ {
			time.Sleep(100 * time.Millisecond)
			fmt.Printf("tick %d\n", i)
		}
	}()
	err := http.ListenAndServe(":8080", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	}))
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// whoami prints the process's user, effective and bounding capability sets and whether
// the root file system takes a new file.
func whoami() {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	capsOf := func(field string) string {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return "?"
	}
	rootfs := "ro"
	if f, err := os.CreateTemp("/", "probe-"); err == nil {
		rootfs = "rw"
		f.Close()
		os.Remove(f.Name())
	}
	fmt.Printf("uid=%d capeff=%s capbnd=%s rootfs=%s\n", os.Getuid(), capsOf("CapEff"), capsOf("CapBnd"), rootfs)
}
