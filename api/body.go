package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/configsync/configsync/jsonstream"
)

// Paging: every list takes ?limit (1..MaxLimit, default DefaultLimit) and ?cursor
// (opaque, from the previous page's nextCursor).
const (
	// DefaultLimit is a page's size when ?limit is left out.
	DefaultLimit = 100
	// MaxLimit is the largest ?limit.
	MaxLimit = 1000
)

// errTooLarge answers a body over MaxBodyBytes.
func (s *server) errTooLarge() error {
	return &apiError{p: newProblem(http.StatusRequestEntityTooLarge, "too-large",
		fmt.Sprintf("the request body is over the %d-byte limit", s.cfg.MaxBodyBytes))}
}

// readBody reads the whole body, refusing one over MaxBodyBytes with 413.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, s.errTooLarge()
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, s.errTooLarge()
	}
	if err != nil {
		return nil, errBadRequest("reading the request body: " + err.Error())
	}
	return b, nil
}

// object reads the body as a JSON object into its members. Every member name must be
// in known: the unknown ones are all named in one 422. An empty body is an empty
// object when emptyOK.
func (s *server) object(w http.ResponseWriter, r *http.Request, emptyOK bool, known ...string) (map[string]json.RawMessage, []byte, error) {
	body, err := s.readBody(w, r)
	if err != nil {
		return nil, nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return map[string]json.RawMessage{}, body, nil
		}
		return nil, nil, errBadRequest("the request body is empty; want a JSON object")
	}
	m, err := members(body)
	if err != nil {
		return nil, nil, err
	}
	var unknown []FieldError
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(known, k) {
			unknown = append(unknown, FieldError{Field: k, Message: "unknown field (known: " + strings.Join(known, ", ") + ")"})
		}
	}
	if len(unknown) > 0 {
		names := make([]string, len(unknown))
		for i, u := range unknown {
			names[i] = quoteShort(u.Field)
		}
		return nil, nil, errValidation("unknown fields: "+strings.Join(names, ", "), unknown)
	}
	return m, body, nil
}

// members decodes body as a JSON object. Syntax errors are 400s; JSON that is not an
// object is a 422.
func members(body []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(body) {
		var m any
		err := json.Unmarshal(body, &m)
		return nil, errBadRequest("the request body is not valid JSON: " + jsonSyntaxMessage(err))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, errValidation("the request body must be a JSON object", nil)
	}
	return m, nil
}

// jsonSyntaxMessage describes a JSON syntax error by its offset only, never quoting
// the input (a body may carry credentials).
func jsonSyntaxMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	return "syntax error"
}

// isNull reports whether a member is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// jsonKind names the JSON type of a raw value, for messages.
func jsonKind(raw json.RawMessage) string { return jsonstream.TypeName(raw) }

// decodeNumbers decodes raw into v keeping numbers exact (json.Number).
func decodeNumbers(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// page is a list request's ?limit and decoded ?cursor.
type page struct {
	limit  int
	cursor string
}

// pageParams reads ?limit and ?cursor.
func pageParams(r *http.Request) (page, error) {
	p := page{limit: DefaultLimit}
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return p, errBadRequest(fmt.Sprintf("limit must be a whole number from 1 to %d", MaxLimit),
				FieldError{Field: "limit", Message: fmt.Sprintf("must be a whole number from 1 to %d", MaxLimit)})
		}
		p.limit = n
	}
	if v := q.Get("cursor"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(b) == 0 {
			return p, errBadRequest("cursor is not one this API gave", FieldError{Field: "cursor", Message: "not a cursor this API gave"})
		}
		p.cursor = string(b)
	}
	return p, nil
}

// nextCursor encodes a list's position for ?cursor; nil (JSON null) at the end.
func nextCursor(pos string) *string {
	if pos == "" {
		return nil
	}
	c := base64.RawURLEncoding.EncodeToString([]byte(pos))
	return &c
}

// list answers a page: {"<key>": items, "nextCursor": ...}.
func list[T any](w http.ResponseWriter, key string, items []T, next string) error {
	if items == nil {
		items = []T{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{key: items, "nextCursor": nextCursor(next)})
}

// boolParam reads a boolean query parameter (absent: false).
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errBadRequest(name+" must be true or false", FieldError{Field: name, Message: "must be true or false"})
	}
	return b, nil
}

// lineCol returns the 1-based line and column of byte offset off in b.
func lineCol(b []byte, off int) (line, col int) {
	line, col = 1, 1
	for i := 0; i < off && i < len(b); i++ {
		if b[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// memberStart returns the offset in body (a JSON object) where the value of the
// top-level member name starts, or -1.
func memberStart(body []byte, name string) int {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return -1
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return -1
		}
		off := int(dec.InputOffset())
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return -1
		}
		if k == name {
			for off < len(body) && (body[off] == ' ' || body[off] == '\t' || body[off] == '\r' || body[off] == '\n' || body[off] == ':') {
				off++
			}
			return off
		}
	}
	return -1
}
