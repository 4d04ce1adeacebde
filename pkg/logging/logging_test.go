package logging

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		// whether a debug line and a warn line are written, and whether the output is JSON
		wantDebug, wantWarn bool
		wantJSON            bool
	}{
		{name: "defaults", args: nil, wantWarn: true},
		{name: "debug json", args: []string{"-log-level=debug", "-log-format=json"}, wantDebug: true, wantWarn: true, wantJSON: true},
		{name: "error only", args: []string{"-log-level", "ERROR"}},
		{name: "bad level", args: []string{"-log-level=verbose"}, wantErr: `invalid value "verbose" for flag -log-level: unknown log level "verbose"`},
		{name: "bad format", args: []string{"-log-format=yaml"}, wantErr: `invalid value "yaml" for flag -log-format: unknown log format "yaml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg := RegisterFlags(fs)
			err := fs.Parse(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			log, err := cfg.New(&out)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("debug line", "k", "v")
			log.Warn("warn line", "k", "v")
			text := out.String()
			if got := strings.Contains(text, "debug line"); got != tt.wantDebug {
				t.Errorf("debug written = %v, want %v:\n%s", got, tt.wantDebug, text)
			}
			if got := strings.Contains(text, "warn line"); got != tt.wantWarn {
				t.Errorf("warn written = %v, want %v:\n%s", got, tt.wantWarn, text)
			}
			if tt.wantJSON {
				for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil || m["k"] != "v" {
						t.Errorf("line %q is not JSON with k=v: %v", line, err)
					}
				}
			} else if tt.wantWarn && !strings.Contains(text, `level=WARN msg="warn line" k=v`) {
				t.Errorf("plain output not in key=value form:\n%s", text)
			}
		})
	}
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	for _, tt := range []struct {
		level, format, want string
	}{
		{"loud", "", "-log-level: unknown log level \"loud\""},
		{"", "xml", "-log-format: unknown log format \"xml\""},
	} {
		c := &Config{Level: tt.level, Format: tt.format}
		if _, err := c.New(io.Discard); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(level %q, format %q) error %v, want %q", tt.level, tt.format, err, tt.want)
		}
	}
	// The zero Config is usable: info, plain.
	var c Config
	var out bytes.Buffer
	log, err := c.New(&out)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello")
	log.Debug("hidden")
	if !strings.Contains(out.String(), "level=INFO msg=hello") || strings.Contains(out.String(), "hidden") {
		t.Errorf("zero Config output:\n%s", out.String())
	}
}

func TestSetLevelAtRuntime(t *testing.T) {
	c := &Config{Level: "info"}
	var out bytes.Buffer
	log, err := c.New(&out)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("before")
	if err := c.SetLevel("debug"); err != nil {
		t.Fatal(err)
	}
	log.Debug("after")
	if strings.Contains(out.String(), "before") || !strings.Contains(out.String(), "after") {
		t.Errorf("SetLevel did not take effect on an existing logger:\n%s", out.String())
	}
	if err := c.SetLevel("chatty"); err == nil || c.Level != "debug" {
		t.Errorf("bad SetLevel: err %v, level now %q; want an error and debug kept", err, c.Level)
	}
}

func TestLoggerSetsDefault(t *testing.T) {
	prev := slog.Default()
	defer slog.SetDefault(prev)
	c := &Config{Level: "warn", Format: "json"}
	log, err := c.Logger()
	if err != nil {
		t.Fatal(err)
	}
	if slog.Default() != log {
		t.Error("Logger did not install itself as slog.Default")
	}
}
