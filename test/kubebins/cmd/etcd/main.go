// Command etcd is the etcd server, built from Go modules so the test substrate needs no
// prebuilt download.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
