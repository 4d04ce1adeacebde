// Command injector is the l5d proxy injector: the mutating admission webhook.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "injector: not implemented yet")
	os.Exit(1)
}
