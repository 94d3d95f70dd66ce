package httpsource

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"

	"github.com/configsync/configsync/source"
)

// Configs arrive decoded from YAML (int64, float64), from JSON (float64 or
// json.Number) or from Go (int, ...): these helpers read any of them.

// kindOf names the JSON type of v for messages (never its value).
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case json.Number, *big.Int:
		return "a number"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return fmt.Sprintf("a %T", v)
}

// scalarText renders a scalar as it goes into a URL, a header or a path:
// strings as they are, numbers in their JSON spelling, booleans as true/false.
// It refuses null, objects and arrays.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case json.Number:
		return x.String(), true
	case *big.Int:
		return x.String(), true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", false
		}
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	if i, ok := source.Integer(v); ok {
		return strconv.FormatInt(i, 10), true
	}
	if f, ok := source.Number(v); ok {
		return strconv.FormatFloat(f, 'f', -1, 64), true
	}
	return "", false
}

// asObject reads a JSON object (map with string keys).
func asObject(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case nil:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	out := make(map[string]any, rv.Len())
	for _, k := range rv.MapKeys() {
		out[k.String()] = rv.MapIndex(k).Interface()
	}
	return out, true
}

// asList reads a JSON array (any slice).
func asList(v any) ([]any, bool) {
	switch l := v.(type) {
	case []any:
		return l, true
	case nil:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

// stringMap reads an object whose values are scalars, rendered as text.
func stringMap(v any, what string) (map[string]string, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := asObject(v)
	if !ok {
		return nil, fmt.Errorf("%s must be an object, got %s", what, kindOf(v))
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, ok := scalarText(x)
		if !ok {
			return nil, fmt.Errorf("%s.%s must be a string, number or boolean, got %s", what, k, kindOf(x))
		}
		out[k] = s
	}
	return out, nil
}

// optString reads an optional string field.
func optString(m map[string]any, key, what string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s.%s must be a string, got %s", what, key, kindOf(v))
	}
	return s, nil
}

// optInt reads an optional integer field within [lo, hi]; def when absent.
func optInt(m map[string]any, key, what string, def, lo, hi int64) (int64, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	i, ok := source.Integer(v)
	if !ok {
		return 0, fmt.Errorf("%s.%s must be an integer, got %s", what, key, kindOf(v))
	}
	if i < lo || i > hi {
		return 0, fmt.Errorf("%s.%s must be between %d and %d", what, key, lo, hi)
	}
	return i, nil
}

// optBool reads an optional boolean field; def when absent.
func optBool(m map[string]any, key, what string, def bool) (bool, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s.%s must be a boolean, got %s", what, key, kindOf(v))
	}
	return b, nil
}

// toJSONValue converts a config value (YAML or Go types) to what encoding/json
// writes faithfully: it is marshalled as is, so only checks that it can be.
func toJSONValue(v any, what string) (any, error) {
	if v == nil {
		return nil, nil
	}
	if _, err := json.Marshal(v); err != nil {
		return nil, fmt.Errorf("%s cannot be written as JSON: %w", what, err)
	}
	return v, nil
}
