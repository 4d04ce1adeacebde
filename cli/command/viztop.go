package command

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/l5d-go/l5d/cli/profile"
	"github.com/l5d-go/l5d/cli/viztap"
	"github.com/l5d-go/l5d/pkg/vizapi"
	pbtap "github.com/l5d-go/l5d/proto/gen/tap"
)

// clearScreen moves the cursor home and clears a terminal (ANSI), for top's redraws.
const clearScreen = "\x1b[H\x1b[2J"

func topCmd(g *globals) *cobra.Command {
	var (
		f                 tapFlags
		hideSources       bool
		duration, refresh time.Duration
	)
	c := &cobra.Command{
		Use:   "top (deploy|sts|ds|job|cronjob|rc|rs|pod|svc|ns)[/NAME] [NAME] [flags]",
		Short: "Display a table of a resource's most frequent requests, live",
		Long: "top taps a resource (as `linkerd viz tap` does, with the same filters) and shows, per\n" +
			"source, destination, method and path, how many requests completed, their best, worst\n" +
			"and last latency and their success rate, most frequent first.\n\n" +
			"On a terminal the table is redrawn every --refresh until interrupted. Otherwise, or\n" +
			"with --duration, it is printed every --refresh as plain text, and once more when\n" +
			"--duration ends the command.\n\n" +
			"  linkerd viz top deploy/web -n emojivoto\n" +
			"  linkerd viz top deploy/web -n emojivoto --duration 10s --hide-sources",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			if refresh <= 0 {
				return fmt.Errorf("--refresh %s: must be positive", refresh)
			}
			if duration < 0 {
				return fmt.Errorf("--duration %s: must not be negative", duration)
			}
			req, err := f.request(args)
			if err != nil {
				return err
			}
			st, err := g.startTap(c, req)
			if err != nil {
				return err
			}
			defer st.Close()
			out := c.OutOrStdout()
			redraw := duration == 0 && isTerminal(out)
			var (
				mu  sync.Mutex
				top viztap.Top
			)
			done := readEvents(st, func(ev *pbtap.TapEvent) {
				mu.Lock()
				top.Add(ev)
				mu.Unlock()
			})
			draw := func() error {
				mu.Lock()
				defer mu.Unlock()
				if redraw {
					fmt.Fprint(out, clearScreen)
				}
				if err := top.Write(out, hideSources); err != nil {
					return err
				}
				if !redraw {
					fmt.Fprintln(out)
				}
				return nil
			}
			var end <-chan time.Time
			if duration > 0 {
				end = time.After(duration)
			}
			tick := time.NewTicker(refresh)
			defer tick.Stop()
			ctx := contextOf(c)
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-end:
					return draw()
				case err := <-done:
					if drawErr := draw(); drawErr != nil {
						return drawErr
					}
					if errors.Is(err, io.EOF) || ctx.Err() != nil {
						return nil
					}
					return err
				case <-tick.C:
					if err := draw(); err != nil {
						return err
					}
				}
			}
		},
	}
	f.register(c)
	c.Flags().BoolVar(&hideSources, "hide-sources", false, "leave out the Source column")
	c.Flags().DurationVar(&duration, "duration", 0, "stop after this long and print the table (0: run until interrupted)")
	c.Flags().DurationVar(&refresh, "refresh", time.Second, "how often the table is printed")
	return c
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// profileFromTap taps the --tap resource's requests to service for d and prints a
// ServiceProfile with a route per method and path seen (at most limit).
func profileFromTap(c *cobra.Command, g *globals, service, namespace, clusterDomain, tapRes string, d time.Duration, limit int) error {
	if d <= 0 {
		return fmt.Errorf("--tap-duration %s: must be positive", d)
	}
	f := tapFlags{namespace: namespace, to: vizapi.Service + "/" + service, maxRps: vizapi.DefaultMaxRps}
	req, err := f.request([]string{tapRes})
	if err != nil {
		return fmt.Errorf("--tap: %w", err)
	}
	st, err := g.startTap(c, req)
	if err != nil {
		return err
	}
	defer st.Close()
	var (
		mu   sync.Mutex
		seen []profile.Request
	)
	done := readEvents(st, func(ev *pbtap.TapEvent) {
		if init := ev.GetHttp().GetRequestInit(); init != nil {
			mu.Lock()
			seen = append(seen, profile.Request{Method: viztap.Method(init), Path: init.GetPath()})
			mu.Unlock()
		}
	})
	select {
	case <-time.After(d):
	case <-contextOf(c).Done():
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			return err
		}
	}
	mu.Lock()
	routes := profile.FromRequests(seen, limit)
	mu.Unlock()
	return writeProfile(c, service, namespace, clusterDomain, routes)
}

// readEvents hands st's events to each in a goroutine until the stream fails or ends; the
// channel then receives the error (io.EOF at the end).
func readEvents(st *vizapi.TapStream, each func(*pbtap.TapEvent)) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			ev, err := st.Next()
			if err != nil {
				done <- err
				return
			}
			each(ev)
		}
	}()
	return done
}

// vizProfileCmd is `linkerd profile` with Linkerd viz's --tap: the routes come from the
// live requests of a resource to the service.
func vizProfileCmd(g *globals) *cobra.Command {
	c := profileCmd()
	c.Use = "profile (--template | --open-api FILE|- | --proto FILE | --tap RESOURCE [--tap-duration D]) SERVICE"
	c.Long = "profile prints a ServiceProfile for SERVICE: a commented template, or routes from an\n" +
		"OpenAPI document, a .proto file or, with --tap, the requests --tap's pods send to or\n" +
		"receive at the service during --tap-duration (one route per method and path).\n\n" +
		"  linkerd viz profile -n emojivoto web-svc --tap deploy/web --tap-duration 10s | kubectl apply -f -"
	var (
		tapRes string
		d      time.Duration
		limit  int
	)
	c.Flags().StringVar(&tapRes, "tap", "", "build the routes from the live requests of this resource to the service (e.g. deploy/web)")
	c.Flags().DurationVar(&d, "tap-duration", 5*time.Second, "how long --tap listens")
	c.Flags().IntVar(&limit, "tap-route-limit", 20, "the most routes --tap writes (the most frequent)")
	files := c.RunE
	c.RunE = func(c *cobra.Command, args []string) error {
		if tapRes == "" {
			return files(c, args)
		}
		for _, other := range []string{"template", "open-api", "proto"} {
			if c.Flags().Changed(other) {
				return fmt.Errorf("--tap and --%s cannot be combined", other)
			}
		}
		ns, _ := c.Flags().GetString("namespace")
		domain, _ := c.Flags().GetString("cluster-domain")
		for what, v := range map[string]string{"service": args[0], "namespace": ns} {
			if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
				return fmt.Errorf("invalid %s name %q: %s", what, v, errs[0])
			}
		}
		return profileFromTap(c, g, args[0], ns, domain, tapRes, d, limit)
	}
	return c
}
