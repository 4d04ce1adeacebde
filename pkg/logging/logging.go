// Package logging configures log/slog for every l5d binary from two flags:
// -log-level (debug, info, warn, error; default info) and -log-format (plain, json;
// default plain). Logs go to stderr, and the built logger becomes slog.Default.
package logging

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Flag names registered by RegisterFlags.
const (
	LevelFlag  = "log-level"
	FormatFlag = "log-format"
)

// Log formats accepted by -log-format.
const (
	FormatPlain = "plain"
	FormatJSON  = "json"
)

var levelNames = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// ParseLevel returns the slog level named by s: debug, info, warn or error, in any case.
func ParseLevel(s string) (slog.Level, error) {
	l, ok := levelNames[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return 0, fmt.Errorf("unknown log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// checkFormat returns the canonical format name for s, or an error.
func checkFormat(s string) (string, error) {
	switch f := strings.ToLower(strings.TrimSpace(s)); f {
	case FormatPlain, FormatJSON:
		return f, nil
	default:
		return "", fmt.Errorf("unknown log format %q: want plain or json", s)
	}
}

// Config holds the logging settings. Its zero value means level info, format plain.
type Config struct {
	// Level is debug, info, warn or error; empty means info.
	Level string
	// Format is plain (slog text) or json; empty means plain.
	Format string

	level *slog.LevelVar // shared by every logger built from this Config
}

// RegisterFlags registers -log-level and -log-format on fs, storing into the returned
// Config. A bad value makes fs.Parse fail with an error naming the flag.
func RegisterFlags(fs *flag.FlagSet) *Config {
	c := &Config{Level: "info", Format: FormatPlain}
	fs.Var(levelFlag{c}, LevelFlag, "log level: debug, info, warn or error")
	fs.Var(formatFlag{c}, FormatFlag, "log format: plain or json")
	return c
}

// Logger builds a logger writing to stderr, makes it slog.Default and returns it. The
// error names the flag whose value is invalid.
func (c *Config) Logger() (*slog.Logger, error) {
	l, err := c.New(os.Stderr)
	if err != nil {
		return nil, err
	}
	slog.SetDefault(l)
	return l, nil
}

// New builds a logger writing to w without touching slog.Default.
func (c *Config) New(w io.Writer) (*slog.Logger, error) {
	if err := c.SetLevel(c.Level); err != nil {
		return nil, err
	}
	format, err := checkFormat(orDefault(c.Format, FormatPlain))
	if err != nil {
		return nil, fmt.Errorf("-%s: %w", FormatFlag, err)
	}
	opts := &slog.HandlerOptions{Level: c.level}
	if format == FormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// SetLevel changes the level of every logger this Config built, at once; it is safe to
// call while those loggers are in use and is how an admin endpoint changes the log level
// of a running process. An invalid level changes nothing.
func (c *Config) SetLevel(level string) error {
	l, err := ParseLevel(orDefault(level, "info"))
	if err != nil {
		return fmt.Errorf("-%s: %w", LevelFlag, err)
	}
	if c.level == nil {
		c.level = new(slog.LevelVar)
	}
	c.Level = strings.ToLower(strings.TrimSpace(orDefault(level, "info")))
	c.level.Set(l)
	return nil
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

// levelFlag and formatFlag validate values as the flags are parsed.
type levelFlag struct{ c *Config }

func (f levelFlag) String() string {
	if f.c == nil {
		return ""
	}
	return f.c.Level
}

func (f levelFlag) Set(s string) error {
	if _, err := ParseLevel(s); err != nil {
		return err
	}
	f.c.Level = strings.ToLower(strings.TrimSpace(s))
	return nil
}

type formatFlag struct{ c *Config }

func (f formatFlag) String() string {
	if f.c == nil {
		return ""
	}
	return f.c.Format
}

func (f formatFlag) Set(s string) error {
	format, err := checkFormat(s)
	if err != nil {
		return err
	}
	f.c.Format = format
	return nil
}
