// Command testapp is the program the node agent's tests run as containers. Its arguments
// are steps run in order:
//
//	env            prints "env NAME=VALUE" for every variable, sorted
//	id             prints "id uid=U gid=G groups=G1,G2 hostname=H"
//	cat:PATH       prints "cat PATH <content with newlines as \n>" (or "cat PATH error ...")
//	append:PATH:T  appends line T to PATH (or prints "append PATH error ...")
//	write:PATH:T   creates PATH holding line T, mode 0644 (or prints "write PATH error ...")
//	exit:N         exits with status N
//	wait:PATH      waits until PATH exists
//	follow:PATH:T  reads PATH every 20ms, printing "follow PATH <content>" (or "follow PATH
//	               absent") whenever what it reads changes, until it reads T
//	serve:ADDR     serves HTTP until SIGTERM: /code/N answers status N, anything else 200
//	sleep          waits for SIGTERM
//
// On SIGTERM it prints "terminated" and exits 0.
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		fmt.Println("terminated")
		os.Exit(0)
	}()
	for _, step := range os.Args[1:] {
		verb, arg, _ := strings.Cut(step, ":")
		switch verb {
		case "env":
			env := os.Environ()
			slices.Sort(env)
			for _, e := range env {
				fmt.Println("env " + e)
			}
		case "id":
			groups, _ := os.Getgroups()
			gs := make([]string, len(groups))
			for i, g := range groups {
				gs[i] = strconv.Itoa(g)
			}
			host, _ := os.Hostname()
			fmt.Printf("id uid=%d gid=%d groups=%s hostname=%s\n", os.Getuid(), os.Getgid(), strings.Join(gs, ","), host)
		case "cat":
			b, err := os.ReadFile(arg)
			if err != nil {
				fmt.Printf("cat %s error %v\n", arg, err)
				continue
			}
			fmt.Printf("cat %s %s\n", arg, strings.ReplaceAll(string(b), "\n", `\n`))
		case "append", "write":
			path, text, _ := strings.Cut(arg, ":")
			flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
			if verb == "write" {
				flags = os.O_CREATE | os.O_WRONLY | os.O_TRUNC
				text = strings.TrimSuffix(text, "\n")
			}
			f, err := os.OpenFile(path, flags, 0o644)
			if err == nil {
				_, err = fmt.Fprintln(f, text)
				f.Close()
			}
			if err != nil {
				fmt.Printf("%s %s error %v\n", verb, path, err)
			}
		case "exit":
			n, _ := strconv.Atoi(arg)
			os.Exit(n)
		case "wait":
			for {
				if _, err := os.Stat(arg); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		case "follow":
			path, want, _ := strings.Cut(arg, ":")
			last := "\x00"
			for {
				cur := readForFollow(path)
				if cur != last {
					fmt.Printf("follow %s %s\n", path, strings.ReplaceAll(cur, "\n", `\n`))
					last = cur
				}
				if cur == want {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		case "serve":
			http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				if code, ok := strings.CutPrefix(r.URL.Path, "/code/"); ok {
					n, _ := strconv.Atoi(code)
					w.WriteHeader(n)
					return
				}
				host, _ := os.Hostname()
				fmt.Fprintf(w, "hello from %s\n", host)
			})
			fmt.Println("serving " + arg)
			if err := http.ListenAndServe(arg, nil); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		case "sleep":
			select {}
		default:
			fmt.Fprintf(os.Stderr, "testapp: unknown step %q\n", step)
			os.Exit(2)
		}
	}
}

// readForFollow is the content of path, "absent" when it does not exist or "error ..." when
// it cannot be read. A path that vanishes is read once more: a Secret volume's file can
// resolve to the previous version's directory just as it is removed.
func readForFollow(path string) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b, err = os.ReadFile(path)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "absent"
	case err != nil:
		return "error " + err.Error()
	}
	return string(b)
}
