package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/configsync/configsync/blueprint"
)

// PutBlueprint creates or replaces a blueprint. It refuses a blueprint that does not
// pass blueprint.Validate, has a relation name containing \x1f, or changes the target
// of an existing relation while entities of the blueprint exist. When a relation's
// required flag changes, the reverse index entries of existing entities are rewritten,
// so that which entities are dependents always follows the current definition.
func (c *Catalog) PutBlueprint(ctx context.Context, tenant string, b blueprint.Blueprint) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	if err := b.Validate(); err != nil {
		return fmt.Errorf("catalog: tenant %q: %w", tenant, err)
	}
	for name := range b.Relations {
		if err := checkName("relation name", name); err != nil {
			return fmt.Errorf("catalog: tenant %q: blueprint %q: %w", tenant, b.Identifier, err)
		}
	}
	data, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("catalog: tenant %q: encoding blueprint %q: %w", tenant, b.Identifier, err)
	}
	t := c.tkey(tenant)
	args := []any{b.Identifier, data}
	for _, name := range slices.Sorted(maps.Keys(b.Relations)) {
		args = append(args, name, b.Relations[name].Target)
	}
	res, err := putBlueprintScript.Run(ctx, c.rdb, []string{t + ":bp", t + ":bpgen", idsKey(t, b.Identifier)}, args...).StringSlice()
	if err != nil {
		return fmt.Errorf("catalog: tenant %q: storing blueprint %q: %w", tenant, b.Identifier, err)
	}
	if res[0] == "retarget" {
		return fmt.Errorf("catalog: tenant %q: blueprint %q: relation %q would change its target from %q to %q while entities exist; delete them first",
			tenant, b.Identifier, res[1], res[2], b.Relations[res[1]].Target)
	}
	c.forget(tenant)
	if res[1] == "" {
		return nil
	}
	var old blueprint.Blueprint
	if err := json.Unmarshal([]byte(res[1]), &old); err != nil {
		return fmt.Errorf("catalog: tenant %q: decoding the previous blueprint %q: %w", tenant, b.Identifier, err)
	}
	var flips []any
	for _, name := range slices.Sorted(maps.Keys(b.Relations)) {
		if o, ok := old.Relations[name]; ok && o.Required != b.Relations[name].Required {
			flips = append(flips, name, flag(b.Relations[name].Required))
		}
	}
	if len(flips) == 0 {
		return nil
	}
	return c.reflag(ctx, tenant, b.Identifier, flips)
}

// reflag runs reflagScript over every entity of the blueprint, a page at a time, so
// that a large blueprint does not block Redis for long. Writes racing with it already
// use the new definition, and the script goes by each entity's own _r: meta, so the
// order does not matter.
func (c *Catalog) reflag(ctx context.Context, tenant, bp string, flips []any) error {
	t := c.tkey(tenant)
	after := "-"
	for {
		ids, err := c.rdb.ZRangeByLex(ctx, idsKey(t, bp), &redis.ZRangeBy{Min: after, Max: "+", Count: 500}).Result()
		if err != nil {
			return fmt.Errorf("catalog: tenant %q: blueprint %q: listing entities to reindex: %w", tenant, bp, err)
		}
		if len(ids) == 0 {
			return nil
		}
		args := append([]any{t, bp, len(flips) / 2}, flips...)
		for _, id := range ids {
			args = append(args, id)
		}
		if err := reflagScript.Run(ctx, c.rdb, []string{t + ":bpgen"}, args...).Err(); err != nil {
			return fmt.Errorf("catalog: tenant %q: blueprint %q: reindexing required relations: %w", tenant, bp, err)
		}
		after = "(" + ids[len(ids)-1]
	}
}

// GetBlueprint returns a blueprint, or an error wrapping ErrNotFound. It reads Redis
// each time rather than the write cache, so that callers always see the latest
// definition.
func (c *Catalog) GetBlueprint(ctx context.Context, tenant, id string) (*blueprint.Blueprint, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	data, err := c.rdb.HGet(ctx, c.tkey(tenant)+":bp", id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("catalog: tenant %q: blueprint %q: %w", tenant, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: tenant %q: reading blueprint %q: %w", tenant, id, err)
	}
	var b blueprint.Blueprint
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("catalog: tenant %q: decoding blueprint %q: %w", tenant, id, err)
	}
	return &b, nil
}

// ListBlueprints returns the tenant's blueprints ordered by identifier.
func (c *Catalog) ListBlueprints(ctx context.Context, tenant string) ([]blueprint.Blueprint, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	_, bps, err := c.readBlueprints(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]blueprint.Blueprint, 0, len(bps))
	for _, id := range slices.Sorted(maps.Keys(bps)) {
		out = append(out, *bps[id])
	}
	return out, nil
}

// DeleteBlueprint deletes a blueprint, refusing while entities of it exist (barebones
// ones included): they would be left without a schema.
func (c *Catalog) DeleteBlueprint(ctx context.Context, tenant, id string) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	t := c.tkey(tenant)
	n, err := deleteBlueprintScript.Run(ctx, c.rdb, []string{t + ":bp", t + ":bpgen", idsKey(t, id)}, id).Int64()
	if err != nil {
		return fmt.Errorf("catalog: tenant %q: deleting blueprint %q: %w", tenant, id, err)
	}
	switch {
	case n < 0:
		return fmt.Errorf("catalog: tenant %q: blueprint %q: %w", tenant, id, ErrNotFound)
	case n > 0:
		return fmt.Errorf("catalog: tenant %q: blueprint %q still has %d entities; delete them first", tenant, id, n)
	}
	c.forget(tenant)
	return nil
}

// readBlueprints reads the generation and every blueprint in one MULTI, so the two
// agree.
func (c *Catalog) readBlueprints(ctx context.Context, tenant string) (string, map[string]*blueprint.Blueprint, error) {
	t := c.tkey(tenant)
	var genCmd *redis.StringCmd
	var allCmd *redis.MapStringStringCmd
	_, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		genCmd = p.Get(ctx, t+":bpgen")
		allCmd = p.HGetAll(ctx, t+":bp")
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", nil, fmt.Errorf("catalog: tenant %q: reading blueprints: %w", tenant, err)
	}
	gen, err := genCmd.Result()
	if errors.Is(err, redis.Nil) {
		gen = "0"
	} else if err != nil {
		return "", nil, fmt.Errorf("catalog: tenant %q: reading the blueprint generation: %w", tenant, err)
	}
	bps := map[string]*blueprint.Blueprint{}
	for id, data := range allCmd.Val() {
		var b blueprint.Blueprint
		if err := json.Unmarshal([]byte(data), &b); err != nil {
			return "", nil, fmt.Errorf("catalog: tenant %q: decoding blueprint %q: %w", tenant, id, err)
		}
		bps[id] = &b
	}
	return gen, bps, nil
}

// blueprints returns the tenant's cached blueprints, loading them when there is no
// cache or reload is set. Upsert's script compares the cached generation with the
// stored one, so a stale cache costs a retry, never a wrong write.
func (c *Catalog) blueprints(ctx context.Context, tenant string, reload bool) (*bpCache, error) {
	c.mu.Lock()
	bc := c.bps[tenant]
	c.mu.Unlock()
	if bc != nil && !reload {
		return bc, nil
	}
	gen, bps, err := c.readBlueprints(ctx, tenant)
	if err != nil {
		return nil, err
	}
	bc = newBPCache(gen, bps)
	c.mu.Lock()
	c.bps[tenant] = bc
	c.mu.Unlock()
	return bc, nil
}

// forget drops a tenant's cache after this process changed its blueprints.
func (c *Catalog) forget(tenant string) {
	c.mu.Lock()
	delete(c.bps, tenant)
	c.mu.Unlock()
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
