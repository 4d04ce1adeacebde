package h2

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// headerBlock is one decoded header block: a HEADERS frame with its CONTINUATION frames.
// It belongs to the connection's headerReader and is valid until its next block.
type headerBlock struct {
	StreamID uint32
	// Truncated is set when the fields exceeded the header list size this side announces
	// (maxHeaderList): the fields past the limit were dropped.
	Truncated bool
	// Fields are the pseudo-header fields first, then the regular ones.
	Fields    []hpack.HeaderField
	npseudo   int
	endStream bool
}

// StreamEnded reports whether the HEADERS frame carried END_STREAM.
func (b *headerBlock) StreamEnded() bool { return b.endStream }

// PseudoFields returns the pseudo-header fields (":method"...); the slice is the block's.
func (b *headerBlock) PseudoFields() []hpack.HeaderField { return b.Fields[:b.npseudo] }

// RegularFields returns the fields after the pseudo-header fields; the slice is the block's.
func (b *headerBlock) RegularFields() []hpack.HeaderField { return b.Fields[b.npseudo:] }

// headerReader decodes the header blocks of one connection's Framer (whose ReadMetaHeaders
// stays nil) into a headerBlock it reuses, so that a request's or response's header block
// costs no allocation besides the decoded strings. It applies the checks x/net/http2's
// Framer applies to header blocks, with the same outcomes:
//
//   - the decoded header list is bounded by maxHeaderList (hpack's field sizes, a
//     "trailer" field counted per declared name against a budget of its own); fields past
//     it are dropped and the block is Truncated;
//   - a fragment larger than twice what the limits still allow, or a CONTINUATION after an
//     invalid field, is a PROTOCOL_ERROR connection error (CONTINUATION floods,
//     CVE-2023-45288), as is a frame other than the block's CONTINUATION (the Framer's
//     frame order check);
//   - an HPACK decoding error is a COMPRESSION_ERROR connection error;
//   - an invalid field value, a field name that is not a lower-case token, a
//     pseudo-header field after a regular one, an unknown or repeated pseudo-header
//     field, and request and response pseudo-header fields mixed are a PROTOCOL_ERROR
//     stream error once the block is decoded (the HPACK state stays in step).
type headerReader struct {
	fr  *http2.Framer
	dec *hpack.Decoder
	// block is what read returns.
	block headerBlock
	// State of the block being decoded (see emit).
	headersLeft, trailersLeft uint32
	sawRegular                bool
	invalid                   error
}

// maxKeptFields bounds the field slice a connection keeps between blocks.
const maxKeptFields = 64

var errPseudoAfterRegular = errors.New("pseudo-header field after a regular field")

// newHeaderReader prepares a reader for fr's header blocks.
func newHeaderReader(fr *http2.Framer) *headerReader {
	hr := &headerReader{fr: fr, dec: hpack.NewDecoder(4096, nil)}
	hr.dec.SetMaxStringLength(maxHeaderList)
	hr.dec.SetEmitFunc(hr.emit)
	hr.block.Fields = make([]hpack.HeaderField, 0, 16)
	return hr
}

// read decodes the block that hf begins, reading its CONTINUATION frames from the Framer.
// Errors are http2.ConnectionError or http2.StreamError values (see headerReader), or
// the Framer's reading errors.
func (hr *headerReader) read(hf *http2.HeadersFrame) (*headerBlock, error) {
	b := &hr.block
	b.StreamID, b.endStream, b.Truncated, b.npseudo = hf.StreamID, hf.StreamEnded(), false, 0
	b.Fields = b.Fields[:0]
	hr.headersLeft, hr.trailersLeft = maxHeaderList, maxHeaderList
	hr.sawRegular, hr.invalid = false, nil
	hr.dec.SetEmitEnabled(true)
	frag, ended := hf.HeaderBlockFragment(), hf.HeadersEnded()
	for {
		if int64(len(frag)) > 2*(int64(hr.headersLeft)+int64(hr.trailersLeft)) || hr.invalid != nil {
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := hr.dec.Write(frag); err != nil {
			return nil, http2.ConnectionError(http2.ErrCodeCompression)
		}
		if ended {
			break
		}
		f, err := hr.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		cf, ok := f.(*http2.ContinuationFrame)
		if !ok { // the Framer's order check lets nothing else through
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		frag, ended = cf.HeaderBlockFragment(), cf.HeadersEnded()
	}
	if err := hr.dec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if hr.invalid != nil {
		return nil, http2.StreamError{StreamID: b.StreamID, Code: http2.ErrCodeProtocol, Cause: hr.invalid}
	}
	if err := checkPseudoFields(b.PseudoFields()); err != nil {
		return nil, http2.StreamError{StreamID: b.StreamID, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return b, nil
}

// release drops the block's fields once its caller is done with them, so that the
// connection keeps no decoded strings, and no large slice, between blocks.
func (hr *headerReader) release() {
	b := &hr.block
	if cap(b.Fields) > maxKeptFields {
		b.Fields = make([]hpack.HeaderField, 0, 16)
		return
	}
	clear(b.Fields)
	b.Fields = b.Fields[:0]
}

// emit takes one decoded field (the decoder's emit function).
func (hr *headerReader) emit(f hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(f.Value) {
		hr.invalid = fmt.Errorf("invalid value of header field %q", f.Name) // the value may be secret
	}
	pseudo := strings.HasPrefix(f.Name, ":")
	if pseudo {
		if hr.sawRegular {
			hr.invalid = errPseudoAfterRegular
		}
	} else {
		hr.sawRegular = true
		if !lowerToken(f.Name) {
			hr.invalid = fmt.Errorf("invalid header field name %q", f.Name)
		}
	}
	if hr.invalid != nil {
		hr.dec.SetEmitEnabled(false)
		return
	}
	left, size := &hr.headersLeft, f.Size()
	if f.Name == "trailer" {
		// Each declared name counts as a field of its own (with hpack's 32-byte overhead).
		names := uint32(strings.Count(f.Value, ",") + 1)
		left, size = &hr.trailersLeft, uint32(len(f.Value))-names+1+names*hpack.HeaderField{}.Size()
	}
	if size > *left {
		hr.dec.SetEmitEnabled(false)
		hr.block.Truncated = true
		hr.headersLeft, hr.trailersLeft = 0, 0
		return
	}
	*left -= size
	hr.block.Fields = append(hr.block.Fields, f)
	if pseudo {
		hr.block.npseudo++
	}
}

// lowerToken reports whether name is a valid HTTP/2 field name: a non-empty token
// without upper-case letters (RFC 9113 section 8.2.1).
func lowerToken(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 0x80 || !httpguts.IsTokenRune(rune(c)) || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// checkPseudoFields refuses unknown and repeated pseudo-header fields, and request and
// response pseudo-header fields in one block (RFC 9113 section 8.3).
func checkPseudoFields(fields []hpack.HeaderField) error {
	request, response := false, false
	for i, f := range fields {
		switch f.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return fmt.Errorf("unknown pseudo-header field %q", f.Name)
		}
		for _, g := range fields[:i] {
			if g.Name == f.Name {
				return fmt.Errorf("repeated pseudo-header field %q", f.Name)
			}
		}
	}
	if request && response {
		return errors.New("request and response pseudo-header fields in one block")
	}
	return nil
}
