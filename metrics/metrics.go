// Package metrics holds the worker's Prometheus collectors. Nothing is global: New
// registers the collectors on the registerer it is given, and a nil *Worker is a
// valid no-op, so that code paths without metrics need no checks.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/configsync/configsync/run"
)

// Metric names, for dashboards and alerts that refer to them.
const (
	// RunsTotal counts finished runs by status.
	RunsTotal = "configsync_worker_runs_total"
	// RunDurationSeconds is a histogram of run durations by status.
	RunDurationSeconds = "configsync_worker_run_duration_seconds"
	// EntitiesTotal counts entities by kind and outcome (upserted, unchanged,
	// deleted, failed).
	EntitiesTotal = "configsync_worker_entities_total"
	// ItemsFetchedTotal counts items fetched from the tools by kind.
	ItemsFetchedTotal = "configsync_worker_items_fetched_total"
	// RedeliveriesTotal counts events delivered again after a first delivery.
	RedeliveriesTotal = "configsync_worker_redeliveries_total"
	// DeadLettersTotal counts events this worker dead-lettered.
	DeadLettersTotal = "configsync_worker_dead_letters_total"
	// DLQMessages is the number of dead letters kept in the DLQ stream.
	DLQMessages = "configsync_worker_dlq_messages"
	// JQTimeoutsTotal counts items whose jq evaluation ran out of time, by kind.
	JQTimeoutsTotal = "configsync_worker_jq_timeouts_total"
)

// Names lists every metric family name this package registers.
var Names = []string{RunsTotal, RunDurationSeconds, EntitiesTotal, ItemsFetchedTotal,
	RedeliveriesTotal, DeadLettersTotal, DLQMessages, JQTimeoutsTotal}

// Entity outcomes, the values of EntitiesTotal's outcome label.
const (
	OutcomeUpserted  = "upserted"
	OutcomeUnchanged = "unchanged"
	OutcomeDeleted   = "deleted"
	OutcomeFailed    = "failed"
)

// RunDurationBuckets are the run duration histogram's buckets, in seconds: from
// a tenth of a second to an hour.
var RunDurationBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// Worker is the worker's collectors. A nil *Worker records nothing.
type Worker struct {
	runs         *prometheus.CounterVec
	runDuration  *prometheus.HistogramVec
	entities     *prometheus.CounterVec
	fetched      *prometheus.CounterVec
	redeliveries prometheus.Counter
	deadLetters  prometheus.Counter
	dlq          prometheus.Gauge
	jqTimeouts   *prometheus.CounterVec
}

// New creates the worker's collectors and registers them on reg. It panics when a
// collector is already registered there (as prometheus.MustRegister does).
func New(reg prometheus.Registerer) *Worker {
	m := &Worker{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RunsTotal, Help: "Finished sync runs, by status.",
		}, []string{"status"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: RunDurationSeconds, Help: "Duration of sync runs from start to finish, by status.",
			Buckets: RunDurationBuckets,
		}, []string{"status"}),
		entities: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: EntitiesTotal, Help: "Entities handled by sync runs, by kind and outcome (upserted, unchanged, deleted, failed).",
		}, []string{"kind", "outcome"}),
		fetched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ItemsFetchedTotal, Help: "Items fetched from the tools by sync runs, by kind.",
		}, []string{"kind"}),
		redeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: RedeliveriesTotal, Help: "Events received again after their first delivery.",
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: DeadLettersTotal, Help: "Events this worker dead-lettered.",
		}),
		dlq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: DLQMessages, Help: "Dead letters kept in the DLQ stream, as last read by this worker.",
		}),
		jqTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: JQTimeoutsTotal, Help: "Items whose mapping ran out of time (the item time limit), by kind.",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.runs, m.runDuration, m.entities, m.fetched, m.redeliveries, m.deadLetters, m.dlq, m.jqTimeouts)
	return m
}

// ObserveRun records a finished run from its record: its status, its duration
// (when it has a start and a finish) and its per-kind counts.
func (m *Worker) ObserveRun(rec *run.Record) {
	if m == nil || rec == nil {
		return
	}
	status := string(rec.Status)
	m.runs.WithLabelValues(status).Inc()
	if rec.StartedAt != nil && rec.FinishedAt != nil {
		m.runDuration.WithLabelValues(status).Observe(rec.FinishedAt.Sub(*rec.StartedAt).Seconds())
	}
	for kind, c := range rec.Counts {
		if c == nil {
			continue
		}
		m.fetched.WithLabelValues(kind).Add(float64(c.Fetched))
		m.entities.WithLabelValues(kind, OutcomeUpserted).Add(float64(c.Upserted))
		m.entities.WithLabelValues(kind, OutcomeUnchanged).Add(float64(c.Unchanged))
		m.entities.WithLabelValues(kind, OutcomeDeleted).Add(float64(c.Deleted))
		m.entities.WithLabelValues(kind, OutcomeFailed).Add(float64(c.Failed))
	}
}

// Redelivered counts an event received again after its first delivery.
func (m *Worker) Redelivered() {
	if m != nil {
		m.redeliveries.Inc()
	}
}

// DeadLettered counts an event this worker dead-lettered.
func (m *Worker) DeadLettered() {
	if m != nil {
		m.deadLetters.Inc()
	}
}

// SetDLQSize sets the number of dead letters kept.
func (m *Worker) SetDLQSize(n uint64) {
	if m != nil {
		m.dlq.Set(float64(n))
	}
}

// JQTimeout counts an item of kind whose mapping ran out of time.
func (m *Worker) JQTimeout(kind string) {
	if m != nil {
		m.jqTimeouts.WithLabelValues(kind).Inc()
	}
}

// WatchDLQ reads the DLQ size with size every interval (and once at once) until ctx
// ends, setting the gauge; read errors keep the last value. It returns when ctx ends.
func (m *Worker) WatchDLQ(ctx context.Context, interval time.Duration, size func(context.Context) (uint64, error)) {
	if m == nil || size == nil {
		return
	}
	read := func() {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if n, err := size(rctx); err == nil {
			m.SetDLQSize(n)
		}
	}
	read()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			read()
		}
	}
}
