//go:build tools

// Package tools pins the standard CNI plugins (github.com/containernetworking/plugins) that
// build.sh builds: bridge, host-local and loopback, the primary network of the local
// cluster's CNI mode.
package tools

import (
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
)
