// Package images builds l5d's container images as OCI images without a container engine:
// from the binaries `make build` puts in bin/, a small base (users, CA certificates, /tmp)
// and, for the images that need programs of a distribution (proxy-init's iptables, nginx),
// files unpacked from Debian packages. The table in this file is the one description of
// every image (name, files, user, entrypoint, ports, labels); deploy/docker's Dockerfiles
// describe the same images for a Docker build, and a test checks that the two agree. The
// same inputs give the same bytes: every time stamp is the epoch given to Build and every
// layer's entries are sorted.
package images

import (
	"fmt"
	"sort"
	"strings"
)

// Registries and repository prefixes the charts and manifests name images under.
const (
	// L5DRepo is the prefix of every l5d image (the charts' imageRegistry default).
	L5DRepo = "ghcr.io/l5d-go"
	// DockerHub is the registry of the images named without a registry (nginx, prom/...).
	DockerHub = "docker.io"
)

// Base is what an image is built on.
type Base string

const (
	// Static is for static Go binaries: /etc/passwd and /etc/group with root, nobody,
	// nonroot (65532) and the l5d users, the Mozilla CA bundle at
	// /etc/ssl/certs/ca-certificates.crt and /tmp; as gcr.io/distroless/static does.
	Static Base = "static"
	// Debian is Static plus the files of Image.Debs unpacked as a merged-/usr Debian 12
	// system (no maintainer scripts run; Image.Setup does what they would).
	Debian Base = "debian"
)

// File is a binary of bin/ placed in an image.
type File struct {
	Bin  string // name in bin/ (the Makefile's BINARIES)
	Path string // absolute path in the image
	// Caps are file capabilities (permitted and effective, as `setcap <caps>+ep`): how a
	// program running as a non-root user keeps capabilities the pod grants it across exec
	// when no_new_privs is set (allowPrivilegeEscalation: false).
	Caps []uint
}

// Image describes one image.
type Image struct {
	// Name is the image's short name: the last element of its repository.
	Name string
	// Repo is the repository, registry included (ghcr.io/l5d-go/proxy).
	Repo string
	// Tag is a fixed tag; empty means the release version given to Build.
	Tag string
	// ExtraTags are more tags of the same image.
	ExtraTags []string
	// Dockerfile is the file under deploy/docker describing the same image, if any.
	Dockerfile string
	Base       Base
	// Debs are the Debian packages (with the shared libraries they need) of a Debian image.
	Debs  []string
	Files []File
	// Links are symbolic links path -> target added with the files.
	Links map[string]string
	// Setup adds what a package's maintainer scripts or the upstream image would (config
	// files, directories, links); may be nil.
	Setup        func(t *tree) error
	User         string
	Entrypoint   []string
	Cmd          []string
	Env          []string
	WorkingDir   string
	ExposedPorts []string // "8080/tcp"
	StopSignal   string
	Description  string
}

// Ref returns the image's reference for release version.
func (i Image) Ref(version string) string {
	tag := i.Tag
	if tag == "" {
		tag = version
	}
	return i.Repo + ":" + tag
}

// Refs returns Ref and the references of the extra tags.
func (i Image) Refs(version string) []string {
	refs := []string{i.Ref(version)}
	for _, t := range i.ExtraTags {
		refs = append(refs, i.Repo+":"+t)
	}
	return refs
}

// defaultPath is the PATH of every image, as in Docker's default environment.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// iptablesDebs are iptables (legacy and nft) and the shared libraries it loads.
var iptablesDebs = []string{
	"iptables", "libip4tc2", "libip6tc2", "libxtables12", "libmnl0", "libnftnl11",
	"libnetfilter-conntrack3", "libnfnetlink0", "libc6", "libgcc-s1", "gcc-12-base", "netbase",
}

// nginxDebs are Debian's nginx, its configuration package and the libraries it loads.
var nginxDebs = []string{
	"nginx", "nginx-common", "libc6", "libgcc-s1", "gcc-12-base", "libcrypt1", "libpcre2-8-0",
	"libssl3", "zlib1g", "netbase",
}

// controller is a control-plane or viz component: /<name> run as the l5d controller user.
func controller(name, desc string, ports ...string) Image {
	return Image{
		Name: name, Repo: L5DRepo + "/" + name, Base: Static,
		Dockerfile: dockerfileIfAny(name),
		Files:      []File{{Bin: name, Path: "/" + name}},
		User:       "2103:2103", Entrypoint: []string{"/" + name},
		ExposedPorts: ports, Description: desc,
	}
}

// demo is one of the demo application's programs (test/demo, make demo), tagged v1 as
// test/demo/app.yaml names it.
func demo(name, desc string, ports ...string) Image {
	return Image{
		Name: name, Repo: L5DRepo + "/" + name, Tag: "v1", Base: Static,
		Files: []File{{Bin: name, Path: "/" + name}},
		User:  "65532:65532", Entrypoint: []string{"/" + name},
		ExposedPorts: ports, Description: desc,
	}
}

func dockerfileIfAny(name string) string {
	switch name {
	case "destination", "identity", "policy", "injector", "service-mirror":
		return "Dockerfile." + name
	}
	return ""
}

// All returns every image, sorted by name.
func All() []Image {
	imgs := []Image{
		controller("identity", "l5d identity controller: the mesh's certificate authority", "8080/tcp", "9990/tcp"),
		controller("destination", "l5d destination controller: service discovery and profiles for the proxies", "8086/tcp", "8443/tcp", "9996/tcp"),
		controller("policy", "l5d policy controller: inbound and outbound policy for the proxies", "8090/tcp", "9443/tcp", "9990/tcp"),
		controller("injector", "l5d proxy injector: the mutating admission webhook", "8443/tcp", "9995/tcp"),
		controller("metrics-api", "l5d viz metrics API", "8085/tcp", "9995/tcp"),
		controller("tap", "l5d viz tap API server", "8089/tcp", "9998/tcp"),
		controller("tap-injector", "l5d viz tap injector webhook", "8443/tcp", "9995/tcp"),
		controller("web", "l5d viz dashboard", "8084/tcp", "9994/tcp"),
		controller("service-mirror", "l5d multicluster service mirror (one per Link)", "9999/tcp"),
		controller("jaeger-injector", "l5d jaeger extension's injector webhook (trace collector settings for the proxies)", "8443/tcp", "9995/tcp"),
		{
			Name: "proxy", Repo: L5DRepo + "/proxy", Dockerfile: "Dockerfile.proxy", Base: Static,
			Files: []File{
				{Bin: "proxy", Path: "/usr/lib/linkerd/linkerd2-proxy"},
				{Bin: "linkerd-await", Path: "/usr/lib/linkerd/linkerd-await"},
				{Bin: "linkerd-network-validator", Path: "/usr/lib/linkerd/linkerd-network-validator"},
			},
			User: "2102:2102", Entrypoint: []string{"/usr/lib/linkerd/linkerd2-proxy"},
			ExposedPorts: []string{"4140/tcp", "4143/tcp", "4190/tcp", "4191/tcp"},
			Description:  "l5d data-plane proxy, linkerd-await and the CNI mode's network validator",
		},
		{
			Name: "proxy-init", Repo: L5DRepo + "/proxy-init", Dockerfile: "Dockerfile.proxy-init", Base: Debian,
			Debs: iptablesDebs, Setup: iptablesSetup,
			Files: []File{{Bin: "proxy-init", Path: "/usr/lib/linkerd/proxy-init", Caps: netAdminRaw}},
			User:  "65534:65534", Entrypoint: []string{"/usr/lib/linkerd/proxy-init"},
			Description: "l5d proxy-init: the pods' iptables redirect rules (iptables legacy and nft)",
		},
		{
			Name: "cni-plugin", Repo: L5DRepo + "/cni-plugin", Dockerfile: "Dockerfile.cni-plugin", Base: Debian,
			Debs: iptablesDebs,
			Files: []File{
				{Bin: "linkerd-cni", Path: "/usr/lib/linkerd/linkerd-cni"},
				{Bin: "linkerd-install-cni", Path: "/usr/lib/linkerd/linkerd-install-cni"},
			},
			Entrypoint:  []string{"/usr/lib/linkerd/linkerd-install-cni"},
			Description: "l5d CNI plugin and its installer (the linkerd-cni DaemonSet)",
		},
		{
			Name: "cli", Repo: L5DRepo + "/cli", Dockerfile: "Dockerfile.cli", Base: Static,
			Files: []File{{Bin: "linkerd", Path: "/linkerd"}},
			User:  "65532:65532", Entrypoint: []string{"/linkerd"},
			Description: "the linkerd CLI",
		},
		{
			Name: "prometheus", Repo: DockerHub + "/prom/prometheus", Tag: PrometheusTag, Base: Static,
			Files:        []File{{Bin: "prometheus", Path: "/bin/prometheus"}},
			Setup:        prometheusSetup,
			User:         "65534:65534", // nobody, as the upstream image
			Entrypoint:   []string{"/bin/prometheus"},
			Cmd:          []string{"--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"},
			WorkingDir:   "/prometheus",
			ExposedPorts: []string{"9090/tcp"},
			Description:  "the Prometheus server (tools/prometheus/build.sh) under the upstream image's name",
		},
		{
			Name: "all-in-one", Repo: DockerHub + "/jaegertracing/all-in-one", Tag: JaegerTag, Base: Static,
			Files:        []File{{Bin: "all-in-one", Path: "/go/bin/all-in-one-linux"}},
			User:         "10001", // as the upstream image
			Entrypoint:   []string{"/go/bin/all-in-one-linux"},
			ExposedPorts: []string{"4317/tcp", "4318/tcp", "14269/tcp", "16686/tcp"},
			Description:  "Jaeger's all-in-one (tools/jaeger/build.sh) under the upstream image's name",
		},
		{
			Name: "nginx", Repo: DockerHub + "/library/nginx", Tag: "latest", Base: Debian,
			Debs:         nginxDebs,
			Setup:        nginxSetup,
			Cmd:          []string{"nginx", "-g", "daemon off;"},
			ExposedPorts: []string{"80/tcp"},
			StopSignal:   "SIGQUIT",
			Description:  "Debian's nginx serving a default page, as the seed walkthrough's nginx:latest",
		},
		{
			Name: "echo-advanced", Repo: "registry.k8s.io/gateway-api/echo-advanced", Tag: EchoAdvancedTag, Base: Static,
			Files: []File{{Bin: "echo-advanced", Path: "/usr/local/bin/server"}},
			Links: map[string]string{"/usr/local/bin/client": "server"},
			Setup: echoSetup,
			// The conformance manifests pass only flags; the suite execs `client` on PATH.
			Entrypoint:   []string{"/usr/local/bin/server"},
			ExposedPorts: []string{"7070/tcp", "8080/tcp", "8443/tcp", "9090/tcp"},
			Description:  "l5d's echo server and client, compatible with the Gateway API conformance suite's echo-advanced (Istio's echo)",
		},
		{
			Name: "pause", Repo: "registry.k8s.io/pause", Tag: "3.10.1", Base: Static,
			// 3.10.1 is Kubernetes 1.34's sandbox image, 3.6 Debian containerd 1.6's default.
			ExtraTags:   []string{"3.10", "3.6"},
			Files:       []File{{Bin: "pause", Path: "/pause"}},
			User:        "65535:65535",
			Entrypoint:  []string{"/pause"},
			Description: "the pod sandbox's process (test/cmd/pause), under Kubernetes' pause image name",
		},
		demo("demo-web", "l5d demo: web front end", "8080/tcp"),
		demo("demo-catalog", "l5d demo: catalog gRPC service", "8080/tcp", "9990/tcp"),
		demo("demo-ratings", "l5d demo: ratings service", "8080/tcp", "9990/tcp"),
		demo("demo-traffic", "l5d demo: traffic generator", "9990/tcp"),
	}
	sort.Slice(imgs, func(a, b int) bool { return imgs[a].Name < imgs[b].Name })
	return imgs
}

// Pinned tags of the images published under other projects' names.
const (
	// PrometheusTag is the tag deploy/charts/linkerd-viz's values give prom/prometheus.
	PrometheusTag = "v3.16.0"
	// JaegerTag is the tag deploy/charts/linkerd-jaeger's values give jaegertracing/all-in-one.
	JaegerTag = "1.75.0"
	// EchoAdvancedTag is the tag the Gateway API conformance mesh manifests
	// (sigs.k8s.io/gateway-api/conformance v1.6.3) give echo-advanced.
	EchoAdvancedTag = "v1.5.1"
)

// Select returns the images named in names (all when names is empty), failing on an unknown
// name with the list of known ones.
func Select(names []string) ([]Image, error) {
	all := All()
	if len(names) == 0 {
		return all, nil
	}
	by := map[string]Image{}
	known := make([]string, 0, len(all))
	for _, i := range all {
		by[i.Name] = i
		known = append(known, i.Name)
	}
	var out []Image
	for _, n := range names {
		i, ok := by[n]
		if !ok {
			return nil, fmt.Errorf("unknown image %q (known: %s)", n, strings.Join(known, ", "))
		}
		out = append(out, i)
	}
	return out, nil
}
