package source

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Parameter types, the values of Parameter.Type. They are JSON's types, with
// integer for whole numbers.
const (
	// TypeString is a JSON string.
	TypeString = "string"
	// TypeInteger is a whole number: a Go integer, or a float or json.Number
	// without fraction.
	TypeInteger = "integer"
	// TypeNumber is any finite number.
	TypeNumber = "number"
	// TypeBoolean is true or false.
	TypeBoolean = "boolean"
	// TypeObject is a JSON object (a map with string keys).
	TypeObject = "object"
	// TypeArray is a JSON array (any slice).
	TypeArray = "array"
)

// parameterTypes lists the valid Parameter.Type values.
var parameterTypes = []string{TypeString, TypeInteger, TypeNumber, TypeBoolean, TypeObject, TypeArray}

// Type describes a kind of source so the API can validate and describe it.
type Type struct {
	// ID names the type in integrations (for example "file"); unique in a Registry.
	ID string
	// DisplayName is a short human name ("Files").
	DisplayName string
	// Description is a sentence or two on what the source fetches.
	Description string
	// Parameters are the integration's settings for this source.
	Parameters []Parameter
	// Auth lists the ways to authenticate, if the source needs credentials.
	Auth []AuthMethod
	// New makes a Source from an integration's parameters and decrypted
	// credentials. Registry.New validates params and fills in defaults first;
	// New must still refuse what it cannot use, as it may be called directly.
	New func(params map[string]any, creds map[string]string) (Source, error)
}

// Parameter describes one setting of a source or of an auth method.
type Parameter struct {
	// Name is the key of the setting in the parameters map.
	Name string
	// Type is one of TypeString, TypeInteger, TypeNumber, TypeBoolean,
	// TypeObject and TypeArray.
	Type string
	// DisplayName is a short human name for forms.
	DisplayName string
	// Description says what the setting does.
	Description string
	// Required means the setting must be given (and, for a string, not empty).
	Required bool
	// Secret means the value is a credential: never displayed, never echoed.
	Secret bool
	// Default is the value used when the setting is left out; nil for none.
	Default any
	// Options, when not empty, are the allowed values of a string, or of each
	// element of an array.
	Options []string
	// IntegerRange, for an integer, is the inclusive [min, max].
	IntegerRange *[2]int64
	// FloatRange, for a number, is the inclusive [min, max].
	FloatRange *[2]float64
}

// AuthMethod describes one way to authenticate to a source.
type AuthMethod struct {
	// ID names the method (for example "token").
	ID string
	// DisplayName is a short human name ("Personal access token").
	DisplayName string
	// ConfigTestSupported means the source can check these credentials before
	// they are saved.
	ConfigTestSupported bool
	// Parameters are the method's credentials and settings.
	Parameters []Parameter
}

// ErrUnknownType is wrapped by the errors about a source type id that is not
// registered.
var ErrUnknownType = errors.New("unknown source type")

// ValidationError lists every problem found in a set of parameters.
type ValidationError struct {
	// TypeID is the source type whose parameters were checked.
	TypeID string
	// Problems are in the order of the type's parameters, then unknown names
	// sorted.
	Problems []Problem
}

// Problem is one invalid or unknown parameter. Its message never contains the
// parameter's value.
type Problem struct {
	// Parameter is the name of the parameter.
	Parameter string
	// Message says what is wrong ("required", "must be an integer, got string").
	Message string
}

// Error lists the problems: `source type "file": parameter "root": required; ...`.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "source type %q: ", e.TypeID)
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "parameter %q: %s", p.Parameter, p.Message)
	}
	return b.String()
}

// Registry holds the source types a deployment offers. It is immutable once made
// and safe for concurrent use.
type Registry struct {
	types map[string]Type
}

// NewRegistry returns a registry of the given types. It panics on a type without
// ID or New, a duplicate ID, or an invalid parameter definition (unknown Type,
// duplicate name, Options or a range on a type they do not apply to, a Default
// that its own parameter refuses): these are programming errors, found at start.
func NewRegistry(types ...Type) *Registry {
	r := &Registry{types: make(map[string]Type, len(types))}
	for _, t := range types {
		if t.ID == "" {
			panic("source.NewRegistry: a type has no ID")
		}
		if t.New == nil {
			panic(fmt.Sprintf("source.NewRegistry: type %q has no New", t.ID))
		}
		if _, dup := r.types[t.ID]; dup {
			panic(fmt.Sprintf("source.NewRegistry: type %q registered twice", t.ID))
		}
		if err := checkDefinitions(t.Parameters); err != nil {
			panic(fmt.Sprintf("source.NewRegistry: type %q: %v", t.ID, err))
		}
		for _, a := range t.Auth {
			if err := checkDefinitions(a.Parameters); err != nil {
				panic(fmt.Sprintf("source.NewRegistry: type %q: auth method %q: %v", t.ID, a.ID, err))
			}
		}
		r.types[t.ID] = t
	}
	return r
}

// checkDefinitions reports the first invalid parameter definition.
func checkDefinitions(params []Parameter) error {
	seen := map[string]bool{}
	for _, p := range params {
		switch {
		case p.Name == "":
			return errors.New("a parameter has no name")
		case seen[p.Name]:
			return fmt.Errorf("parameter %q defined twice", p.Name)
		case !slices.Contains(parameterTypes, p.Type):
			return fmt.Errorf("parameter %q: type %q is not one of %s", p.Name, p.Type, strings.Join(parameterTypes, ", "))
		case len(p.Options) > 0 && p.Type != TypeString && p.Type != TypeArray:
			return fmt.Errorf("parameter %q: options apply to strings and arrays, not %s", p.Name, p.Type)
		case p.IntegerRange != nil && (p.Type != TypeInteger || p.IntegerRange[0] > p.IntegerRange[1]):
			return fmt.Errorf("parameter %q: integer range needs an integer type and min <= max", p.Name)
		case p.FloatRange != nil && (p.Type != TypeNumber || !(p.FloatRange[0] <= p.FloatRange[1])):
			return fmt.Errorf("parameter %q: float range needs a number type and min <= max", p.Name)
		}
		if p.Default != nil {
			if msg := checkValue(p, p.Default); msg != "" {
				return fmt.Errorf("parameter %q: default: %s", p.Name, msg)
			}
		}
		seen[p.Name] = true
	}
	return nil
}

// Get returns the type with the given id.
func (r *Registry) Get(id string) (Type, bool) {
	t, ok := r.types[id]
	return t, ok
}

// Types returns every type, sorted by ID.
func (r *Registry) Types() []Type {
	return slices.SortedFunc(maps.Values(r.types), func(a, b Type) int { return strings.Compare(a.ID, b.ID) })
}

// lookup returns the type with the given id or an error wrapping ErrUnknownType.
func (r *Registry) lookup(typeID string) (Type, error) {
	t, ok := r.types[typeID]
	if !ok {
		return Type{}, fmt.Errorf("source type %q: %w (known: %s)", typeID, ErrUnknownType, strings.Join(slices.Sorted(maps.Keys(r.types)), ", "))
	}
	return t, nil
}

// ValidateParameters checks params against the parameters of the type typeID and
// returns a *ValidationError listing every problem: a required parameter missing
// (or an empty string), a value of the wrong type, out of its range or not among
// its options, and names the type does not define. A nil value counts as left
// out. The error wraps ErrUnknownType if typeID is not registered.
func (r *Registry) ValidateParameters(typeID string, params map[string]any) error {
	t, err := r.lookup(typeID)
	if err != nil {
		return err
	}
	if problems := validate(t.Parameters, params); len(problems) > 0 {
		return &ValidationError{TypeID: typeID, Problems: problems}
	}
	return nil
}

// New validates params, fills in the defaults of parameters left out, and makes
// a Source of the type typeID.
func (r *Registry) New(typeID string, params map[string]any, creds map[string]string) (Source, error) {
	t, err := r.lookup(typeID)
	if err != nil {
		return nil, err
	}
	if problems := validate(t.Parameters, params); len(problems) > 0 {
		return nil, &ValidationError{TypeID: typeID, Problems: problems}
	}
	full := maps.Clone(params)
	if full == nil {
		full = map[string]any{}
	}
	for _, p := range t.Parameters {
		if full[p.Name] == nil && p.Default != nil {
			full[p.Name] = p.Default
		}
	}
	s, err := t.New(full, creds)
	if err != nil {
		return nil, fmt.Errorf("source type %q: %w", typeID, err)
	}
	return s, nil
}

// validate returns the problems of params against defs.
func validate(defs []Parameter, params map[string]any) []Problem {
	var problems []Problem
	known := make(map[string]bool, len(defs))
	for _, p := range defs {
		known[p.Name] = true
		v := params[p.Name]
		if v == nil {
			if p.Required {
				problems = append(problems, Problem{p.Name, "required"})
			}
			continue
		}
		if s, ok := v.(string); ok && s == "" && p.Required && p.Type == TypeString {
			problems = append(problems, Problem{p.Name, "required, must not be empty"})
			continue
		}
		if msg := checkValue(p, v); msg != "" {
			problems = append(problems, Problem{p.Name, msg})
		}
	}
	var unknown []string
	for name := range params {
		if !known[name] {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	names := make([]string, 0, len(defs))
	for _, p := range defs {
		names = append(names, p.Name)
	}
	for _, name := range unknown {
		msg := "unknown parameter (this type has none)"
		if len(names) > 0 {
			msg = "unknown parameter (known: " + strings.Join(names, ", ") + ")"
		}
		problems = append(problems, Problem{name, msg})
	}
	return problems
}

// checkValue returns what is wrong with the non-nil value v of p, or "". The
// message never contains v.
func checkValue(p Parameter, v any) string {
	switch p.Type {
	case TypeString:
		s, ok := v.(string)
		if !ok {
			return "must be a string, got " + jsonKind(v)
		}
		if len(p.Options) > 0 && !slices.Contains(p.Options, s) {
			return "must be one of: " + strings.Join(p.Options, ", ")
		}
	case TypeInteger:
		i, ok := Integer(v)
		if !ok {
			if jsonKind(v) == TypeNumber {
				return "must be an integer, got a number with a fraction or beyond 64 bits"
			}
			return "must be an integer, got " + jsonKind(v)
		}
		if r := p.IntegerRange; r != nil && (i < r[0] || i > r[1]) {
			return fmt.Sprintf("must be between %d and %d", r[0], r[1])
		}
	case TypeNumber:
		f, ok := Number(v)
		if !ok {
			return "must be a number, got " + jsonKind(v)
		}
		if r := p.FloatRange; r != nil && (f < r[0] || f > r[1]) {
			return "must be between " + strconv.FormatFloat(r[0], 'g', -1, 64) + " and " + strconv.FormatFloat(r[1], 'g', -1, 64)
		}
	case TypeBoolean:
		if _, ok := v.(bool); !ok {
			return "must be a boolean, got " + jsonKind(v)
		}
	case TypeObject:
		if jsonKind(v) != TypeObject {
			return "must be an object, got " + jsonKind(v)
		}
	case TypeArray:
		if jsonKind(v) != TypeArray {
			return "must be an array, got " + jsonKind(v)
		}
		if len(p.Options) > 0 {
			rv := reflect.ValueOf(v)
			for i := range rv.Len() {
				s, ok := rv.Index(i).Interface().(string)
				if !ok || !slices.Contains(p.Options, s) {
					return fmt.Sprintf("element %d must be one of: %s", i, strings.Join(p.Options, ", "))
				}
			}
		}
	}
	return ""
}

// Integer returns v as an int64 if it is a whole number that fits: any Go integer
// type, a float with no fraction (JSON decodes numbers as float64), or a json.Number.
// Sources use it to read their integer parameters as the registry validated them.
func Integer(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float32:
		return floatToInt(float64(n))
	case float64:
		return floatToInt(n)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		return int64(u), u <= math.MaxInt64
	}
	return 0, false
}

// floatToInt returns f as an int64 if it is whole and within range.
func floatToInt(f float64) (int64, bool) {
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

// Number returns v as a finite float64 if it is any Go number or a json.Number,
// the same reading the registry validates number parameters with.
func Number(v any) (float64, bool) {
	var f float64
	switch n := v.(type) {
	case json.Number:
		var err error
		if f, err = n.Float64(); err != nil {
			return 0, false
		}
	default:
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f = float64(rv.Int())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			f = float64(rv.Uint())
		case reflect.Float32, reflect.Float64:
			f = rv.Float()
		default:
			return 0, false
		}
	}
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

// jsonKind names the JSON type of a Go value, for messages.
func jsonKind(v any) string {
	if v == nil {
		return "null"
	}
	if _, ok := v.(json.Number); ok {
		return "number"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.String:
		return TypeString
	case reflect.Bool:
		return TypeBoolean
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return TypeNumber
	case reflect.Map:
		if reflect.TypeOf(v).Key().Kind() == reflect.String {
			return TypeObject
		}
	case reflect.Slice, reflect.Array:
		return TypeArray
	}
	return fmt.Sprintf("unsupported Go type %T", v)
}
