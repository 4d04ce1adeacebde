// Package proxyconf is the one home of the names that configure an injected Linkerd proxy:
// the config.linkerd.io/* (and alpha/beta) annotations the injector honours on namespaces and
// pod templates, and the LINKERD2_PROXY_* environment variables the injector writes and the
// proxy (proxy/config) reads. The names are Linkerd's, so manifests and tooling written for
// Linkerd work unchanged. It is also the one reader of the values those names share across
// components: port lists and ranges (ParsePorts), networks (ParseNetwork, ParseNetworks), the
// default opaque and skip ports, and config.linkerd.io/opaque-ports with its port names
// (ParseOpaquePorts; pkg/k8s resolves the names of a pod's or a Service's ports). What each
// annotation does is the injector's (injector/inject); how each variable is used, the
// proxy's.
package proxyconf
