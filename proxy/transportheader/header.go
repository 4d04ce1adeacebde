// Package transportheader is Linkerd's opaque transport header: the first bytes a client
// proxy sends, inside mesh TLS negotiated with the ALPN protocol "transport.l5d.io/v1", to
// a server proxy's inbound port (4143) when it carries an opaque connection for the
// application. On the wire: the preface "transport.l5d.io/v1\r\n\r\n", a 4-byte
// big-endian length, then a protobuf transport.l5d.io.Header message
// {int32 port = 1; string name = 2; SessionProtocol session_protocol = 3} naming the port
// (and optionally the logical name) the connection was originally meant for.
package transportheader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// ALPN is the TLS application protocol that announces a transport header.
const ALPN = "transport.l5d.io/v1"

// Preface starts every header.
const Preface = "transport.l5d.io/v1\r\n\r\n"

// MaxMessageLen bounds the protobuf message a reader accepts.
const MaxMessageLen = 4096

// Protocol is the session protocol a header announces (Opaque when none).
type Protocol int

// Session protocols.
const (
	Opaque Protocol = iota
	HTTP1
	HTTP2
)

// Header is a decoded transport header.
type Header struct {
	// Port is the port the connection was originally sent to (1-65535).
	Port uint16
	// Name is the logical name of the target, "" when none was sent.
	Name string
	// Protocol is the session protocol, Opaque when the header names none.
	Protocol Protocol
}

// Append appends the encoded header (preface, length, message) to b.
func (h Header) Append(b []byte) []byte {
	var msg []byte
	msg = protowire.AppendTag(msg, 1, protowire.VarintType)
	msg = protowire.AppendVarint(msg, uint64(h.Port))
	if h.Name != "" {
		msg = protowire.AppendTag(msg, 2, protowire.BytesType)
		msg = protowire.AppendString(msg, h.Name)
	}
	if h.Protocol == HTTP1 || h.Protocol == HTTP2 {
		var sp []byte
		sp = protowire.AppendTag(sp, protowire.Number(h.Protocol), protowire.BytesType)
		sp = protowire.AppendBytes(sp, nil)
		msg = protowire.AppendTag(msg, 3, protowire.BytesType)
		msg = protowire.AppendBytes(msg, sp)
	}
	b = append(b, Preface...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	return append(b, msg...)
}

// ErrNoPreface means the stream does not start with a transport header.
var ErrNoPreface = errors.New("transport header: missing preface")

// Read reads one header from r, consuming exactly its bytes.
func Read(r io.Reader) (Header, error) {
	var head [len(Preface) + 4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return Header{}, fmt.Errorf("transport header: reading the preface: %w", err)
	}
	n, err := checkHead(head[:])
	if err != nil {
		return Header{}, err
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return Header{}, fmt.Errorf("transport header: reading the %d-byte message: %w", n, err)
	}
	return decodeMessage(msg)
}

// Decode decodes the header at the start of b and returns the bytes after it.
func Decode(b []byte) (Header, []byte, error) {
	if len(b) < len(Preface)+4 {
		if strings.HasPrefix(Preface, string(b)) {
			return Header{}, nil, fmt.Errorf("transport header: %d bytes, too short", len(b))
		}
		return Header{}, nil, ErrNoPreface
	}
	n, err := checkHead(b[:len(Preface)+4])
	if err != nil {
		return Header{}, nil, err
	}
	b = b[len(Preface)+4:]
	if len(b) < n {
		return Header{}, nil, fmt.Errorf("transport header: message of %d bytes truncated to %d", n, len(b))
	}
	h, err := decodeMessage(b[:n])
	return h, b[n:], err
}

func checkHead(head []byte) (int, error) {
	if string(head[:len(Preface)]) != Preface {
		return 0, ErrNoPreface
	}
	n := binary.BigEndian.Uint32(head[len(Preface):])
	if n > MaxMessageLen {
		return 0, fmt.Errorf("transport header: message length %d exceeds %d", n, MaxMessageLen)
	}
	return int(n), nil
}

func decodeMessage(b []byte) (Header, error) {
	var h Header
	var port int64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return Header{}, fmt.Errorf("transport header: bad field tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return Header{}, fmt.Errorf("transport header: bad port: %w", protowire.ParseError(n))
			}
			port, b = int64(int32(v)), b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			if n < 0 {
				return Header{}, fmt.Errorf("transport header: bad name: %w", protowire.ParseError(n))
			}
			h.Name, b = v, b[n:]
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return Header{}, fmt.Errorf("transport header: bad session protocol: %w", protowire.ParseError(n))
			}
			p, err := decodeProtocol(v)
			if err != nil {
				return Header{}, err
			}
			h.Protocol, b = p, b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return Header{}, fmt.Errorf("transport header: bad field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if port <= 0 || port > 65535 {
		return Header{}, fmt.Errorf("transport header: invalid port %d", port)
	}
	h.Port = uint16(port)
	if h.Name != "" && !validName(h.Name) {
		return Header{}, fmt.Errorf("transport header: invalid name %q", h.Name)
	}
	return h, nil
}

func decodeProtocol(b []byte) (Protocol, error) {
	p := Opaque
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, fmt.Errorf("transport header: bad session protocol tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if (num == 1 || num == 2) && typ == protowire.BytesType {
			p = Protocol(num)
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, fmt.Errorf("transport header: bad session protocol field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return p, nil
}

// validName accepts DNS-like names: labels of letters, digits, '-' and '_', at most 253
// bytes, an optional trailing dot.
func validName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
