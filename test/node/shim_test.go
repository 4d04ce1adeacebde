package node

import (
	"bytes"
	"encoding/json"
	corev1 "k8s.io/api/core/v1"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/l5d-go/l5d/test/netns"
)

// TestShimMakesTheContainerAroundTheProgram runs a shell through the shim in a pod and
// checks what it sees: its ids, hostname, bind mounts (read-only where asked) and hosts file,
// none of which leak into the host's mount table.
func TestShimMakesTheContainerAroundTheProgram(t *testing.T) {
	n := netns.New(t)
	pod := n.Pod(t, "shim")
	dir := t.TempDir()
	ro, rw := filepath.Join(dir, "ro"), filepath.Join(dir, "rw")
	for _, d := range []string{ro, rw} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ro, "file"), []byte("from the volume"), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("10.1.2.3 shim.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := "/var/run/l5dtest-shim"
	spec, err := json.Marshal(shimSpec{
		Argv: []string{"/bin/sh", "-c", `echo "ids $(id -u) $(id -g) $(id -G)"; echo "host $(hostname)"; cat ` + target + `/ro/file; echo;
			touch ` + target + `/ro/new 2>/dev/null && echo "ro writable"; touch ` + target + `/rw/new && echo "rw writable"; cat /etc/hosts; echo "env $GREETING"`},
		UID: 2102, GID: 2103, Groups: []uint32{3000},
		Hostname: "shim-pod",
		Mounts: []shimMount{
			{Source: ro, Target: target + "/ro", ReadOnly: true},
			{Source: rw, Target: target + "/rw"},
			{Source: hosts, Target: "/etc/hosts", ReadOnly: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := &exec.Cmd{
		Path: "/proc/self/exe", Args: []string{shimArg0, string(spec)},
		Env:    []string{"GREETING=hi", "PATH=" + defaultPath},
		Stdout: &out, Stderr: &out,
		SysProcAttr: &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS},
	}
	if err := pod.Run(cmd); err != nil {
		t.Fatalf("shim: %v\n%s", err, out.String())
	}
	want := "ids 2102 2103 2103 3000\nhost shim-pod\nfrom the volume\nrw writable\n10.1.2.3 shim.example\nenv hi\n"
	if out.String() != want {
		t.Errorf("the container saw:\n%s\nwant:\n%s", out.String(), want)
	}
	if _, err := os.Stat(filepath.Join(rw, "new")); err != nil {
		t.Errorf("a file made in the read-write mount is not in the volume: %v", err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), target) {
		t.Errorf("the container's mounts leaked into the host's mount table")
	}
	host, _ := os.Hostname()
	if host == "shim-pod" {
		t.Error("the container's hostname leaked into the host")
	}
}

func TestShimRefusesABadSpec(t *testing.T) {
	for _, spec := range []string{"not json", `{"argv":[]}`, `{"argv":["relative"]}`} {
		if err := runShim(spec); err == nil {
			t.Errorf("runShim(%q) worked", spec)
		}
	}
}

// A non-root container that adds NET_ADMIN and NET_RAW (as the injected linkerd-init does)
// holds exactly those capabilities, and a mount over /run does not hide its program or
// the volumes' sources living under a run directory there.
func TestShimGivesAddedCapabilitiesToANonRootProgram(t *testing.T) {
	n := netns.New(t)
	pod := n.Pod(t, "caps")
	run := t.TempDir()
	if err := os.Chmod(run, 0o755); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(run, "empty")
	if err := os.Mkdir(empty, 0o777); err != nil {
		t.Fatal(err)
	}
	caps, err := addedCapabilities(&corev1.Container{Name: "init", SecurityContext: &corev1.SecurityContext{
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "CAP_NET_RAW"}}}})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := json.Marshal(shimSpec{
		Argv: []string{"/bin/sh", "-c", `grep -E '^Cap(Eff|Amb)' /proc/self/status`},
		UID:  65534, GID: 65534, Caps: caps,
		Mounts: []shimMount{{Source: empty, Target: filepath.Dir(run)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := &exec.Cmd{
		Path: "/proc/self/exe", Args: []string{shimArg0, string(spec)},
		Env: []string{"PATH=" + defaultPath}, Stdout: &out, Stderr: &out,
		SysProcAttr: &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS},
	}
	if err := pod.Run(cmd); err != nil {
		t.Fatalf("shim: %v\n%s", err, out.String())
	}
	want := "CapEff:\t0000000000003000\nCapAmb:\t0000000000003000\n"
	if out.String() != want {
		t.Errorf("the container holds:\n%s\nwant NET_ADMIN and NET_RAW only:\n%s", out.String(), want)
	}
	if _, err := addedCapabilities(&corev1.Container{Name: "x", SecurityContext: &corev1.SecurityContext{
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"WIZARDRY"}}}}); err == nil || !strings.Contains(err.Error(), "WIZARDRY") {
		t.Errorf("an unknown capability gave %v, want an error naming it", err)
	}
}
