// Command linkerd is the linkerd command-line interface.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "linkerd: not implemented yet")
	os.Exit(1)
}
