package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// PageTTL is how long a page entry lasts without being written again: longer than
// any resync interval in use, short enough that the entries of a removed
// integration or kind go away by themselves.
const PageTTL = 7 * 24 * time.Hour

// PageEntry remembers what one page of a sync wrote, so that the next sync, finding
// the page the same, settles its entities without mapping, validating or writing them
// (Settle). The caller's Fingerprint must cover everything the entities were made
// from: the page's items, the config version, the kind. The blueprint generation is
// checked by Settle, and the entities' stored hashes, owner and kind by touchScript,
// so an entity anyone changed or deleted since is not settled, and the caller maps
// the page as usual.
type PageEntry struct {
	// Fingerprint identifies the page's input (the caller's hash).
	Fingerprint string `json:"f"`
	// Generation is the blueprint generation the writes were validated against.
	Generation string `json:"g"`
	// Entities are the page's entities with their content hashes, in order.
	Entities []HashedRef `json:"e"`
}

// HashedRef is an entity and its content hash (Outcome.Hash).
type HashedRef struct {
	Blueprint  string `json:"b"`
	Identifier string `json:"i"`
	Hash       string `json:"h"`
}

func pagesKey(t, integration, kind string) string { return t + ":pages:" + integration + US + kind }

// Page returns the entry of page index of an integration's kind, or nil.
func (c *Catalog) Page(ctx context.Context, tenant, integration, kind string, index int) (*PageEntry, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	b, err := c.rdb.HGet(ctx, pagesKey(c.tkey(tenant), integration, kind), strconv.Itoa(index)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: tenant %q: reading page %d of %s/%s: %w", tenant, index, integration, kind, err)
	}
	var e PageEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, nil // unreadable (another version wrote it): as if absent
	}
	return &e, nil
}

// PutPage stores the entry of page index of an integration's kind, and keeps the
// integration's entries for PageTTL from now.
func (c *Catalog) PutPage(ctx context.Context, tenant, integration, kind string, index int, e *PageEntry) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("catalog: encoding page %d of %s/%s: %w", index, integration, kind, err)
	}
	key := pagesKey(c.tkey(tenant), integration, kind)
	pipe := c.rdb.TxPipeline()
	pipe.HSet(ctx, key, strconv.Itoa(index), b)
	pipe.PExpire(ctx, key, PageTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("catalog: tenant %q: storing page %d of %s/%s: %w", tenant, index, integration, kind, err)
	}
	return nil
}

// Settle does for the entities of a page entry what Upsert does for writes that
// change nothing, and reports whether it settled every one: each must exist with the
// entry's hash, be owned by integration as kind, and be fetched no later than
// fetchedAt, and the blueprints must still be at the entry's generation. It refreshes
// the ownership scores (so stale deletion keeps them) and fetch times of those it
// settles, in one touchScript call per touchChunk entities. A lost lease settles
// nothing.
func (c *Catalog) Settle(ctx context.Context, tenant string, fence *Fence, integration, kind string, fetchedAt time.Time, e *PageEntry) (bool, error) {
	if err := checkTenant(tenant); err != nil {
		return false, err
	}
	if err := checkFence(tenant, fence); err != nil {
		return false, err
	}
	if len(e.Entities) == 0 {
		return true, nil
	}
	t := c.tkey(tenant)
	fenceKey, token := fenceArgs(fence)
	preps := make([]*prepared, len(e.Entities))
	for i, r := range e.Entities {
		preps[i] = &prepared{w: &Write{Entity: Entity{Blueprint: r.Blueprint, Identifier: r.Identifier},
			Integration: integration, Kind: kind, FetchedAt: fetchedAt}, contentHash: r.Hash}
	}
	states, err := c.touchAll(ctx, t, fenceKey, token, c.clock(), e.Generation, preps)
	if err != nil {
		return false, fmt.Errorf("catalog: tenant %q: settling a page of %s/%s: %w", tenant, integration, kind, err)
	}
	for _, s := range states {
		if s != touchSettled {
			return false, nil
		}
	}
	return true, nil
}
