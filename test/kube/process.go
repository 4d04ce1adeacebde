package kube

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one running control-plane program.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// spawnRequest asks the spawner thread to start cmd.
type spawnRequest struct {
	cmd   *exec.Cmd
	reply chan error
}

// supervisor starts and stops the processes of one run directory.
//
// Children get Pdeathsig=SIGKILL, which the kernel delivers when the *thread* that forked
// them exits. Go may retire threads (a goroutine that exits while locked to its thread takes
// the thread with it, as network-namespace code often does on purpose), so every child is
// forked from one goroutine locked to its own thread for the supervisor's whole life. The
// children then die with the test binary however it ends, even by SIGKILL or a timeout panic.
type supervisor struct {
	dir   string
	spawn chan spawnRequest

	mu      sync.Mutex
	stopped bool
	procs   []*process
}

// newSupervisor starts the spawner thread for run directory dir.
func newSupervisor(dir string) *supervisor {
	s := &supervisor{dir: dir, spawn: make(chan spawnRequest)}
	go s.spawner()
	return s
}

func (s *supervisor) spawner() {
	runtime.LockOSThread()
	// Never unlocked: when the channel closes, the goroutine exits and its thread is
	// retired with it, which kills any child still alive.
	for req := range s.spawn {
		req.reply <- req.cmd.Start()
	}
}

// start runs bin with args, its output appended to logs/<name>.log, in a process group of
// its own, and records its pid so a later run can reclaim it if this one is killed.
func (s *supervisor) start(name, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(s.dir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, fmt.Errorf("creating log directory: %w", err)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2", "GOTRACEBACK=all")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, errors.New("kube: the control plane is stopping")
	}
	reply := make(chan error, 1)
	s.spawn <- spawnRequest{cmd: cmd, reply: reply}
	if err := <-reply; err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	s.procs = append(s.procs, p)
	if err := writePidFile(filepath.Join(s.dir, "pids", name+".pid"), cmd.Process.Pid); err != nil {
		return p, err
	}
	return p, nil
}

// stop kills every process group, newest first, waits for the processes to exit and ends
// the spawner thread. It is safe to call more than once and from a signal handler.
func (s *supervisor) stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	procs := s.procs
	close(s.spawn)
	s.mu.Unlock()
	// The data is thrown away, so there is nothing to shut down gracefully for.
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Process.Kill()
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	}
}

// pidRecord identifies a process across pid reuse: a pid and its start time in clock ticks
// since boot (field 22 of /proc/<pid>/stat).
type pidRecord struct {
	pid   int
	start uint64
}

func (r pidRecord) String() string { return fmt.Sprintf("%d %d", r.pid, r.start) }

// processStart returns the start time of pid, or an error when it does not exist.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); the start time is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// alive reports whether the process recorded in r is still the one running.
func (r pidRecord) alive() bool {
	start, err := processStart(r.pid)
	return err == nil && start == r.start
}

func writePidFile(path string, pid int) error {
	start, err := processStart(pid)
	if err != nil {
		return fmt.Errorf("reading start time of pid %d: %w", pid, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating pid directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(pidRecord{pid, start}.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing pid file: %w", err)
	}
	return nil
}

func readPidFile(path string) (pidRecord, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return pidRecord{}, err
	}
	var r pidRecord
	if _, err := fmt.Sscanf(string(b), "%d %d", &r.pid, &r.start); err != nil || r.pid <= 0 {
		return pidRecord{}, fmt.Errorf("malformed pid file %s", path)
	}
	return r, nil
}

// WriteOwnerFile records this process (its pid and start time) in path, so that another
// process can tell with OwnerGone whether it still runs, as run directories do here.
func WriteOwnerFile(path string) error { return writePidFile(path, os.Getpid()) }

// OwnerGone reports whether the process WriteOwnerFile recorded in path has ended (or the
// file is missing or malformed); a reused pid does not count as the same process.
func OwnerGone(path string) bool {
	r, err := readPidFile(path)
	return err != nil || !r.alive()
}
