// Package origdst reads the destination a redirected TCP connection was originally sent
// to, before an iptables REDIRECT rule sent it to the proxy (SO_ORIGINAL_DST for IPv4,
// IP6T_SO_ORIGINAL_DST for IPv6).
package origdst

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h), also IP6T_SO_ORIGINAL_DST.
const soOriginalDst = 80

// ErrNotTracked is wrapped by Lookup's error when conntrack has no entry for the
// connection: conntrack is not active in the socket's network namespace (no nat rules
// there), so the connection cannot have been redirected.
var ErrNotTracked = errors.New("origdst: connection not tracked by conntrack")

// Lookup returns the original destination of conn, an accepted TCP connection: where the
// client sent it before a nat-table REDIRECT (proxy-init's) sent it to the listener. An
// IPv4 connection accepted on a dual-stack socket gives an IPv4 address. For a connection
// that was not redirected, it returns conn's own local address when conntrack tracks the
// namespace, and an error wrapping ErrNotTracked when it does not. Any other failure is
// returned with the local address in the message.
func Lookup(conn *net.TCPConn) (netip.AddrPort, error) {
	local, ok := conn.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, errors.New("origdst: not a TCP connection")
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: %w", err)
	}
	v6 := local.IP.To4() == nil
	var dst netip.AddrPort
	var sockErr error
	err = raw.Control(func(fd uintptr) {
		if v6 {
			dst, sockErr = lookup6(int(fd))
		} else {
			dst, sockErr = lookup4(int(fd))
		}
	})
	if err == nil {
		err = sockErr
	}
	if errors.Is(err, syscall.ENOENT) {
		return netip.AddrPort{}, fmt.Errorf("%w: reading SO_ORIGINAL_DST of %s: %w", ErrNotTracked, local, err)
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: reading SO_ORIGINAL_DST of %s: %w", local, err)
	}
	return dst, nil
}

func lookup4(fd int) (netip.AddrPort, error) {
	var sa unix.RawSockaddrInet4
	n := uint32(unsafe.Sizeof(sa))
	if err := getsockopt(fd, unix.SOL_IP, soOriginalDst, unsafe.Pointer(&sa), &n); err != nil {
		return netip.AddrPort{}, err
	}
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port), nil
}

func lookup6(fd int) (netip.AddrPort, error) {
	var sa unix.RawSockaddrInet6
	n := uint32(unsafe.Sizeof(sa))
	if err := getsockopt(fd, unix.SOL_IPV6, soOriginalDst, unsafe.Pointer(&sa), &n); err != nil {
		return netip.AddrPort{}, err
	}
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port), nil
}

func getsockopt(fd, level, opt int, val unsafe.Pointer, n *uint32) error {
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(val), uintptr(unsafe.Pointer(n)), 0)
	if errno != 0 {
		return syscall.Errno(errno)
	}
	return nil
}
