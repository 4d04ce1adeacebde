// Package node makes this machine a Kubernetes node for a test control plane: a small
// kubelet that runs pods as processes in test/netns network namespaces.
//
//	err := node.Run(ctx, node.Config{
//		Client:   cluster.Client(),
//		NodeName: "node-a",
//		Network:  network,                        // netns.NewNetwork(); pods join its bridge
//		Images:   func(image string) (string, error) { ... }, // image or command[0] -> local binary
//		HostsFile: hostsPath,                      // optional /etc/hosts for every container
//		ClusterDNS: dnsAddr,                       // optional: ClusterFirst pods' nameserver
//		RunDir:   dir,                             // volumes and logs
//	})
//
// Run registers the Node (Ready, InternalIP 10.244.0.1, pod CIDRs 10.244.0.0/16 and
// fd00:244::/64), keeps its Lease and heartbeat fresh, and runs every pod bound to it:
// a network namespace per pod (its IPv4 and IPv6 addresses become status.podIPs), init
// containers in order, native sidecars, then containers; each container is the binary
// Images names, started through a shim (this package's binary re-executed, see the init
// function) that enters a private mount and UTS namespace, bind-mounts the pod's volumes
// and the hosts file (and, with ClusterDNS, the kubelet's resolv.conf), takes the securityContext's uid/gid and execs the program with the
// environment the kubelet would give it. Secret, ConfigMap, downward API and projected
// volumes use the kubelet's atomic-writer layout (..data linking to a timestamped
// directory) and are rewritten while the pod runs when the objects they read change.
// Probes are dialled from the node's namespace;
// deletion stops containers with SIGTERM, then SIGKILL after the grace period, and
// confirms the deletion. See README.md for what is and is not supported.
//
// Because the shim is the importing binary itself, importing this package adds an init
// function that takes over a process started with argv[0] "l5d-container-shim"; nothing
// else changes for the program.
package node
