// Command hello is the localcluster integration test's app: it answers every HTTP request
// on :$PORT (default 8080) with "hello from <hostname>".
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	host, err := os.Hostname()
	if err != nil {
		log.Fatalf("hello: hostname: %v", err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s", host)
	})
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
