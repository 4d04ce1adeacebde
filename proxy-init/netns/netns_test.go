package netns_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/proxy-init/netns"
	podnet "github.com/l5d-go/l5d/test/netns"
)

func TestDoRunsInTheNamespace(t *testing.T) {
	n := podnet.New(t)
	p := n.Pod(t, "p")
	var inside string
	if err := netns.Do(p.Path(), func() error {
		b, err := os.ReadFile("/proc/thread-self/net/if_inet6")
		inside = string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Only the pod has eth0 with fd00:244::/64.
	if !strings.Contains(inside, "fd000244000000000000000000000002") {
		t.Fatalf("f did not run in the pod's namespace; its IPv6 addresses:\n%s", inside)
	}
	var outside []byte
	err := netns.Do("", func() (err error) {
		outside, err = os.ReadFile("/proc/thread-self/net/if_inet6")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(outside), "fd000244000000000000000000000002") {
		t.Fatal("Do with no path did not run in the caller's namespace")
	}
}

func TestDoNamesABadPath(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/nonexistent/netns", "/nonexistent/netns"},
		{"/proc/self/ns/mnt", "is not a network namespace"},
	} {
		ran := false
		err := netns.Do(tc.path, func() error { ran = true; return nil })
		if err == nil || ran || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Do(%q) = %v (ran %v), want an error containing %q", tc.path, err, ran, tc.want)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if left, err := podnet.Leftovers(); err != nil || len(left) > 0 {
		fmt.Fprintf(os.Stderr, "network namespaces left behind: %v %v\n", left, err)
		code = 1
	}
	os.Exit(code)
}
