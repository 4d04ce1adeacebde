package transportheader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{Port: 8080},
		{Port: 4040, Name: "web.ns.svc.cluster.local", Protocol: HTTP2},
		{Port: 65535, Protocol: HTTP1},
	} {
		wire := append(h.Append(nil), "rest"...)
		got, rest, err := Decode(wire)
		if err != nil || got != h || string(rest) != "rest" {
			t.Errorf("Decode(%+v) = %+v %q %v", h, got, rest, err)
		}
		r := bytes.NewReader(wire)
		got, err = Read(r)
		if err != nil || got != h || r.Len() != len("rest") {
			t.Errorf("Read(%+v) = %+v (left %d) %v", h, got, r.Len(), err)
		}
	}
}

func TestWireFormat(t *testing.T) {
	// port 4143 as field 1 varint: 0x08 0xaf 0x20.
	want := append([]byte("transport.l5d.io/v1\r\n\r\n"), 0, 0, 0, 3, 0x08, 0xaf, 0x20)
	if got := (Header{Port: 4143}).Append(nil); !bytes.Equal(got, want) {
		t.Fatalf("encoded %x, want %x", got, want)
	}
}

func TestMalformed(t *testing.T) {
	msg := func(fields ...[]byte) []byte {
		var m []byte
		for _, f := range fields {
			m = append(m, f...)
		}
		b := append([]byte(Preface), 0, 0, 0, 0)
		binary.BigEndian.PutUint32(b[len(Preface):], uint32(len(m)))
		return append(b, m...)
	}
	portField := func(v int64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(v))
	}
	huge := append([]byte(Preface), 0xff, 0xff, 0xff, 0xff)
	for name, b := range map[string][]byte{
		"no preface":     []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"short":          []byte("transport.l5d"),
		"huge length":    huge,
		"truncated":      msg(portField(80))[:len(Preface)+5],
		"zero port":      msg(portField(0)),
		"negative port":  msg(portField(-1)),
		"port too large": msg(portField(70000)),
		"missing port":   msg(),
		"bad name":       msg(portField(80), protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), "bad name!")),
		"bad tag":        msg([]byte{0xff}),
	} {
		if _, _, err := Decode(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
		if _, err := Read(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: read", name)
		}
	}
	if _, _, err := Decode([]byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n")); !errors.Is(err, ErrNoPreface) {
		t.Errorf("HTTP request: %v, want ErrNoPreface", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Header{Port: 8080}.Append(nil))
	f.Add(Header{Port: 1, Name: "a.b", Protocol: HTTP1}.Append([]byte("x")))
	f.Add([]byte(Preface + "\x00\x00\x00\x02\x08\x00"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, rest, err := Decode(b)
		rh, rerr := Read(bytes.NewReader(b))
		if (err == nil) != (rerr == nil) || (err == nil && rh != h) {
			t.Fatalf("Decode and Read disagree: %+v %v / %+v %v", h, err, rh, rerr)
		}
		if err != nil {
			return
		}
		if h.Port == 0 || len(rest) > len(b) {
			t.Fatalf("accepted %+v", h)
		}
		// What was accepted encodes to a header that decodes the same.
		again, _, err := Decode(h.Append(nil))
		if err != nil || again != h {
			t.Fatalf("re-encoding %+v: %+v %v", h, again, err)
		}
	})
}
