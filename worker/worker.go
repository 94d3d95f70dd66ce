// Package worker is the sync pipeline: it takes events from the queue, and for each
// integration brings the catalog to exactly what the tool holds, one run at a time
// across all workers (under a fenced lease), never deleting on incomplete data.
package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/lease"
	"github.com/configsync/configsync/mapping"
	"github.com/configsync/configsync/metrics"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/source"
)

// Config tunes a worker. The zero value of every field but the dependencies gives
// the documented default.
type Config struct {
	// ID names the worker in run records and logs (default: a random id).
	ID string
	// LeaseTTL is how long a run's lease lasts without renewal (default 30s): a killed
	// worker's integration is free again within it.
	LeaseTTL time.Duration
	// MaxAttempts is how many times a failing event is tried before it is
	// dead-lettered (default 5). Waiting for a lease held elsewhere does not count.
	MaxAttempts int
	// RetryInitial and RetryMax bound the exponential backoff between attempts
	// (defaults 1s and 1m).
	RetryInitial, RetryMax time.Duration
	// BatchSize is how many entities are written to Redis in one pipelined round trip
	// (default 500).
	BatchSize int
	// Heartbeat is how often a long run tells NATS it is still working (default 10s;
	// keep it well under the consumer's AckWait).
	Heartbeat time.Duration
	// Mapping configures jq evaluation (time limit, env allowlist, workers).
	Mapping mapping.Options
	// MaxWaiting bounds the entities a run holds while their relation targets do not
	// exist yet (createMissingRelatedEntities false), so that memory does not grow
	// with the resources (default 10,000); past it an entity fails at once.
	MaxWaiting int
}

func (c Config) withDefaults() Config {
	if c.ID == "" {
		c.ID = "worker-" + uuid.NewString()[:8]
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.RetryInitial <= 0 {
		c.RetryInitial = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.MaxWaiting <= 0 {
		c.MaxWaiting = 10_000
	}
	return c
}

// Deps are what a worker works with; cmd wires them.
type Deps struct {
	Redis        redis.UniversalClient
	Prefix       string
	Queue        *queue.Queue
	Integrations *integration.Store
	Runs         *run.Store
	Catalog      *catalog.Catalog
	Leases       *lease.Manager
	Sources      *source.Registry
	Log          *zap.Logger
	// Metrics, when set, records runs, entities, redeliveries, dead letters and the
	// DLQ size (nil: no metrics).
	Metrics *metrics.Worker
}

// Worker consumes events and runs syncs.
type Worker struct {
	cfg Config
	Deps

	mu       sync.Mutex
	programs map[programKey]*mapping.Program
}

type programKey struct {
	tenant, integration string
	version             int64
}

// maxPrograms bounds the compiled-program cache; a program is recompiled when evicted.
const maxPrograms = 256

// New returns a worker.
func New(cfg Config, deps Deps) *Worker {
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	return &Worker{cfg: cfg.withDefaults(), Deps: deps, programs: map[programKey]*mapping.Program{}}
}

// ID returns the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// Run consumes events until ctx ends. In-flight events finish (or release their
// lease) before it returns.
func (w *Worker) Run(ctx context.Context) error {
	w.Log.Info("worker consuming", zap.String("worker", w.cfg.ID))
	// Said once the stop is seen: from then on no new event is taken, which is what
	// an operator (and the SIGTERM test) waits for.
	stopLogged := context.AfterFunc(ctx, func() {
		w.Log.Info("worker stopping: taking no new events; runs in flight get the shutdown grace", zap.String("worker", w.cfg.ID))
	})
	defer stopLogged()
	bgCtx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	// Run returns only once its background work has stopped: callers close the
	// connections it uses right after.
	defer func() { stopBackground(); background.Wait() }()
	background.Go(func() { w.sweepOutboxes(bgCtx, 30*time.Second) })
	if w.Metrics != nil {
		background.Go(func() { w.Metrics.WatchDLQ(bgCtx, 30*time.Second, w.Queue.DLQSize) })
	}
	return w.Queue.Consume(ctx, w.Handle)
}

// errLeaseHeld makes an event wait for another worker's run to end, without counting
// as a failed attempt.
var errLeaseHeld = errors.New("another worker is running this integration")

// permanentError is an event that can never succeed (unknown integration, invalid
// config): it is dead-lettered at once.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(format string, args ...any) error {
	return &permanentError{fmt.Errorf(format, args...)}
}

// Handle processes one delivery: acked only after its effects are in Redis.
func (w *Worker) Handle(ctx context.Context, d *queue.Delivery) {
	env := d.Envelope
	log := w.Log.With(zap.String("tenant", env.Tenant), zap.String("integration", env.Integration),
		zap.String("event", env.ID), zap.String("type", env.Type))
	if d.NumDelivered > 1 {
		w.Metrics.Redelivered()
	}
	err := w.process(ctx, d, log)
	switch {
	case err == nil:
		if err := d.Ack(); err != nil {
			log.Warn("ack failed; the event will be redelivered and is idempotent", zap.Error(err))
		}
		w.Redis.Del(context.WithoutCancel(ctx), w.attemptsKey(env))
	case errors.Is(err, errLeaseHeld):
		_ = d.NakWithDelay(2 * time.Second)
	case ctx.Err() != nil:
		// Shutting down: let the event be redelivered to another worker at once.
		_ = d.NakWithDelay(0)
	default:
		var perm *permanentError
		attempts, aerr := w.Redis.Incr(context.WithoutCancel(ctx), w.attemptsKey(env)).Result()
		if aerr == nil {
			w.Redis.Expire(context.WithoutCancel(ctx), w.attemptsKey(env), 24*time.Hour)
		}
		if errors.As(err, &perm) || int(attempts) >= w.cfg.MaxAttempts {
			log.Error("event dead-lettered", zap.Error(err), zap.Int64("attempts", attempts))
			if derr := d.DeadLetter(context.WithoutCancel(ctx), err.Error()); derr != nil {
				log.Error("dead-lettering failed; the event will be redelivered", zap.Error(derr))
			} else {
				w.Metrics.DeadLettered()
			}
			w.Redis.Del(context.WithoutCancel(ctx), w.attemptsKey(env))
			return
		}
		// Without a count (Redis away, which is then most likely the failure), back off
		// by JetStream's delivery count, so that the retries of an outage slow down
		// to RetryMax instead of hammering at RetryInitial; nothing is dead-lettered
		// on that count, since it also holds deliveries that waited for a lease.
		n := int(attempts)
		if aerr != nil {
			n = int(d.NumDelivered)
		}
		delay := w.retryDelay(min(max(1, n), 64))
		log.Warn("event failed; retrying", zap.Error(err), zap.Int64("attempt", attempts), zap.Duration("in", delay))
		_ = d.NakWithDelay(delay)
	}
}

func (w *Worker) attemptsKey(env queue.Envelope) string {
	return fmt.Sprintf("%s:{%s}:attempts:%s", w.Prefix, env.Tenant, env.ID)
}

// retryDelay is the exponential backoff for the nth failed attempt.
func (w *Worker) retryDelay(n int) time.Duration {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.RandomizationFactor = w.cfg.RetryInitial, w.cfg.RetryMax, 0.2
	var d time.Duration
	for range n {
		d = b.NextBackOff()
	}
	return d
}

func (w *Worker) process(ctx context.Context, d *queue.Delivery, log *zap.Logger) error {
	env := d.Envelope
	in, err := w.Integrations.Get(ctx, env.Tenant, env.Integration)
	if errors.Is(err, integration.ErrNotFound) {
		return permanent("unknown integration %s/%s", env.Tenant, env.Integration)
	}
	if err != nil {
		return err
	}
	switch env.Type {
	case queue.TypeConfigPatched:
		version, err := w.acceptPatch(ctx, env, in)
		if err != nil {
			return err
		}
		if version < in.ConfigVersion {
			log.Info("event for an older config version; the newer one's event runs it", zap.Int64("version", version), zap.Int64("newest", in.ConfigVersion))
			return nil
		}
		return w.sync(ctx, d, in, "config.patched", "", log)
	case queue.TypeResyncRequested:
		data, err := env.ResyncRequested()
		if err != nil {
			return permanent("resync.requested data: %v", err)
		}
		return w.sync(ctx, d, in, "resync.requested", data.RunID, log)
	case queue.TypeResources:
		return w.live(ctx, env, in, log)
	}
	return permanent("unknown event type %q", env.Type)
}

// acceptPatch stores a patch's config as the next version (once, even when the event
// is redelivered) and returns the version the event stands for.
func (w *Worker) acceptPatch(ctx context.Context, env queue.Envelope, in *integration.Integration) (int64, error) {
	data, err := env.ConfigPatched()
	if err != nil {
		return 0, permanent("config.patched data: %v", err)
	}
	if data.Config == nil {
		if data.ConfigVersion > in.ConfigVersion || data.ConfigVersion <= 0 {
			return 0, permanent("config version %d of %s/%s is not stored", data.ConfigVersion, in.Tenant, in.ID)
		}
		return data.ConfigVersion, nil
	}
	doc := data.PortConfig()
	cfg, problems := mapping.Parse(doc)
	if cfg != nil {
		_, cps := mapping.Compile(cfg, w.cfg.Mapping)
		problems = append(problems, cps...)
	}
	if err := problems.Err(); err != nil {
		return 0, &permanentError{err}
	}
	// Stored once per event, atomically with the record of which version it made,
	// so a redelivered event neither stores it twice nor loses it.
	v, err := w.Integrations.AddConfigOnce(ctx, in.Tenant, in.ID, env.ID, doc)
	if err != nil {
		return 0, err
	}
	in.ConfigVersion = max(in.ConfigVersion, v)
	return v, nil
}

// program compiles an integration's config version once and caches it.
func (w *Worker) program(ctx context.Context, in *integration.Integration, version int64) (*mapping.Program, error) {
	key := programKey{in.Tenant, in.ID, version}
	w.mu.Lock()
	p := w.programs[key]
	w.mu.Unlock()
	if p != nil {
		return p, nil
	}
	doc, err := w.Integrations.Config(ctx, in.Tenant, in.ID, version)
	if err != nil {
		return nil, err
	}
	cfg, problems := mapping.Parse(doc)
	if cfg != nil {
		var cps mapping.Problems
		p, cps = mapping.Compile(cfg, w.cfg.Mapping)
		problems = append(problems, cps...)
	}
	if err := problems.Err(); err != nil {
		return nil, permanent("stored config version %d of %s/%s: %v", version, in.Tenant, in.ID, err)
	}
	w.mu.Lock()
	if len(w.programs) >= maxPrograms {
		for k := range w.programs {
			delete(w.programs, k)
			break
		}
	}
	w.programs[key] = p
	w.mu.Unlock()
	return p, nil
}
