package worker

import (
	"encoding/binary"
	"encoding/hex"

	"github.com/cespare/xxhash/v2"
	"go.uber.org/zap"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/mapping"
	"github.com/configsync/configsync/source"
)

// pageTag follows one page of a sync through mapping and writing. When every item of
// it mapped without an issue and every write was recorded as created, updated or
// unchanged with a known hash, under one blueprint generation, what it wrote is
// remembered (catalog.PutPage): the next sync that fetches the same page settles its
// entities with one touch (reusePage) instead of mapping, validating and writing
// them again, which is most of what a resync with nothing changed costs.
type pageTag struct {
	kind    string
	index   int
	entry   catalog.PageEntry
	clean   bool
	batches int  // batches of the page written but not recorded yet
	mapped  bool // mapping is done: no more batches come
}

// absorb takes a recorded batch's outcomes into the page's entry.
func (t *pageTag) absorb(batch []catalog.Write, outcomes []catalog.Outcome) {
	for i, o := range outcomes {
		switch o.Status {
		case catalog.Created, catalog.Updated, catalog.Unchanged:
		default:
			t.clean = false
			continue
		}
		if o.Hash == "" || (t.entry.Generation != "" && o.Generation != t.entry.Generation) {
			t.clean = false
			continue
		}
		t.entry.Generation = o.Generation
		e := &batch[i].Entity
		t.entry.Entities = append(t.entry.Entities, catalog.HashedRef{Blueprint: e.Blueprint, Identifier: e.Identifier, Hash: o.Hash})
	}
}

// finishPage remembers a clean page once all its writes are recorded. The entry is
// stored in the background (savePages), off the runner's path.
func (r *runner) finishPage(t *pageTag) {
	if !t.clean {
		return
	}
	if t.entry.Generation == "" && len(t.entry.Entities) == 0 {
		return // nothing was written, so no generation to check against later
	}
	if r.pageQueue == nil {
		r.pageQueue, r.pagesStored = make(chan *pageTag, 16), make(chan struct{})
		go r.savePages()
	}
	r.pageQueue <- t
}

// savePages stores the entries finishPage hands it, in order. A failure costs only
// the reuse of that page next time, so it is logged.
func (r *runner) savePages() {
	defer close(r.pagesStored)
	for t := range r.pageQueue {
		if err := r.w.Catalog.PutPage(r.ctx, r.in.Tenant, r.in.ID, t.kind, t.index, &t.entry); err != nil && r.ctx.Err() == nil {
			r.log.Warn("remembering a synced page", zap.String("kind", t.kind), zap.Int("page", t.index), zap.Error(err))
		}
	}
}

// stopSaving waits until the entries handed to savePages are stored.
func (r *runner) stopSaving() {
	if r.pageQueue == nil {
		return
	}
	close(r.pageQueue)
	<-r.pagesStored
	r.pageQueue = nil
}

// lookedPage is a fetched page and what lookUp made of it.
type lookedPage struct {
	page source.Page
	tag  *pageTag
	// reused says the page was settled as it was last written, which was entities
	// entities; otherwise it is to be mapped and written, under tag.
	reused   bool
	entities int
}

// lookUp prepares page index of a kind for the runner: it tags it, and settles it
// when it is the same as when it was last written (same items, same config version,
// same kind and position). A page is mapped as usual when there is no such page, or
// any of its entities changed, moved to another owner or went away since, or the
// blueprints changed. It runs beside the runner, on the pages ahead of the one being
// mapped; a settle touches only entities that page wrote last time, so it does not
// race the runner's writes of other pages.
func (r *runner) lookUp(kind string, index int, page source.Page) lookedPage {
	tag := &pageTag{kind: kind, index: index, clean: true}
	tag.entry.Fingerprint = pageFingerprint(r.rec.ConfigVersion, kind, page.Items)
	lp := lookedPage{page: page, tag: tag}
	prev, err := r.w.Catalog.Page(r.ctx, r.in.Tenant, r.in.ID, kind, index)
	if err != nil {
		r.log.Warn("reading a synced page", zap.String("kind", kind), zap.Int("page", index), zap.Error(err))
		return lp
	}
	if prev == nil || prev.Fingerprint != tag.entry.Fingerprint {
		return lp
	}
	ok, err := r.w.Catalog.Settle(r.ctx, r.in.Tenant, r.fence, r.in.ID, kind, page.FetchedAt, prev)
	if err != nil {
		r.log.Warn("settling an unchanged page", zap.String("kind", kind), zap.Int("page", index), zap.Error(err))
		return lp
	}
	lp.reused, lp.entities = ok, len(prev.Entities)
	return lp
}

// pageFingerprint identifies what a page's entities are made from, besides the
// blueprints (which Settle checks): the config version, the kind and the items, as
// 128 bits of two seeded xxhash64 sums.
func pageFingerprint(version int64, kind string, items [][]byte) string {
	a, b := xxhash.New(), xxhash.NewWithSeed(0x9e3779b97f4a7c15)
	var n [8]byte
	write := func(p []byte) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		_, _ = a.Write(n[:])
		_, _ = b.Write(n[:])
		_, _ = a.Write(p)
		_, _ = b.Write(p)
	}
	var v [8]byte // not n, which write uses for the length
	binary.LittleEndian.PutUint64(v[:], uint64(version))
	write(v[:])
	write([]byte(kind))
	for _, it := range items {
		write(it)
	}
	var sum [16]byte
	binary.BigEndian.PutUint64(sum[:8], a.Sum64())
	binary.BigEndian.PutUint64(sum[8:], b.Sum64())
	return hex.EncodeToString(sum[:])
}

// searched says whether an entity uses a search query, whose result depends on the
// catalog rather than on the page alone.
func searched(e mapping.Entity) bool {
	if _, ok := e.Identifier.(map[string]any); ok {
		return true
	}
	for _, rel := range e.Relations {
		if _, ok := rel.Value.(map[string]any); ok {
			return true
		}
	}
	return false
}
