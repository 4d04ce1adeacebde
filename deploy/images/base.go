package images

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"
)

// passwd and group are the users of every image: those of distroless (root, nobody,
// nonroot), Debian's www-data (nginx's workers) and l5d's proxy (2102) and controller (2103)
// users, so that tools show names rather than numbers.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n" +
		"linkerd-proxy:x:2102:2102:l5d proxy:/nonexistent:/sbin/nologin\n" +
		"linkerd:x:2103:2103:l5d controller:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"adm:x:4:\n" +
		"www-data:x:33:\n" +
		"linkerd-proxy:x:2102:\n" +
		"linkerd:x:2103:\n" +
		"nonroot:x:65532:\n" +
		"nogroup:x:65534:\n"
)

// CABundle is where every image holds the CA certificates (Debian's and Go's default).
const CABundle = "/etc/ssl/certs/ca-certificates.crt"

// baseTree is the layer every image starts from: users, groups, the CA bundle built from
// Debian's ca-certificates package (Mozilla's roots, concatenated in name order) and /tmp.
func baseTree(ctx context.Context, cache debCache) (*tree, error) {
	debs, err := cache.fetch(ctx, "ca-certificates")
	if err != nil {
		return nil, err
	}
	deb := debs["ca-certificates"]
	ca := newTree()
	if err := addDeb(ctx, ca, deb); err != nil {
		return nil, err
	}
	var names []string
	for p, e := range ca.entries {
		if e.Type == tar.TypeReg && strings.HasPrefix(p, "usr/share/ca-certificates/mozilla/") && strings.HasSuffix(p, ".crt") {
			names = append(names, p)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s holds no certificates under /usr/share/ca-certificates/mozilla", deb)
	}
	sort.Strings(names)
	var bundle bytes.Buffer
	for _, n := range names {
		bundle.Write(bytes.TrimSpace(ca.entries[n].Data))
		bundle.WriteByte('\n')
	}
	t := newTree()
	for _, f := range []struct {
		p    string
		mode int64
		data []byte
	}{
		{"etc/passwd", 0o644, []byte(passwd)},
		{"etc/group", 0o644, []byte(group)},
		{"etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")},
		{CABundle, 0o644, bundle.Bytes()},
	} {
		if err := t.file(f.p, f.mode, f.data); err != nil {
			return nil, err
		}
	}
	if err := t.dir("tmp", 0o1777, 0, 0); err != nil {
		return nil, err
	}
	if err := t.dir("home/nonroot", 0o700, 65532, 65532); err != nil {
		return nil, err
	}
	return t, nil
}

// nginxSetup does what nginx-common's postinst does on a fresh install (enable the default
// site, copy the default page to /var/www/html) and, as the Docker Hub image, sends the logs
// to the container's stdout and stderr.
func nginxSetup(t *tree) error {
	page, ok := t.entries["usr/share/nginx/html/index.html"]
	if !ok {
		return fmt.Errorf("nginx-common has no /usr/share/nginx/html/index.html")
	}
	steps := []error{
		t.symlink("etc/nginx/sites-enabled/default", "/etc/nginx/sites-available/default"),
		t.file("var/www/html/index.nginx-debian.html", 0o644, page.Data),
		t.symlink("var/log/nginx/access.log", "/dev/stdout"),
		t.symlink("var/log/nginx/error.log", "/dev/stderr"),
		t.dir("run", 0o755, 0, 0),
		t.dir("var/lib/nginx", 0o755, 33, 33),
	}
	for _, err := range steps {
		if err != nil {
			return err
		}
	}
	return nil
}

// prometheusConfig is the upstream image's default configuration: Prometheus scraping itself.
const prometheusConfig = `global:
  scrape_interval: 15s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
`

// prometheusSetup adds the upstream image's configuration and its data directory, owned by
// nobody.
func prometheusSetup(t *tree) error {
	if err := t.file("etc/prometheus/prometheus.yml", 0o644, []byte(prometheusConfig)); err != nil {
		return err
	}
	return t.dir("prometheus", 0o755, 65534, 65534)
}

// echoSetup adds the certificate and key the conformance manifests pass to the echo server
// (--crt=/cert.crt --key=/cert.key), as Istio's image holds them: a self-signed Ed25519
// certificate for the echo Services' names, derived from a fixed seed so the image's bytes
// do not change. It secures nothing; it only lets the TLS port start.
func echoSetup(t *tree) error {
	crt, key, err := echoCert()
	if err != nil {
		return err
	}
	if err := t.file("cert.crt", 0o644, crt); err != nil {
		return err
	}
	return t.file("cert.key", 0o644, key)
}

func echoCert() (crt, key []byte, err error) {
	seed := sha256.Sum256([]byte("l5d echo-advanced test certificate"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "echo"},
		DNSNames:     []string{"echo", "echo-v1", "echo-v2", "*.gateway-conformance-mesh.svc.cluster.local", "localhost"},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2120, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, nil, fmt.Errorf("echo certificate: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("echo key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}

// Linux capability numbers (linux/capability.h).
const (
	capNetAdmin = 12
	capNetRaw   = 13
)

// netAdminRaw are the capabilities proxy-init and the iptables programs need.
var netAdminRaw = []uint{capNetAdmin, capNetRaw}

// fileCaps is the security.capability extended attribute (VFS_CAP_REVISION_2) granting caps
// as permitted and effective: what `setcap <caps>+ep` writes.
func fileCaps(caps ...uint) []byte {
	var lo, hi uint32
	for _, c := range caps {
		if c < 32 {
			lo |= 1 << c
		} else {
			hi |= 1 << (c - 32)
		}
	}
	const revision2, effective = 0x02000000, 0x000001
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], revision2|effective)
	binary.LittleEndian.PutUint32(b[4:], lo) // permitted
	binary.LittleEndian.PutUint32(b[8:], 0)  // inheritable
	binary.LittleEndian.PutUint32(b[12:], hi)
	binary.LittleEndian.PutUint32(b[16:], 0)
	return b
}

// iptablesSetup gives the xtables programs (every iptables-legacy* and iptables-nft* name
// links to one of them) the file capabilities NET_ADMIN and NET_RAW, and makes the lock file
// iptables-legacy takes writable by anyone. proxy-init runs as uid 65534 with those
// capabilities granted by the pod and no_new_privs set (allowPrivilegeEscalation: false): a
// non-root process loses its capabilities at exec unless the program has them as file
// capabilities, and under no_new_privs it can only keep, never gain, them; so both
// proxy-init (its File.Caps) and the programs it runs carry them.
func iptablesSetup(t *tree) error {
	for _, p := range []string{"usr/sbin/xtables-legacy-multi", "usr/sbin/xtables-nft-multi"} {
		e, ok := t.entries[p]
		if !ok || e.Type != tar.TypeReg {
			return fmt.Errorf("iptables has no program /%s", p)
		}
		e.Xattrs = map[string][]byte{"security.capability": fileCaps(netAdminRaw...)}
	}
	return t.file("run/xtables.lock", 0o666, nil)
}
