// Command destination is the l5d destination service: endpoint and profile discovery.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "destination: not implemented yet")
	os.Exit(1)
}
