package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	suiteecho "sigs.k8s.io/gateway-api/conformance/utils/echo"

	"github.com/l5d-go/l5d/test/netns"
)

// ctrd is a containerd of the test's own: its root, state and socket in a temporary
// directory, so that it shares nothing with any other containerd on the machine.
type ctrd struct {
	dir, sock string
	ns        string
}

// startContainerd starts containerd (Debian's package) for the test; it skips the test when
// not root or when containerd, ctr or runc is missing.
func startContainerd(t *testing.T) *ctrd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containerd needs root")
	}
	for _, p := range []string{"containerd", "ctr", "runc"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is not installed (Debian package containerd)", p)
		}
	}
	dir, err := os.MkdirTemp("", "l5d-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &ctrd{dir: dir, sock: filepath.Join(dir, "containerd.sock"), ns: "l5d-registry-test"}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, c.sock+".ttrpc", filepath.Join(dir, "debug.sock"))
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "containerd.log")); err == nil {
				t.Logf("containerd log (last 4k):\n%s", tail(b, 4096))
			}
		}
		// Snapshots are unmounted when their containers are deleted; a failure to remove
		// the directory is reported, not hidden.
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing %s: %v", dir, err)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := c.ctr(context.Background(), "version"); err == nil {
			return c
		} else if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer on %s: %v", c.sock, err)
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Fatalf("containerd exited:\n%s", tail(b, 4096))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// ctr runs ctr against the test's containerd and returns its combined output.
func (c *ctrd) ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"-a", c.sock, "-n", c.ns}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// runDetached starts image as container id in the network namespace of pod and removes it
// when the test ends.
func (c *ctrd) runDetached(t *testing.T, ctx context.Context, pod *netns.Pod, image, id string, args ...string) {
	t.Helper()
	a := append([]string{"run", "-d", "--with-ns", "network:" + pod.Path(), image, id}, args...)
	if _, err := c.ctr(ctx, a...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.ctr(context.Background(), "task", "kill", "-s", "SIGKILL", id)
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := c.ctr(context.Background(), "task", "delete", id); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.ctr(context.Background(), "container", "delete", id)
	})
}

// TestContainerdPullsAndRunsImages: a private containerd pulls proxy-init, nginx,
// echo-advanced and the pause image by the names manifests and containerd use, through the registry's hosts.toml mirrors; the
// proxy-init image installs its rules with iptables legacy and nft as uid 65534 with only
// NET_ADMIN and NET_RAW (and no_new_privs, as ctr and allowPrivilegeEscalation: false set),
// and cannot start without them; Debian's nginx serves its default page; the echo server starts
// with the conformance manifests' flags and its client answers in the suite's format.
func TestContainerdPullsAndRunsImages(t *testing.T) {
	c := startContainerd(t)
	lay, built := buildAll(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r, err := Start(ctx, Options{Layout: lay})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	refs := map[string]string{}
	for _, b := range built {
		refs[b.Image.Name] = b.Ref
	}
	// containerd 1.6's default sandbox image is pause:3.6, an extra tag of the pause image.
	refs["pause"] = "registry.k8s.io/pause:3.6"
	for _, n := range []string{"proxy-init", "nginx", "echo-advanced", "pause"} {
		if _, err := c.ctr(ctx, "images", "pull", "--hosts-dir", r.HostsDir, refs[n]); err != nil {
			t.Fatalf("pulling %s through the mirror: %v", refs[n], err)
		}
	}

	t.Run("pause", func(t *testing.T) {
		out, err := c.ctr(ctx, "run", "--rm", refs["pause"], "pause-version", "/pause", "-v")
		if err != nil || !strings.Contains(out, "pause") {
			t.Errorf("pause -v: %v\n%s", err, out)
		}
	})

	t.Run("proxy-init", func(t *testing.T) {
		// The pod's emptyDir at /run (the chart's linkerd-proxy-init-xtables-lock volume).
		run := t.TempDir()
		if err := os.Chmod(run, 0o777); err != nil {
			t.Fatal(err)
		}
		mount := "type=bind,src=" + run + ",dst=/run,options=rbind:rw"
		for _, mode := range []string{"legacy", "nft"} {
			args := []string{"run", "--rm", "--cap-add", "CAP_NET_ADMIN", "--cap-add", "CAP_NET_RAW", "--mount", mount,
				refs["proxy-init"], "proxy-init-" + mode, "/usr/lib/linkerd/proxy-init",
				"--firewall-bin-path", "iptables-" + mode, "--firewall-save-bin-path", "iptables-" + mode + "-save"}
			out, err := c.ctr(ctx, args...)
			if err != nil || !strings.Contains(out, "proxy-init rules installed") || !strings.Contains(out, "PROXY_INIT_REDIRECT") {
				t.Errorf("proxy-init (%s) in its image: %v\n%s", mode, err, out)
			}
		}
		// Without them the kernel refuses to start a program whose file capabilities cannot
		// all be granted.
		out, err := c.ctr(ctx, "run", "--rm", "--mount", mount, refs["proxy-init"], "proxy-init-nocaps")
		if err == nil || !strings.Contains(out, "operation not permitted") {
			t.Errorf("proxy-init without NET_ADMIN and NET_RAW: %v\n%s", err, out)
		}
	})

	network := netns.New(t)

	t.Run("nginx", func(t *testing.T) {
		pod := network.Pod(t, "nginx")
		c.runDetached(t, ctx, pod, refs["nginx"], "nginx")
		body := getInPod(t, ctx, pod, "http://127.0.0.1:80/")
		if !strings.Contains(body, "Welcome to nginx") {
			t.Errorf("nginx's page:\n%s", body)
		}
	})

	t.Run("echo-advanced", func(t *testing.T) {
		pod := network.Pod(t, "echo")
		// The arguments of the Gateway API conformance mesh manifests' echo Deployments.
		c.runDetached(t, ctx, pod, refs["echo-advanced"], "echo",
			"/usr/local/bin/server", "--tcp=9090", "--port=8080", "--grpc=7070", "--port=8443", "--tls=8443", "--crt=/cert.crt", "--key=/cert.key")
		getInPod(t, ctx, pod, "http://127.0.0.1:8080/")
		// The suite execs the client in the echo container.
		for _, u := range []string{"http://127.0.0.1:8080/hello", "https://127.0.0.1:8443/hello", "grpc://127.0.0.1:7070"} {
			out, err := c.ctr(ctx, "task", "exec", "--exec-id", "client", "echo", "client", u, "-H", "X-Test:1")
			if err != nil {
				t.Fatal(err)
			}
			resp := suiteecho.ParseResponse(out)
			if resp.Code != "200" || resp.Hostname == "" || resp.RequestHeaders.Get("X-Test") != "1" {
				t.Errorf("client %s in the echo container:\n%s", u, out)
			}
		}
	})
}

// getInPod GETs url from inside pod's network namespace, polling until the server answers
// (it has just started), and returns the body of a 200 response.
func getInPod(t *testing.T, ctx context.Context, pod *netns.Pod, url string) string {
	t.Helper()
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return pod.Dial(ctx, network, addr)
		}},
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := client.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && rerr == nil {
				return string(b)
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("GET %s in pod %s: %v", url, pod.PodName, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
