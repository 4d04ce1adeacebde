package h2

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// blockOutcome is what a reader made of one header block.
type blockOutcome struct {
	fields    []hpack.HeaderField
	truncated bool
	ended     bool
	err       string // "", "stream <id> <code>", "conn <code>" or another error
}

func classify(err error) string {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return fmt.Sprintf("stream %d %v", se.StreamID, se.Code)
	case errors.As(err, &ce):
		return fmt.Sprintf("conn %v", http2.ErrCode(ce))
	}
	return "other " + err.Error()
}

// readWithXNet reads every header block of wire with x/net/http2's Framer decoding them
// (ReadMetaHeaders), as the proxy did before it had its headerReader.
func readWithXNet(wire []byte) []blockOutcome {
	fr := http2.NewFramer(nil, bytes.NewReader(wire))
	fr.SetMaxReadFrameSize(maxFrameRead)
	fr.MaxHeaderListSize = maxHeaderList
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var out []blockOutcome
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if c := classify(err); !strings.HasPrefix(c, "other") {
				out = append(out, blockOutcome{err: c})
				if strings.HasPrefix(c, "stream") {
					continue
				}
			}
			return out
		}
		if mh, ok := f.(*http2.MetaHeadersFrame); ok {
			out = append(out, blockOutcome{fields: append([]hpack.HeaderField(nil), mh.Fields...), truncated: mh.Truncated, ended: mh.StreamEnded()})
		}
	}
}

// readWithHeaderReader does the same with headerReader.
func readWithHeaderReader(wire []byte) []blockOutcome {
	fr := http2.NewFramer(nil, bytes.NewReader(wire))
	fr.SetMaxReadFrameSize(maxFrameRead)
	hr := newHeaderReader(fr)
	var out []blockOutcome
	for {
		f, err := fr.ReadFrame()
		var hb *headerBlock
		if hf, ok := f.(*http2.HeadersFrame); ok && err == nil {
			hb, err = hr.read(hf)
		}
		if err != nil {
			if c := classify(err); !strings.HasPrefix(c, "other") {
				out = append(out, blockOutcome{err: c})
				if strings.HasPrefix(c, "stream") {
					continue
				}
			}
			return out
		}
		if hb != nil {
			if len(hb.PseudoFields())+len(hb.RegularFields()) != len(hb.Fields) {
				panic("pseudo and regular fields do not add up")
			}
			out = append(out, blockOutcome{fields: append([]hpack.HeaderField(nil), hb.Fields...), truncated: hb.Truncated, ended: hb.StreamEnded()})
			hr.release()
		}
	}
}

// wireBuilder writes frames for the header reader tests with one HPACK encoder, so that
// blocks share a dynamic table.
type wireBuilder struct {
	buf  bytes.Buffer
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

func newWireBuilder() *wireBuilder {
	w := &wireBuilder{}
	w.fr = http2.NewFramer(&w.buf, nil)
	w.enc = hpack.NewEncoder(&w.hbuf)
	return w
}

// block encodes pairs and writes them on stream id in frames of at most chunk bytes.
func (w *wireBuilder) block(id uint32, endStream bool, chunk int, pairs ...string) {
	w.hbuf.Reset()
	for i := 0; i+1 < len(pairs); i += 2 {
		w.enc.WriteField(hpack.HeaderField{Name: pairs[i], Value: pairs[i+1]})
	}
	w.raw(id, endStream, chunk, w.hbuf.Bytes())
}

// raw writes an encoded block on stream id in frames of at most chunk bytes.
func (w *wireBuilder) raw(id uint32, endStream bool, chunk int, b []byte) {
	first := true
	for first || len(b) > 0 {
		n := min(len(b), chunk)
		frag := b[:n]
		b = b[n:]
		if first {
			w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: endStream, EndHeaders: len(b) == 0})
			first = false
		} else {
			w.fr.WriteContinuation(id, len(b) == 0, frag)
		}
	}
}

// TestHeaderReaderMatchesXNet decodes header blocks, well-formed and hostile, with both
// headerReader and x/net/http2's Framer: fields, truncation and errors must be the same.
func TestHeaderReaderMatchesXNet(t *testing.T) {
	big := strings.Repeat("v", 30000)
	cases := map[string]func(w *wireBuilder){
		"request": func(w *wireBuilder) {
			w.block(1, true, 16384, ":method", "GET", ":scheme", "http", ":path", "/a", ":authority", "svc", "user-agent", "x", "accept", "*/*")
			w.block(3, false, 16384, ":method", "POST", ":scheme", "http", ":path", "/b", ":authority", "svc", "user-agent", "x", "content-length", "3")
			w.block(3, true, 16384, "grpc-status", "0") // trailers
		},
		"response": func(w *wireBuilder) {
			w.block(1, false, 16384, ":status", "200", "content-type", "text/plain", "content-length", "100")
		},
		"continuations": func(w *wireBuilder) {
			w.block(1, true, 7, ":method", "GET", ":path", "/", "x-a", strings.Repeat("a", 50), "x-b", "b")
		},
		"upper-case name": func(w *wireBuilder) {
			w.block(1, true, 16384, ":method", "GET", ":path", "/", "X-Upper", "v")
			w.block(3, true, 16384, ":method", "GET", ":path", "/", "x-ok", "v")
		},
		"bad name": func(w *wireBuilder) {
			w.block(1, true, 16384, ":method", "GET", ":path", "/", "a b", "v")
			w.block(3, true, 16384, ":method", "GET", ":path", "/", "", "v")
			w.block(5, true, 16384, ":method", "GET", ":path", "/", "\xff", "v")
		},
		"bad value": func(w *wireBuilder) {
			w.block(1, true, 16384, ":method", "GET", ":path", "/", "x", "a\nb")
			w.block(3, true, 16384, ":method", "GET", ":path", "/", "x", "a\x00b")
			w.block(5, true, 16384, ":method", "GET", ":path", "/", "x", "ok\tvalue")
		},
		"pseudo after regular": func(w *wireBuilder) {
			w.block(1, true, 16384, ":method", "GET", "x", "y", ":path", "/")
		},
		"unknown pseudo": func(w *wireBuilder) {
			w.block(1, true, 16384, ":method", "GET", ":path", "/", ":bogus", "1")
		},
		"repeated pseudo": func(w *wireBuilder) {
			w.block(1, true, 16384, ":method", "GET", ":path", "/", ":path", "/x")
		},
		"mixed pseudo": func(w *wireBuilder) {
			w.block(1, true, 16384, ":method", "GET", ":status", "200")
		},
		"invalid then continuation": func(w *wireBuilder) {
			w.block(1, true, 10, ":method", "GET", "X-Upper", "v", "x-more", strings.Repeat("m", 40))
		},
		"truncated": func(w *wireBuilder) {
			// 40,000 fields of 35 bytes each for hpack, one byte each on the wire.
			pairs := []string{":method", "GET", ":path", "/"}
			for range 40000 {
				pairs = append(pairs, "x-a", "")
			}
			w.block(1, true, 1<<20, pairs...)
			w.block(3, true, 16384, ":method", "GET", ":path", "/after")
		},
		"continuation flood": func(w *wireBuilder) {
			var pairs []string
			for i := range 40 {
				pairs = append(pairs, fmt.Sprintf("x-%d", i), big)
			}
			w.block(1, true, 16384, append([]string{":method", "GET", ":path", "/"}, pairs...)...)
		},
		"trailer declarations": func(w *wireBuilder) {
			names := strings.TrimSuffix(strings.Repeat("a,", 40000), ",")
			w.block(1, false, 1<<20, ":method", "POST", ":path", "/", "trailer", names)
			w.block(3, false, 1<<20, ":method", "POST", ":path", "/", "trailer", names, "trailer", names)
		},
		"bad hpack": func(w *wireBuilder) {
			w.raw(1, true, 16384, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}) // index far past both tables
		},
		"truncated hpack": func(w *wireBuilder) {
			w.raw(1, true, 16384, []byte{0x40, 0x05, 'a'}) // literal whose name is cut short
		},
		"data inside a block": func(w *wireBuilder) {
			w.hbuf.Reset()
			w.enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
			w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: w.hbuf.Bytes()})
			w.fr.WriteData(1, true, []byte("x"))
		},
		"continuation of another stream": func(w *wireBuilder) {
			w.hbuf.Reset()
			w.enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
			w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: w.hbuf.Bytes()})
			w.fr.WriteContinuation(3, true, nil)
		},
		"dynamic table across blocks": func(w *wireBuilder) {
			for id := uint32(1); id < 20; id += 2 {
				w.block(id, true, 16384, ":method", "GET", ":path", fmt.Sprintf("/%d", id%5), "x-same", "same", fmt.Sprintf("x-%d", id), "v")
			}
			w.enc.SetMaxDynamicTableSizeLimit(64)
			w.enc.SetMaxDynamicTableSize(64)
			w.block(21, true, 16384, ":method", "GET", ":path", "/small", "x-same", "same")
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			w := newWireBuilder()
			build(w)
			want := readWithXNet(w.buf.Bytes())
			got := readWithHeaderReader(w.buf.Bytes())
			if len(want) == 0 {
				t.Fatal("x/net read no block")
			}
			if name == "truncated" && (len(want) != 2 || !want[0].truncated || want[1].err != "") {
				t.Fatalf("x/net read\n%s, want a truncated block and a complete one", summarize(want))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("headerReader read\n%s\nx/net read\n%s", summarize(got), summarize(want))
			}
		})
	}
}

// FuzzHeaderReader compares headerReader with x/net/http2's Framer on arbitrary frames.
func FuzzHeaderReader(f *testing.F) {
	w := newWireBuilder()
	w.block(1, true, 16384, ":method", "GET", ":scheme", "http", ":path", "/a", ":authority", "svc", "user-agent", "x")
	w.block(3, false, 5, ":status", "200", "x-a", "b", "trailer", "a, b")
	w.block(5, true, 16384, ":method", "GET", "X-Upper", "v")
	f.Add(w.buf.Bytes())
	f.Fuzz(func(t *testing.T, wire []byte) {
		want := readWithXNet(wire)
		got := readWithHeaderReader(wire)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("headerReader read\n%s\nx/net read\n%s", summarize(got), summarize(want))
		}
	})
}

func summarize(out []blockOutcome) string {
	var b strings.Builder
	for _, o := range out {
		fmt.Fprintf(&b, "  err=%q truncated=%v ended=%v fields=%d", o.err, o.truncated, o.ended, len(o.fields))
		for i, f := range o.fields {
			if i < 6 {
				fmt.Fprintf(&b, " %s=%.20q", f.Name, f.Value)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestHeaderReaderReleases checks that a connection keeps neither the decoded strings
// nor a large field slice between header blocks.
func TestHeaderReaderReleases(t *testing.T) {
	w := newWireBuilder()
	pairs := []string{":method", "GET", ":path", "/"}
	for i := range 200 {
		pairs = append(pairs, fmt.Sprintf("x-%d", i), "v")
	}
	w.block(1, true, 16384, pairs...)
	w.block(3, true, 16384, ":method", "GET", ":path", "/")
	fr := http2.NewFramer(nil, bytes.NewReader(w.buf.Bytes()))
	hr := newHeaderReader(fr)
	for range 2 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hr.read(f.(*http2.HeadersFrame)); err != nil {
			t.Fatal(err)
		}
		hr.release()
		if c := cap(hr.block.Fields); c > maxKeptFields {
			t.Fatalf("kept %d field slots", c)
		}
		for _, f := range hr.block.Fields[:cap(hr.block.Fields)] {
			if f.Name != "" || f.Value != "" {
				t.Fatalf("kept field %q", f.Name)
			}
		}
	}
}

// TestHeaderReaderAllocations: decoding a request's header block costs no allocation
// besides hpack's decoded literal strings (none here: every field is indexed after the
// first block).
func TestHeaderReaderAllocations(t *testing.T) {
	w := newWireBuilder()
	for id := uint32(1); id < 2*1000+2; id += 2 {
		w.block(id, true, 16384, ":method", "GET", ":scheme", "http", ":path", "/", ":authority", "svc.ns", "user-agent", "bench", "accept-encoding", "gzip")
	}
	fr := http2.NewFramer(nil, bytes.NewReader(w.buf.Bytes()))
	fr.SetMaxReadFrameSize(maxFrameRead)
	hr := newHeaderReader(fr)
	read := func() {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hr.read(f.(*http2.HeadersFrame)); err != nil {
			t.Fatal(err)
		}
		hr.release()
	}
	read()
	// The Framer's HeadersFrame is its only allocation.
	if n := testing.AllocsPerRun(500, read); n > 1 {
		t.Errorf("%v allocations per header block, want at most 1 (the Framer's frame)", n)
	}
}
