// Command proxy-init is the l5d init container that installs the proxy's iptables rules.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "proxy-init: not implemented yet")
	os.Exit(1)
}
