package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// OutboxLimit caps each tenant's outbox: the scripts append with XADD MAXLEN ~
// OutboxLimit, so that a long NATS outage cannot fill Redis. Beyond it the oldest
// changes are dropped, unpublished: their events are lost for good, which is the price
// of a bounded Redis (a resync still brings consumers' state up to date, as an entity
// change carries the whole entity). The cap is approximate: Redis trims whole stream
// nodes only, so an outbox may hold somewhat more. A change is its entity's JSON, about
// 1-2 KiB for a typical entity, so a full outbox is 1-2 GB of Redis memory.
const OutboxLimit = 1_000_000

// maxPending caps one PendingChanges read, so a caller asking for "everything" of a
// full outbox does not pull gigabytes in one reply.
const maxPending = 10_000

// outboxField is the stream entry field holding the change's JSON (see outboxAdd in
// scripts.go).
const outboxField = "change"

// outboxTenantsKey is the set of tenants whose outbox may hold changes. It is the one
// key outside every tenant's hash slot, so no script touches it: Go adds a tenant
// around each write (see runPipeline and listOutboxTenant) and removes it when its
// outbox is seen empty (forgetOutboxTenants).
func (c *Catalog) outboxTenantsKey() string { return c.prefix + ":outbox-tenants" }

// OutboxEntry is a change waiting to be published.
type OutboxEntry struct {
	// ID is the stream entry's identifier ("<ms>-<seq>"), to pass to AckChanges once
	// the change is published; entries are ordered by it.
	ID string
	// Change is the change as stored. It decodes like Get: numbers are json.Number and
	// relation lists []string.
	Change Change
}

// PendingChanges returns up to max changes of the tenant's outbox, oldest first: the
// order their writes happened in, which is the order to publish them in. max <= 0
// means 100; it is capped at 10,000.
//
// An entry stays until AckChanges removes it, so a publisher that dies before acking
// publishes it again: changes go out at least once, and consumers deduplicate by
// ChangeID. Two publishers draining the same tenant at once would publish each change
// twice, so one publisher per tenant (such as the tenant's lease holder) is the norm.
func (c *Catalog) PendingChanges(ctx context.Context, tenant string, max int) ([]OutboxEntry, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	if max <= 0 {
		max = 100
	}
	max = min(max, maxPending)
	msgs, err := c.rdb.XRangeN(ctx, outboxKey(c.tkey(tenant)), "-", "+", int64(max)).Result()
	if err != nil {
		return nil, fmt.Errorf("catalog: tenant %q: reading the outbox: %w", tenant, err)
	}
	out := make([]OutboxEntry, len(msgs))
	for i, m := range msgs {
		s, ok := m.Values[outboxField].(string)
		if !ok {
			return nil, fmt.Errorf("catalog: tenant %q: outbox entry %s has no %q field", tenant, m.ID, outboxField)
		}
		ch, err := decodeChange(s)
		if err != nil {
			return nil, fmt.Errorf("catalog: tenant %q: outbox entry %s: %w", tenant, m.ID, err)
		}
		out[i] = OutboxEntry{ID: m.ID, Change: ch}
	}
	return out, nil
}

// AckChanges removes published changes (XDEL) from the tenant's outbox; identifiers
// no longer there are ignored, so acking twice is harmless. When the outbox is then
// empty the tenant leaves the outbox tenants, which is what lets OutboxTenants stay
// small; with no ids AckChanges does only that.
func (c *Catalog) AckChanges(ctx context.Context, tenant string, ids []string) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	key := outboxKey(c.tkey(tenant))
	pipe := c.rdb.Pipeline()
	if len(ids) > 0 {
		pipe.XDel(ctx, key, ids...)
	}
	n := pipe.XLen(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("catalog: tenant %q: acking %d outbox entries: %w", tenant, len(ids), err)
	}
	if n.Val() > 0 {
		return nil
	}
	if _, err := c.forgetOutboxTenants(ctx, []string{tenant}); err != nil {
		return fmt.Errorf("catalog: tenant %q: %w", tenant, err)
	}
	return nil
}

// OutboxTenants returns, sorted, the tenants whose outbox holds changes: after a
// crash, a sweeper drains each of them with PendingChanges and AckChanges, since the
// events that would have made their workers publish may never come again. Tenants
// found with an empty outbox are forgotten on the way.
//
// The list is kept in a set, the only key outside the tenants' hash slots; no script
// touches it, so it is safe on Redis Cluster, but a change and its listing cannot be
// one atomic step. Writers add their tenant before their scripts (same pipeline) and
// again after them if anything changed; a tenant is removed only after its outbox was
// seen empty, and the outbox is looked at again after the removal, putting the tenant
// back if a change came in between. So once a write method returned, its tenant is
// listed until its changes are acked. A tenant can be missed only if its writer died
// between its scripts and its second add and, in that window, a removal undid the
// first add (or, on a cluster, the first add never arrived); the tenant's next
// Upsert, such as the redelivered event's run, lists it again.
func (c *Catalog) OutboxTenants(ctx context.Context) ([]string, error) {
	tenants, err := c.rdb.SMembers(ctx, c.outboxTenantsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("catalog: reading the outbox tenants: %w", err)
	}
	lens, err := c.outboxLens(ctx, tenants)
	if err != nil {
		return nil, fmt.Errorf("catalog: reading the outbox tenants: %w", err)
	}
	var out, empty []string
	for i, t := range tenants {
		if lens[i] > 0 {
			out = append(out, t)
		} else {
			empty = append(empty, t)
		}
	}
	back, err := c.forgetOutboxTenants(ctx, empty)
	if err != nil {
		return nil, err
	}
	out = append(out, back...)
	slices.Sort(out)
	return out, nil
}

// listOutboxTenant adds a tenant to the outbox tenants. Writers call it after scripts
// that changed something: an AckChanges or OutboxTenants that saw the outbox empty
// just before the change, and removes the tenant after, then finds the change on its
// second look (see forgetOutboxTenants), or the removal came first and this puts it
// back.
func (c *Catalog) listOutboxTenant(ctx context.Context, tenant string) error {
	if err := c.rdb.SAdd(ctx, c.outboxTenantsKey(), tenant).Err(); err != nil {
		return fmt.Errorf("catalog: tenant %q: listing it in the outbox tenants: %w", tenant, err)
	}
	return nil
}

// forgetOutboxTenants removes tenants whose outbox was seen empty from the outbox
// tenants, then looks at the outboxes again and puts back, and returns, those a change
// reached meanwhile. The two steps cannot be one atomic script, since the set is in
// another hash slot than the outboxes; the second look makes the pair safe against a
// writer whose change came between them.
func (c *Catalog) forgetOutboxTenants(ctx context.Context, tenants []string) ([]string, error) {
	if len(tenants) == 0 {
		return nil, nil
	}
	members := make([]any, len(tenants))
	for i, t := range tenants {
		members[i] = t
	}
	if err := c.rdb.SRem(ctx, c.outboxTenantsKey(), members...).Err(); err != nil {
		return nil, fmt.Errorf("forgetting %d outbox tenants: %w", len(tenants), err)
	}
	lens, err := c.outboxLens(ctx, tenants)
	if err != nil {
		return nil, fmt.Errorf("forgetting %d outbox tenants: %w", len(tenants), err)
	}
	var back []string
	for i, t := range tenants {
		if lens[i] > 0 {
			back = append(back, t)
		}
	}
	if len(back) > 0 {
		members = members[:0]
		for _, t := range back {
			members = append(members, t)
		}
		if err := c.rdb.SAdd(ctx, c.outboxTenantsKey(), members...).Err(); err != nil {
			return nil, fmt.Errorf("listing %d outbox tenants again: %w", len(back), err)
		}
	}
	return back, nil
}

// outboxLens returns the length of each tenant's outbox, in one pipeline.
func (c *Catalog) outboxLens(ctx context.Context, tenants []string) ([]int64, error) {
	if len(tenants) == 0 {
		return nil, nil
	}
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(tenants))
	for i, t := range tenants {
		cmds[i] = pipe.XLen(ctx, outboxKey(c.tkey(t)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]int64, len(tenants))
	for i, cmd := range cmds {
		out[i] = cmd.Val()
	}
	return out, nil
}

// decodeChange decodes a change's JSON as the scripts write it into the outbox, into
// the types decodeEntity gives: numbers as json.Number, relation lists as []string.
func decodeChange(s string) (Change, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var ch Change
	if err := dec.Decode(&ch); err != nil {
		return Change{}, err
	}
	e := ch.Entity
	if e == nil {
		return ch, nil
	}
	if e.Properties == nil {
		e.Properties = map[string]any{}
	}
	if e.Relations == nil {
		e.Relations = map[string]any{}
	}
	for name, v := range e.Relations {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		ids := make([]string, len(list))
		for i, x := range list {
			id, ok := x.(string)
			if !ok {
				return Change{}, fmt.Errorf("relation %q: element %d is %T, not an identifier", name, i, x)
			}
			ids[i] = id
		}
		e.Relations[name] = ids
	}
	return ch, nil
}
