package mapping

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"strconv"

	"github.com/configsync/configsync/rawjson"
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
//
// Most items are decoded by decodeFast, which steps over unread members with rawjson
// at about twice jsontext's speed. Whatever it does not accept (invalid JSON, but also
// valid JSON rawjson is unsure of) is decoded again by decodeSlow, so values and error
// messages are jsontext's in every case.
func (d *decoder) decode(raw []byte, n *need) (any, error) {
	if v, ok := decodeFast(raw, n); ok {
		return v, nil
	}
	return d.decodeSlow(raw, n)
}

// decodeSlow is decode on jsontext alone: the reference for decodeFast, and the
// decoder of every item decodeFast turns down.
func (d *decoder) decodeSlow(raw []byte, n *need) (any, error) {
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
			if child = n.member(name[1 : len(name)-1]); child == nil {
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

// decodeFast is decode on rawjson: it builds the same values as decodeSlow, and
// reports ok=false, to have decodeSlow decide, for anything it does not accept. That
// is any input rawjson does not accept (so all invalid JSON), nesting beyond
// maxDecodeDepth, and anything but whitespace after the value: decodeSlow's answers
// there (an error, or a quirk of reading one token past the value) are left to it
// rather than imitated.
//
// It keeps no state between items, so it needs no decoder of its own.
func decodeFast(b []byte, n *need) (v any, ok bool) {
	v, i, ok := fastValue(b, rawjson.Space(b, 0), n, 0)
	if !ok || rawjson.Space(b, i) != len(b) {
		return nil, false
	}
	return v, true
}

// fastValue builds the value at b[i] (no whitespace before it) for need n, inside
// depth containers, and returns the index just after it.
func fastValue(b []byte, i int, n *need, depth int) (any, int, bool) {
	if i >= len(b) {
		return nil, i, false
	}
	switch b[i] {
	case '{':
		return fastObject(b, i, n, depth+1)
	case '[':
		return fastArray(b, i, depth+1)
	case '"':
		end, escaped, ok := rawjson.String(b, i)
		if !ok {
			return nil, i, false
		}
		if !escaped {
			return string(b[i+1 : end-1]), end, true
		}
		s, err := unquote(b[i:end])
		return s, end, err == nil
	case 't':
		end, ok := rawjson.Value(b, i)
		return true, end, ok
	case 'f':
		end, ok := rawjson.Value(b, i)
		return false, end, ok
	case 'n':
		end, ok := rawjson.Value(b, i)
		return nil, end, ok
	}
	// A number, or not JSON: rawjson tells, and parseNumber converts exactly the
	// bytes jsontext would have handed it.
	end, ok := rawjson.Value(b, i)
	if !ok {
		return nil, i, false
	}
	x, err := parseNumber(b[i:end])
	return x, end, err == nil
}

// fastObject builds the object at b[i], which is at the given depth (counted from 1,
// as decodeSlow counts). With a partial need it reads only the members in n.keys,
// each for its own need, and steps over the others with rawjson.Value.
func fastObject(b []byte, i int, n *need, depth int) (any, int, bool) {
	if depth > maxDecodeDepth {
		// decodeSlow reports this, in its own words.
		return nil, i, false
	}
	partial := !n.whole()
	size := 8
	if partial {
		size = len(n.keys)
	}
	m := make(map[string]any, size)
	i = rawjson.Space(b, i+1)
	if i < len(b) && b[i] == '}' {
		return m, i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, i, false
		}
		end, escaped, ok := rawjson.String(b, i)
		if !ok {
			return nil, i, false
		}
		name := b[i:end]
		i = rawjson.Space(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, i, false
		}
		i = rawjson.Space(b, i+1)
		var key string
		var child *need
		switch {
		case !partial:
			key = string(name[1 : len(name)-1])
			if escaped {
				var err error
				if key, err = unquote(name); err != nil {
					return nil, i, false
				}
			}
		case !escaped:
			// Look the member up before making a string of its name: most members
			// are skipped, and m[string(b)] does not allocate.
			child = n.member(name[1 : len(name)-1])
			if child != nil {
				key = string(name[1 : len(name)-1])
			}
		default:
			k, err := unquote(name)
			if err != nil {
				return nil, i, false
			}
			if child = n.keys[k]; child != nil {
				key = k
			}
		}
		if partial && child == nil {
			if i, ok = rawjson.Value(b, i); !ok {
				return nil, i, false
			}
		} else {
			var v any
			if v, i, ok = fastValue(b, i, child, depth); !ok {
				return nil, i, false
			}
			m[key] = v // a duplicate name replaces the earlier value, as in jq
		}
		var last bool
		if i, last, ok = rawjson.Next(b, i, '}'); !ok {
			return nil, i, false
		} else if last {
			return m, i, true
		}
	}
}

// fastArray builds the array at b[i], at the given depth, whole: a need never
// reaches into arrays.
func fastArray(b []byte, i, depth int) (any, int, bool) {
	if depth > maxDecodeDepth {
		return nil, i, false
	}
	a := []any{}
	i = rawjson.Space(b, i+1)
	if i < len(b) && b[i] == ']' {
		return a, i + 1, true
	}
	for {
		v, end, ok := fastValue(b, i, nil, depth)
		if !ok {
			return nil, end, false
		}
		a = append(a, v)
		var last bool
		if i, last, ok = rawjson.Next(b, end, ']'); !ok {
			return nil, i, false
		} else if last {
			return a, i, true
		}
	}
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
