package httpsource

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
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
// is checked to be one valid JSON value.
func splitRaw(body []byte, fields []string) ([][]byte, error) {
	// Names may repeat inside items (the mapping's decoder, like encoding/json,
	// keeps the last); walkRaw itself refuses a repeated member on the path.
	// Checking names costs a map per object, three quarters of the scan.
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(true))
	var items [][]byte
	if err := walkRaw(dec, body, fields, &items); err != nil {
		return nil, err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, errNotSimple
	}
	return items, nil
}

// walkRaw reads the next value of dec: when fields is empty, that value holds
// the items; otherwise it must be an object whose member fields[0] is walked
// in turn, the other members skipped.
func walkRaw(dec *jsontext.Decoder, body []byte, fields []string, items *[][]byte) error {
	kind := dec.PeekKind()
	if len(fields) == 0 {
		switch kind {
		case '[':
			if _, err := dec.ReadToken(); err != nil {
				return errNotSimple
			}
			for dec.PeekKind() != ']' {
				v, err := dec.ReadValue()
				if err != nil {
					return errNotSimple
				}
				end := int(dec.InputOffset())
				start := end - len(v)
				*items = append(*items, body[start:end:end])
			}
			if _, err := dec.ReadToken(); err != nil {
				return errNotSimple
			}
			return nil
		case '{':
			v, err := dec.ReadValue()
			if err != nil {
				return errNotSimple
			}
			end := int(dec.InputOffset())
			*items = append(*items, body[end-len(v):end:end])
			return nil
		}
		return errNotSimple
	}
	if kind != '{' {
		return errNotSimple
	}
	if _, err := dec.ReadToken(); err != nil {
		return errNotSimple
	}
	found := false
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil || name.Kind() != '"' {
			return errNotSimple
		}
		if name.String() == fields[0] {
			if found {
				return errNotSimple
			}
			found = true
			if err := walkRaw(dec, body, fields[1:], items); err != nil {
				return err
			}
			continue
		}
		if err := dec.SkipValue(); err != nil {
			return errNotSimple
		}
	}
	if _, err := dec.ReadToken(); err != nil || !found {
		return errNotSimple
	}
	return nil
}
