// Package netns runs code inside another network namespace, for proxy-init's --netns flag
// (a CNI plugin configures a pod's namespace from the node's).
package netns

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs f on an OS thread that has joined the network namespace at path (a file such as
// /var/run/netns/NAME or /proc/PID/ns/net) and returns f's error. Sockets f opens and
// processes f starts (os/exec forks from the calling thread) belong to that namespace;
// goroutines f starts do not. The thread is retired after f returns rather than reused, so
// no other goroutine ever runs in the namespace by accident. An empty path runs f in the
// caller's namespace.
func Do(path string, f func() error) error {
	if path == "" {
		return f()
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	errc := make(chan error, 1)
	go func() {
		// Deliberately never unlocked: when this goroutine ends, its thread, now in
		// another namespace, ends with it.
		runtime.LockOSThread()
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			if errors.Is(err, unix.EINVAL) {
				err = fmt.Errorf("%w (%s is not a network namespace)", err, path)
			}
			errc <- fmt.Errorf("joining network namespace %s: %w", path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
