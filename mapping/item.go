package mapping

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"strconv"

	"github.com/itchyny/gojq"
)

// Entity is a blueprint entity produced by a mapping, before it meets the catalog.
type Entity struct {
	// Identifier is a string, or a search query object (map) to resolve against the
	// catalog.
	Identifier any
	Blueprint  string
	// Title and Icon are strings or nil.
	Title any
	Icon  any
	// Team is nil (unset), a string, a list of strings, or a search query object.
	Team any
	// Properties and Relations keep the config's order. A relation's value is a
	// string, a list of strings, a search query object, or nil.
	Properties []Prop
	Relations  []Prop
	// Resource and Mapping locate the rule that produced the entity.
	Resource int
	Mapping  int
}

// Prop is a named value of an entity.
type Prop struct {
	Name  string
	Value any
}

// Issue is a problem with one item: an item error (the item, or one expanded copy of
// it, was skipped) or a field warning (the field became null).
type Issue struct {
	Resource int
	Kind     string
	// Field is the config path of the expression concerned, when there is one.
	Field string
	// Skipped is true for an item error, false for a field warning.
	Skipped bool
	Err     error
}

// Error renders the issue with its resource and field.
func (i Issue) Error() string {
	s := fmt.Sprintf("resource %d (kind %q)", i.Resource, i.Kind)
	if i.Field != "" {
		s += ": " + i.Field
	}
	if i.Skipped {
		s += ": item skipped"
	}
	return s + ": " + i.Err.Error()
}

// Unwrap returns the cause.
func (i Issue) Unwrap() error { return i.Err }

// Result is what mapping one item produced.
type Result struct {
	Entities []Entity
	// Filtered counts expanded items the selector turned away.
	Filtered int
	// Dropped counts entities left out for a null or empty identifier or blueprint.
	Dropped int
	Issues  []Issue
}

// Mapper maps items for one goroutine, reusing its decoding buffers between items.
// Create one per goroutine with NewMapper; the Program behind it is shared.
type Mapper struct {
	dec *decoder
}

// NewMapper returns a Mapper for one goroutine.
func NewMapper() *Mapper { return &Mapper{dec: newDecoder()} }

// Map evaluates the resource on one raw JSON item under the item time limit.
func (rp *ResourceProgram) Map(ctx context.Context, m *Mapper, raw []byte) Result {
	v, err := m.dec.decode(raw, rp.need)
	if err != nil {
		return Result{Issues: []Issue{rp.issue(nil, true, err)}}
	}
	return rp.MapValue(ctx, v)
}

// MapValue evaluates the resource on an already decoded item (gojq's value types:
// map[string]any, []any, string, int, *big.Int, float64, bool, nil) under the item
// time limit.
func (rp *ResourceProgram) MapValue(ctx context.Context, v any) Result {
	var res Result
	ctx, cancel := context.WithTimeoutCause(ctx, rp.prog.opts.ItemTimeout, rp.prog.timeout)
	defer cancel()
	rp.mapValue(ctx, v, &res)
	return res
}

func (rp *ResourceProgram) issue(f *field, skipped bool, err error) Issue {
	is := Issue{Resource: rp.Index, Kind: rp.Kind, Skipped: skipped, Err: err}
	if f != nil {
		is.Field = f.expr.Path
	}
	return is
}

func (rp *ResourceProgram) mapValue(ctx context.Context, v any, res *Result) {
	if rp.itemsToParse == nil {
		rp.mapExpanded(ctx, v, res)
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		res.Issues = append(res.Issues, rp.issue(rp.itemsToParse, true, fmt.Errorf("itemsToParse needs an object item, got %s", typeName(v))))
		return
	}
	parsed, err := rp.itemsToParse.eval(ctx, v)
	if err != nil {
		res.Issues = append(res.Issues, rp.issue(rp.itemsToParse, true, err))
		return
	}
	elems, ok := parsed.([]any)
	if !ok {
		res.Issues = append(res.Issues, rp.issue(rp.itemsToParse, true, fmt.Errorf("itemsToParse must yield an array, got %s", typeName(parsed))))
		return
	}
	base := obj
	if rp.removeParsed != nil {
		if out, err := (&field{code: rp.removeParsed, expr: rp.itemsToParse.expr}).run(ctx, v); err == nil {
			if m, ok := out.(map[string]any); ok {
				base = m
			}
		} else if isStop(err) {
			res.Issues = append(res.Issues, rp.issue(rp.itemsToParse, true, err))
			return
		}
	}
	name := rp.res.Port.ItemsToParseName
	for _, el := range elems {
		cp := maps.Clone(base)
		cp[name] = el
		if stop := rp.mapExpanded(ctx, cp, res); stop {
			return
		}
	}
}

// mapExpanded maps one (expanded) item; it reports whether the item's time or memory
// ran out, which ends the item.
func (rp *ResourceProgram) mapExpanded(ctx context.Context, v any, res *Result) bool {
	sel, err := rp.selector.eval(ctx, v)
	if err != nil {
		res.Issues = append(res.Issues, rp.issue(rp.selector, true, err))
		return isStop(err)
	}
	switch sel {
	case true:
	case false:
		res.Filtered++
		return false
	default:
		res.Issues = append(res.Issues, rp.issue(rp.selector, true, fmt.Errorf("selector must yield a boolean, got %s", typeName(sel))))
		return false
	}
	for mi, mp := range rp.mappings {
		e, keep, stop := rp.entity(ctx, mp, v, res)
		if stop {
			return true
		}
		if !keep {
			res.Dropped++
			continue
		}
		e.Resource, e.Mapping = rp.Index, mi
		res.Entities = append(res.Entities, e)
	}
	return false
}

// errStop carries a time or memory stop out of the field evaluations of one entity.
var errStop = errors.New("stop")

func (rp *ResourceProgram) entity(ctx context.Context, mp *mappingProgram, v any, res *Result) (e Entity, keep, stop bool) {
	// get evaluates a field; a failure makes it null with a warning, and a stop ends
	// the item.
	get := func(f *field) (any, error) {
		if f == nil {
			return nil, nil
		}
		out, err := f.eval(ctx, v)
		if err != nil {
			if isStop(err) {
				res.Issues = append(res.Issues, rp.issue(f, true, err))
				return nil, errStop
			}
			res.Issues = append(res.Issues, rp.issue(f, false, err))
			return nil, nil
		}
		return out, nil
	}
	warn := func(f *field, format string, args ...any) {
		res.Issues = append(res.Issues, rp.issue(f, false, fmt.Errorf(format, args...)))
	}
	// The identifier and blueprint name the entity: when they fail, the entity is
	// lost, which is an item error (it keeps a run from deleting), not a warning.
	fail := func(f *field, format string, args ...any) {
		res.Issues = append(res.Issues, rp.issue(f, true, fmt.Errorf(format, args...)))
	}
	getKey := func(f *field) (any, error) {
		if f == nil {
			return nil, nil
		}
		out, err := f.eval(ctx, v)
		if err != nil {
			res.Issues = append(res.Issues, rp.issue(f, true, err))
			if isStop(err) {
				return nil, errStop
			}
			return nil, nil
		}
		return out, nil
	}

	id, err := rp.value(mp.identifier, getKey)
	if err != nil {
		return e, false, true
	}
	if mp.identifier.f != nil {
		id = identifierString(id, func(got string) { fail(mp.identifier.f, "identifier must be a string or a number, got %s", got) })
	}
	bp, err := getKey(mp.blueprint)
	if err != nil {
		return e, false, true
	}
	bpStr, _ := identifierString(bp, func(got string) { fail(mp.blueprint, "blueprint must be a string, got %s", got) }).(string)
	title, err := get(mp.title)
	if err != nil {
		return e, false, true
	}
	title = identifierString(title, func(got string) { warn(mp.title, "title must be a string or a number, got %s", got) })
	icon, err := get(mp.icon)
	if err != nil {
		return e, false, true
	}
	if _, ok := icon.(string); !ok && icon != nil {
		warn(mp.icon, "icon must be a string, got %s", typeName(icon))
		icon = nil
	}
	var team any
	if mp.team != nil {
		if team, err = rp.value(*mp.team, get); err != nil {
			return e, false, true
		}
		if mp.team.f != nil {
			team = stringOrList(team, func(got string) { warn(mp.team.f, "team must be a string or a list of strings, got %s", got) })
		}
	}
	e = Entity{Identifier: id, Blueprint: bpStr, Title: title, Icon: icon, Team: team}
	if len(mp.properties) > 0 {
		e.Properties = make([]Prop, 0, len(mp.properties))
		for _, p := range mp.properties {
			val, err := get(p.f)
			if err != nil {
				return e, false, true
			}
			e.Properties = append(e.Properties, Prop{Name: p.name, Value: val})
		}
	}
	if len(mp.relations) > 0 {
		e.Relations = make([]Prop, 0, len(mp.relations))
		for _, r := range mp.relations {
			val, err := rp.value(r.v, get)
			if err != nil {
				return e, false, true
			}
			if r.v.f != nil {
				val = stringOrList(val, func(got string) { warn(r.v.f, "relation must be a string, a list of strings or null, got %s", got) })
			}
			e.Relations = append(e.Relations, Prop{Name: r.name, Value: val})
		}
	}
	if s, ok := id.(string); (ok && s == "") || id == nil || bpStr == "" {
		return e, false, false
	}
	return e, true, false
}

// value evaluates an expression or a search query; a search query becomes the object
// {combinator, rules:[{property, operator, value}]} with its jq evaluated.
func (rp *ResourceProgram) value(vp valueProgram, get func(*field) (any, error)) (any, error) {
	if vp.search == nil {
		return get(vp.f)
	}
	return rp.searchValue(vp.search, get)
}

func (rp *ResourceProgram) searchValue(sp *searchProgram, get func(*field) (any, error)) (any, error) {
	comb, err := get(sp.combinator)
	if err != nil {
		return nil, err
	}
	rules := make([]any, 0, len(sp.rules))
	for _, r := range sp.rules {
		if r.nested != nil {
			n, err := rp.searchValue(r.nested, get)
			if err != nil {
				return nil, err
			}
			rules = append(rules, n)
			continue
		}
		rule := map[string]any{}
		for _, kv := range []struct {
			k string
			f *field
		}{{"property", r.property}, {"operator", r.operator}, {"value", r.value}} {
			if kv.f == nil {
				continue
			}
			val, err := get(kv.f)
			if err != nil {
				return nil, err
			}
			rule[kv.k] = val
		}
		rules = append(rules, rule)
	}
	return map[string]any{"combinator": comb, "rules": rules}, nil
}

// identifierString turns numbers into their decimal string and leaves strings and
// null; anything else is reported through bad and becomes null.
func identifierString(v any, bad func(got string)) any {
	switch x := v.(type) {
	case nil, string:
		return v
	case int:
		return strconv.Itoa(x)
	case *big.Int:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	bad(typeName(v))
	return nil
}

// stringOrList accepts null, a string, or a list of strings (numbers become decimal
// strings, as identifiers do); anything else is reported and becomes null.
func stringOrList(v any, bad func(got string)) any {
	if l, ok := v.([]any); ok {
		out := make([]any, len(l))
		for i, x := range l {
			s := identifierString(x, func(string) {})
			if _, ok := s.(string); !ok {
				bad("a list holding " + typeName(x))
				return nil
			}
			out[i] = s
		}
		return out
	}
	return identifierString(v, bad)
}

// typeName names a value's jq type, with a short excerpt for scalars.
func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean (" + strconv.FormatBool(x) + ")"
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return "string (" + strconv.Quote(x) + ")"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	default:
		b, _ := gojq.Marshal(v)
		return "number (" + string(b) + ")"
	}
}
