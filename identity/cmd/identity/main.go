// Command identity is the l5d identity service: the mesh certificate authority.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "identity: not implemented yet")
	os.Exit(1)
}
