package node

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// capabilityNumbers maps the capability names a securityContext may add (with or without
// the CAP_ prefix) to their Linux numbers.
var capabilityNumbers = map[string]uintptr{
	"CHOWN": unix.CAP_CHOWN, "DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE,
	"DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "FOWNER": unix.CAP_FOWNER,
	"FSETID": unix.CAP_FSETID, "KILL": unix.CAP_KILL, "SETGID": unix.CAP_SETGID,
	"SETUID": unix.CAP_SETUID, "SETPCAP": unix.CAP_SETPCAP,
	"NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "NET_BROADCAST": unix.CAP_NET_BROADCAST,
	"NET_ADMIN": unix.CAP_NET_ADMIN, "NET_RAW": unix.CAP_NET_RAW, "IPC_LOCK": unix.CAP_IPC_LOCK,
	"SYS_CHROOT": unix.CAP_SYS_CHROOT, "SYS_PTRACE": unix.CAP_SYS_PTRACE,
	"SYS_ADMIN": unix.CAP_SYS_ADMIN, "SYS_RESOURCE": unix.CAP_SYS_RESOURCE,
	"SYS_TIME": unix.CAP_SYS_TIME, "MKNOD": unix.CAP_MKNOD, "AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	"SETFCAP": unix.CAP_SETFCAP,
}

// addedCapabilities returns the numbers of the capabilities c's securityContext adds, or an
// error naming one this node does not know.
func addedCapabilities(c *corev1.Container) ([]uintptr, error) {
	if c.SecurityContext == nil || c.SecurityContext.Capabilities == nil {
		return nil, nil
	}
	var caps []uintptr
	for _, name := range c.SecurityContext.Capabilities.Add {
		n, ok := capabilityNumbers[strings.TrimPrefix(strings.ToUpper(string(name)), "CAP_")]
		if !ok {
			return nil, fmt.Errorf("container %s: capability %q is not supported by this node", c.Name, name)
		}
		caps = append(caps, n)
	}
	return caps, nil
}

// keepCapabilities, called on the locked thread before the uid changes, asks the kernel to
// keep the permitted capabilities across the change.
func keepCapabilities() error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keeping capabilities across the uid change: %w", err)
	}
	return nil
}

// raiseAmbient, called on the locked thread after the uid changed, makes caps effective,
// inheritable and ambient, so that a non-root program exec'd next holds them as the
// kubelet's runtime would give them.
func raiseAmbient(caps []uintptr) error {
	var mask uint64
	for _, c := range caps {
		mask |= 1 << c
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(mask), Permitted: uint32(mask), Inheritable: uint32(mask)},
		{Effective: uint32(mask >> 32), Permitted: uint32(mask >> 32), Inheritable: uint32(mask >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("setting capabilities: %w", err)
	}
	for _, c := range caps {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, c, 0, 0); err != nil {
			return fmt.Errorf("raising ambient capability %d: %w", c, err)
		}
	}
	return nil
}
