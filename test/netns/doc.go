// Package netns gives tests "pods": Linux network namespaces wired to a bridge, with real
// addresses, where proxy-init installs real iptables rules and apps and proxies run.
//
// A Network is a bridge (br0) inside a namespace of its own, which plays the node's network
// namespace; the host namespace's links, routes and rules are never touched. Each Pod is a
// namespace joined to the bridge by a veth pair (eth0 in the pod), with lo up, an IPv4
// address from 10.244.0.0/16 and an IPv6 address from fd00:244::/64 (usable at once: no
// duplicate address detection), and default routes via the bridge's 10.244.0.1 and
// fd00:244::1. Every Network has its own bridge namespace, so addresses repeat between
// Networks without clashing, and test packages can run at the same time.
//
// Usage (as root; New skips the test otherwise):
//
//	n := netns.New(t)                   // removed, with pods and processes, when t ends
//	a, b := n.Pod(t, "a"), n.Pod(t, "b")
//	err := n.RemovePod("a")              // kills a's processes, deletes its namespace
//	ln, err := b.Listen("tcp", ":8080") // a socket inside b
//	conn, err := a.Dial(ctx, "tcp", netip.AddrPortFrom(b.IPv4, 8080).String())
//	err = a.Do(func() error { ... })                // any Go code, run inside a
//	err = a.DoAs(2102, 2102, func() error { ... })  // sockets made in f belong to uid 2102
//	cmd := netns.AsUser(exec.Command(bin, args...), 2102, 2102) // uid/gid, no extra groups
//	cmd.Env = []string{"LINKERD2_PROXY_LOG=info"} // exactly this environment
//	p, err := a.Start(cmd)                        // a process inside a
//	defer p.Kill()                                // or p.Wait(); a.Run(cmd) does both
//
// Sockets belong to the namespace they were created in for their whole life: a listener
// made with Listen or inside Do can be used from any goroutine afterwards. Code in Do runs
// on an OS thread locked into the namespace (retired afterwards, never reused); goroutines
// it starts run in the test's own namespace, and name resolution may start goroutines, so
// dial literal addresses. Processes started with Start are forked from a thread that lives
// in the namespace for the namespace's whole life, run in their own process group, and get
// SIGKILL if the test binary dies (Pdeathsig).
//
// n.Node is the bridge's namespace, the "node": node-level rules (kube-proxy's, say) go
// there, with its Do, Start or Run like any pod's. Pod.Path gives a namespace's file for
// programs that take one (proxy-init --netns).
//
// Namespaces are named l5dt-<pid>-<start time>-<network>-<pod> (`ip netns list` shows
// them). The first New or NewNetwork of a process removes namespaces left by test
// processes that no longer exist (a run killed before its cleanup), killing what still runs
// in them; Reclaim does the same on demand. Leftovers lists the namespaces of the current
// process still present, for a TestMain to assert that nothing was left behind. Needs the
// ip command (Debian package iproute2).
package netns
