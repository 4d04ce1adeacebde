// Package proxyconf is the one home of the names that configure an injected Linkerd proxy:
// the config.linkerd.io/* (and alpha/beta) annotations the injector honours on namespaces and
// pod templates, and the LINKERD2_PROXY_* environment variables the injector writes and the
// proxy (proxy/config) reads. The names are Linkerd's, so manifests and tooling written for
// Linkerd work unchanged. The package holds names only; what each annotation does is the
// injector's (injector/inject), how each variable is parsed the proxy's.
package proxyconf
