package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
// The two encodings live in pooled buffers (encodePooled), released before it returns, and
// so does the diff's bookkeeping (differ): a review then allocates little more than the
// patch, not two copies of the pod (less garbage, fewer collections in an admission's
// tail).
func JSONPatch(before, after any) ([]byte, error) {
	ab, err := encodePooled(before)
	if err != nil {
		return nil, fmt.Errorf("encode for patch: %w", err)
	}
	defer releaseBuffer(ab)
	bb, err := encodePooled(after)
	if err != nil {
		return nil, fmt.Errorf("encode for patch: %w", err)
	}
	defer releaseBuffer(bb)
	d := differs.Get().(*differ)
	defer d.release()
	if err := d.diff("", ab.Bytes(), bb.Bytes()); err != nil {
		return nil, fmt.Errorf("decode for patch: %w", err)
	}
	ops := d.ops
	// Written by hand, into a buffer of the exact size: json.Marshal would validate and
	// copy every value again.
	size := 2 + len(ops)
	for _, op := range ops {
		size += len(`{"op":"","path":""}`) + len(op.op) + len(op.path) + 2
		if op.value != nil {
			size += len(`,"value":`) + len(op.value)
		}
	}
	out := make([]byte, 0, size)
	out = append(out, '[')
	for i, op := range ops {
		if i > 0 {
			out = append(out, ',')
		}
		if out, err = appendOpHead(out, op.op, op.path); err != nil {
			return nil, err
		}
		if op.value != nil {
			out = append(out, `,"value":`...)
			out = append(out, op.value...)
		}
		out = append(out, '}')
	}
	return append(out, ']'), nil
}

// appendOpHead appends the start of an operation, `{"op":"<op>","path":"<path>"`; the
// caller appends the value, if any, and the closing brace.
func appendOpHead(out []byte, op, path string) ([]byte, error) {
	out = append(out, `{"op":"`...)
	out = append(out, op...)
	out = append(out, `","path":`...)
	return appendString(out, path)
}

// differ finds the operations of a patch (diff), keeping the members of the objects it is
// inside in scratch, a stack: a pooled differ allocates nothing for them.
type differ struct {
	ops     []patchOp
	scratch []member
}

var differs = sync.Pool{New: func() any { return new(differ) }}

// release returns d to the pool, dropping its references into the encoded JSON.
func (d *differ) release() {
	clear(d.ops)
	clear(d.scratch[:cap(d.scratch)])
	d.ops, d.scratch = d.ops[:0], d.scratch[:0]
	differs.Put(d)
}

// patchOp is an operation as diff finds it: value is encoded JSON (nil for "remove").
type patchOp struct {
	op, path string
	value    []byte
}

// appendString appends s as json.Marshal encodes a string: verbatim between quotes when it
// holds only printable ASCII that needs no escape, else through json.Marshal.
func appendString(out []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil {
				return nil, err
			}
			return append(out, q...), nil
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"'), nil
}

func escape(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

// kind returns the first byte of an encoded JSON value: '{', '[' or another.
func kind(v []byte) byte {
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

// diff appends the operations turning the encoded value a into b at path to d.ops. Both
// come from the same encoder, so equal values are equal bytes (keys included, escaped
// alike).
func (d *differ) diff(path string, a, b []byte) error {
	if bytes.Equal(a, b) {
		return nil
	}
	switch {
	case kind(a) == '{' && kind(b) == '{':
		base := len(d.scratch)
		defer func() { d.scratch = d.scratch[:base] }()
		var err error
		if d.scratch, err = objectMembers(d.scratch, a); err != nil {
			return err
		}
		mid := len(d.scratch)
		if d.scratch, err = objectMembers(d.scratch, b); err != nil {
			return err
		}
		// The slices stay valid when deeper calls append to scratch (and may move it):
		// they keep the array they were cut from, which is only appended to.
		av, bv := d.scratch[base:mid], d.scratch[mid:]
		// Keys are looked for in order: the encoder writes a struct's fields in one order
		// and a map's keys sorted, so the next key of a is usually where the search starts.
		// A member of a that b has is marked by clearing its key.
		next := 0
		for _, m := range bv {
			j := find(av, m.key, next)
			if j < 0 {
				k, err := decodeKey(m.key)
				if err != nil {
					return err
				}
				d.ops = append(d.ops, patchOp{op: "add", path: path + "/" + escape(k), value: m.val})
				continue
			}
			av[j].key, next = nil, j+1
			if bytes.Equal(av[j].val, m.val) {
				continue
			}
			k, err := decodeKey(m.key)
			if err != nil {
				return err
			}
			if err := d.diff(path+"/"+escape(k), av[j].val, m.val); err != nil {
				return err
			}
		}
		for _, m := range av {
			if m.key == nil {
				continue
			}
			k, err := decodeKey(m.key)
			if err != nil {
				return err
			}
			d.ops = append(d.ops, patchOp{op: "remove", path: path + "/" + escape(k)})
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
					d.ops = append(d.ops, patchOp{op: "add", path: path + "/" + strconv.Itoa(i), value: bv[i]})
				}
				return nil
			}
			if equalItems(av, bv[:len(av)]) { // new items at the end
				for _, item := range bv[len(av):] {
					d.ops = append(d.ops, patchOp{op: "add", path: path + "/-", value: item})
				}
				return nil
			}
		}
	}
	d.ops = append(d.ops, patchOp{op: "replace", path: path, value: b})
	return nil
}

// find returns the index of the member with the encoded key in ms, searching from
// ms[from] on and then before it; -1 when there is none.
func find(ms []member, key []byte, from int) int {
	for j := from; j < len(ms); j++ {
		if bytes.Equal(ms[j].key, key) {
			return j
		}
	}
	for j := 0; j < from && j < len(ms); j++ {
		if bytes.Equal(ms[j].key, key) {
			return j
		}
	}
	return -1
}

// equalItems compares two lists of encoded JSON values.
func equalItems(a, b [][]byte) bool {
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

// member is one member of an encoded JSON object: its encoded key (with the quotes) and
// its encoded value.
type member struct{ key, val []byte }

// objectMembers appends the members of an encoded JSON object to out, in order. A key with
// an escape is checked here (decodeKey); the others are plain.
func objectMembers(out []member, v []byte) ([]member, error) {
	err := members(v, '{', '}', func(key, val []byte) error {
		if bytes.IndexByte(key, '\\') >= 0 {
			if _, err := decodeKey(key); err != nil {
				return err
			}
		}
		out = append(out, member{key, val})
		return nil
	})
	return out, err
}

// arrayItems returns the items of an encoded JSON array.
func arrayItems(v []byte) ([][]byte, error) {
	var out [][]byte
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

// stringEnd returns the index just past the encoded string starting at v[i]. It jumps from
// quote to quote (bytes.IndexByte): a quote ends the string unless an odd number of
// backslashes precedes it.
func stringEnd(v []byte, i int) (int, error) {
	for j := i + 1; j < len(v); {
		q := bytes.IndexByte(v[j:], '"')
		if q < 0 {
			break
		}
		q += j
		bs := 0
		for k := q - 1; k > i && v[k] == '\\'; k-- {
			bs++
		}
		if bs%2 == 0 {
			return q + 1, nil
		}
		j = q + 1
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
