package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` keeps its namespace files.
const netnsDir = "/run/netns"

// Namespace is one named network namespace made by this package.
type Namespace struct {
	name string
	fd   int // open /run/netns/<name>

	starts chan startRequest // served by the spawner thread; closed by close

	mu      sync.Mutex
	closed  bool
	running map[*Process]struct{}
}

// startRequest asks the spawner thread to fork cmd.
type startRequest struct {
	cmd   *exec.Cmd
	reply chan error
}

// Name is the namespace's name as `ip netns list` shows it; `ip netns exec NAME ...` and
// `ip -n NAME ...` work with it.
func (ns *Namespace) Name() string { return ns.name }

// Path is the namespace's file, for setns(2) or a program's --netns flag.
func (ns *Namespace) Path() string { return filepath.Join(netnsDir, ns.name) }

// String returns the namespace's name.
func (ns *Namespace) String() string { return ns.name }

// createNamespace makes the named namespace and its spawner thread.
func createNamespace(name string) (*Namespace, error) {
	if _, err := ipCmd("", "netns", "add", name); err != nil {
		return nil, err
	}
	fd, err := unix.Open(filepath.Join(netnsDir, name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_, _ = ipCmd("", "netns", "del", name)
		return nil, fmt.Errorf("netns: opening namespace %s: %w", name, err)
	}
	ns := &Namespace{name: name, fd: fd, starts: make(chan startRequest), running: map[*Process]struct{}{}}
	ready := make(chan error, 1)
	go ns.spawner(ready)
	if err := <-ready; err != nil {
		unix.Close(fd)
		_, _ = ipCmd("", "netns", "del", name)
		return nil, err
	}
	return ns, nil
}

// spawner forks every process of the namespace. Its thread joins the namespace once and is
// never unlocked: children inherit the namespace from it, and their Pdeathsig is tied to
// it, so they die when the namespace is closed or the test binary ends. When starts is
// closed the goroutine returns and the thread is retired with it.
func (ns *Namespace) spawner(ready chan<- error) {
	runtime.LockOSThread()
	if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
		ready <- fmt.Errorf("netns: joining namespace %s: %w", ns.name, err)
		return
	}
	ready <- nil
	for req := range ns.starts {
		req.reply <- req.cmd.Start()
	}
}

// Do runs f inside the namespace, on an OS thread locked to it, and returns f's error.
// Sockets f creates stay in the namespace after f returns and can be used anywhere.
// Goroutines f starts do not run in the namespace. f must not call t.Fatal (it runs on
// another goroutine); return an error instead. A panic in f is raised again in the caller.
func (ns *Namespace) Do(f func() error) error {
	return ns.do(nil, f)
}

// DoAs is Do with the thread's filesystem user and group ids set to uid and gid while f
// runs, so sockets f creates belong to uid/gid as iptables' owner match sees them (the
// proxy's uid 2102, say). Real and effective ids do not change.
func (ns *Namespace) DoAs(uid, gid uint32, f func() error) error {
	return ns.do(&[2]uint32{uid, gid}, f)
}

func (ns *Namespace) do(ids *[2]uint32, f func() error) error {
	type result struct {
		err      error
		panicked bool
		value    any
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread's namespace (and ids) differ from the process's, so
		// it is retired when this goroutine returns.
		runtime.LockOSThread()
		var r result
		defer func() {
			if v := recover(); v != nil {
				r = result{panicked: true, value: v}
			}
			done <- r
		}()
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			r.err = fmt.Errorf("netns: joining namespace %s: %w", ns.name, err)
			return
		}
		if ids != nil {
			// Both change only this thread; the invalid id -1 reads the current value back.
			_ = unix.Setfsgid(int(ids[1]))
			_ = unix.Setfsuid(int(ids[0]))
			uid, _ := unix.SetfsuidRetUid(-1)
			gid, _ := unix.SetfsgidRetGid(-1)
			if uid != int(ids[0]) || gid != int(ids[1]) {
				r.err = fmt.Errorf("netns: could not set the thread's fsuid/fsgid to %d/%d (they are %d/%d)", ids[0], ids[1], uid, gid)
				return
			}
		}
		r.err = f()
	}()
	r := <-done
	if r.panicked {
		panic(r.value)
	}
	return r.err
}

// Listen is net.Listen inside the namespace.
func (ns *Namespace) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := ns.Do(func() (err error) {
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// Dial is net.Dialer.DialContext inside the namespace; address should be a literal IP and
// port.
func (ns *Namespace) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// AsUser sets cmd to run as uid and gid with no supplementary groups, and returns it.
func AsUser(cmd *exec.Cmd, uid, gid uint32) *exec.Cmd {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}
	return cmd
}

// Process is a program started in a namespace with Start.
type Process struct {
	// Cmd is the started command; read its output buffers only after Wait returns.
	Cmd  *exec.Cmd
	ns   *Namespace
	done chan struct{}
	err  error
}

// Start starts cmd inside the namespace, in a process group of its own, with SIGKILL as
// its parent-death signal (unless cmd sets another). cmd's environment, directory, output
// and credentials (see AsUser) are the caller's to set. The process is killed when the
// namespace is closed; call Wait or Kill rather than cmd.Wait.
func (ns *Namespace) Start(cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.closed {
		return nil, fmt.Errorf("netns: namespace %s is closed", ns.name)
	}
	reply := make(chan error, 1)
	ns.starts <- startRequest{cmd: cmd, reply: reply}
	if err := <-reply; err != nil {
		return nil, fmt.Errorf("netns: starting %s in %s: %w", cmd.Path, ns.name, err)
	}
	p := &Process{Cmd: cmd, ns: ns, done: make(chan struct{})}
	ns.running[p] = struct{}{}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		ns.mu.Lock()
		delete(ns.running, p)
		ns.mu.Unlock()
	}()
	return p, nil
}

// Run starts cmd inside the namespace (see Start) and waits for it to end.
func (ns *Namespace) Run(cmd *exec.Cmd) error {
	p, err := ns.Start(cmd)
	if err != nil {
		return err
	}
	return p.Wait()
}

// Pid is the process id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to end and returns how it ended, as exec.Cmd.Wait does. It may
// be called any number of times, from any goroutine.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process's group.
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return os.ErrProcessDone
	default:
	}
	if err := syscall.Kill(-p.Pid(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("netns: signalling process group %d: %w", p.Pid(), err)
	}
	return nil
}

// Kill kills the process's group with SIGKILL and waits for the process to end. It
// returns an error only if the process does not end.
func (p *Process) Kill() error {
	_ = p.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("netns: process %d in %s did not end 30s after SIGKILL", p.Pid(), p.ns.name)
	}
}

// close kills the namespace's processes, retires its spawner thread and deletes it.
func (ns *Namespace) close() error {
	ns.mu.Lock()
	if ns.closed {
		ns.mu.Unlock()
		return nil
	}
	ns.closed = true
	procs := make([]*Process, 0, len(ns.running))
	for p := range ns.running {
		procs = append(procs, p)
	}
	close(ns.starts)
	ns.mu.Unlock()
	var errs []error
	for _, p := range procs {
		if err := p.Kill(); err != nil {
			errs = append(errs, err)
		}
	}
	unix.Close(ns.fd)
	if _, err := ipCmd("", "netns", "del", ns.name); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
