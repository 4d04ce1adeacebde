package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// PatchOp is one RFC 6902 JSON patch operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// JSONPatch returns the RFC 6902 patch turning before into after (both JSON-encodable, such
// as a pod and its injected copy). Objects are compared key by key; arrays that differ are
// replaced whole, except that an array which only grew at its front or back gets "add"
// operations for the new items, so a patch adding containers does not rewrite the others.
//
// Both are encoded once and compared as encoded JSON: a part whose encoding is the same on
// both sides is equal (encoding/json writes a value of a given type the same way each
// time, map keys sorted) and is not decoded further, so only what injection changed
// (metadata, containers, volumes) is taken apart; values in the patch are the encoded JSON
// of after, verbatim.
//
// The two encodings live in pooled buffers, released before it returns: a review then
// allocates only the patch, not two copies of the pod (less garbage, fewer collections
// in an admission's tail).
func JSONPatch(before, after any) ([]byte, error) {
	ab, err := encodePooled(before)
	if err != nil {
		return nil, err
	}
	defer releasePooled(ab)
	bb, err := encodePooled(after)
	if err != nil {
		return nil, err
	}
	defer releasePooled(bb)
	a, b := ab.Bytes(), bb.Bytes()
	ops := []PatchOp{}
	if err := diff(&ops, "", a, b); err != nil {
		return nil, fmt.Errorf("decode for patch: %w", err)
	}
	// Written by hand: json.Marshal would validate and copy every value again.
	out := make([]byte, 0, 64*len(ops)+len(b))
	out = append(out, '[')
	for i, op := range ops {
		if i > 0 {
			out = append(out, ',')
		}
		path, err := json.Marshal(op.Path)
		if err != nil {
			return nil, err
		}
		out = append(out, `{"op":"`...)
		out = append(out, op.Op...)
		out = append(out, `","path":`...)
		out = append(out, path...)
		if v, ok := op.Value.(json.RawMessage); ok {
			out = append(out, `,"value":`...)
			out = append(out, v...)
		}
		out = append(out, '}')
	}
	return append(out, ']'), nil
}

// encodeBuffers holds the buffers JSONPatch encodes into.
var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer is the largest buffer put back in encodeBuffers: a rare huge pod's
// buffer is left to the garbage collector rather than kept.
const maxPooledBuffer = 256 << 10

// encodePooled encodes v as json.Marshal does (HTML characters escaped, no indentation)
// into a pooled buffer, without the newline json.Encoder ends with.
func encodePooled(v any) (*bytes.Buffer, error) {
	buf := encodeBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		releasePooled(buf)
		return nil, fmt.Errorf("encode for patch: %w", err)
	}
	buf.Truncate(buf.Len() - 1)
	return buf, nil
}

func releasePooled(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuffer {
		encodeBuffers.Put(buf)
	}
}

func escape(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

// kind returns the first byte of an encoded JSON value: '{', '[' or another.
func kind(v json.RawMessage) byte {
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

// diff appends the operations turning the encoded value a into b at path.
func diff(ops *[]PatchOp, path string, a, b json.RawMessage) error {
	if bytes.Equal(a, b) {
		return nil
	}
	switch {
	case kind(a) == '{' && kind(b) == '{':
		av, err := objectMembers(a)
		if err != nil {
			return err
		}
		bv, err := objectMembers(b)
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := path + "/" + escape(k)
			x, inA := av[k]
			y, inB := bv[k]
			switch {
			case inA && !inB:
				*ops = append(*ops, PatchOp{Op: "remove", Path: p})
			case !inA:
				*ops = append(*ops, PatchOp{Op: "add", Path: p, Value: y})
			default:
				if err := diff(ops, p, x, y); err != nil {
					return err
				}
			}
		}
		return nil
	case kind(a) == '[' && kind(b) == '[':
		av, err := arrayItems(a)
		if err != nil {
			return err
		}
		bv, err := arrayItems(b)
		if err != nil {
			return err
		}
		if len(bv) > len(av) {
			grown := len(bv) - len(av)
			if equalItems(av, bv[grown:]) { // new items in front, in order
				for i := range grown {
					*ops = append(*ops, PatchOp{Op: "add", Path: path + "/" + strconv.Itoa(i), Value: bv[i]})
				}
				return nil
			}
			if equalItems(av, bv[:len(av)]) { // new items at the end
				for _, item := range bv[len(av):] {
					*ops = append(*ops, PatchOp{Op: "add", Path: path + "/-", Value: item})
				}
				return nil
			}
		}
	}
	*ops = append(*ops, PatchOp{Op: "replace", Path: path, Value: b})
	return nil
}

// equalItems compares two lists of encoded JSON values.
func equalItems(a, b []json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// The JSON taken apart here is what json.Marshal wrote: valid and compact. The scanner
// below relies on that (it finds the ends of values, it does not validate them) and
// returns an error, never panics, on anything else.

var errMalformed = errors.New("malformed encoded JSON")

// objectMembers returns the members of an encoded JSON object, by key.
func objectMembers(v []byte) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := members(v, '{', '}', func(key, val []byte) error {
		k, err := decodeKey(key)
		if err != nil {
			return err
		}
		out[k] = val
		return nil
	})
	return out, err
}

// arrayItems returns the items of an encoded JSON array.
func arrayItems(v []byte) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := members(v, '[', ']', func(_, val []byte) error {
		out = append(out, val)
		return nil
	})
	return out, err
}

// members calls f with each member of the encoded object or array v (open and close are
// its brackets): the encoded key (with its quotes; nil in arrays) and the encoded value.
func members(v []byte, open, close byte, f func(key, val []byte) error) error {
	if len(v) < 2 || v[0] != open || v[len(v)-1] != close {
		return errMalformed
	}
	i := 1
	if v[i] == close {
		return nil
	}
	for {
		var key []byte
		if open == '{' {
			end, err := valueEnd(v, i)
			if err != nil || v[i] != '"' || end >= len(v) || v[end] != ':' {
				return errMalformed
			}
			key, i = v[i:end], end+1
		}
		end, err := valueEnd(v, i)
		if err != nil || end >= len(v) {
			return errMalformed
		}
		if err := f(key, v[i:end]); err != nil {
			return err
		}
		switch v[end] {
		case ',':
			i = end + 1
		case close:
			if end != len(v)-1 {
				return errMalformed
			}
			return nil
		default:
			return errMalformed
		}
	}
}

// valueEnd returns the index just past the encoded value starting at v[i].
func valueEnd(v []byte, i int) (int, error) {
	if i >= len(v) {
		return 0, errMalformed
	}
	switch v[i] {
	case '"':
		return stringEnd(v, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(v); j++ {
			switch v[j] {
			case '"':
				end, err := stringEnd(v, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errMalformed
	}
	j := i
	for j < len(v) && v[j] != ',' && v[j] != '}' && v[j] != ']' {
		j++
	}
	if j == i {
		return 0, errMalformed
	}
	return j, nil
}

// stringEnd returns the index just past the encoded string starting at v[i].
func stringEnd(v []byte, i int) (int, error) {
	for j := i + 1; j < len(v); j++ {
		switch v[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errMalformed
}

// decodeKey decodes an encoded JSON string (an object key).
func decodeKey(key []byte) (string, error) {
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key[1 : len(key)-1]), nil
	}
	var k string
	if err := json.Unmarshal(key, &k); err != nil {
		return "", fmt.Errorf("%w: key %s: %v", errMalformed, key, err)
	}
	return k, nil
}
