package blueprint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/configsync/configsync/jsonstream"
)

// IdentifierPattern is Port's rule for blueprint identifiers. Every identifier in
// Ocean's 49 integration files fits it; the length limit Port's docs mention for
// property identifiers (30) is not applied, since Ocean's own files exceed it.
const IdentifierPattern = `^[A-Za-z0-9@_=\-]+$`

// isIdentifier implements IdentifierPattern without a regexp, since Parse runs it on
// every blueprint, relation target and path segment.
func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		case ch == '@', ch == '_', ch == '=', ch == '-':
		default:
			return false
		}
	}
	return true
}

// Error is one problem in one blueprint. Parse returns them joined (errors.Join) so
// that a caller can list them all, or pick them out with errors.As to show per field.
type Error struct {
	// Index is the blueprint's position in Parse's input (0 for a lone object), or -1
	// when the blueprint was not read by Parse (Validate, UnmarshalJSON).
	Index int
	// Identifier is the blueprint's identifier, "" when it has none.
	Identifier string
	// Field is the path within the blueprint, such as "schema.properties.url.type";
	// "" when the problem is the blueprint as a whole.
	Field string
	// Msg says what is wrong.
	Msg string
}

// Error reads like `blueprint[3] "githubRepository": schema.properties.url.type:
// unknown type "strin"`, naming both the position and the identifier because either
// may be what the reader finds first in the file.
func (e *Error) Error() string {
	var sb strings.Builder
	sb.WriteString("blueprint")
	if e.Index >= 0 {
		sb.WriteString("[" + strconv.Itoa(e.Index) + "]")
	}
	if e.Identifier != "" {
		sb.WriteString(" " + strconv.Quote(e.Identifier))
	}
	if e.Field != "" {
		sb.WriteString(": " + e.Field)
	}
	sb.WriteString(": " + e.Msg)
	return sb.String()
}

var utf8BOM = []byte("\xEF\xBB\xBF")

// Parse reads blueprints from JSON: either an array of blueprints (Ocean's
// .port/resources/blueprints.json) or a single blueprint object (what Port's API
// returns and takes). It returns the blueprints in input order, or nil and every
// problem found, each an *Error naming the blueprint and field, joined with
// errors.Join.
//
// It checks what configsync relies on: identifiers present, matching
// IdentifierPattern and unique; property types known; relations with a valid target;
// schema.required naming defined properties. Relation targets need not be in the
// input (Ocean files point at blueprints of other integrations); see
// Set.MissingTargets. Keys it does not model are kept, not rejected, so that files
// written for a newer Port still load.
func Parse(data []byte) ([]Blueprint, error) {
	// Editors on Windows add a byte-order mark that encoding/json refuses; it carries
	// no meaning in UTF-8, so it is dropped rather than reported.
	data = bytes.TrimPrefix(data, utf8BOM)
	if len(bytes.TrimLeft(data, " \t\r\n")) == 0 {
		return nil, errors.New("blueprint: input is empty; want an array of blueprints or one blueprint object")
	}
	var raws []json.RawMessage
	var top json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("blueprint: invalid JSON: %w", err)
	}
	switch jsonstream.TypeName(top) {
	case "an array":
		if err := json.Unmarshal(top, &raws); err != nil {
			return nil, fmt.Errorf("blueprint: invalid JSON: %w", err)
		}
	case "an object":
		raws = []json.RawMessage{top}
	default:
		return nil, fmt.Errorf("blueprint: want an array of blueprints or one blueprint object, not %s", jsonstream.TypeName(top))
	}

	out := make([]Blueprint, 0, len(raws))
	var errs []error
	first := map[string]int{} // identifier -> index of its first blueprint
	for i, raw := range raws {
		c := newCollector(i)
		b := c.blueprint(raw)
		c.validate(b)
		if b.Identifier != "" {
			if j, dup := first[b.Identifier]; dup {
				c.check("identifier", "is also the identifier of blueprint[%d]", j)
			} else {
				first[b.Identifier] = i
			}
		}
		errs = append(errs, c.errs...)
		out = append(out, b)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Validate checks b by Parse's rules, for blueprints built in code or decoded with
// json.Unmarshal. Uniqueness is not checked: that is a property of a list (NewSet keeps
// the last of duplicates). Its errors are *Error with Index -1.
func (b Blueprint) Validate() error {
	c := newCollector(-1)
	c.id = b.Identifier
	c.validate(b)
	return c.err()
}

// validate checks the rules on a decoded blueprint. Maps are walked in sorted key
// order so that the same input always gives the same message list.
func (c *collector) validate(b Blueprint) {
	switch {
	case b.Identifier == "":
		c.check("identifier", "is required")
	case !isIdentifier(b.Identifier):
		c.check("identifier", "%q does not match %s", b.Identifier, IdentifierPattern)
	}
	for _, name := range slices.Sorted(maps.Keys(b.Schema.Properties)) {
		c.validateProperty(b.Schema.Properties[name], join("schema.properties", name), 0)
	}
	for i, name := range b.Schema.Required {
		if !b.HasProperty(name) {
			c.check(index("schema.required", i), "%q is not in schema.properties", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(b.Relations)) {
		field := join("relations", name) + ".target"
		switch t := b.Relations[name].Target; {
		case t == "":
			c.check(field, "is required")
		case !isIdentifier(t):
			c.check(field, "%q does not match %s", t, IdentifierPattern)
		}
	}
}

// validateProperty checks a property's type, and its items' type when given. A
// property must have a type (Port refuses one without); items may leave it out, as
// nothing in Port's format requires it there.
func (c *collector) validateProperty(p Property, field string, depth int) {
	switch {
	case p.Type == "" && depth == 0:
		c.check(field+".type", "is required")
	case p.Type != "" && !KnownType(p.Type):
		c.check(field+".type", "unknown type %q", p.Type)
	}
	if p.Items == nil {
		return
	}
	if depth >= maxItemsDepth { // only reachable for values built in code
		c.check(field+".items", "is nested more than %d levels deep", maxItemsDepth)
		return
	}
	c.validateProperty(*p.Items, field+".items", depth+1)
}
