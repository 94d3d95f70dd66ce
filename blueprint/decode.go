package blueprint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/configsync/configsync/jsonstream"
)

// maxItemsDepth bounds array-of-array nesting (items.items...). Port never needs more
// than a couple of levels; the bound keeps a hostile file from costing time and stack
// proportional to its nesting, since each level is decoded from its own bytes.
const maxItemsDepth = 32

// collector decodes one blueprint and gathers every problem found in it, so that Parse
// can report them all at once.
type collector struct {
	index int    // position in Parse's input, or -1
	id    string // identifier, once decoded, so that problems can name the blueprint
	errs  []error
	// shaped holds the fields whose JSON had the wrong shape. The rule checks stay
	// quiet on those fields and below them: a property that was not an object would
	// otherwise also be reported as having no type.
	shaped map[string]bool
}

func newCollector(index int) *collector {
	return &collector{index: index}
}

func (c *collector) add(field, format string, args ...any) {
	c.errs = append(c.errs, &Error{Index: c.index, Identifier: c.id, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// shape reports a field whose JSON is not what Port's format has there.
func (c *collector) shape(field, format string, args ...any) {
	c.add(field, format, args...)
	if c.shaped == nil {
		c.shaped = map[string]bool{}
	}
	c.shaped[field] = true
}

// check reports a broken rule unless the field's shape was already reported.
func (c *collector) check(field, format string, args ...any) {
	if !c.covered(field) {
		c.add(field, format, args...)
	}
}

// covered reports whether field or a field above it had a shape problem. It looks up
// each ancestor path rather than comparing against every shape problem, which would be
// quadratic in a file with thousands of bad properties. Ancestors end where a "." or
// "[" starts the next segment, outside the quoted keys join writes.
func (c *collector) covered(field string) bool {
	if len(c.shaped) == 0 {
		return false
	}
	if c.shaped[""] || c.shaped[field] {
		return true
	}
	quoted := false
	for i := 0; i < len(field); i++ {
		switch ch := field[i]; {
		case quoted && ch == '\\':
			i++ // skip the escaped character
		case ch == '"':
			quoted = !quoted
		case !quoted && (ch == '.' || ch == '['):
			if c.shaped[field[:i]] {
				return true
			}
		}
	}
	return false
}

func (c *collector) err() error {
	return errors.Join(c.errs...)
}

// join appends an object key to a field path. Keys that are plain identifiers read as
// "a.b"; others are quoted ("a[\"my key\"]") so that the path stays unambiguous.
func join(field, key string) string {
	if !isIdentifier(key) {
		return field + "[" + strconv.Quote(key) + "]"
	}
	if field == "" {
		return key
	}
	return field + "." + key
}

func index(field string, i int) string {
	return field + "[" + strconv.Itoa(i) + "]"
}

func isNull(raw json.RawMessage) bool {
	return jsonstream.TypeName(raw) == "null"
}

// canonical returns raw compact, with encoding/json's escaping. Kept values are stored
// this way so that a parsed blueprint equals the one parsed back from its own output:
// json.Marshal compacts and escapes raw values when it writes them.
func canonical(raw json.RawMessage) json.RawMessage {
	b, err := json.Marshal(raw)
	if err != nil {
		return bytes.Clone(raw)
	}
	return b
}

type member struct {
	key   string
	value json.RawMessage
}

// members reads an object's members in document order. It returns ok false when raw
// is null (treated as an absent key, which is how Port reads it) or not an object
// (reported). Duplicate keys are reported: encoding/json would silently keep the last,
// and in a hand-edited file the first was usually meant too.
func (c *collector) members(raw json.RawMessage, field, what string) ([]member, bool) {
	switch jsonstream.TypeName(raw) {
	case "an object":
	case "null":
		return nil, false
	default:
		c.shape(field, "must be %s, not %s", what, jsonstream.TypeName(raw))
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var ms []member
	seen := map[string]int{}
	if _, err := dec.Token(); err != nil { // {
		c.shape(field, "unreadable: %v", err)
		return nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			c.shape(field, "unreadable: %v", err)
			return nil, false
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			c.shape(join(field, key), "unreadable: %v", err)
			return nil, false
		}
		ms = append(ms, member{key, v})
		seen[key]++
	}
	for _, m := range ms {
		if seen[m.key] > 1 {
			c.shape(join(field, m.key), "is given %d times", seen[m.key])
			seen[m.key] = 0 // once per key
		}
	}
	return ms, true
}

func (c *collector) str(raw json.RawMessage, field string) string {
	switch jsonstream.TypeName(raw) {
	case "a string":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			c.shape(field, "unreadable: %v", err)
		}
		return s
	case "null":
		return ""
	}
	c.shape(field, "must be a string, not %s", jsonstream.TypeName(raw))
	return ""
}

func (c *collector) boolean(raw json.RawMessage, field string) bool {
	switch jsonstream.TypeName(raw) {
	case "a boolean":
		return raw[0] == 't'
	case "null":
		return false
	}
	c.shape(field, "must be a boolean, not %s", jsonstream.TypeName(raw))
	return false
}

// list reads an array's elements; nil for null, an empty non-nil slice for [].
func (c *collector) list(raw json.RawMessage, field string) ([]json.RawMessage, bool) {
	switch jsonstream.TypeName(raw) {
	case "an array":
	case "null":
		return nil, false
	default:
		c.shape(field, "must be an array, not %s", jsonstream.TypeName(raw))
		return nil, false
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		c.shape(field, "unreadable: %v", err)
		return nil, false
	}
	if elems == nil {
		elems = []json.RawMessage{}
	}
	return elems, true
}

func (c *collector) strList(raw json.RawMessage, field string) []string {
	elems, ok := c.list(raw, field)
	if !ok {
		return nil
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		if jsonstream.TypeName(e) != "a string" {
			c.shape(index(field, i), "must be a string, not %s", jsonstream.TypeName(e))
			continue
		}
		out[i] = c.str(e, index(field, i))
	}
	return out
}

func (c *collector) raws(raw json.RawMessage, field string) []json.RawMessage {
	elems, ok := c.list(raw, field)
	if !ok {
		return nil
	}
	for i, e := range elems {
		elems[i] = canonical(e)
	}
	return elems
}

func putExtra(extra map[string]json.RawMessage, key string, raw json.RawMessage) map[string]json.RawMessage {
	if extra == nil {
		extra = map[string]json.RawMessage{}
	}
	extra[key] = canonical(raw)
	return extra
}

// blueprint decodes one blueprint object; field paths in its problems are relative to
// the blueprint.
func (c *collector) blueprint(raw json.RawMessage) Blueprint {
	var b Blueprint
	ms, ok := c.members(raw, "", "an object")
	if !ok {
		if isNull(raw) {
			c.shape("", "must be an object, not null")
		}
		b.Schema.Properties = map[string]Property{}
		return b
	}
	// The identifier goes first so that every other problem can name the blueprint.
	for _, m := range ms {
		if m.key == "identifier" {
			b.Identifier = c.str(m.value, "identifier")
		}
	}
	c.id = b.Identifier
	for _, e := range c.errs {
		e.(*Error).Identifier = c.id
	}
	for _, m := range ms {
		v := m.value
		switch m.key {
		case "identifier":
		case "title":
			b.Title = c.str(v, "title")
		case "icon":
			b.Icon = c.str(v, "icon")
		case "description":
			b.Description = c.str(v, "description")
		case "schema":
			b.Schema = c.schema(v, "schema")
		case "relations":
			b.Relations = c.relations(v, "relations")
		case "mirrorProperties":
			b.MirrorProperties = canonical(v)
		case "calculationProperties":
			b.CalculationProperties = canonical(v)
		case "aggregationProperties":
			b.AggregationProperties = canonical(v)
		case "teamInheritance":
			b.TeamInheritance = canonical(v)
		case "changelogDestination":
			b.ChangelogDestination = canonical(v)
		case "ownership":
			b.Ownership = canonical(v)
		default:
			b.Extra = putExtra(b.Extra, m.key, v)
		}
	}
	if b.Schema.Properties == nil {
		b.Schema.Properties = map[string]Property{}
	}
	return b
}

func (c *collector) schema(raw json.RawMessage, field string) Schema {
	var s Schema
	ms, _ := c.members(raw, field, "an object")
	for _, m := range ms {
		switch m.key {
		case "properties":
			s.Properties = c.properties(m.value, join(field, "properties"))
		case "required":
			s.Required = c.strList(m.value, join(field, "required"))
		default:
			s.Extra = putExtra(s.Extra, m.key, m.value)
		}
	}
	if s.Properties == nil {
		s.Properties = map[string]Property{}
	}
	return s
}

func (c *collector) properties(raw json.RawMessage, field string) map[string]Property {
	ms, ok := c.members(raw, field, "an object")
	if !ok {
		return nil
	}
	props := make(map[string]Property, len(ms))
	for _, m := range ms {
		props[m.key] = c.property(m.value, join(field, m.key), 0)
	}
	return props
}

func (c *collector) property(raw json.RawMessage, field string, depth int) Property {
	var p Property
	ms, ok := c.members(raw, field, "an object")
	if !ok {
		if isNull(raw) {
			c.shape(field, "must be an object, not null")
		}
		return p
	}
	for _, m := range ms {
		v, f := m.value, join(field, m.key)
		switch m.key {
		case "type":
			p.Type = c.str(v, f)
		case "format":
			p.Format = c.str(v, f)
		case "title":
			p.Title = c.str(v, f)
		case "description":
			p.Description = c.str(v, f)
		case "icon":
			p.Icon = c.str(v, f)
		case "spec":
			p.Spec = c.str(v, f)
		case "enum":
			p.Enum = c.raws(v, f)
		case "items":
			switch {
			case isNull(v):
			case depth >= maxItemsDepth:
				c.shape(f, "is nested more than %d levels deep", maxItemsDepth)
			default:
				items := c.property(v, f, depth+1)
				p.Items = &items
			}
		case "default":
			p.Default = canonical(v)
		default:
			p.Extra = putExtra(p.Extra, m.key, v)
		}
	}
	return p
}

func (c *collector) relations(raw json.RawMessage, field string) map[string]Relation {
	ms, ok := c.members(raw, field, "an object")
	if !ok {
		return nil
	}
	rels := make(map[string]Relation, len(ms))
	for _, m := range ms {
		rels[m.key] = c.relation(m.value, join(field, m.key))
	}
	return rels
}

func (c *collector) relation(raw json.RawMessage, field string) Relation {
	var r Relation
	ms, ok := c.members(raw, field, "an object")
	if !ok {
		if isNull(raw) {
			c.shape(field, "must be an object, not null")
		}
		return r
	}
	for _, m := range ms {
		v, f := m.value, join(field, m.key)
		switch m.key {
		case "title":
			r.Title = c.str(v, f)
		case "description":
			r.Description = c.str(v, f)
		case "target":
			r.Target = c.str(v, f)
		case "required":
			r.Required = c.boolean(v, f)
		case "many":
			r.Many = c.boolean(v, f)
		default:
			r.Extra = putExtra(r.Extra, m.key, v)
		}
	}
	return r
}
