package echo

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Request is what the client sends (the flags of Istio's echo client).
type Request struct {
	URL     string      // http://, https:// or grpc://host[:port][/path]
	Method  string      // --method (HTTP; default GET)
	Headers http.Header // -H name:value; "Host" sets the request's authority
	Count   int         // --count (default 1)
	Timeout time.Duration
}

// Do sends the requests one after the other and writes each result to w in the format
// the conformance suite parses. Redirects are not followed. It fails when a request gets no
// response at all (connection refused, timeout); a response of any status is a result.
func Do(ctx context.Context, w io.Writer, r Request) error {
	u, err := url.Parse(r.URL)
	if err != nil {
		return fmt.Errorf("client: URL %q: %w", r.URL, err)
	}
	if r.Count <= 0 {
		r.Count = 1
	}
	if r.Timeout <= 0 {
		r.Timeout = 5 * time.Second
	}
	switch u.Scheme {
	case "http", "https":
		return doHTTP(ctx, w, u, r)
	case "grpc":
		return doGRPC(ctx, w, u, r)
	}
	return fmt.Errorf("client: URL %q: scheme %q is not http, https or grpc", r.URL, u.Scheme)
}

func doHTTP(ctx context.Context, w io.Writer, u *url.URL, r Request) error {
	c := &http.Client{
		Timeout: r.Timeout,
		// The echo's certificate is self-signed: the client checks routing, not identity.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	defer c.CloseIdleConnections()
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	for i := range r.Count {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		for k, vs := range r.Headers {
			for _, v := range vs {
				if strings.EqualFold(k, "Host") {
					req.Host = v
					continue
				}
				req.Header.Add(k, v)
			}
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("client: request %d to %s: %w", i, u, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("client: request %d to %s: reading the body: %w", i, u, err)
		}
		writeResult(w, i, u.String(), resp.StatusCode, resp.Header, string(b))
	}
	return nil
}

func doGRPC(ctx context.Context, w io.Writer, u *url.URL, r Request) error {
	conn, err := grpc.NewClient(u.Host, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("client: %s: %w", u, err)
	}
	defer conn.Close()
	md := metadata.MD{}
	for k, vs := range r.Headers {
		if strings.EqualFold(k, "Host") {
			continue
		}
		md.Append(strings.ToLower(k), vs...)
	}
	method := EchoMethod
	if u.Path != "" && u.Path != "/" {
		method = u.Path
	}
	for i := range r.Count {
		cctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, md), r.Timeout)
		out := new(wrapperspb.StringValue)
		var hdr metadata.MD
		err := conn.Invoke(cctx, method, wrapperspb.String(""), out, grpc.Header(&hdr), grpc.WaitForReady(false))
		cancel()
		st := status.Convert(err)
		if st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded {
			return fmt.Errorf("client: request %d to %s: %w", i, u, err)
		}
		code := http.StatusOK
		if err != nil {
			code = int(st.Code())
		}
		h := http.Header{}
		for k, vs := range hdr {
			h[http.CanonicalHeaderKey(k)] = vs
		}
		writeResult(w, i, u.String(), code, h, out.GetValue())
	}
	return nil
}

// ErrUsage is wrapped by ParseClientArgs' errors.
var ErrUsage = errors.New("usage: client <url> [--method=M] [-H name:value]... [--count=N] [--timeout=D]")

// ParseClientArgs reads the client's command line (Istio's echo client's flags used by the
// conformance suite).
func ParseClientArgs(args []string) (Request, error) {
	r := Request{Headers: http.Header{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func(name string) (string, error) {
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("%w: %s needs a value", ErrUsage, name)
			}
			i++
			return args[i], nil
		}
		name, _, _ := strings.Cut(a, "=")
		switch name {
		case "-H", "--header", "-header":
			v, err := val(name)
			if err != nil {
				return r, err
			}
			k, hv, ok := strings.Cut(v, ":")
			if !ok {
				return r, fmt.Errorf("%w: header %q is not name:value", ErrUsage, v)
			}
			r.Headers.Add(strings.TrimSpace(k), strings.TrimSpace(hv))
		case "--method", "-method", "-X":
			v, err := val(name)
			if err != nil {
				return r, err
			}
			r.Method = v
		case "--count", "-count", "-c":
			v, err := val(name)
			if err != nil {
				return r, err
			}
			if _, err := fmt.Sscanf(v, "%d", &r.Count); err != nil || r.Count < 1 {
				return r, fmt.Errorf("%w: --count %q is not a positive number", ErrUsage, v)
			}
		case "--timeout", "-timeout":
			v, err := val(name)
			if err != nil {
				return r, err
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				return r, fmt.Errorf("%w: --timeout %q: %v", ErrUsage, v, err)
			}
			r.Timeout = d
		default:
			if strings.HasPrefix(a, "-") || r.URL != "" {
				return r, fmt.Errorf("%w: unexpected argument %q", ErrUsage, a)
			}
			r.URL = a
		}
	}
	if r.URL == "" {
		return r, fmt.Errorf("%w: no URL", ErrUsage)
	}
	return r, nil
}
