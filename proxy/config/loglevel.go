package config

import (
	"fmt"
	"log/slog"
	"strings"
)

// LevelOff is a slog level above every record's level: logging is disabled.
const LevelOff = slog.Level(100)

// LevelTrace is the slog level used for the "trace" directive.
const LevelTrace = slog.LevelDebug - 4

var logLevels = map[string]slog.Level{
	"trace": LevelTrace,
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
	"off":   LevelOff,
}

// ParseLogLevel parses a Linkerd log filter such as "warn,linkerd=info" or
// "linkerd=debug": comma-separated directives, each either a level (the default for every
// target) or target=level. Levels are trace, debug, info, warn, error and off. The proxy's
// own logs are target "linkerd": the result is the most verbose level among directives
// whose target starts with "linkerd" (linkerd, linkerd2_proxy, linkerd_app...), or else
// the default level, or warn when the filter names neither.
func ParseLogLevel(filter string) (slog.Level, error) {
	def, haveDef := slog.LevelWarn, false
	own, haveOwn := LevelOff, false
	for d := range strings.SplitSeq(filter, ",") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		target, lvl, hasTarget := strings.Cut(d, "=")
		if !hasTarget {
			lvl, target = target, ""
		}
		// Span filters such as target[span]=level are accepted; the span part is ignored.
		// A span filter without a target, such as Linkerd's default "[{headers}]=off"
		// (which keeps HTTP headers out of every target's logs), applies to spans this
		// proxy does not log: it is accepted and has no effect.
		spanOnly := false
		if i := strings.IndexByte(target, '['); i >= 0 {
			spanOnly = i == 0 && strings.HasSuffix(strings.TrimSpace(target), "]")
			target = target[:i]
		}
		l, ok := logLevels[strings.ToLower(strings.TrimSpace(lvl))]
		if !ok {
			return 0, fmt.Errorf("log directive %q: unknown level %q: want trace, debug, info, warn, error or off", d, lvl)
		}
		target = strings.TrimSpace(target)
		switch {
		case !hasTarget:
			def, haveDef = l, true
		case strings.HasPrefix(target, "linkerd"):
			if !haveOwn || l < own {
				own = l
			}
			haveOwn = true
		case spanOnly:
		case target == "":
			return 0, fmt.Errorf("log directive %q: empty target", d)
		}
	}
	if haveOwn {
		return own, nil
	}
	if haveDef {
		return def, nil
	}
	return slog.LevelWarn, nil
}
