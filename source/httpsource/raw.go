package httpsource

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"

	"github.com/configsync/configsync/rawjson"
)

// simplePath matches a dataPath that is only field names: ".", ".items",
// ".data.items". Such a path can be followed over the response's bytes without
// building the document, the case of nearly every REST API.
var simplePath = regexp.MustCompile(`^\s*\.\s*$|^\s*(\.[A-Za-z_][A-Za-z0-9_]*)+\s*$`)

// pathFields returns the field names of a simple dataPath (none for "."), or
// ok false when src is not one.
func pathFields(src string) (fields []string, ok bool) {
	if !simplePath.MatchString(src) {
		return nil, false
	}
	for _, f := range strings.Split(strings.TrimSpace(src), ".")[1:] {
		if f != "" {
			fields = append(fields, f)
		}
	}
	return fields, true
}

// errNotSimple says that splitRaw cannot answer for this body, and the body
// must be decoded and given to jq: the path leads to null, to a missing or
// repeated member or through a non-object, the JSON is invalid, or it holds
// what encoding/json reads more leniently (invalid UTF-8, duplicate names).
// jq then gives the same items, or the error the user should see.
var errNotSimple = errors.New("not a plain document for the raw path")

// splitRaw follows fields through body and returns the items there as slices
// of body (no copy, capacity capped so that nobody appends into a
// neighbour): each element of an array, or an object itself. The whole body
// is checked to be one valid JSON value, by rawjson, which steps over the
// items' bytes several times faster than a general decoder; whatever it is
// unsure of goes to the jq path (errNotSimple).
func splitRaw(body []byte, fields []string) ([][]byte, error) {
	var items [][]byte
	i, err := walkRaw(body, rawjson.Space(body, 0), fields, &items)
	if err != nil {
		return nil, err
	}
	if rawjson.Space(body, i) != len(body) {
		return nil, errNotSimple
	}
	return items, nil
}

// walkRaw reads the value at body[i]: when fields is empty, that value holds
// the items; otherwise it must be an object whose member fields[0] is walked
// in turn, the other members skipped. It returns the index after the value.
// Names may repeat inside items (the mapping's decoder, like encoding/json,
// keeps the last), but not on the path.
func walkRaw(body []byte, i int, fields []string, items *[][]byte) (int, error) {
	if i >= len(body) {
		return i, errNotSimple
	}
	if len(fields) == 0 {
		switch body[i] {
		case '[':
			i = rawjson.Space(body, i+1)
			if i < len(body) && body[i] == ']' {
				return i + 1, nil
			}
			for {
				end, ok := rawjson.Value(body, i)
				if !ok {
					return i, errNotSimple
				}
				*items = append(*items, body[i:end:end])
				var last bool
				if i, last, ok = rawjson.Next(body, end, ']'); !ok {
					return i, errNotSimple
				} else if last {
					return i, nil
				}
			}
		case '{':
			end, ok := rawjson.Value(body, i)
			if !ok {
				return i, errNotSimple
			}
			*items = append(*items, body[i:end:end])
			return end, nil
		}
		return i, errNotSimple
	}
	if body[i] != '{' {
		return i, errNotSimple
	}
	i = rawjson.Space(body, i+1)
	found := false
	if i < len(body) && body[i] == '}' {
		return i, errNotSimple // the member is missing
	}
	for {
		if i >= len(body) || body[i] != '"' {
			return i, errNotSimple
		}
		end, escaped, ok := rawjson.String(body, i)
		if !ok {
			return i, errNotSimple
		}
		name := string(body[i+1 : end-1])
		if escaped { // rare: "it\u0065ms" is "items" too
			if err := json.Unmarshal(body[i:end], &name); err != nil {
				return i, errNotSimple
			}
		}
		i = rawjson.Space(body, end)
		if i >= len(body) || body[i] != ':' {
			return i, errNotSimple
		}
		i = rawjson.Space(body, i+1)
		if name == fields[0] {
			if found {
				return i, errNotSimple
			}
			found = true
			var err error
			if i, err = walkRaw(body, i, fields[1:], items); err != nil {
				return i, err
			}
		} else if i, ok = rawjson.Value(body, i); !ok {
			return i, errNotSimple
		}
		var last bool
		if i, last, ok = rawjson.Next(body, i, '}'); !ok || (last && !found) {
			return i, errNotSimple // the member is missing after the last
		} else if last {
			return i, nil
		}
	}
}
