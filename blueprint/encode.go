package blueprint

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// objectWriter builds one JSON object key by key. The types write their objects by hand
// rather than through struct tags because Extra has to be merged in at the same level,
// and encoding/json has no inline-map option.
type objectWriter struct {
	buf []byte
	err error
}

// value writes key with v encoded by encoding/json.
func (w *objectWriter) value(key string, v any) {
	if w.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		w.err = fmt.Errorf("%s: %w", key, err)
		return
	}
	w.put(key, b)
}

// str writes a string field, leaving it out when empty, as Port does.
func (w *objectWriter) str(key, s string) {
	if s != "" {
		w.value(key, s)
	}
}

// raw writes kept JSON as it is, leaving it out when nil (the key was absent).
func (w *objectWriter) raw(key string, r json.RawMessage) {
	if r != nil {
		w.value(key, r)
	}
}

func (w *objectWriter) put(key string, value []byte) {
	if len(w.buf) == 0 {
		w.buf = append(w.buf, '{')
	} else {
		w.buf = append(w.buf, ',')
	}
	k, _ := json.Marshal(key) // a string always encodes
	w.buf = append(w.buf, k...)
	w.buf = append(w.buf, ':')
	w.buf = append(w.buf, value...)
}

// finish appends extra in sorted key order (so output is stable) and closes the object.
// An extra key that repeats a modeled one is an error rather than a silent choice:
// writing both would give Port a document with a duplicate key.
func (w *objectWriter) finish(extra map[string]json.RawMessage, modeled []string) ([]byte, error) {
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if slices.Contains(modeled, k) {
			return nil, fmt.Errorf("blueprint: Extra key %q is a modeled field; set the field instead", k)
		}
		w.value(k, extra[k])
	}
	if w.err != nil {
		return nil, w.err
	}
	if len(w.buf) == 0 {
		return []byte("{}"), nil
	}
	return append(w.buf, '}'), nil
}
