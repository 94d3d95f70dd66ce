package blueprint

import (
	"encoding/json"
)

// Property types Port accepts in schema.properties.*.type. Formats (date-time, url,
// user, markdown, ...) refine string and are not types, so they are not listed here.
const (
	TypeString  = "string"
	TypeNumber  = "number"
	TypeBoolean = "boolean"
	TypeObject  = "object"
	TypeArray   = "array"
	// TypeEnum is not one of Port's documented types, but Ocean's argocd blueprint
	// (argocdCluster.status) ships with "type": "enum" next to an enum list,
	// and every integration file must load, so it is accepted. Treat it as a string
	// restricted to Enum.
	TypeEnum = "enum"
)

// KnownType reports whether t is a property type Parse accepts; the config validator
// uses it to decide whether it can reason about a property's values at all.
func KnownType(t string) bool {
	switch t {
	case TypeString, TypeNumber, TypeBoolean, TypeObject, TypeArray, TypeEnum:
		return true
	}
	return false
}

// Blueprint is one Port blueprint. Field names and JSON keys follow Port's API so that
// a blueprint read from a file can be sent to Port unchanged.
//
// The fields Port computes or configs do not write (mirror, calculation and
// aggregation properties, team inheritance, changelog destination, ownership) are kept
// as raw JSON: configsync does not interpret them yet, and holding the bytes means it
// cannot get them wrong. Keys this package does not know at all are kept in Extra.
type Blueprint struct {
	// Identifier is the blueprint's unique key; entities and relation targets name
	// blueprints by it.
	Identifier string `json:"identifier"`
	// Title is the human-readable name shown in Port's UI.
	Title string `json:"title,omitempty"`
	// Icon is the name of one of Port's icons.
	Icon string `json:"icon,omitempty"`
	// Description is shown as a tooltip in Port's UI.
	Description string `json:"description,omitempty"`
	// Schema holds the properties entities of this blueprint carry.
	Schema Schema `json:"schema"`
	// MirrorProperties show a property of a related entity; computed by Port.
	MirrorProperties json.RawMessage `json:"mirrorProperties,omitempty"`
	// CalculationProperties are jq over the entity; computed by Port.
	CalculationProperties json.RawMessage `json:"calculationProperties,omitempty"`
	// AggregationProperties count or sum related entities; computed by Port.
	AggregationProperties json.RawMessage `json:"aggregationProperties,omitempty"`
	// Relations are the links an entity of this blueprint may have, by relation name.
	// A nil map means the blueprint had no relations key; an empty one means "{}".
	Relations map[string]Relation `json:"relations,omitempty"`
	// TeamInheritance lets entities take their team from a related entity.
	TeamInheritance json.RawMessage `json:"teamInheritance,omitempty"`
	// ChangelogDestination is where Port sends change events for these entities.
	ChangelogDestination json.RawMessage `json:"changelogDestination,omitempty"`
	// Ownership says how Port derives the owning team.
	Ownership json.RawMessage `json:"ownership,omitempty"`
	// Extra holds the keys this package does not model, as compact JSON, so that
	// fields Port adds later are passed through instead of dropped. Its keys must not
	// repeat a modeled key.
	Extra map[string]json.RawMessage `json:"-"`
}

// Schema is a blueprint's schema object.
type Schema struct {
	// Properties are the blueprint's own properties, by property name. Parse always
	// sets it (empty when the file has none), because Port requires the key.
	Properties map[string]Property `json:"properties"`
	// Required names the properties every entity must set. Nil means the key was
	// absent and an empty slice means "[]"; both mean nothing is required.
	Required []string `json:"required,omitempty"`
	// Extra holds schema keys this package does not model.
	Extra map[string]json.RawMessage `json:"-"`
}

// Property is one entry of schema.properties.
type Property struct {
	// Type is one of the Type constants; Parse rejects anything else.
	Type string `json:"type,omitempty"`
	// Format refines a string (date-time, url, email, user, team, markdown, yaml, ...).
	// It is kept, not checked: Port adds formats more often than types.
	Format string `json:"format,omitempty"`
	// Title is the property's display name.
	Title string `json:"title,omitempty"`
	// Description is shown as a tooltip in Port's UI.
	Description string `json:"description,omitempty"`
	// Icon is the name of one of Port's icons.
	Icon string `json:"icon,omitempty"`
	// Enum lists the allowed values, each as compact JSON: Port allows strings and
	// numbers, and raw values keep numbers exact.
	Enum []json.RawMessage `json:"enum,omitempty"`
	// Items describes the elements of an array property.
	Items *Property `json:"items,omitempty"`
	// Default is the value Port gives an entity that does not set the property, as
	// compact JSON ("null" is kept as given).
	Default json.RawMessage `json:"default,omitempty"`
	// Spec marks an object or URL property as an API document ("open-api",
	// "async-api") for Port's UI.
	Spec string `json:"spec,omitempty"`
	// Extra holds property keys this package does not model (enumColors, minimum,
	// pattern, nested properties of object items, ...).
	Extra map[string]json.RawMessage `json:"-"`
}

// Relation is one entry of a blueprint's relations.
type Relation struct {
	// Title is the relation's display name.
	Title string `json:"title,omitempty"`
	// Description is shown as a tooltip in Port's UI.
	Description string `json:"description,omitempty"`
	// Target is the identifier of the blueprint the relation points at. It may be a
	// blueprint defined elsewhere (see Set.MissingTargets).
	Target string `json:"target"`
	// Required makes Port refuse an entity that does not set the relation.
	Required bool `json:"required"`
	// Many makes the relation hold a list of entity identifiers instead of one.
	Many bool `json:"many"`
	// Extra holds relation keys this package does not model.
	Extra map[string]json.RawMessage `json:"-"`
}

// HasProperty reports whether the blueprint's schema defines name. Mirror, calculation
// and aggregation properties do not count: Port computes them, so a config that maps
// them is writing a value Port will not take.
func (b Blueprint) HasProperty(name string) bool {
	_, ok := b.Schema.Properties[name]
	return ok
}

// Property returns the schema property called name, for checks that need its type.
func (b Blueprint) Property(name string) (Property, bool) {
	p, ok := b.Schema.Properties[name]
	return p, ok
}

// Relation returns the relation called name, so that the config validator can check a
// mapped relation exists and whether it takes one identifier or a list.
func (b Blueprint) Relation(name string) (Relation, bool) {
	r, ok := b.Relations[name]
	return r, ok
}

// The keys each type models, which are the cases of its decoder in decode.go (every
// other key goes to Extra). MarshalJSON refuses an Extra key from these lists, as
// writing both would give the object a duplicate key. The lists are in the order
// MarshalJSON writes the keys, which follows Port's documents so that written files
// diff cleanly against Ocean's.
var (
	blueprintKeys = []string{"identifier", "title", "icon", "description", "schema",
		"mirrorProperties", "calculationProperties", "aggregationProperties", "relations",
		"teamInheritance", "changelogDestination", "ownership"}
	schemaKeys   = []string{"properties", "required"}
	propertyKeys = []string{"type", "format", "title", "description", "icon", "enum",
		"items", "default", "spec"}
	relationKeys = []string{"title", "description", "target", "required", "many"}
)

// MarshalJSON writes the modeled fields in Port's order, then Extra's keys sorted.
func (b Blueprint) MarshalJSON() ([]byte, error) {
	var w objectWriter
	w.value("identifier", b.Identifier)
	w.str("title", b.Title)
	w.str("icon", b.Icon)
	w.str("description", b.Description)
	w.value("schema", b.Schema)
	w.raw("mirrorProperties", b.MirrorProperties)
	w.raw("calculationProperties", b.CalculationProperties)
	w.raw("aggregationProperties", b.AggregationProperties)
	if b.Relations != nil {
		w.value("relations", b.Relations)
	}
	w.raw("teamInheritance", b.TeamInheritance)
	w.raw("changelogDestination", b.ChangelogDestination)
	w.raw("ownership", b.Ownership)
	return w.finish(b.Extra, blueprintKeys)
}

// UnmarshalJSON decodes one blueprint object. It checks shapes only (a title that is
// not a string, ...); Validate and Parse check the rules, because a blueprint embedded
// in another document may be validated by its own reader.
func (b *Blueprint) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		return nil // encoding/json's convention: null leaves the value as it was
	}
	c := newCollector(-1)
	*b = c.blueprint(data)
	return c.err()
}

// MarshalJSON always writes properties (as {} when empty), since Port requires it.
func (s Schema) MarshalJSON() ([]byte, error) {
	var w objectWriter
	if s.Properties == nil {
		w.value("properties", map[string]Property{})
	} else {
		w.value("properties", s.Properties)
	}
	if s.Required != nil {
		w.value("required", s.Required)
	}
	return w.finish(s.Extra, schemaKeys)
}

// UnmarshalJSON decodes a schema object, checking shapes only.
func (s *Schema) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		return nil // encoding/json's convention: null leaves the value as it was
	}
	c := newCollector(-1)
	*s = c.schema(data, "")
	return c.err()
}

// MarshalJSON writes the modeled fields, then Extra's keys sorted. Like the other
// types it leaves out empty strings: Port reads "" and a missing key alike (snyk's
// "icon": "" is the only one in Ocean's files), and a value type cannot tell them apart.
func (p Property) MarshalJSON() ([]byte, error) {
	var w objectWriter
	w.str("type", p.Type)
	w.str("format", p.Format)
	w.str("title", p.Title)
	w.str("description", p.Description)
	w.str("icon", p.Icon)
	if p.Enum != nil {
		w.value("enum", p.Enum)
	}
	if p.Items != nil {
		w.value("items", p.Items)
	}
	w.raw("default", p.Default)
	w.str("spec", p.Spec)
	return w.finish(p.Extra, propertyKeys)
}

// UnmarshalJSON decodes a property object, checking shapes only.
func (p *Property) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		return nil // encoding/json's convention: null leaves the value as it was
	}
	c := newCollector(-1)
	*p = c.property(data, "", 0)
	return c.err()
}

// MarshalJSON always writes required and many: Ocean's files spell them out, and an
// explicit false says the same as an absent key to Port.
func (r Relation) MarshalJSON() ([]byte, error) {
	var w objectWriter
	w.str("title", r.Title)
	w.str("description", r.Description)
	w.value("target", r.Target)
	w.value("required", r.Required)
	w.value("many", r.Many)
	return w.finish(r.Extra, relationKeys)
}

// UnmarshalJSON decodes a relation object, checking shapes only.
func (r *Relation) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		return nil // encoding/json's convention: null leaves the value as it was
	}
	c := newCollector(-1)
	*r = c.relation(data, "")
	return c.err()
}
