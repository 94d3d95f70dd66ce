package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Get returns one entity, or an error wrapping ErrNotFound.
func (c *Catalog) Get(ctx context.Context, tenant, bp, id string) (*Entity, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	f, err := c.rdb.HGetAll(ctx, entityKey(c.tkey(tenant), bp, id)).Result()
	if err != nil {
		return nil, fmt.Errorf("catalog: tenant %q: reading %s/%s: %w", tenant, bp, id, err)
	}
	if f["_id"] == "" {
		return nil, fmt.Errorf("catalog: tenant %q: entity %s/%s: %w", tenant, bp, id, ErrNotFound)
	}
	e, err := decodeEntity(f)
	if err != nil {
		return nil, fmt.Errorf("catalog: tenant %q: decoding %s/%s: %w", tenant, bp, id, err)
	}
	return e, nil
}

// List returns up to limit entities of a blueprint ordered by identifier (byte order),
// starting after cursor ("" for the first page), and the cursor of the next page (""
// when this was the last). limit <= 0 means 100; it is capped at 1000. The cursor is
// the last identifier returned, so a page stays correct while entities come and go.
func (c *Catalog) List(ctx context.Context, tenant, bp, cursor string, limit int) ([]Entity, string, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	t := c.tkey(tenant)
	ids, more, err := c.idPage(ctx, t, bp, cursor, limit)
	if err != nil {
		return nil, "", fmt.Errorf("catalog: tenant %q: listing %s: %w", tenant, bp, err)
	}
	fields, err := c.hgetalls(ctx, t, bp, ids)
	if err != nil {
		return nil, "", fmt.Errorf("catalog: tenant %q: listing %s: %w", tenant, bp, err)
	}
	out := make([]Entity, 0, len(ids))
	for i, f := range fields {
		if f["_id"] == "" {
			continue // deleted between the two reads
		}
		e, err := decodeEntity(f)
		if err != nil {
			return nil, "", fmt.Errorf("catalog: tenant %q: decoding %s/%s: %w", tenant, bp, ids[i], err)
		}
		out = append(out, *e)
	}
	next := ""
	if more {
		next = ids[len(ids)-1]
	}
	return out, next, nil
}

// idPage reads up to limit identifiers after cursor, and whether more follow.
func (c *Catalog) idPage(ctx context.Context, t, bp, cursor string, limit int) ([]string, bool, error) {
	lo := "-"
	if cursor != "" {
		lo = "(" + cursor
	}
	ids, err := c.rdb.ZRangeByLex(ctx, idsKey(t, bp), &redis.ZRangeBy{Min: lo, Max: "+", Count: int64(limit + 1)}).Result()
	if err != nil {
		return nil, false, err
	}
	if len(ids) > limit {
		return ids[:limit], true, nil
	}
	return ids, false, nil
}

// hgetalls reads the hashes of entities in one pipeline.
func (c *Catalog) hgetalls(ctx context.Context, t, bp string, ids []string) ([]map[string]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, entityKey(t, bp, id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(ids))
	for i, cmd := range cmds {
		out[i] = cmd.Val()
	}
	return out, nil
}

// CountOwned returns how many entities an integration owns through one kind.
func (c *Catalog) CountOwned(ctx context.Context, tenant, integration, kind string) (int, error) {
	if err := checkTenant(tenant); err != nil {
		return 0, err
	}
	n, err := c.rdb.ZCard(ctx, ownKey(c.tkey(tenant), integration, kind)).Result()
	if err != nil {
		return 0, fmt.Errorf("catalog: tenant %q: counting what %s owns as %s: %w", tenant, integration, kind, err)
	}
	return int(n), nil
}

// OwnedKinds returns, sorted, the kinds through which an integration owns entities,
// so that a run can also delete the entities of kinds its config no longer has.
func (c *Catalog) OwnedKinds(ctx context.Context, tenant, integration string) ([]string, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	t := c.tkey(tenant)
	kinds, err := c.rdb.SMembers(ctx, kindsKey(t, integration)).Result()
	if err != nil {
		return nil, fmt.Errorf("catalog: tenant %q: kinds of %s: %w", tenant, integration, err)
	}
	slices.Sort(kinds)
	pipe := c.rdb.Pipeline()
	cards := make([]*redis.IntCmd, len(kinds))
	for i, k := range kinds {
		cards[i] = pipe.ZCard(ctx, ownKey(t, integration, k))
	}
	if len(kinds) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("catalog: tenant %q: kinds of %s: %w", tenant, integration, err)
		}
	}
	var out []string
	for i, k := range kinds {
		if cards[i].Val() > 0 {
			out = append(out, k)
		}
	}
	return out, nil
}

// decodeEntity builds an Entity from its hash fields.
func decodeEntity(f map[string]string) (*Entity, error) {
	e := &Entity{
		Identifier: f["_id"], Blueprint: f["_bp"], Title: f["title"], Icon: f["icon"],
		Integration: f["_owner"], Kind: f["_kind"],
		Properties: map[string]any{}, Relations: map[string]any{},
	}
	if ms, err := strconv.ParseInt(f["_created"], 10, 64); err == nil {
		e.CreatedAt = msTime(ms)
	}
	if ms, err := strconv.ParseInt(f["_updated"], 10, 64); err == nil {
		e.UpdatedAt = msTime(ms)
	}
	if team := f["team"]; team != "" {
		if err := json.Unmarshal([]byte(team), &e.Team); err != nil {
			return nil, fmt.Errorf("team: %w", err)
		}
	}
	for k, v := range f {
		switch {
		case strings.HasPrefix(k, "p:"):
			val, err := decodeJSON(v)
			if err != nil {
				return nil, fmt.Errorf("property %q: %w", k[2:], err)
			}
			e.Properties[k[2:]] = val
		case strings.HasPrefix(k, "r:"):
			e.Relations[k[2:]] = decodeRelation(v)
		}
	}
	return e, nil
}

// decodeJSON decodes a stored value, keeping numbers exact as json.Number.
func decodeJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeRelation turns a stored relation ("-", "=id", "[id US id...") into nil, a
// string or a []string.
func decodeRelation(v string) any {
	switch {
	case strings.HasPrefix(v, "="):
		return v[1:]
	case v == "[":
		return []string{}
	case strings.HasPrefix(v, "["):
		return strings.Split(v[1:], US)
	}
	return nil
}

// Resolve returns, sorted, the identifiers of the target blueprint's entities that
// match a Port search query: {"combinator": "and"|"or", "rules": [...]}, each rule
// either {"property": P, "operator": "="|"in", "value": V} or a nested query. P is a
// property name, "$identifier" or "$title". Values compare as JSON (numbers by value).
//
// When the top-level combinator is "and" and it has an "$identifier" rule, only those
// identifiers are looked at. Otherwise Resolve scans every entity of the blueprint,
// reading only the fields the rules name: fine for the few thousand entities a
// relation query targets today; a property index is the step up when that stops
// being true.
func (c *Catalog) Resolve(ctx context.Context, tenant, targetBlueprint string, q map[string]any) ([]string, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	query, err := parseQuery(q, 0)
	if err != nil {
		return nil, fmt.Errorf("catalog: tenant %q: search query on %s: %w", tenant, targetBlueprint, err)
	}
	fieldSet := map[string]bool{"_id": true}
	query.fields(fieldSet)
	fields := slices.Sorted(maps.Keys(fieldSet))
	t := c.tkey(tenant)
	var out []string
	check := func(ids []string) error {
		pipe := c.rdb.Pipeline()
		cmds := make([]*redis.SliceCmd, len(ids))
		for i, id := range ids {
			cmds[i] = pipe.HMGet(ctx, entityKey(t, targetBlueprint, id), fields...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		for i, cmd := range cmds {
			vals := make(map[string]string, len(fields))
			for j, v := range cmd.Val() {
				if s, ok := v.(string); ok {
					vals[fields[j]] = s
				}
			}
			if vals["_id"] == "" {
				continue
			}
			ok, err := query.match(vals)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, ids[i])
			}
		}
		return nil
	}
	if ids, ok := query.identifiers(); ok {
		slices.Sort(ids)
		ids = slices.Compact(ids)
		if len(ids) > 0 {
			if err := check(ids); err != nil {
				return nil, fmt.Errorf("catalog: tenant %q: resolving a query on %s: %w", tenant, targetBlueprint, err)
			}
		}
		return out, nil
	}
	cursor := ""
	for {
		ids, more, err := c.idPage(ctx, t, targetBlueprint, cursor, 500)
		if err == nil && len(ids) > 0 {
			err = check(ids)
		}
		if err != nil {
			return nil, fmt.Errorf("catalog: tenant %q: resolving a query on %s: %w", tenant, targetBlueprint, err)
		}
		if !more {
			return out, nil
		}
		cursor = ids[len(ids)-1]
	}
}

// query is a parsed search query node: a rule, or a combinator over children.
type query struct {
	combinator string // "and" / "or"; "" for a rule
	rules      []*query
	field      string // hash field the rule reads: _id, title or p:<name>
	operator   string
	values     []any // "=": one value; "in": the list
}

const maxQueryDepth = 16

func parseQuery(m map[string]any, depth int) (*query, error) {
	if depth > maxQueryDepth {
		return nil, fmt.Errorf("nested more than %d levels deep", maxQueryDepth)
	}
	if rules, ok := m["rules"]; ok {
		comb, _ := m["combinator"].(string)
		if comb == "" {
			comb = "and"
		}
		if comb != "and" && comb != "or" {
			return nil, fmt.Errorf("combinator %q: want \"and\" or \"or\"", m["combinator"])
		}
		list, ok := rules.([]any)
		if !ok || len(list) == 0 {
			return nil, errors.New("rules must be a non-empty list")
		}
		q := &query{combinator: comb}
		for i, r := range list {
			rm, ok := r.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("rules[%d] is not an object", i)
			}
			child, err := parseQuery(rm, depth+1)
			if err != nil {
				return nil, fmt.Errorf("rules[%d]: %w", i, err)
			}
			q.rules = append(q.rules, child)
		}
		return q, nil
	}
	prop, ok := m["property"].(string)
	if !ok || prop == "" {
		return nil, errors.New("a rule needs a property (or rules, for a nested query)")
	}
	q := &query{operator: fmt.Sprint(m["operator"])}
	switch prop {
	case "$identifier":
		q.field = "_id"
	case "$title":
		q.field = "title"
	default:
		q.field = "p:" + prop
	}
	val, err := normalize(m["value"])
	if err != nil {
		return nil, fmt.Errorf("property %q: value: %w", prop, err)
	}
	switch q.operator {
	case "=":
		q.values = []any{val}
	case "in":
		list, ok := val.([]any)
		if !ok {
			return nil, fmt.Errorf("property %q: operator \"in\" needs a list value", prop)
		}
		q.values = list
	default:
		return nil, fmt.Errorf("property %q: operator %q is not supported (use = or in)", prop, q.operator)
	}
	return q, nil
}

// normalize turns a Go value into what decodeJSON would give for it.
func normalize(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return decodeJSON(string(data))
}

func (q *query) fields(set map[string]bool) {
	if q.combinator == "" {
		set[q.field] = true
	}
	for _, r := range q.rules {
		r.fields(set)
	}
}

// identifiers returns the identifiers a top-level "and" restricts the result to.
func (q *query) identifiers() ([]string, bool) {
	rules := []*query{q}
	if q.combinator == "and" {
		rules = q.rules
	} else if q.combinator != "" {
		return nil, false
	}
	for _, r := range rules {
		if r.combinator == "" && r.field == "_id" {
			var ids []string
			for _, v := range r.values {
				if s, ok := v.(string); ok {
					ids = append(ids, s)
				}
			}
			return ids, true
		}
	}
	return nil, false
}

func (q *query) match(vals map[string]string) (bool, error) {
	switch q.combinator {
	case "and", "or":
		for _, r := range q.rules {
			ok, err := r.match(vals)
			if err != nil {
				return false, err
			}
			if ok == (q.combinator == "or") {
				return ok, nil
			}
		}
		return q.combinator == "and", nil
	}
	raw, set := vals[q.field]
	var have any
	switch {
	case !set:
		have = nil
	case q.field == "_id" || q.field == "title":
		have = raw
	default:
		v, err := decodeJSON(raw)
		if err != nil {
			return false, fmt.Errorf("stored %s: %w", q.field, err)
		}
		have = v
	}
	for _, want := range q.values {
		if jsonEqual(have, want) {
			return true, nil
		}
	}
	return false, nil
}

// jsonEqual compares decoded JSON values, numbers by value.
func jsonEqual(a, b any) bool {
	an, aok := a.(json.Number)
	bn, bok := b.(json.Number)
	if aok || bok {
		if !aok || !bok {
			return false
		}
		ar, ok1 := new(big.Rat).SetString(string(an))
		br, ok2 := new(big.Rat).SetString(string(bn))
		return ok1 && ok2 && ar.Cmp(br) == 0
	}
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
