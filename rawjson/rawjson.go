// Package rawjson finds the bounds of JSON values in bytes, checking them as it goes,
// without building anything: a page of a REST API is cut into its items, and an item's
// unread members are stepped over, at a fraction of a general decoder's cost (which
// pays for a state machine and a name stack on every token).
//
// It is deliberately conservative: whatever it accepts is valid JSON (RFC 8259) that
// encoding/json and jsontext accept too and read the same; anything it is unsure of
// (escaped surrogates, invalid UTF-8, nesting deeper than MaxDepth) it reports as not
// accepted, and the caller falls back to a full decoder, which then gives the right
// answer or the right error.
package rawjson

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting Value accepts; deeper input goes to a full decoder.
const MaxDepth = 512

// Space returns the index of the first byte at or after i that is not JSON
// whitespace.
func Space(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// Next steps over the whitespace and the separator after a member of an object or an
// element of an array, which close ('}' or ']') ends. It returns the index of the next
// member or element, after a comma, or last and the index just after close; ok is
// false when neither follows, and then next is where the unexpected byte is.
func Next(b []byte, i int, close byte) (next int, last, ok bool) {
	i = Space(b, i)
	if i >= len(b) {
		return i, false, false
	}
	switch b[i] {
	case ',':
		return Space(b, i+1), false, true
	case close:
		return i + 1, true, true
	}
	return i, false, false
}

// Value checks the JSON value that starts at b[i] (no whitespace before it) and
// returns the index just after it. ok is false when b[i:] does not start with a value
// Value accepts.
func Value(b []byte, i int) (end int, ok bool) {
	return value(b, i, 0, false)
}

// MaxUniqueNames is the most members an object may have for UniqueValue to accept it;
// larger objects go to a full decoder, which keeps a set of the names.
const MaxUniqueNames = 32

// UniqueValue is Value that also does not accept an object with two members of the
// same name, which RFC 8259 leaves to the decoder and strict decoders (jsontext by
// default) refuse. It compares names as their bytes, so it does not accept an object
// with an escaped name (one that may equal another spelled differently) or with more
// than MaxUniqueNames members either.
func UniqueValue(b []byte, i int) (end int, ok bool) {
	return value(b, i, 0, true)
}

// value checks the value at b[i]; unique objects go to uniqueObject, so that Value's
// objects do not pay for a list of names.
func value(b []byte, i, depth int, unique bool) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		end, _, ok := String(b, i)
		return end, ok
	case c == '{':
		if depth >= MaxDepth {
			return i, false
		}
		if unique {
			return uniqueObject(b, i, depth)
		}
		i = Space(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			var ok bool
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			if i, _, ok = String(b, i); !ok {
				return i, false
			}
			i = Space(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = value(b, Space(b, i+1), depth+1, false); !ok {
				return i, false
			}
			var last bool
			if i, last, ok = Next(b, i, '}'); !ok || last {
				return i, ok
			}
		}
	case c == '[':
		if depth >= MaxDepth {
			return i, false
		}
		i = Space(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = value(b, i, depth+1, unique); !ok {
				return i, false
			}
			var last bool
			if i, last, ok = Next(b, i, ']'); !ok || last {
				return i, ok
			}
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return number(b, i)
	}
	return i, false
}

// uniqueObject is value's object case for UniqueValue: the names read so far are kept
// in an array on the stack, and each new one is compared with them (objects are small:
// this costs less than a set).
func uniqueObject(b []byte, i, depth int) (int, bool) {
	var seen [MaxUniqueNames][]byte
	n := 0
	i = Space(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' || n == MaxUniqueNames {
			return i, false
		}
		end, escaped, ok := String(b, i)
		if !ok || escaped {
			return i, false
		}
		name := b[i+1 : end-1]
		for _, prev := range seen[:n] {
			if string(prev) == string(name) {
				return i, false
			}
		}
		seen[n] = name
		n++
		i = Space(b, end)
		if i >= len(b) || b[i] != ':' {
			return i, false
		}
		if i, ok = value(b, Space(b, i+1), depth+1, true); !ok {
			return i, false
		}
		var last bool
		if i, last, ok = Next(b, i, '}'); !ok || last {
			return i, ok
		}
	}
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// number checks -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
func number(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return i, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// String checks the string that starts at b[i] (a quote) and returns the index just
// after its closing quote, and whether it holds escapes (its bytes then differ from
// its value). Escaped surrogates (\uD800 to \uDFFF) and invalid UTF-8 are not
// accepted: decoders differ on them, so a full decoder must decide.
func String(b []byte, i int) (end int, escaped bool, ok bool) {
	i++
	for {
		// Eight plain bytes at a time: none a quote, a backslash, a control
		// character or non-ASCII. Most of a JSON document is such bytes.
		for len(b)-i >= 8 {
			x := binary.LittleEndian.Uint64(b[i:])
			q := x ^ ('"' * ones)
			s := x ^ ('\\' * ones)
			special := (((q - ones) &^ q) | ((s - ones) &^ s) | (x - 0x20*ones) | x) & highs
			if special != 0 {
				// Go straight to the first special byte. Borrows in the
				// subtractions can flag plain bytes, but only ones after a special
				// byte, so the lowest flag is exact.
				i += bits.TrailingZeros64(special) / 8
				break
			}
			i += 8
		}
		if i >= len(b) {
			return i, escaped, false
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, escaped, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 {
					return i, escaped, false
				}
				r := rune(0)
				for _, h := range b[i+2 : i+6] {
					var v byte
					switch {
					case h >= '0' && h <= '9':
						v = h - '0'
					case h >= 'a' && h <= 'f':
						v = h - 'a' + 10
					case h >= 'A' && h <= 'F':
						v = h - 'A' + 10
					default:
						return i, escaped, false
					}
					r = r<<4 | rune(v)
				}
				if r >= 0xD800 && r <= 0xDFFF {
					return i, escaped, false
				}
				i += 6
			default:
				return i, escaped, false
			}
		case c < 0x20:
			return i, escaped, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return i, escaped, false
			}
			i += size
		}
	}
}
