package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// PatchWriter writes an RFC 6902 JSON patch operation by operation, for a webhook that
// knows what it changes (the proxy injector: what injection adds) and so need not encode
// the object twice and compare (JSONPatch). Its operations are the ones JSONPatch finds for
// the same change, written the same way (values encoded as json.Marshal encodes them), in
// the order the caller writes them: write them in the order of the object's fields, as
// JSONPatch does. Its buffer is pooled; Bytes returns the patch and gives the buffer back.
// The zero value is not usable: see NewPatchWriter.
type PatchWriter struct {
	buf *bytes.Buffer
	enc *json.Encoder
	ops int
	err error
}

// NewPatchWriter returns a writer of an empty patch.
func NewPatchWriter() *PatchWriter {
	buf := getBuffer()
	buf.WriteByte('[')
	return &PatchWriter{buf: buf, enc: json.NewEncoder(buf)}
}

// Bytes returns the patch (a new slice) and releases the writer's buffer; the first error
// of an operation's value, if any, wrapped. The writer is not usable after.
func (w *PatchWriter) Bytes() ([]byte, error) {
	defer func() { releaseBuffer(w.buf); w.buf = nil }()
	if w.err != nil {
		return nil, w.err
	}
	w.buf.WriteByte(']')
	return bytes.Clone(w.buf.Bytes()), nil
}

// op writes one operation; value, unless nil, writes its value.
func (w *PatchWriter) op(op, path string, value func()) {
	if w.err != nil {
		return
	}
	if w.ops > 0 {
		w.buf.WriteByte(',')
	}
	w.ops++
	head, err := appendOpHead(w.buf.AvailableBuffer(), op, path)
	if err != nil {
		w.err = fmt.Errorf("patch path %q: %w", path, err)
		return
	}
	w.buf.Write(head)
	if value != nil {
		w.buf.WriteString(`,"value":`)
		value()
	}
	w.buf.WriteByte('}')
}

// encode writes v as json.Marshal encodes it, without the encoder's newline.
func (w *PatchWriter) encode(path string, v any) {
	if w.err != nil {
		return
	}
	if err := w.enc.Encode(v); err != nil {
		w.err = fmt.Errorf("patch value at %s: %w", path, err)
		return
	}
	w.buf.Truncate(w.buf.Len() - 1)
}

// str writes s as json.Marshal encodes a string.
func (w *PatchWriter) str(s string) {
	out, err := appendString(w.buf.AvailableBuffer(), s)
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("patch string %q: %w", s, err)
	}
	w.buf.Write(out)
}

// strMap writes m as json.Marshal encodes a map[string]string: keys sorted.
func (w *PatchWriter) strMap(m map[string]string, keys []string) {
	w.buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		w.str(k)
		w.buf.WriteByte(':')
		w.str(m[k])
	}
	w.buf.WriteByte('}')
}

// SetMembers writes the operations setting the members set on the string map at path (a
// pod's labels or annotations) that holds had: the whole map is added when had is empty
// (an empty map is left out of an encoded object), else each key of set, in sorted order,
// is added when had lacks it and replaced when had holds another value.
func (w *PatchWriter) SetMembers(path string, had, set map[string]string) {
	if len(set) == 0 {
		return
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys) // as encoding/json orders a map's keys
	if len(had) == 0 {
		w.op("add", path, func() { w.strMap(set, keys) })
		return
	}
	for _, k := range keys {
		v := set[k]
		switch old, ok := had[k]; {
		case !ok:
			w.op("add", path+"/"+escape(k), func() { w.str(v) })
		case old != v:
			w.op("replace", path+"/"+escape(k), func() { w.str(v) })
		}
	}
}

// AddItems writes the operations putting front before and back after the had items of the
// list at path: the whole list is added when had is 0 (an empty list is left out of an
// encoded object), else front's items are added at indexes 0, 1, ... and back's at the end
// ("-"). (Where JSONPatch, for a list grown at both ends, replaces it whole, these add to
// it: the patched object is the same.)
func AddItems[T any](w *PatchWriter, path string, had int, front, back []T) {
	if had == 0 {
		if len(front)+len(back) > 0 {
			w.op("add", path, func() {
				w.buf.WriteByte('[')
				n := 0
				for _, list := range [2][]T{front, back} {
					for j := range list {
						if n > 0 {
							w.buf.WriteByte(',')
						}
						n++
						w.encode(path, &list[j])
					}
				}
				w.buf.WriteByte(']')
			})
		}
		return
	}
	for i := range front {
		w.op("add", path+"/"+strconv.Itoa(i), func() { w.encode(path, &front[i]) })
	}
	for i := range back {
		w.op("add", path+"/-", func() { w.encode(path, &back[i]) })
	}
}
