package kube

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/pkg/eventually"
)

func TestStartNamesBuildCommandWhenBinariesMissing(t *testing.T) {
	t.Setenv("L5D_KUBE_BIN_DIR", t.TempDir())
	_, err := Start(Options{ControllerManager: true})
	if err == nil {
		t.Fatal("Start succeeded without binaries")
	}
	for _, want := range []string{"make kube-bins", "etcd", "kube-apiserver", "kube-controller-manager"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestPlainControlPlane runs a second, minimal control plane (no controller manager) to
// check what this package promises without one, and that Stop leaves nothing behind.
func TestPlainControlPlane(t *testing.T) {
	t.Parallel()
	if os.Getenv("L5D_SKIP_KUBE") == "1" {
		t.Skip("L5D_SKIP_KUBE=1")
	}
	c, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			c.Stop()
		}
	}()
	ctx := context.Background()
	var ns string
	t.Run("namespace", func(t *testing.T) {
		ns = c.Namespace(t, WithLabels(map[string]string{"team": "mesh"}))
		// Pods need the default service account, which no controller makes here.
		c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}})
		c.Apply(t, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n")
		got, err := c.Client().CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Labels["team"] != "mesh" {
			t.Errorf("namespace labels = %v, want team=mesh", got.Labels)
		}
	})
	// The subtest's cleanup deleted the namespace and its contents without a namespace controller.
	if _, err := c.Client().CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s after its test: err = %v, want NotFound", ns, err)
	}
	for what, list := range map[string]func() (int, error){
		"pods": func() (int, error) {
			l, err := c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return len(l.Items), err
		},
		"config maps": func() (int, error) {
			l, err := c.Client().CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
			return len(l.Items), err
		},
	} {
		if n, err := list(); err != nil || n != 0 {
			t.Errorf("%s left in deleted namespace %s: %d (err %v)", what, ns, n, err)
		}
	}

	var pids []pidRecord
	for _, p := range c.procs {
		start, err := processStart(p.cmd.Process.Pid)
		if err != nil {
			t.Fatalf("%s is not running before Stop: %v", p.name, err)
		}
		pids = append(pids, pidRecord{p.cmd.Process.Pid, start})
	}
	c.Stop()
	stopped = true
	for _, r := range pids {
		if r.alive() {
			t.Errorf("process %d still running after Stop", r.pid)
		}
	}
	if _, err := os.Stat(c.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run directory %s after Stop: %v, want it removed", c.dir, err)
	}
}

// startSleep starts a process that would outlive the test, in its own process group.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func TestReclaimStaleRunDirectories(t *testing.T) {
	root := t.TempDir()
	self, err := processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	mkRun := func(name string, owner *pidRecord, children ...*exec.Cmd) string {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Join(dir, "pids"), 0o700); err != nil {
			t.Fatal(err)
		}
		if owner != nil {
			if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(owner.String()), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range children {
			if err := writePidFile(filepath.Join(dir, "pids", strconv.Itoa(i)+".pid"), c.Process.Pid); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	orphan := startSleep(t)
	kept := startSleep(t)
	// Same pid as this process but another start time: the owner died and its pid was reused.
	dead := mkRun("run-dead", &pidRecord{os.Getpid(), self + 1}, orphan)
	live := mkRun("run-live", &pidRecord{os.Getpid(), self}, kept)
	fresh := mkRun("run-fresh", nil)

	reclaimStale(root)

	done := make(chan error, 1)
	go func() { done <- orphan.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the process of a dead run was not killed")
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead run directory: %v, want it removed", err)
	}
	for _, dir := range []string{live, fresh} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s was removed: %v", dir, err)
		}
	}
	if _, err := processStart(kept.Process.Pid); err != nil {
		t.Errorf("the process of a live run was killed: %v", err)
	}
}

// TestChildrenDieWithTestBinary SIGKILLs a copy of this test binary that started a child
// through a supervisor and checks the kernel killed the child too (Pdeathsig).
func TestChildrenDieWithTestBinary(t *testing.T) {
	if os.Getenv("L5D_KUBE_PDEATHSIG_CHILD") == "1" {
		sup := newSupervisor(os.Getenv("L5D_KUBE_PDEATHSIG_DIR"))
		p, err := sup.start("sleep", "/bin/sh", "-c", "exec sleep 600")
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("pid " + strconv.Itoa(p.cmd.Process.Pid) + "\n")
		select {} // until killed
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildrenDieWithTestBinary$")
	cmd.Env = append(os.Environ(), "L5D_KUBE_PDEATHSIG_CHILD=1", "L5D_KUBE_PDEATHSIG_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "pid ") {
		_ = cmd.Process.Kill()
		t.Fatalf("helper process said %q (%v)", line, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
	if err != nil {
		t.Fatal(err)
	}
	grandchild := pidRecord{pid: pid}
	if grandchild.start, err = processStart(pid); err != nil {
		t.Fatalf("grandchild %d not running: %v", pid, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	eventually.NoErrorWithin(t, 30*time.Second, "the grandchild to die with its parent", func() error {
		if grandchild.alive() {
			return errors.New("still running")
		}
		return nil
	})
}
