package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/mapping"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
)

// mapAndWrite maps items with the kind's resources and writes the entities.
func (r *runner) mapAndWrite(resources []*mapping.ResourceProgram, kind string, raw [][]byte, fetchedAt time.Time, fence *catalog.Fence) error {
	counts := r.rec.Kind(kind)
	cfg := r.prog.Config
	// A batch is made when its first write comes, no larger than the page: a page of
	// 100 items used to make two of BatchSize writes, the second never used, a tenth
	// of the bytes a full resync allocated.
	var batch []catalog.Write
	size := min(r.w.cfg.BatchSize, max(len(raw), 1))
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := r.writeBehind(kind, batch)
		batch = nil // the last one is being written
		return err
	}
	err := r.prog.Run(r.ctx, mapping.NewSlice(raw), mapping.RunOptions{Resources: resources}, func(res *mapping.ItemResult) error {
		if len(res.Issues) > 0 && r.page != nil {
			r.page.clean = false
		}
		for _, is := range res.Issues {
			if is.Skipped {
				counts.Failed++
			}
			if errors.Is(is.Err, context.DeadlineExceeded) {
				r.w.Metrics.JQTimeout(kind)
			}
			r.rec.AddError(fmt.Sprintf("item %d: %v", res.Index, is))
		}
		for _, e := range res.Entities {
			counts.Selected++
			ce, err := r.w.entity(r.ctx, r.in.Tenant, e)
			if r.page != nil && (err != nil || searched(e)) {
				r.page.clean = false // depends on more than the page
			}
			if err != nil {
				counts.Failed++
				r.rec.AddError(fmt.Sprintf("item %d: %v", res.Index, err))
				continue
			}
			if batch == nil {
				batch = make([]catalog.Write, 0, size)
			}
			batch = append(batch, catalog.Write{
				Entity: ce, Integration: r.in.ID, Kind: kind, FetchedAt: fetchedAt,
				Merge: cfg.EnableMergeEntity, CreateMissing: cfg.CreateMissingRelatedEntities,
			})
			if len(batch) >= r.w.cfg.BatchSize {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// inflight is a batch being written in the background (see writeBehind).
type inflight struct {
	page     *pageTag // the page it is of, when it is a sync's
	kind     string
	batch    []catalog.Write
	done     chan struct{}
	outcomes []catalog.Outcome
	err      error
}

// writesInFlight is how many batches writeBehind has written at once. One was not
// enough to keep both cores busy: a create batch waits on several Redis round trips
// (see catalog.createTx) while the next page is mapped in a fraction of that time.
// Three left the two cores idle 13% of a full resync (Redis waiting for commands
// while batches waited for replies), six 9%, and a full resync took 5% less time;
// ten was no faster again.
// Batches of one run may be written in any order: the catalog orders writes of the
// same entity by fetch time, and later pages are fetched later.
const writesInFlight = 6

// writeBehind starts writing a batch in the background, after recording the outcome
// of the oldest one when writesInFlight are being written, so that Redis works on
// batches while the next is mapped: sequential, the two cores took turns. Only the
// catalog call runs in the background; outcomes are recorded by the runner's own
// goroutine, in order. Whoever ends a sequence of writes calls drain, also after an
// error, so that no write outlives the run.
func (r *runner) writeBehind(kind string, batch []catalog.Write) error {
	for len(r.pending) >= writesInFlight {
		if err := r.drainOne(); err != nil {
			return err
		}
	}
	f := &inflight{kind: kind, batch: batch, done: make(chan struct{}), page: r.page}
	if f.page != nil {
		f.page.batches++
	}
	r.pending = append(r.pending, f)
	go func() {
		defer close(f.done)
		f.outcomes, f.err = r.w.Catalog.Upsert(r.ctx, r.in.Tenant, r.fence, f.batch)
	}()
	return nil
}

// drain waits for every batch being written and records their outcomes in order. It
// returns the first error, having waited for all of them.
func (r *runner) drain() error {
	var first error
	for len(r.pending) > 0 {
		if err := r.drainOne(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// drainOne waits for the oldest batch being written and records its outcomes.
func (r *runner) drainOne() error {
	f := r.pending[0]
	r.pending = r.pending[1:]
	<-f.done
	if f.err != nil {
		return fmt.Errorf("writing %d entities of kind %s: %w", len(f.batch), f.kind, f.err)
	}
	if pg := f.page; pg != nil {
		pg.absorb(f.batch, f.outcomes)
		if pg.batches--; pg.mapped && pg.batches == 0 {
			r.finishPage(pg)
		}
	}
	return r.record(f.kind, f.batch, f.outcomes)
}

// write upserts a batch and records the outcomes.
func (r *runner) write(kind string, batch []catalog.Write) error {
	if err := r.drain(); err != nil {
		return err
	}
	outcomes, err := r.w.Catalog.Upsert(r.ctx, r.in.Tenant, r.fence, batch)
	if err != nil {
		return fmt.Errorf("writing %d entities of kind %s: %w", len(batch), kind, err)
	}
	return r.record(kind, batch, outcomes)
}

// record counts a written batch's outcomes, keeps the entities that wait for
// relation targets, and publishes the changes.
func (r *runner) record(kind string, batch []catalog.Write, outcomes []catalog.Outcome) error {
	counts := r.rec.Kind(kind)
	var changes []catalog.Change
	for i, o := range outcomes {
		switch o.Status {
		case catalog.Created, catalog.Updated:
			counts.Upserted++
		case catalog.Unchanged, catalog.SkippedOlder:
			counts.Unchanged++
		case catalog.MissingTargets:
			// Bounded, so that memory does not grow with the resources: past the
			// bound an entity fails at once (and the run deletes nothing).
			if len(r.waiting) >= r.w.cfg.MaxWaiting {
				counts.Failed++
				r.rec.AddError(fmt.Sprintf("%s/%s: relation targets do not exist yet, and more than %d entities already wait for theirs (list the target kinds first in the config, or set createMissingRelatedEntities)",
					batch[i].Entity.Blueprint, batch[i].Entity.Identifier, r.w.cfg.MaxWaiting))
				continue
			}
			r.waiting = append(r.waiting, pendingWrite{write: batch[i], kind: kind})
		case catalog.Fenced:
			return &writeError{errors.New("the lease was taken over: this worker may not write any more")}
		default:
			counts.Failed++
			r.rec.AddError(fmt.Sprintf("%s/%s: %v", batch[i].Entity.Blueprint, batch[i].Entity.Identifier, o.Err))
		}
		for _, wmsg := range o.Warnings {
			r.rec.AddError(fmt.Sprintf("%s/%s: %s", batch[i].Entity.Blueprint, batch[i].Entity.Identifier, wmsg))
		}
		if o.Change != nil {
			changes = append(changes, *o.Change)
		}
		changes = append(changes, o.CreatedChanges...)
	}
	// The changes are in the outbox already: they are published in the background,
	// and a failed publish is retried by the next pass or the sweeper; it must not
	// fail the write.
	if len(changes) > 0 {
		r.publishSoon()
	}
	return nil
}

// retryWaiting tries the entities whose relation targets were missing once more, now
// that the whole run has been written; what still misses a target fails.
func (r *runner) retryWaiting() {
	if len(r.waiting) == 0 {
		return
	}
	waiting := r.waiting
	r.waiting = nil
	byKind := map[string][]catalog.Write{}
	var order []string
	for _, p := range waiting {
		if _, ok := byKind[p.kind]; !ok {
			order = append(order, p.kind)
		}
		byKind[p.kind] = append(byKind[p.kind], p.write)
	}
	for _, kind := range order {
		if err := r.write(kind, byKind[kind]); err != nil {
			// Not written: they count as failed, which keeps this run from deleting.
			r.rec.Kind(kind).Failed += len(byKind[kind])
			r.rec.AddError(fmt.Sprintf("kind %s: retrying entities that waited for relation targets: %v", kind, err))
		}
	}
	for _, p := range r.waiting {
		r.rec.Kind(p.kind).Failed++
		r.rec.AddError(fmt.Sprintf("%s/%s: relation targets do not exist and createMissingRelatedEntities is false", p.write.Entity.Blueprint, p.write.Entity.Identifier))
	}
	r.waiting = nil
}

// entity turns a mapped entity into a catalog entity, resolving search queries.
func (w *Worker) entity(ctx context.Context, tenant string, e mapping.Entity) (catalog.Entity, error) {
	ce := catalog.Entity{Blueprint: e.Blueprint, Properties: make(map[string]any, len(e.Properties)),
		Relations: make(map[string]any, len(e.Relations))}
	switch id := e.Identifier.(type) {
	case string:
		ce.Identifier = id
	case map[string]any:
		ids, err := w.Catalog.Resolve(ctx, tenant, e.Blueprint, id)
		if err != nil {
			return ce, fmt.Errorf("resolving the identifier search query: %w", err)
		}
		if len(ids) != 1 {
			return ce, fmt.Errorf("the identifier search query matched %d entities of %s, not one", len(ids), e.Blueprint)
		}
		ce.Identifier = ids[0]
	}
	ce.Title, _ = e.Title.(string)
	ce.Icon, _ = e.Icon.(string)
	switch t := e.Team.(type) {
	case string:
		ce.Team = []string{t}
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok {
				ce.Team = append(ce.Team, s)
			}
		}
	case map[string]any:
		// Teams are not catalog entities here, so a team search query has nothing to
		// resolve against: fail the entity rather than write it without its team.
		return ce, errors.New("team given as a search query is not supported yet; give team identifiers")
	}
	for _, p := range e.Properties {
		ce.Properties[p.Name] = p.Value
	}
	for _, rel := range e.Relations {
		q, isQuery := rel.Value.(map[string]any)
		if !isQuery {
			ce.Relations[rel.Name] = rel.Value
			continue
		}
		target, many, err := w.relationTarget(ctx, tenant, e.Blueprint, rel.Name)
		if err != nil {
			return ce, err
		}
		ids, err := w.Catalog.Resolve(ctx, tenant, target, q)
		if err != nil {
			return ce, fmt.Errorf("resolving relation %s: %w", rel.Name, err)
		}
		switch {
		case many:
			list := make([]any, len(ids))
			for i, id := range ids {
				list[i] = id
			}
			ce.Relations[rel.Name] = list
		case len(ids) == 1:
			ce.Relations[rel.Name] = ids[0]
		case len(ids) == 0:
			ce.Relations[rel.Name] = nil
		default:
			return ce, fmt.Errorf("relation %s is not many, but its search query matched %d entities", rel.Name, len(ids))
		}
	}
	return ce, nil
}

func (w *Worker) relationTarget(ctx context.Context, tenant, bp, relation string) (target string, many bool, err error) {
	b, err := w.Catalog.GetBlueprint(ctx, tenant, bp)
	if err != nil {
		return "", false, fmt.Errorf("relation %s: blueprint %s: %w", relation, bp, err)
	}
	rel, ok := b.Relation(relation)
	if !ok {
		return "", false, fmt.Errorf("blueprint %s has no relation %s", bp, relation)
	}
	return rel.Target, rel.Many, nil
}

// live applies a live resource event: its items are mapped with the kind's resources
// and written (or deleted) at once, without a run and without the lease; every write
// carries the event's time, so a run's older data never overwrites it.
func (w *Worker) live(ctx context.Context, env queue.Envelope, in *integration.Integration, log *zap.Logger) error {
	data, err := env.Resources()
	if err != nil {
		return permanent("resources data: %v", err)
	}
	if in.ConfigVersion == 0 {
		return permanent("integration %s/%s has no config yet", in.Tenant, in.ID)
	}
	prog, err := w.program(ctx, in, in.ConfigVersion)
	if err != nil {
		return err
	}
	resources := prog.ResourcesOfKind(data.Kind)
	if len(resources) == 0 {
		return permanent("the config of %s/%s has no resource of kind %q", in.Tenant, in.ID, data.Kind)
	}
	r := &runner{w: w, ctx: ctx, in: in, prog: prog, log: log, rec: liveRecord(), started: env.Time}
	defer r.stopPublisher() // the event is acked once its changes are out
	upserts := make([][]byte, len(data.Upsert))
	for i, it := range data.Upsert {
		upserts[i] = it
	}
	err = r.mapAndWrite(resources, data.Kind, upserts, env.Time, nil)
	if derr := r.drain(); err == nil {
		err = derr
	}
	if err != nil {
		return err
	}
	r.retryWaiting()
	if len(data.Delete) > 0 {
		if err := w.liveDelete(ctx, r, resources, data, in); err != nil {
			return err
		}
	}
	c := r.rec.Kind(data.Kind)
	log.Info("live event applied", zap.String("kind", data.Kind), zap.Int("upserted", c.Upserted),
		zap.Int("unchanged", c.Unchanged), zap.Int("failed", c.Failed), zap.Int("deleted", c.Deleted))
	return nil
}

// liveDelete maps the deleted items to find their entities, and deletes those this
// integration owns.
func (w *Worker) liveDelete(ctx context.Context, r *runner, resources []*mapping.ResourceProgram, data queue.ResourcesData, in *integration.Integration) error {
	dels := make([][]byte, len(data.Delete))
	for i, it := range data.Delete {
		dels[i] = it
	}
	var refs []catalog.Ref
	err := r.prog.Run(ctx, mapping.NewSlice(dels), mapping.RunOptions{Resources: resources}, func(res *mapping.ItemResult) error {
		for _, e := range res.Entities {
			if id, ok := e.Identifier.(string); ok {
				refs = append(refs, catalog.Ref{Blueprint: e.Blueprint, Identifier: id})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, ref := range refs {
		// Only what this integration owns, and only when nothing newer than the event
		// wrote it: both checked atomically by the catalog.
		rep, err := w.Catalog.DeleteLive(ctx, in.Tenant, in.ID, ref, r.started, r.prog.Config.DeleteDependents)
		if errors.Is(err, catalog.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("deleting %s/%s: %w", ref.Blueprint, ref.Identifier, err)
		}
		r.rec.Kind(data.Kind).Deleted += len(rep.Deleted)
		if err := r.publish(rep.Changes); err != nil {
			return err
		}
	}
	return nil
}

// liveRecord collects a live event's counts and errors; it is logged, not stored.
func liveRecord() *run.Record { return &run.Record{Counts: map[string]*run.Counts{}} }
