package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// shimArg0 is the argv[0] under which the agent re-executes its own binary as the shim
// that turns a fresh mount namespace into a container and execs the container's program.
const shimArg0 = "l5d-container-shim"

// shimSpec is what the shim does before exec: passed as JSON in argv[1].
type shimSpec struct {
	// Argv is the program (an absolute path) and its arguments.
	Argv []string `json:"argv"`
	// Dir is the working directory; empty means /.
	Dir string `json:"dir,omitempty"`
	// UID, GID and Groups are the process's credentials.
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
	// Hostname is set in the process's own UTS namespace when not empty.
	Hostname string `json:"hostname,omitempty"`
	// Mounts are bind mounts made in the process's own mount namespace, parents first.
	Mounts []shimMount `json:"mounts,omitempty"`
	// Caps are capability numbers a non-root program keeps (securityContext.capabilities.add).
	Caps []uintptr `json:"caps,omitempty"`
}

// shimMount bind-mounts Source (a file or directory) at Target.
type shimMount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// init turns the process into the shim when it was started as one: this runs before the
// importing program's main (or a test binary's flag parsing) and never returns then.
func init() {
	if len(os.Args) == 2 && os.Args[0] == shimArg0 {
		err := runShim(os.Args[1])
		fmt.Fprintf(os.Stderr, "l5d-container: %v\n", err)
		os.Exit(shimFailed)
	}
}

// shimFailed is the exit status of a shim that could not start the container's program.
const shimFailed = 128

// runShim sets up the container around the calling process and execs its program; it
// returns only on failure. It expects to run in new mount and UTS namespaces (the agent
// starts it with those unshared, which also makes / private).
func runShim(specJSON string) error {
	runtime.LockOSThread()
	var s shimSpec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		return fmt.Errorf("reading the container spec: %w", err)
	}
	if len(s.Argv) == 0 || !filepath.IsAbs(s.Argv[0]) {
		return fmt.Errorf("program %q: want an absolute path", s.Argv)
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("setting hostname %q: %w", s.Hostname, err)
		}
	}
	mounts := append([]shimMount(nil), s.Mounts...)
	sort.SliceStable(mounts, func(i, j int) bool {
		return strings.Count(filepath.Clean(mounts[i].Target), "/") < strings.Count(filepath.Clean(mounts[j].Target), "/")
	})
	// The program, too, is opened before the mounts, which may cover the directory it is in.
	prog, err := os.OpenFile(s.Argv[0], unix.O_PATH, 0)
	if err != nil {
		return fmt.Errorf("program: %w", err)
	}
	// Open every source before mounting anything: a volume mounted over a parent of a later
	// source (an emptyDir at /run hides a run directory under /var/run) must not hide it.
	sources := make([]*os.File, len(mounts))
	for i, m := range mounts {
		f, err := os.OpenFile(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("mount source: %w", err)
		}
		sources[i] = f
	}
	for i, m := range mounts {
		if err := bindMount(m, sources[i]); err != nil {
			return err
		}
		sources[i].Close()
	}
	groups := make([]int, len(s.Groups))
	for i, g := range s.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setting groups %v: %w", s.Groups, err)
	}
	keepCaps := len(s.Caps) > 0 && s.UID != 0
	if keepCaps {
		if err := keepCapabilities(); err != nil {
			return err
		}
	}
	if err := syscall.Setgid(int(s.GID)); err != nil {
		return fmt.Errorf("setting gid %d: %w", s.GID, err)
	}
	if err := syscall.Setuid(int(s.UID)); err != nil {
		return fmt.Errorf("setting uid %d: %w", s.UID, err)
	}
	if keepCaps {
		if err := raiseAmbient(s.Caps); err != nil {
			return err
		}
	}
	// Changing credentials clears the parent-death signal the agent asked for; ask again,
	// and give up if the agent is already gone.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("setting the parent-death signal: %w", err)
	}
	if os.Getppid() == 1 {
		return errors.New("the node agent ended before the container started")
	}
	dir := s.Dir
	if dir == "" {
		dir = "/"
	}
	if err := os.Chdir(dir); err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if err := syscall.Exec(fmt.Sprintf("/proc/self/fd/%d", prog.Fd()), s.Argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", s.Argv[0], err)
	}
	return nil
}

// bindMount makes m's target (a directory, or an empty file for a file source) and
// bind-mounts the source, already opened as src (O_PATH), there, read-only if asked.
func bindMount(m shimMount, src *os.File) error {
	if !filepath.IsAbs(m.Target) {
		return fmt.Errorf("mount path %q: want an absolute path", m.Target)
	}
	fi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("mount source %s: %w", m.Source, err)
	}
	if fi.IsDir() {
		if err := os.MkdirAll(m.Target, 0o755); err != nil {
			return fmt.Errorf("making mount point: %w", err)
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(m.Target), 0o755); err != nil {
			return fmt.Errorf("making mount point: %w", err)
		}
		if _, err := os.Stat(m.Target); errors.Is(err, os.ErrNotExist) {
			f, err := os.OpenFile(m.Target, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("making mount point: %w", err)
			}
			f.Close()
		}
	}
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", src.Fd()), m.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting %s at %s: %w", m.Source, m.Target, err)
	}
	if m.ReadOnly {
		if err := unix.Mount("", m.Target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", m.Target, err)
		}
	}
	return nil
}
