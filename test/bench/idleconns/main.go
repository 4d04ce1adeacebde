// Command idleconns holds many mostly idle HTTP/1.1 keep-alive connections open, for the
// many-connections rows of make bench-proxy: it opens -n connections to -addr, sends one
// GET on each and reads its response (so that every hop has carried a request on it), prints
// "ready N" and keeps them all open, idle, until its standard input ends; then it sends
// one more GET on each (every hop must have kept it open while it was idle), prints
// "verified N", closes them and exits. A connection that fails to open or to get a 2xx
// answer stops it with an error naming the connection and the problem.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "", "host:port to connect to")
	n := flag.Int("n", 1000, "connections to open")
	path := flag.String("path", "/", "request path")
	parallel := flag.Int("parallel", 64, "connections being opened at once")
	timeout := flag.Duration("timeout", 30*time.Second, "deadline for opening one connection and its first exchange")
	flag.Parse()
	if err := run(*addr, *n, *path, *parallel, *timeout, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "idleconns:", err)
		os.Exit(1)
	}
}

func run(addr string, n int, path string, parallel int, timeout time.Duration, hold io.Reader, out io.Writer) error {
	switch {
	case addr == "":
		return errors.New("-addr is required")
	case n < 1:
		return fmt.Errorf("-n %d: want at least one connection", n)
	case parallel < 1:
		return fmt.Errorf("-parallel %d: want at least 1", parallel)
	}
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	errs := make(chan error, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := exchange(addr, path, timeout)
			if err != nil {
				errs <- fmt.Errorf("connection %d of %d to %s: %w", i+1, n, addr, err)
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Fprintf(out, "ready %d\n", n)
	if _, err := io.Copy(io.Discard, hold); err != nil { // hold the connections until stdin ends
		return fmt.Errorf("holding the connections: %w", err)
	}
	return verify(conns, addr, path, parallel, timeout, out)
}

// verify sends one more GET on each held connection and checks its answer, parallel at
// a time, and prints "verified N".
func verify(conns []net.Conn, addr, path string, parallel int, timeout time.Duration, out io.Writer) error {
	errs := make(chan error, len(conns))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, c := range conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := get(c, addr, path, timeout); err != nil {
				errs <- fmt.Errorf("connection %d of %d to %s, held idle: %w", i+1, len(conns), addr, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Fprintf(out, "verified %d\n", len(conns))
	return nil
}

// exchange opens a connection, sends one keep-alive GET and reads its whole response.
func exchange(addr, path string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if err := get(c, addr, path, timeout); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// get sends one keep-alive GET on c and reads its whole response, a 2xx, within timeout.
func get(c net.Conn, addr, path string, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		return fmt.Errorf("sending the request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the response body: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %s", resp.Status)
	}
	c.SetDeadline(time.Time{})
	return nil
}
