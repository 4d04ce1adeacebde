// Command policy is the l5d policy controller: inbound and outbound policy discovery.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "policy: not implemented yet")
	os.Exit(1)
}
