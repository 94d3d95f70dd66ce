package catalog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrFenced is returned (wrapped) when a deletion's fence no longer holds the lease.
var ErrFenced = errors.New("the fence token no longer holds the lease")

// deleteChunk is how many entities one deleteScript call deletes: enough to make the
// round trips few, small enough that one call does not hold up a shared Redis.
const deleteChunk = 256

// maxReplans bounds how often a deletion looks for dependents again after the script
// found ones the plan did not know (written concurrently).
const maxReplans = 3

// DeleteStale deletes what a run found stale: the entities the integration owns
// through the given kinds that no write of it refreshed since before (the run's start).
// Stale is counted from the ownership index; when Stale/Owned is above threshold
// (0..1) nothing is deleted and ThresholdExceeded is set, since a source that suddenly
// returns much less is more likely broken than emptied.
//
// Dependents are the entities whose required relation points at an entity being
// deleted. With deleteDependents they are deleted too, recursively, whoever owns them;
// without, an entity that has dependents (other than entities deleted with it) is kept
// and listed in KeptForDependents. Optional relations pointing at deleted entities are
// cleared. Each entity is re-checked inside the script, so one written while the run
// was finishing is not deleted. Every deletion and clearing goes into the outbox with
// its change, in the script that makes it (see Change). Callers must only call this
// after every kind was fetched whole (DESIGN.md, invariant 1).
func (c *Catalog) DeleteStale(ctx context.Context, tenant string, fence *Fence, integration string, kinds []string, before time.Time, threshold float64, deleteDependents bool) (DeletionReport, error) {
	var rep DeletionReport
	if err := checkTenant(tenant); err != nil {
		return rep, err
	}
	if err := checkFence(tenant, fence); err != nil {
		return rep, err
	}
	if math.IsNaN(threshold) || threshold < 0 || threshold > 1 {
		return rep, fmt.Errorf("catalog: tenant %q: deletion threshold %v is not between 0 and 1", tenant, threshold)
	}
	if len(kinds) == 0 {
		return rep, nil
	}
	t := c.tkey(tenant)
	cut := before.UnixMilli()
	pipe := c.rdb.Pipeline()
	cards := make([]*redis.IntCmd, len(kinds))
	stale := make([]*redis.StringSliceCmd, len(kinds))
	for i, k := range kinds {
		key := ownKey(t, integration, k)
		cards[i] = pipe.ZCard(ctx, key)
		stale[i] = pipe.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: "-inf", Max: "(" + strconv.FormatInt(cut, 10)})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return rep, fmt.Errorf("catalog: tenant %q: reading what %s owns: %w", tenant, integration, err)
	}
	var roots []planned
	for i := range kinds {
		rep.Owned += int(cards[i].Val())
		for _, m := range stale[i].Val() {
			roots = append(roots, planned{ref: memberRef(m), check: true})
		}
	}
	rep.Stale = len(roots)
	if rep.Stale == 0 {
		return rep, nil
	}
	if float64(rep.Stale)/float64(rep.Owned) > threshold {
		rep.ThresholdExceeded = true
		return rep, nil
	}
	sel := selector{mode: "stale", integration: integration, before: cut, kinds: kinds}
	err := c.deleteRefs(ctx, tenant, fence, sel, roots, deleteDependents, &rep)
	return rep, err
}

// Delete deletes one entity by the same rules as DeleteStale (dependents, cleared
// optional relations), whoever owns it. It returns an error wrapping ErrNotFound when
// the entity does not exist. With deleteDependents false and dependents present,
// nothing is deleted and the entity is in KeptForDependents.
func (c *Catalog) Delete(ctx context.Context, tenant string, fence *Fence, ref Ref, deleteDependents bool) (DeletionReport, error) {
	var rep DeletionReport
	if err := checkTenant(tenant); err != nil {
		return rep, err
	}
	if err := checkFence(tenant, fence); err != nil {
		return rep, err
	}
	n, err := c.rdb.Exists(ctx, entityKey(c.tkey(tenant), ref.Blueprint, ref.Identifier)).Result()
	if err != nil {
		return rep, fmt.Errorf("catalog: tenant %q: deleting %s: %w", tenant, ref, err)
	}
	if n == 0 {
		return rep, fmt.Errorf("catalog: tenant %q: deleting %s: %w", tenant, ref, ErrNotFound)
	}
	err = c.deleteRefs(ctx, tenant, fence, selector{mode: "any"}, []planned{{ref: ref}}, deleteDependents, &rep)
	return rep, err
}

// DeleteLive deletes an entity for a live delete event of an integration, fetched (or
// sent) at fetchedAt: only when the integration owns it and no newer write reached
// it, both checked inside the script, so that a delayed delete event never removes
// data a later run or event wrote. Report.Deleted is empty when it was refused.
//
// It also leaves a tombstone for TombstoneTTL, even when the entity does not exist
// (yet), unless the entity is kept for its dependents (deleteDependents false), which
// the tool's later data then updates as usual: the integration's writes of the item
// fetched at or before fetchedAt are then
// skipped as SkippedOlder, so that a run which fetched the item before the tool
// deleted it cannot bring it back.
func (c *Catalog) DeleteLive(ctx context.Context, tenant, integration string, ref Ref, fetchedAt time.Time, deleteDependents bool) (DeletionReport, error) {
	var rep DeletionReport
	if err := checkTenant(tenant); err != nil {
		return rep, err
	}
	sel := selector{mode: "live", integration: integration, before: fetchedAt.UnixMicro()}
	err := c.deleteRefs(ctx, tenant, nil, sel, []planned{{ref: ref, check: true}}, deleteDependents, &rep)
	return rep, err
}

// DeleteOwned deletes every entity an integration owns, for removing the integration.
// Owned is how many it owned; dependents and optional relations follow DeleteStale's
// rules. Entities another integration took over in the meantime are left alone.
func (c *Catalog) DeleteOwned(ctx context.Context, tenant, integration string, deleteDependents bool) (DeletionReport, error) {
	var rep DeletionReport
	if err := checkTenant(tenant); err != nil {
		return rep, err
	}
	t := c.tkey(tenant)
	kinds, err := c.rdb.SMembers(ctx, kindsKey(t, integration)).Result()
	if err != nil {
		return rep, fmt.Errorf("catalog: tenant %q: kinds of %s: %w", tenant, integration, err)
	}
	slices.Sort(kinds)
	var roots []planned
	for _, k := range kinds {
		members, err := c.rdb.ZRange(ctx, ownKey(t, integration, k), 0, -1).Result()
		if err != nil {
			return rep, fmt.Errorf("catalog: tenant %q: what %s owns as %s: %w", tenant, integration, k, err)
		}
		for _, m := range members {
			roots = append(roots, planned{ref: memberRef(m), check: true})
		}
	}
	rep.Owned = len(roots)
	err = c.deleteRefs(ctx, tenant, nil, selector{mode: "owned", integration: integration}, roots, deleteDependents, &rep)
	return rep, err
}

// selector says which entities deleteScript may delete when their check flag is set.
type selector struct {
	mode        string // "any", "stale", "owned" or "live"
	integration string
	before      int64 // ms for stale; µs of the fetch time for live
	kinds       []string
}

// planned is one entity to delete; check makes the script verify the selector.
type planned struct {
	ref   Ref
	check bool
}

// deleteRefs plans and runs a deletion: it finds dependents, orders the entities so
// that dependents go first, and runs deleteScript over them in chunks, pipelined in
// order. The script re-checks everything against the live data; an entity it refuses
// because a dependent appeared since the plan was made is planned again. Each script
// call appends its changes to the outbox; the tenant is listed in the outbox tenants
// before (see runPipeline) and after, as for Upsert.
func (c *Catalog) deleteRefs(ctx context.Context, tenant string, fence *Fence, sel selector, roots []planned, deleteDependents bool, rep *DeletionReport) (err error) {
	t := c.tkey(tenant)
	fenceKey, token := fenceArgs(fence)
	keys := []string{t + ":bpgen", outboxKey(t)}
	// Listed after the scripts (see OutboxTenants) when they changed something, or
	// when they ran and failed, so what they changed is unknown.
	before, sent := len(rep.Changes), false
	defer func() {
		if len(rep.Changes) > before || (sent && err != nil) {
			if lerr := c.listOutboxTenant(ctx, tenant); err == nil {
				err = lerr
			}
		}
	}()
	if token != "" {
		keys = append(keys, fenceKey)
	}
	checks := map[Ref]bool{}
	for _, r := range roots {
		checks[r.ref] = checks[r.ref] || r.check
	}
	keptSeen := map[Ref]bool{}
	keep := func(r Ref) {
		if !keptSeen[r] {
			keptSeen[r] = true
			rep.KeptForDependents = append(rep.KeptForDependents, r)
		}
	}
	for attempt := 0; len(roots) > 0; attempt++ {
		if attempt == maxReplans {
			for _, r := range roots {
				keep(r.ref)
			}
			return nil
		}
		order, kept, err := c.plan(ctx, t, roots, deleteDependents)
		if err != nil {
			return fmt.Errorf("catalog: tenant %q: finding dependents: %w", tenant, err)
		}
		for _, r := range kept {
			keep(r)
		}
		head := []any{t, token, strconv.FormatInt(c.clock().UnixMilli(), 10), sel.mode, sel.integration,
			strconv.FormatInt(sel.before, 10), "", c.outboxMax, c.tombstoneTTL.Milliseconds(), len(sel.kinds)}
		for _, k := range sel.kinds {
			head = append(head, k)
		}
		var calls []scriptCall
		for start := 0; start < len(order); start += deleteChunk {
			args := slices.Clone(head)
			args[6] = newChangeID() // the change identifier seed
			for _, p := range order[start:min(start+deleteChunk, len(order))] {
				args = append(args, p.ref.Blueprint, p.ref.Identifier, flag(p.check))
			}
			calls = append(calls, scriptCall{keys: keys, args: args})
		}
		sent = true
		results, err := c.runPipeline(ctx, deleteScript, calls, tenant)
		if err != nil {
			return fmt.Errorf("catalog: tenant %q: deleting %d entities: %w", tenant, len(order), err)
		}
		var blocked []planned
		for _, res := range results {
			reply, _ := res.([]any)
			if len(reply) == 0 {
				return fmt.Errorf("catalog: tenant %q: unexpected delete reply %v", tenant, res)
			}
			if s, _ := reply[0].(string); s == "fenced" {
				return fmt.Errorf("catalog: tenant %q: deleting: %w", tenant, ErrFenced)
			}
			if len(reply) < 6 {
				return fmt.Errorf("catalog: tenant %q: unexpected delete reply %v", tenant, res)
			}
			for _, d := range reply[1].([]any) {
				cid, ref, ent, err := entityReply(d)
				if err != nil {
					return fmt.Errorf("catalog: tenant %q: decoding deleted %s: %w", tenant, ref, err)
				}
				rep.Deleted = append(rep.Deleted, ref)
				rep.Changes = append(rep.Changes, Change{ChangeID: cid, Op: OpDeleted, Blueprint: ref.Blueprint, Identifier: ref.Identifier, Entity: ent})
			}
			for _, ref := range refs(strs(reply[2])) {
				blocked = append(blocked, planned{ref: ref, check: checks[ref]})
			}
			for _, d := range reply[5].([]any) {
				cid, ref, ent, err := entityReply(d)
				if err != nil {
					return fmt.Errorf("catalog: tenant %q: decoding cleared %s: %w", tenant, ref, err)
				}
				rep.Cleared = append(rep.Cleared, ref)
				rep.Changes = append(rep.Changes, Change{ChangeID: cid, Op: OpUpdated, Blueprint: ref.Blueprint, Identifier: ref.Identifier, Entity: ent})
			}
		}
		roots = blocked
	}
	return nil
}

// plan finds the required dependents of roots, level by level with one pipelined read
// per level. With deleteDependents they join the set (unchecked: they go whoever owns
// them); without, every entity with a dependent outside the set leaves it, repeatedly,
// and is returned in kept. The order puts dependents before what they depend on, so
// that no chunk deletes a target whose dependent a later chunk would delete.
func (c *Catalog) plan(ctx context.Context, t string, roots []planned, deleteDependents bool) ([]planned, []Ref, error) {
	inSet := map[Ref]bool{}
	check := map[Ref]bool{}
	var all []Ref
	for _, r := range roots {
		if !inSet[r.ref] {
			inSet[r.ref] = true
			all = append(all, r.ref)
		}
		check[r.ref] = check[r.ref] || r.check
	}
	deps := map[Ref][]Ref{}
	frontier := slices.Clone(all)
	for len(frontier) > 0 {
		pipe := c.rdb.Pipeline()
		cmds := make([]*redis.StringSliceCmd, len(frontier))
		for i, r := range frontier {
			cmds[i] = pipe.SMembers(ctx, revKey(t, r.Blueprint, r.Identifier))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, nil, err
		}
		var next []Ref
		for i, r := range frontier {
			members := cmds[i].Val()
			slices.Sort(members)
			for _, m := range members {
				p := strings.Split(m, US)
				if len(p) != 4 || p[3] != "1" {
					continue
				}
				d := Ref{Blueprint: p[0], Identifier: p[1]}
				deps[r] = append(deps[r], d)
				if deleteDependents && !inSet[d] {
					inSet[d] = true
					all = append(all, d)
					next = append(next, d)
				}
			}
		}
		frontier = next
	}
	var kept []Ref
	if !deleteDependents {
		for changed := true; changed; {
			changed = false
			for _, r := range all {
				if !inSet[r] {
					continue
				}
				for _, d := range deps[r] {
					if !inSet[d] {
						delete(inSet, r)
						kept = append(kept, r)
						changed = true
						break
					}
				}
			}
		}
	}
	var order []planned
	visited := map[Ref]bool{}
	var visit func(r Ref)
	visit = func(r Ref) {
		if visited[r] {
			return
		}
		visited[r] = true
		for _, d := range deps[r] {
			if inSet[d] {
				visit(d)
			}
		}
		if inSet[r] {
			order = append(order, planned{ref: r, check: check[r]})
		}
	}
	for _, r := range all {
		visit(r)
	}
	return order, kept, nil
}

// memberRef parses an ownership index member "<bp>US<id>".
func memberRef(m string) Ref {
	bp, id, _ := strings.Cut(m, US)
	return Ref{Blueprint: bp, Identifier: id}
}

// entityReply decodes {change id, bp, id, field, value, ...} from deleteScript.
func entityReply(v any) (string, Ref, *Entity, error) {
	flat := strs(v)
	if len(flat) < 3 {
		return "", Ref{}, nil, fmt.Errorf("short entity reply %v", v)
	}
	ref := Ref{Blueprint: flat[1], Identifier: flat[2]}
	f := make(map[string]string, len(flat)/2)
	for i := 3; i+1 < len(flat); i += 2 {
		f[flat[i]] = flat[i+1]
	}
	e, err := decodeEntity(f)
	return flat[0], ref, e, err
}
