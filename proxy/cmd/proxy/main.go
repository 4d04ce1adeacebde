// Command proxy is the l5d data-plane proxy.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "proxy: not implemented yet")
	os.Exit(1)
}
