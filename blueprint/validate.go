package blueprint

// Entity validation is plain Go rather than github.com/santhosh-tekuri/jsonschema/v6:
// a blueprint schema is a small, flat subset of JSON Schema, and the parts that differ
// from it would all need shims there (Port's "url" format and the "enum" type, null as
// the value of any property that is not required, *big.Int values from gojq, messages
// naming the property). Checking the subset directly needs no compile step to cache,
// allocates nothing on the happy path, and keeps go.mod as it is.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/mail"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FieldError is one property whose value does not fit the schema.
type FieldError struct {
	// Property is the property's name, with an index for an array element
	// ("languages[2]").
	Property string
	// Msg says what is wrong, such as "want a string, got number 3".
	Msg string
}

// EntityError lists every property of one entity that does not fit its blueprint's
// schema, so that a sync run can report the whole problem of an item at once instead
// of one field per attempt.
type EntityError struct {
	// Blueprint is the identifier of the blueprint the entity was checked against.
	Blueprint string
	// Fields are the failures, ordered by property name.
	Fields []FieldError
}

// Error reads like `blueprint "service": properties: url: not a url (...); stars: want
// a number, got string "3"`.
func (e *EntityError) Error() string {
	var sb strings.Builder
	sb.WriteString("blueprint ")
	sb.WriteString(strconv.Quote(e.Blueprint))
	sb.WriteString(": properties: ")
	for i, f := range e.Fields {
		if i > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(f.Property)
		sb.WriteString(": ")
		sb.WriteString(f.Msg)
	}
	return sb.String()
}

// ValidateEntity checks an entity's property values against the blueprint's schema,
// as Port does when the entity is written: each value's type, enum, format (date-time,
// url, email, ipv4 and ipv6 are asserted; formats without one clear meaning, such as
// user, team, markdown, yaml or timer, are accepted as any string), array items, and
// schema.required (present and not null; null is a valid value for any property that
// is not required).
//
// Numbers may be any Go integer or float type, *big.Int, *big.Float or json.Number,
// which covers what encoding/json and gojq produce. Properties the schema does not
// declare are left out of cleaned with a warning each: Port ignores them, and Ocean's
// own configs write some, so they must not fail the entity. On success cleaned holds
// the declared properties (values shared with props, not copied). On failure cleaned
// is nil and err is an *EntityError naming every failing property.
func (b *Blueprint) ValidateEntity(props map[string]any) (cleaned map[string]any, warnings []string, err error) {
	cleaned, warnings, absent, err := b.validate(props)
	if len(absent) > 0 {
		ee, _ := err.(*EntityError)
		if ee == nil {
			ee = &EntityError{Blueprint: b.Identifier}
		}
		for _, name := range absent {
			ee.Fields = append(ee.Fields, FieldError{Property: name, Msg: "is required"})
		}
		slices.SortStableFunc(ee.Fields, func(x, y FieldError) int { return strings.Compare(x.Property, y.Property) })
		return nil, warnings, ee
	}
	return cleaned, warnings, err
}

// ValidatePatch is ValidateEntity for a write that is merged into a stored entity
// (enableMergeEntity): a required property the patch leaves out is not an error here,
// since the stored entity may hold it, and is returned in absentRequired for the
// caller to check against the merged result. A required property the patch sets to
// null is still an error, because the merge would store that null.
func (b *Blueprint) ValidatePatch(props map[string]any) (cleaned map[string]any, warnings, absentRequired []string, err error) {
	return b.validate(props)
}

func (b *Blueprint) validate(props map[string]any) (cleaned map[string]any, warnings, absent []string, err error) {
	required := b.Schema.Required
	var fields []FieldError
	cleaned = make(map[string]any, len(props))
	for name, v := range props {
		p, ok := b.Schema.Properties[name]
		if !ok {
			warnings = append(warnings, fmt.Sprintf("property %q is not in blueprint %q's schema; dropped", name, b.Identifier))
			continue
		}
		cleaned[name] = v
		if v == nil {
			if slices.Contains(required, name) {
				fields = append(fields, FieldError{Property: name, Msg: "is required, got null"})
			}
			continue
		}
		fields = checkValue(p, v, name, fields)
	}
	for _, name := range required {
		if _, ok := props[name]; !ok && !slices.Contains(absent, name) {
			absent = append(absent, name)
		}
	}
	slices.Sort(warnings) // map order is random; callers and tests want stable output
	slices.Sort(absent)
	if len(fields) > 0 {
		slices.SortStableFunc(fields, func(x, y FieldError) int { return strings.Compare(x.Property, y.Property) })
		return nil, warnings, absent, &EntityError{Blueprint: b.Identifier, Fields: fields}
	}
	return cleaned, warnings, absent, nil
}

// checkValue appends to fields what is wrong with a non-null value v of property p.
func checkValue(p Property, v any, path string, fields []FieldError) []FieldError {
	bad := func(format string, args ...any) []FieldError {
		return append(fields, FieldError{Property: path, Msg: fmt.Sprintf(format, args...)})
	}
	switch p.Type {
	case TypeString, TypeEnum:
		s, ok := v.(string)
		if !ok {
			return bad("want a string, got %s", describe(v))
		}
		if msg := checkFormat(p.Format, s); msg != "" {
			return bad("%s", msg)
		}
	case TypeNumber:
		if _, ok := numberOf(v); !ok {
			return bad("want a number, got %s", describe(v))
		}
	case TypeBoolean:
		if _, ok := v.(bool); !ok {
			return bad("want a boolean, got %s", describe(v))
		}
	case TypeObject:
		if !isObject(v) {
			return bad("want an object, got %s", describe(v))
		}
	case TypeArray:
		rv := reflect.ValueOf(v)
		if k := rv.Kind(); k != reflect.Slice && k != reflect.Array {
			return bad("want an array, got %s", describe(v))
		}
		if p.Items == nil {
			break
		}
		for i := 0; i < rv.Len(); i++ {
			el := rv.Index(i).Interface()
			elPath := path + "[" + strconv.Itoa(i) + "]"
			if el == nil {
				if p.Items.Type != "" {
					fields = append(fields, FieldError{Property: elPath, Msg: fmt.Sprintf("want %s, got null", article(p.Items.Type))})
				}
				continue
			}
			fields = checkValue(*p.Items, el, elPath, fields)
		}
	default:
		// No type (array items may leave it out) or one this package does not know:
		// nothing to check the value against.
	}
	if len(p.Enum) > 0 && !inEnum(p.Enum, v) {
		return bad("%s is not one of the enum values %s", describe(v), enumList(p.Enum))
	}
	return fields
}

// checkFormat returns why s does not have format, or "" when it has or when the
// format has no single meaning to assert.
func checkFormat(format, s string) string {
	switch format {
	case "date-time":
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Sprintf("%q is not an RFC 3339 date-time", s)
		}
	case "url":
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "") {
			return fmt.Sprintf("%q is not an absolute URL", s)
		}
	case "email":
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s {
			return fmt.Sprintf("%q is not an email address", s)
		}
	case "ipv4":
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return fmt.Sprintf("%q is not an IPv4 address", s)
		}
	case "ipv6":
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Sprintf("%q is not an IPv6 address", s)
		}
	}
	return ""
}

// numberOf returns v as an exact rational when it is a finite number.
func numberOf(v any) (*big.Rat, bool) {
	r := new(big.Rat)
	switch n := v.(type) {
	case int:
		return r.SetInt64(int64(n)), true
	case int8:
		return r.SetInt64(int64(n)), true
	case int16:
		return r.SetInt64(int64(n)), true
	case int32:
		return r.SetInt64(int64(n)), true
	case int64:
		return r.SetInt64(n), true
	case uint:
		return r.SetUint64(uint64(n)), true
	case uint8:
		return r.SetUint64(uint64(n)), true
	case uint16:
		return r.SetUint64(uint64(n)), true
	case uint32:
		return r.SetUint64(uint64(n)), true
	case uint64:
		return r.SetUint64(n), true
	case float32:
		return floatRat(float64(n))
	case float64:
		return floatRat(n)
	case *big.Int:
		if n == nil {
			return nil, false
		}
		return r.SetInt(n), true
	case *big.Float:
		if n == nil || n.IsInf() {
			return nil, false
		}
		n.Rat(r)
		return r, true
	case json.Number:
		// SetString accepts forms JSON does not ("1/2", "0x10"), so check the syntax
		// first: a json.Number is only a number if it would be valid JSON.
		if !json.Valid([]byte(n)) || strings.ContainsAny(string(n), `"[{tfn`) {
			return nil, false
		}
		_, ok := r.SetString(string(n))
		return r, ok
	}
	return nil, false
}

func floatRat(f float64) (*big.Rat, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, false
	}
	return new(big.Rat).SetFloat64(f), true
}

// isObject accepts map[string]any and any other map keyed by strings.
func isObject(v any) bool {
	if _, ok := v.(map[string]any); ok {
		return true
	}
	t := reflect.TypeOf(v)
	return t.Kind() == reflect.Map && t.Key().Kind() == reflect.String
}

// inEnum compares v with each allowed value: strings by equality, numbers by value
// (so 1, 1.0 and json.Number("1") all match an enum entry 1).
func inEnum(enum []json.RawMessage, v any) bool {
	s, isString := v.(string)
	num, isNumber := numberOf(v)
	b, isBool := v.(bool)
	for _, raw := range enum {
		// The common case, a plain string, is compared as it is written: this
		// runs for every enum property of every entity.
		if isString && len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && !bytes.ContainsAny(raw[1:len(raw)-1], `"\\`) {
			if string(raw[1:len(raw)-1]) == s {
				return true
			}
			continue
		}
		var allowed any
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		if dec.Decode(&allowed) != nil {
			continue
		}
		switch a := allowed.(type) {
		case string:
			if isString && a == s {
				return true
			}
		case json.Number:
			if an, ok := numberOf(a); ok && isNumber && an.Cmp(num) == 0 {
				return true
			}
		case bool:
			if isBool && a == b {
				return true
			}
		}
	}
	return false
}

func enumList(enum []json.RawMessage) string {
	parts := make([]string, len(enum))
	for i, raw := range enum {
		parts[i] = string(raw)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// describe names v's JSON type and, for short scalars, its value, so that a message
// shows what the mapping actually produced.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		q := strconv.Quote(x)
		if len(q) > 40 {
			q = q[:37] + `..."`
		}
		return "string " + q
	case bool:
		return "boolean " + strconv.FormatBool(x)
	}
	if n, ok := numberOf(v); ok {
		return "number " + n.RatString()
	}
	switch reflect.TypeOf(v).Kind() {
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Float32, reflect.Float64:
		return "non-finite number"
	}
	return fmt.Sprintf("%T", v)
}

func article(typ string) string {
	switch typ {
	case TypeArray, TypeObject, TypeEnum:
		return "an " + typ
	}
	return "a " + typ
}
