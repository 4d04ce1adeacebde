package inject

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
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
func JSONPatch(before, after any) ([]byte, error) {
	a, err := toGeneric(before)
	if err != nil {
		return nil, err
	}
	b, err := toGeneric(after)
	if err != nil {
		return nil, err
	}
	ops := []PatchOp{}
	diff(&ops, "", a, b)
	return json.Marshal(ops)
}

func toGeneric(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode for patch: %w", err)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decode for patch: %w", err)
	}
	return out, nil
}

func escape(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

func diff(ops *[]PatchOp, path string, a, b any) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
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
				diff(ops, p, x, y)
			}
		}
		return
	case []any:
		bv, ok := b.([]any)
		if !ok {
			break
		}
		if equalJSON(av, bv) {
			return
		}
		if len(bv) > len(av) {
			grown := len(bv) - len(av)
			if equalJSON(av, bv[grown:]) { // new items in front, in order
				for i := 0; i < grown; i++ {
					*ops = append(*ops, PatchOp{Op: "add", Path: fmt.Sprintf("%s/%d", path, i), Value: bv[i]})
				}
				return
			}
			if equalJSON(av, bv[:len(av)]) { // new items at the end
				for _, item := range bv[len(av):] {
					*ops = append(*ops, PatchOp{Op: "add", Path: path + "/-", Value: item})
				}
				return
			}
		}
	default:
		if equalJSON(a, b) {
			return
		}
	}
	*ops = append(*ops, PatchOp{Op: "replace", Path: path, Value: b})
}

// equalJSON compares two decoded JSON values (maps, slices, strings, float64s, bools, nil).
func equalJSON(a, b any) bool { return reflect.DeepEqual(a, b) }
