package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/configsync/configsync/queue"
)

// outboxBatch is how many changes are published per round trip.
const outboxBatch = 500

// publishOutbox drains a tenant's outbox to the changes stream. The catalog writes a
// change into the outbox in the same script as the entity, and it leaves only once
// NATS has acked it, so a worker that dies between the two loses nothing: the next
// drain publishes it again (at least once; the change id deduplicates within NATS's
// duplicate window). Two workers may drain one tenant at once; the same dedup makes
// that harmless.
func (w *Worker) publishOutbox(ctx context.Context, tenant string) error {
	for {
		// The outbox holds each change in the wire layout of a change event, so it is
		// published as stored: decoding and re-encoding it was most of the CPU a sync
		// spent publishing.
		entries, err := w.Catalog.PendingRawChanges(ctx, tenant, outboxBatch)
		if err != nil {
			return fmt.Errorf("reading the outbox of %s: %w", tenant, err)
		}
		if len(entries) == 0 {
			return nil
		}
		changes := make([]queue.RawChange, len(entries))
		ids := make([]string, len(entries))
		for i, e := range entries {
			changes[i] = queue.RawChange{ChangeID: e.ChangeID, Data: e.Data}
			ids[i] = e.ID
		}
		shrunk := "" // the change last sent without its entity
		for len(changes) > 0 {
			stored, err := w.Queue.PublishRawChanges(ctx, tenant, changes)
			// What NATS confirmed leaves the outbox, also when a later change failed:
			// the next pass then republishes only what may not have been stored (the
			// duplicate window is short, and a change it misses reaches consumers
			// twice).
			if stored > 0 {
				if aerr := w.Catalog.AckChanges(ctx, tenant, ids[:stored]); aerr != nil {
					return errors.Join(err, fmt.Errorf("clearing %d published changes of %s: %w", stored, tenant, aerr))
				}
			}
			if err == nil {
				break
			}
			changes, ids = changes[stored:], ids[stored:]
			if !errors.Is(err, nats.ErrMaxPayload) || changes[0].ChangeID == shrunk {
				return fmt.Errorf("publishing %d entity changes of %s: %w", len(changes), tenant, err)
			}
			// A change too large for one message would fail every pass and hold up
			// every change after it: it goes out without its entity.
			small, werr := queue.WithoutEntity(changes[0])
			if werr != nil {
				return errors.Join(err, werr)
			}
			w.Log.Warn("an entity change is too large for NATS; published without its entity",
				zap.String("tenant", tenant), zap.String("change", changes[0].ChangeID), zap.Int("bytes", len(changes[0].Data)))
			changes[0], shrunk = small, small.ChangeID
		}
		if len(entries) < outboxBatch {
			return nil
		}
	}
}

// sweepOutboxes publishes what any worker left in any tenant's outbox (it died, or
// NATS was away), at start and then every interval, until ctx ends.
func (w *Worker) sweepOutboxes(ctx context.Context, interval time.Duration) {
	for {
		tenants, err := w.Catalog.OutboxTenants(ctx)
		if err != nil && ctx.Err() == nil {
			w.Log.Warn("listing outboxes", zap.Error(err))
		}
		for _, t := range tenants {
			if err := w.publishOutbox(ctx, t); err != nil && ctx.Err() == nil {
				w.Log.Warn("publishing a leftover outbox", zap.String("tenant", t), zap.Error(err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
