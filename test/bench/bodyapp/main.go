// Command bodyapp is the application of make bench-proxy's large-body rows: it reads each
// request's whole body, then answers 200 with -size bytes, so that a request carries its
// body and its response across every hop before the next one starts on that connection.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
)

func main() {
	addr := flag.String("addr", ":8082", "listen address")
	size := flag.Int("size", 1<<20, "response body size in bytes")
	flag.Parse()
	if *size < 0 {
		fmt.Fprintf(os.Stderr, "bodyapp: -size %d: want 0 or more bytes\n", *size)
		os.Exit(1)
	}
	body := bytes.Repeat([]byte("x"), *size)
	length := strconv.Itoa(*size)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", length)
		w.Write(body)
	})
	if err := http.ListenAndServe(*addr, h); err != nil {
		fmt.Fprintln(os.Stderr, "bodyapp:", err)
		os.Exit(1)
	}
}
