// Package scheduler requests resyncs of integrations whose resyncInterval is due.
// Several schedulers may run at once: each integration is still resynced once per
// interval, because the event of one interval slot has an id derived from the
// integration and the slot (JetStream drops a republished id within its duplicate
// window), and a Redis claim per slot stops a scheduler that comes late.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/queue"
)

// Scheduler publishes resync.requested events when integrations are due.
type Scheduler struct {
	rdb          redis.UniversalClient
	prefix       string
	integrations *integration.Store
	queue        *queue.Queue
	log          *zap.Logger
	now          func() time.Time
}

// New returns a scheduler; now is its clock (nil: time.Now).
func New(rdb redis.UniversalClient, prefix string, ints *integration.Store, q *queue.Queue, log *zap.Logger, now func() time.Time) *Scheduler {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Scheduler{rdb: rdb, prefix: prefix, integrations: ints, queue: q, log: log, now: now}
}

// ParseInterval reads a resyncInterval: a Go duration ("15m", "1h30m") or a whole
// number of minutes, as Ocean's scheduledResyncInterval is. Empty or zero: never.
// Intervals under a minute are refused: a resync every few seconds is a mistake.
func ParseInterval(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		s = strconv.Itoa(n) + "m"
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("resyncInterval %q: want a duration like 15m or 1h, or minutes: %w", s, err)
	}
	if d < time.Minute {
		return 0, fmt.Errorf("resyncInterval %q: at least one minute", s)
	}
	return d, nil
}

// Run checks every tick until ctx ends.
func (s *Scheduler) Run(ctx context.Context, tick time.Duration) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if n, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduling resyncs", zap.Error(err))
		} else if n > 0 {
			s.log.Info("resyncs requested", zap.Int("count", n))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Tick requests the resyncs due now and returns how many it published.
func (s *Scheduler) Tick(ctx context.Context) (int, error) {
	tenants, err := s.rdb.SMembers(ctx, s.integrations.TenantsKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("listing tenants: %w", err)
	}
	published := 0
	var errs []error
	for _, tenant := range tenants {
		cursor := ""
		for {
			page, next, err := s.integrations.List(ctx, tenant, cursor, 500)
			if err != nil {
				errs = append(errs, err)
				break
			}
			for _, in := range page {
				ok, err := s.due(ctx, in)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if ok {
					published++
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	return published, errors.Join(errs...)
}

// due publishes the integration's resync for the current slot, once across all
// schedulers, and reports whether this scheduler did.
func (s *Scheduler) due(ctx context.Context, in *integration.Integration) (bool, error) {
	interval, err := ParseInterval(in.ResyncInterval)
	if err != nil || interval == 0 || in.ConfigVersion == 0 {
		return false, nil // an invalid interval was refused at the door; none is never
	}
	slot := s.now().UnixNano() / int64(interval)
	claim := fmt.Sprintf("%s:{%s}:schedule:%s:%d", s.prefix, in.Tenant, in.ID, slot)
	won, err := s.rdb.SetNX(ctx, claim, "1", interval+time.Minute).Result()
	if err != nil {
		return false, fmt.Errorf("claiming the resync slot of %s/%s: %w", in.Tenant, in.ID, err)
	}
	if !won {
		return false, nil
	}
	ev, err := queue.NewEnvelope(queue.TypeResyncRequested, in.Tenant, in.ID, queue.ResyncRequested{Reason: "resyncInterval " + interval.String()})
	if err != nil {
		return false, err
	}
	ev.ID = fmt.Sprintf("resync:%s:%s:%d", in.Tenant, in.ID, slot)
	if err := s.queue.Publish(ctx, ev); err != nil {
		// Give the slot back, so that this or another scheduler tries again.
		s.rdb.Del(context.WithoutCancel(ctx), claim)
		return false, fmt.Errorf("requesting the resync of %s/%s: %w", in.Tenant, in.ID, err)
	}
	return true, nil
}
