package metrics

import (
	"runtime/debug"
)

// Vendor is the vendor label of proxy_build_info.
const Vendor = "l5d"

// BuildInfo registers proxy_build_info{version,git_sha,profile,vendor} 1, as Linkerd's
// proxy exports it. version is the release (the module version recorded in the binary
// when empty); git_sha comes from the binary's VCS stamp; profile is "release" for a
// binary built with -trimpath (as make builds the proxy) and "debug" otherwise.
func (r *Registry) BuildInfo(version string) {
	sha, profile := "", "debug"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if version == "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				sha = s.Value
			case "-trimpath":
				if s.Value == "true" {
					profile = "release"
				}
			}
		}
	}
	r.Func("proxy_build_info", "gauge", "Proxy build info", Labels("version", version, "git_sha", sha,
		"profile", profile, "vendor", Vendor), func() float64 { return 1 })
}
