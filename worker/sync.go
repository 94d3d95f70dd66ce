package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/lease"
	"github.com/configsync/configsync/mapping"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/source"
)

// writeError is a failure to write the catalog (as opposed to fetching from the
// source): the run fails and its event is retried, since acking it would leave the
// rest of the kind unwritten.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// errStopRun ends a run early for a reason recorded in its status.
type errStopRun struct {
	status run.Status
	msg    string
}

func (e *errStopRun) Error() string { return e.msg }

// sync runs one integration under its lease. Events that a run already covered (it
// started after they were published, with their config or a newer one) are acked
// without work, which coalesces bursts.
//
// runID, when the requester (the API) already created a queued run record, is the id
// the run keeps; a covered event marks that record superseded, pointing at the run
// that covered it.
func (w *Worker) sync(ctx context.Context, d *queue.Delivery, in *integration.Integration, trigger, runID string, log *zap.Logger) error {
	env := d.Envelope
	if latest, err := w.Runs.Latest(ctx, in.Tenant, in.ID); err == nil && latest.Status.Done() && latest.StartedAt != nil &&
		latest.StartedAt.After(env.Time) && latest.ConfigVersion >= in.ConfigVersion && latest.Status == run.Succeeded && latest.ID != runID {
		log.Info("a run that started after this event already covered it", zap.String("run", latest.ID))
		return w.supersedeQueued(ctx, in.Tenant, runID, latest.ID)
	}
	if in.ConfigVersion == 0 {
		return permanent("integration %s/%s has no config yet", in.Tenant, in.ID)
	}
	l, err := w.Leases.Acquire(ctx, in.Tenant, in.ID)
	if errors.Is(err, lease.ErrHeld) {
		return errLeaseHeld
	}
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go l.KeepAlive(runCtx, func(err error) { cancel(fmt.Errorf("lease lost: %w", err)) })
	go w.heartbeat(runCtx, d)
	defer func() {
		if err := l.Release(context.WithoutCancel(ctx)); err != nil && !errors.Is(err, lease.ErrLost) {
			log.Warn("releasing the lease", zap.Error(err))
		}
	}()
	w.markLost(ctx, in, l.Token, log)

	// The newest version wins, whatever the event named.
	fresh, err := w.Integrations.Get(ctx, in.Tenant, in.ID)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	rec := &run.Record{
		ID: "run-" + uuid.NewString(), Tenant: in.Tenant, Integration: in.ID, Trigger: trigger,
		ConfigVersion: fresh.ConfigVersion, Status: run.Running, Worker: w.cfg.ID, LeaseToken: l.Token,
		QueuedAt: env.Time, StartedAt: &now, Counts: map[string]*run.Counts{}, Errors: []string{},
	}
	// The requester's run id is kept across retries of its event, so that whoever
	// follows that id sees the attempt that finally ran.
	if queued, err := w.Runs.Get(ctx, in.Tenant, runID); runID != "" && err == nil && queued.Status != run.Succeeded {
		rec.ID, rec.QueuedAt = queued.ID, queued.QueuedAt
	}
	log = log.With(zap.String("run", rec.ID), zap.Int64("configVersion", rec.ConfigVersion))
	if err := w.Runs.Put(ctx, rec); err != nil {
		return err
	}
	log.Info("run started")
	r := &runner{w: w, ctx: runCtx, in: fresh, rec: rec, fence: &catalog.Fence{Key: l.Key, Token: l.Token}, log: log, started: now}
	runErr := r.execute()
	r.stopPublisher()
	finished := time.Now().UTC()
	rec.FinishedAt = &finished
	var stop *errStopRun
	switch {
	case runErr == nil:
		if rec.Status == run.Running {
			rec.Status = run.Succeeded
		}
	case errors.As(runErr, &stop):
		rec.Status, rec.Message = stop.status, stop.msg
	case ctx.Err() != nil:
		rec.Status, rec.Message = run.Failed, "the worker is shutting down: nothing was deleted; the event goes to another worker"
	default:
		rec.Status = run.Failed
		rec.Message = runErr.Error()
		if cause := context.Cause(runCtx); cause != nil {
			rec.Message = cause.Error()
		}
	}
	w.Metrics.ObserveRun(rec)
	if err := w.Runs.Put(context.WithoutCancel(ctx), rec); err != nil {
		return err
	}
	log.Info("run finished", zap.String("status", string(rec.Status)), zap.Duration("took", finished.Sub(now)))
	var perm *permanentError
	if rec.Status == run.Failed && !errors.As(runErr, &perm) {
		// A failed run is retried with backoff; it deleted nothing.
		return runErr
	}
	return nil
}

// supersedeQueued closes a queued run record whose event another run covered.
func (w *Worker) supersedeQueued(ctx context.Context, tenant, runID, coveredBy string) error {
	if runID == "" {
		return nil
	}
	rec, err := w.Runs.Get(ctx, tenant, runID)
	if err != nil || rec.Status != run.Queued {
		return nil
	}
	now := time.Now().UTC()
	rec.Status, rec.Message, rec.FinishedAt = run.Superseded, run.CoveredBy+coveredBy, &now
	return w.Runs.Put(ctx, rec)
}

// markLost fails the runs a dead worker left behind: "running" under an older lease
// token, which no longer holds the lease. Recent records are scanned, not only the
// newest: a queued record (an API resync) may be newer than the lost run.
func (w *Worker) markLost(ctx context.Context, in *integration.Integration, token int64, log *zap.Logger) {
	recent, _, err := w.Runs.List(ctx, in.Tenant, in.ID, 0, 20)
	if err != nil {
		log.Warn("looking for lost runs", zap.Error(err))
		return
	}
	for _, r := range recent {
		if r.Status != run.Running || r.LeaseToken >= token {
			continue
		}
		now := time.Now().UTC()
		r.Status, r.Message, r.FinishedAt = run.Failed, "worker lost", &now
		if err := w.Runs.Put(ctx, r); err != nil {
			log.Warn("marking a lost run failed", zap.String("run", r.ID), zap.Error(err))
			continue
		}
		log.Warn("took over from a lost worker", zap.String("lostRun", r.ID), zap.String("lostWorker", r.Worker))
	}
}

// heartbeat tells NATS the event is still being worked on, so that a long run is not
// redelivered to another worker.
func (w *Worker) heartbeat(ctx context.Context, d *queue.Delivery) {
	t := time.NewTicker(w.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = d.InProgress()
		}
	}
}

// runner holds one run's state.
type runner struct {
	w       *Worker
	ctx     context.Context
	in      *integration.Integration
	rec     *run.Record
	fence   *catalog.Fence
	log     *zap.Logger
	started time.Time
	prog    *mapping.Program
	// waiting holds writes whose relation targets did not exist yet (with
	// createMissingRelatedEntities false); they are tried again at the end of the run.
	waiting []pendingWrite
	// pending are the batches being written in the background, oldest first
	// (writeBehind).
	pending []*inflight
	// saved is when the run's progress was last stored (see progressEvery).
	saved time.Time
	// page is the page being mapped, whose batches are tagged with it (see pageTag).
	page *pageTag
	// The background publisher (publishSoon): pubKick asks for a pass, pubDone is
	// closed when it has stopped, pubMu keeps passes one at a time.
	pubKick chan struct{}
	pubDone chan struct{}
	pubMu   sync.Mutex
	// pageQueue takes the entries of finished pages to savePages, which closes
	// pagesStored when it has stored the last.
	pageQueue   chan *pageTag
	pagesStored chan struct{}
	// stopped is the reason to end the run that watchStop found, if any.
	stopped atomic.Pointer[errStopRun]
}

type pendingWrite struct {
	write catalog.Write
	kind  string
}

func (r *runner) execute() error {
	prog, err := r.w.program(r.ctx, r.in, r.rec.ConfigVersion)
	if err != nil {
		return err
	}
	r.prog = prog
	r.log.Debug("program ready", zap.Duration("since start", time.Since(r.started)))
	creds, err := r.w.Integrations.Credentials(r.ctx, r.in.Tenant, r.in.ID)
	if err != nil {
		return err
	}
	src, err := r.w.Sources.New(r.in.Type, r.in.Parameters, creds)
	if err != nil {
		return permanent("source %q of %s/%s: %v", r.in.Type, r.in.Tenant, r.in.ID, err)
	}
	cfg := prog.Config
	watchCtx, endWatch := context.WithCancel(r.ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		r.watchStop(watchCtx)
	}()
	defer func() {
		endWatch()
		<-watched
	}()
	defer r.stopSaving()
	whole := true
	kinds := prog.Kinds()
	for _, kind := range kinds {
		if err := r.checkStop(); err != nil {
			return err
		}
		if err := r.syncKind(src, kind); err != nil {
			var stop *errStopRun
			var we *writeError
			if errors.As(err, &stop) || errors.As(err, &we) || r.ctx.Err() != nil {
				// Writing failed (Redis away, the lease lost): the run fails and the
				// event is retried; only a source failure makes a partial run.
				return err
			}
			whole = false
			r.rec.AddError(fmt.Sprintf("kind %s: %v", kind, err))
			r.log.Warn("kind not fetched whole; no deletions this run", zap.String("kind", kind), zap.Error(err))
		}
	}
	r.retryWaiting()
	if !whole {
		return &errStopRun{status: run.Partial, msg: "not every kind was fetched whole: nothing was deleted"}
	}
	// An entity that failed (a bad item, an invalid entity, a missing relation
	// target) was not refreshed, so it would look stale: delete nothing this run.
	if r.failures() > 0 {
		return &errStopRun{status: run.Partial, msg: "some entities failed (see errors): nothing was deleted"}
	}
	if err := r.checkStopNow(); err != nil {
		return err
	}
	// Kinds the config no longer has are stale as a whole: their entities go too
	// (within the threshold, like any other).
	owned, err := r.w.Catalog.OwnedKinds(r.ctx, r.in.Tenant, r.in.ID)
	if err != nil {
		return fmt.Errorf("listing owned kinds: %w", err)
	}
	for _, k := range owned {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	rep, err := r.w.Catalog.DeleteStale(r.ctx, r.in.Tenant, r.fence, r.in.ID, kinds, r.started, cfg.EntityDeletionThreshold, cfg.DeleteDependents)
	if err != nil {
		return fmt.Errorf("deleting stale entities: %w", err)
	}
	r.countDeletions(rep)
	if err := r.publish(rep.Changes); err != nil {
		return err
	}
	if rep.ThresholdExceeded {
		msg := fmt.Sprintf("%d of %d owned entities are stale, more than entityDeletionThreshold %v: nothing was deleted", rep.Stale, rep.Owned, cfg.EntityDeletionThreshold)
		r.rec.AddError(msg)
		return &errStopRun{status: run.Partial, msg: msg}
	}
	return nil
}

func (r *runner) failures() int {
	n := 0
	for _, c := range r.rec.Counts {
		n += c.Failed
	}
	return n
}

// stopPollEvery is how often a run looks for a reason to end early (watchStop).
const stopPollEvery = 100 * time.Millisecond

// checkStop ends the run when its context ended, or when watchStop found a cancel
// request or a newer config. It asks nothing of Redis: asked before every page, the
// two reads waited behind the run's own writes and took a third of a full resync.
func (r *runner) checkStop() error {
	if err := r.ctx.Err(); err != nil {
		if cause := context.Cause(r.ctx); cause != nil {
			return cause
		}
		return err
	}
	if stop := r.stopped.Load(); stop != nil {
		return stop
	}
	return nil
}

// checkStopNow is checkStop with a fresh look, for the last moment before deleting.
func (r *runner) checkStopNow() error {
	if err := r.checkStop(); err != nil {
		return err
	}
	if stop := r.pollStop(r.ctx); stop != nil {
		r.stopped.Store(stop)
		return stop
	}
	return nil
}

// watchStop polls for a reason to end the run (pollStop) until ctx ends, and leaves
// the first it finds for checkStop.
func (r *runner) watchStop(ctx context.Context) {
	t := time.NewTicker(stopPollEvery)
	defer t.Stop()
	for {
		if stop := r.pollStop(ctx); stop != nil {
			r.stopped.Store(stop)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pollStop reports a cancel request for the run or a newer config of the
// integration. A failed read is no reason: the next poll asks again.
func (r *runner) pollStop(ctx context.Context) *errStopRun {
	if cancelled, err := r.w.Runs.CancelRequested(ctx, r.in.Tenant, r.rec.ID); err == nil && cancelled {
		return &errStopRun{status: run.Cancelled, msg: "cancelled on request: nothing was deleted"}
	}
	if in, err := r.w.Integrations.Get(ctx, r.in.Tenant, r.in.ID); err == nil && in.ConfigVersion > r.rec.ConfigVersion {
		return &errStopRun{status: run.Superseded, msg: fmt.Sprintf("config version %d arrived: nothing was deleted", in.ConfigVersion)}
	}
	return nil
}

// countDeletions adds a deletion report to the per-kind counts. Deleted entities are
// counted under the kind that owned them.
func (r *runner) countDeletions(rep catalog.DeletionReport) {
	for _, ref := range rep.Deleted {
		r.rec.Kind(r.kindOf(ref)).Deleted++
	}
	for _, ref := range rep.KeptForDependents {
		r.rec.Kind(r.kindOf(ref)).KeptForDependents++
		r.rec.AddError(fmt.Sprintf("%s/%s is stale but kept: other entities depend on it (deleteDependents is false)", ref.Blueprint, ref.Identifier))
	}
}

// kindOf guesses the kind of a deleted entity from the blueprints the config's
// resources write; a blueprint written by several kinds counts under the first.
func (r *runner) kindOf(ref catalog.Ref) string {
	for _, res := range r.prog.Config.Resources {
		for _, m := range res.Port.Mappings {
			if lit := m.Blueprint.Src; lit == `"`+ref.Blueprint+`"` || lit == `'`+ref.Blueprint+`'` {
				return res.Kind
			}
		}
	}
	return "(dependents)"
}

// publish sends the run's entity changes out. The changes themselves are not sent:
// the catalog put them in the tenant's outbox with the writes, and the outbox is
// drained, so that a crash between the write and the publish loses nothing.
func (r *runner) publish(changes []catalog.Change) error {
	if len(changes) == 0 {
		return nil
	}
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	return r.w.publishOutbox(r.ctx, r.in.Tenant)
}

// publishSoon has the outbox published in the background, off the path of the
// writes: publishing a batch's changes and waiting for NATS to store them took turns
// with writing and mapping. One pass runs at a time (pubMu: two at once would
// publish each change twice), and a kick during a pass makes one more pass, so
// every change written before a kick is published by a pass that starts after it. A
// failure is only logged: the outbox keeps the changes for the next pass, the run's
// end, or the sweeper.
func (r *runner) publishSoon() {
	if r.pubKick == nil {
		r.pubKick, r.pubDone = make(chan struct{}, 1), make(chan struct{})
		go func() {
			defer close(r.pubDone)
			for range r.pubKick {
				r.pubMu.Lock()
				err := r.w.publishOutbox(r.ctx, r.in.Tenant)
				r.pubMu.Unlock()
				if err != nil && r.ctx.Err() == nil {
					r.log.Warn("publishing entity changes; the outbox keeps them", zap.Error(err))
				}
			}
		}()
	}
	select {
	case r.pubKick <- struct{}{}:
	default: // a pass is due already, and will see these changes
	}
}

// stopPublisher waits for the background publisher's last pass, so that a run is
// recorded finished only once its changes are out (or left to the sweeper).
func (r *runner) stopPublisher() {
	if r.pubKick == nil {
		return
	}
	close(r.pubKick)
	<-r.pubDone
	r.pubKick = nil
}

// progressEvery is how often a run stores its progress (the counts the API shows)
// while it syncs: after every page, a 100,000-item sync stored its record a thousand
// times, each a round trip on the runner's own path.
const progressEvery = 250 * time.Millisecond

// saveProgress stores the run's counts when progressEvery has passed since the last
// time.
func (r *runner) saveProgress() {
	if time.Since(r.saved) < progressEvery {
		return
	}
	if err := r.w.Runs.Put(r.ctx, r.rec); err != nil {
		r.log.Warn("saving run progress", zap.Error(err))
	}
	r.saved = time.Now()
}

// syncKind fetches one kind page by page, maps each page on all cores and writes its
// entities in pipelined batches. Three goroutines work at once, so that the runner's
// own path has no round trip to Redis: the source fetches, lookUp settles the pages
// that did not change since the last sync (reusePage), and the runner maps and
// writes the others while the next pages are fetched and looked up.
func (r *runner) syncKind(src source.Source, kind string) error {
	resources := r.prog.ResourcesOfKind(kind)
	res := resources[0].Resource()
	pages := make(chan source.Page, 2)
	looked := make(chan lookedPage, 2)
	fetchErr := make(chan error, 1)
	fctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	go func() {
		defer close(pages)
		fetchErr <- src.Fetch(fctx, source.Resource{Kind: kind, Selector: res.Selector.Extra, ConfigExtra: r.prog.Config.Extra},
			func(p source.Page) error {
				select {
				case pages <- p:
					return nil
				case <-fctx.Done():
					return fctx.Err()
				}
			})
	}()
	go func() {
		defer close(looked)
		index := -1
		for page := range pages {
			index++
			lp := r.lookUp(kind, index, page)
			select {
			case looked <- lp:
			case <-fctx.Done():
				for range pages {
				}
				return
			}
		}
	}()
	counts := r.rec.Kind(kind)
	// The last batch may still be in the background (writeBehind): its outcomes are
	// recorded before the kind counts as done, or as failed.
	stop := func(err error) error {
		cancel()
		for range looked {
		}
		if derr := r.drain(); derr != nil {
			r.log.Warn("writing the last batch of a stopped kind", zap.String("kind", kind), zap.Error(derr))
		}
		return err
	}
	for lp := range looked {
		if err := r.checkStop(); err != nil {
			return stop(err)
		}
		r.saveProgress()
		counts.Fetched += len(lp.page.Items)
		if lp.reused {
			counts.Selected += lp.entities
			counts.Unchanged += lp.entities
			counts.Reused += lp.entities
			release(lp.page)
			continue
		}
		start := time.Now()
		r.page = lp.tag
		err := r.mapAndWrite(resources, kind, lp.page.Items, lp.page.FetchedAt, r.fence)
		r.page = nil
		lp.tag.mapped = true
		if lp.tag.batches == 0 {
			r.finishPage(lp.tag)
		}
		if err != nil {
			return stop(&writeError{err})
		}
		// Mapped: what the batches carry on is decoded from the items, not in them.
		release(lp.page)
		r.log.Debug("page mapped", zap.String("kind", kind), zap.Int("items", len(lp.page.Items)), zap.Duration("took", time.Since(start)))
	}
	if err := r.drain(); err != nil {
		cancel()
		<-fetchErr
		return &writeError{err}
	}
	return <-fetchErr
}

// release gives a page's items back to its source, once nothing reads them; a page
// given up on is left to the garbage collector instead, as it may still be read.
func release(p source.Page) {
	if p.Release != nil {
		p.Release()
	}
}
