package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
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
//
// A publisher that only forwards the changes should use PendingRawChanges, which skips
// the decoding.
func (c *Catalog) PendingChanges(ctx context.Context, tenant string, max int) ([]OutboxEntry, error) {
	msgs, err := c.readOutbox(ctx, tenant, max)
	if err != nil {
		return nil, err
	}
	out := make([]OutboxEntry, len(msgs))
	for i, m := range msgs {
		s, err := outboxData(tenant, m)
		if err != nil {
			return nil, err
		}
		ch, err := decodeChange(s)
		if err != nil {
			return nil, fmt.Errorf("catalog: tenant %q: outbox entry %s: %w", tenant, m.ID, err)
		}
		out[i] = OutboxEntry{ID: m.ID, Change: ch}
	}
	return out, nil
}

// RawOutboxEntry is a change waiting to be published, as the scripts stored it.
type RawOutboxEntry struct {
	// ID is the stream entry's identifier, to pass to AckChanges, as OutboxEntry.ID.
	ID string
	// ChangeID is the change's identifier, read from Data: the publisher needs it as
	// the message id (for NATS's deduplication) without decoding Data.
	ChangeID string
	// Data is the change's JSON as stored: {"changeId", "op", "blueprint",
	// "identifier", "entity"}, the wire layout of a change event, so it can be
	// published as it is. It is valid UTF-8 (see validUTF8).
	Data []byte
}

// PendingRawChanges is PendingChanges without the decoding: each change is returned as
// its stored JSON, with only its ChangeID read out of it. Decoding every change into a
// Change, only for the publisher to encode it again, was most of a sync's publishing
// CPU. The reading, limits and at-least-once semantics are PendingChanges'.
func (c *Catalog) PendingRawChanges(ctx context.Context, tenant string, max int) ([]RawOutboxEntry, error) {
	msgs, err := c.readOutbox(ctx, tenant, max)
	if err != nil {
		return nil, err
	}
	out := make([]RawOutboxEntry, len(msgs))
	for i, m := range msgs {
		s, err := outboxData(tenant, m)
		if err != nil {
			return nil, err
		}
		data := validUTF8([]byte(s))
		id, err := rawChangeID(data)
		if err != nil {
			return nil, fmt.Errorf("catalog: tenant %q: outbox entry %s: %w", tenant, m.ID, err)
		}
		out[i] = RawOutboxEntry{ID: m.ID, ChangeID: id, Data: data}
	}
	return out, nil
}

// readOutbox reads up to max entries of the tenant's outbox, oldest first, for
// PendingChanges and PendingRawChanges.
func (c *Catalog) readOutbox(ctx context.Context, tenant string, max int) ([]redis.XMessage, error) {
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
	return msgs, nil
}

// outboxData returns an outbox entry's change JSON.
func outboxData(tenant string, m redis.XMessage) (string, error) {
	s, ok := m.Values[outboxField].(string)
	if !ok {
		return "", fmt.Errorf("catalog: tenant %q: outbox entry %s has no %q field", tenant, m.ID, outboxField)
	}
	return s, nil
}

// changePrefix is how every change the scripts write begins (see outboxAdd), so the
// change id can be read without a JSON decoder.
const changePrefix = `{"changeId":"`

// rawChangeID reads the change id out of a stored change's JSON. The scripts always
// write it first (changePrefix); anything else (a change written by another version,
// say) is decoded, but only up to the changeId member.
func rawChangeID(data []byte) (string, error) {
	if rest, ok := bytes.CutPrefix(data, []byte(changePrefix)); ok {
		// An id of valid characters holds no backslash, so its first quote ends it.
		if i := bytes.IndexByte(rest, '"'); i >= 0 && validChangeID(rest[:i]) {
			return string(rest[:i]), nil
		}
	}
	id, err := decodeChangeID(data)
	if err != nil {
		return "", err
	}
	if !validChangeID([]byte(id)) {
		return "", fmt.Errorf("change id %q is not 1 to 128 characters of [A-Za-z0-9._:-]", id)
	}
	return id, nil
}

// decodeChangeID reads the top-level "changeId" string of a JSON object, stopping
// there: the rest of the change is not looked at.
func decodeChangeID(data []byte) (string, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	tok, err := dec.ReadToken()
	if err != nil {
		return "", fmt.Errorf("reading the change id: %w", err)
	}
	if tok.Kind() != '{' {
		return "", fmt.Errorf("reading the change id: the change is not a JSON object but starts with %v", tok.Kind())
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return "", fmt.Errorf("reading the change id: %w", err)
		}
		if name.String() != "changeId" {
			if err := dec.SkipValue(); err != nil {
				return "", fmt.Errorf("reading the change id: %w", err)
			}
			continue
		}
		v, err := dec.ReadToken()
		if err != nil {
			return "", fmt.Errorf("reading the change id: %w", err)
		}
		if v.Kind() != '"' {
			return "", fmt.Errorf("the change id is a JSON %v, not a string", v.Kind())
		}
		return v.String(), nil
	}
	return "", errors.New("the change has no change id")
}

// validChangeID says whether id is usable as the event id of a published change: it
// accepts what queue's checkEventID accepts (1 to 128 of [A-Za-z0-9._:-], safe as a
// Nats-Msg-Id header), repeated here because the catalog does not depend on the
// transport. The scripts' ids (32 hex digits) always pass.
func validChangeID(id []byte) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// validUTF8 returns data with each byte that is not part of valid UTF-8 replaced by
// U+FFFD. The scripts' cjson copies string bytes as they are, so an identifier (or
// another name) with invalid UTF-8 is stored invalid; encoding/json, which the
// publisher used to decode changes with, replaced each such byte by U+FFFD, and a
// strict JSON reader (jsontext, consumers in other languages) would refuse the change
// for good. Such bytes can only be inside JSON strings, where U+FFFD is what a
// decoder would have made of them. utf8.Valid is cheap next to publishing, and the
// rewrite happens only when it fails.
func validUTF8(data []byte) []byte {
	if utf8.Valid(data) {
		return data
	}
	out := make([]byte, 0, len(data)+16)
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		if r == utf8.RuneError && n == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, data[:n]...)
		}
		data = data[n:]
	}
	return out
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
