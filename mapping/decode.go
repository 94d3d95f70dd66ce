package mapping

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// maxDecodeDepth bounds nesting in an item, so that a hostile "[[[[...]]]]" is an item
// error rather than a deep recursion.
const maxDecodeDepth = 512

// decoder turns raw JSON items into gojq values, building only the parts a need asks
// for. It is reused across items by one goroutine; it is not safe for concurrent use.
type decoder struct {
	dec   *jsontext.Decoder
	depth int
}

func newDecoder() *decoder {
	return &decoder{dec: jsontext.NewDecoder(bytes.NewBuffer(nil), decodeOptions...)}
}

// decodeOptions accept what jq accepts: duplicate names (the last wins) and invalid
// UTF-8 (kept as is).
var decodeOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// decode parses one item. Values are gojq's: map[string]any, []any, string, int,
// *big.Int for integers beyond int, float64, bool and nil, so big integers survive.
func (d *decoder) decode(raw []byte, n *need) (any, error) {
	// A bytes.Buffer is parsed in place by jsontext, without a copy of the item.
	d.dec.Reset(bytes.NewBuffer(raw), decodeOptions...)
	d.depth = 0
	v, err := d.value(n)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := d.dec.ReadToken(); err == nil {
		return nil, fmt.Errorf("invalid JSON: more than one value in the item")
	}
	return v, nil
}

func (d *decoder) value(n *need) (any, error) {
	switch d.dec.PeekKind() {
	case '{':
		return d.object(n)
	case '[':
		return d.array()
	default:
		return d.scalar()
	}
}

func (d *decoder) object(n *need) (any, error) {
	if d.depth++; d.depth > maxDecodeDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxDecodeDepth)
	}
	defer func() { d.depth-- }()
	if _, err := d.dec.ReadToken(); err != nil {
		return nil, err
	}
	partial := !n.whole()
	size := 8
	if partial {
		size = len(n.keys)
	}
	m := make(map[string]any, size)
	for d.dec.PeekKind() != '}' {
		name, err := d.dec.ReadValue()
		if err != nil {
			return nil, err
		}
		var child *need
		escaped := bytes.IndexByte(name, '\\') >= 0
		if partial && !escaped {
			// Look the member up before making a string of its name: most members
			// are skipped, and m[string(b)] does not allocate.
			if child = n.keys[string(name[1:len(name)-1])]; child == nil {
				if err := d.dec.SkipValue(); err != nil {
					return nil, err
				}
				continue
			}
		}
		key, err := unquote(name)
		if err != nil {
			return nil, err
		}
		if partial && escaped {
			if child = n.keys[key]; child == nil {
				if err := d.dec.SkipValue(); err != nil {
					return nil, err
				}
				continue
			}
		}
		v, err := d.value(child)
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return nil, err
	}
	return m, nil
}

func (d *decoder) array() (any, error) {
	if d.depth++; d.depth > maxDecodeDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxDecodeDepth)
	}
	defer func() { d.depth-- }()
	if _, err := d.dec.ReadToken(); err != nil {
		return nil, err
	}
	a := []any{}
	for d.dec.PeekKind() != ']' {
		v, err := d.value(nil)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return nil, err
	}
	return a, nil
}

func (d *decoder) scalar() (any, error) {
	raw, err := d.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	switch raw.Kind() {
	case '"':
		return unquote(raw)
	case '0':
		return parseNumber(raw)
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case 'n':
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected %s", raw.Kind())
}

// unquote returns the string of a raw JSON string, without copying escapes twice.
func unquote(raw []byte) (string, error) {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	b, err := jsontext.AppendUnquote(nil, raw)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// parseNumber converts a JSON number the way gojq does: integers to int, or to
// *big.Int when they do not fit; anything else to float64.
func parseNumber(raw []byte) (any, error) {
	if !bytes.ContainsAny(raw, ".eE") {
		if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil && i >= math.MinInt && i <= math.MaxInt {
			return int(i), nil
		}
		if b, ok := new(big.Int).SetString(string(raw), 10); ok {
			return b, nil
		}
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil && !math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %s: %w", raw, err)
	}
	return f, nil
}
