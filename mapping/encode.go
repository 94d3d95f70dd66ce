package mapping

import (
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/itchyny/gojq"
)

// AppendJSON appends the entity as one JSON object in Port's shape:
// {"identifier","title","blueprint","icon","team","properties","relations"}, with icon
// and team left out when unset, and properties and relations in config order.
func (e *Entity) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"identifier":`...)
	dst = appendValue(dst, e.Identifier)
	dst = append(dst, `,"title":`...)
	dst = appendValue(dst, e.Title)
	dst = append(dst, `,"blueprint":`...)
	dst = appendValue(dst, e.Blueprint)
	if e.Icon != nil {
		dst = append(dst, `,"icon":`...)
		dst = appendValue(dst, e.Icon)
	}
	if e.Team != nil {
		dst = append(dst, `,"team":`...)
		dst = appendValue(dst, e.Team)
	}
	dst = append(dst, `,"properties":`...)
	dst = appendProps(dst, e.Properties)
	dst = append(dst, `,"relations":`...)
	dst = appendProps(dst, e.Relations)
	return append(dst, '}')
}

// MarshalJSON encodes the entity as AppendJSON does.
func (e Entity) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }

func appendProps(dst []byte, props []Prop) []byte {
	dst = append(dst, '{')
	for i, p := range props {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, p.Name)
		dst = append(dst, ':')
		dst = appendValue(dst, p.Value)
	}
	return append(dst, '}')
}

// appendValue encodes a gojq value. Strings, integers, booleans and null, which are
// nearly every field, are written directly; the rest go through gojq's encoder so that
// numbers and key order are printed as jq prints them.
func appendValue(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, x)
	case string:
		return appendString(dst, x)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	}
	b, err := gojq.Marshal(v)
	if err != nil {
		return append(dst, "null"...)
	}
	return append(dst, b...)
}

func appendString(dst []byte, s string) []byte {
	out, err := jsontext.AppendQuote(dst, s)
	if err != nil {
		// Invalid UTF-8: gojq's encoder replaces the bad bytes as jq does.
		b, _ := gojq.Marshal(s)
		return append(dst, b...)
	}
	return out
}
