package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/configsync/configsync/metrics"
	"github.com/configsync/configsync/run"
)

func TestWorkerCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(3 * time.Second)
	m.ObserveRun(&run.Record{Status: run.Succeeded, StartedAt: &start, FinishedAt: &end, Counts: map[string]*run.Counts{
		"repository": {Fetched: 10, Upserted: 7, Unchanged: 2, Failed: 1, Deleted: 4},
		"team":       {Fetched: 1, Unchanged: 1},
	}})
	m.ObserveRun(&run.Record{Status: run.Partial, StartedAt: &start, FinishedAt: &end, Counts: map[string]*run.Counts{
		"repository": {Fetched: 5, Upserted: 5},
	}})
	m.Redelivered()
	m.Redelivered()
	m.DeadLettered()
	m.JQTimeout("repository")
	m.SetDLQSize(3)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
	}
	for _, name := range metrics.Names {
		if !got[name] {
			t.Errorf("metric %s not gathered", name)
		}
	}

	// value reads one series from the gathered families (a histogram gives its
	// sample count).
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
		series:
			for _, s := range f.GetMetric() {
				for _, lp := range s.GetLabel() {
					if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
						continue series
					}
				}
				switch {
				case s.Counter != nil:
					return s.Counter.GetValue()
				case s.Gauge != nil:
					return s.Gauge.GetValue()
				case s.Histogram != nil:
					return float64(s.Histogram.GetSampleCount())
				}
			}
		}
		t.Fatalf("no series %s%v", name, labels)
		return 0
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{metrics.RunsTotal, map[string]string{"status": "succeeded"}, 1},
		{metrics.RunsTotal, map[string]string{"status": "partial"}, 1},
		{metrics.RunDurationSeconds, map[string]string{"status": "succeeded"}, 1},
		{metrics.ItemsFetchedTotal, map[string]string{"kind": "repository"}, 15},
		{metrics.ItemsFetchedTotal, map[string]string{"kind": "team"}, 1},
		{metrics.EntitiesTotal, map[string]string{"kind": "repository", "outcome": "upserted"}, 12},
		{metrics.EntitiesTotal, map[string]string{"kind": "repository", "outcome": "unchanged"}, 2},
		{metrics.EntitiesTotal, map[string]string{"kind": "repository", "outcome": "deleted"}, 4},
		{metrics.EntitiesTotal, map[string]string{"kind": "repository", "outcome": "failed"}, 1},
		{metrics.EntitiesTotal, map[string]string{"kind": "team", "outcome": "unchanged"}, 1},
		{metrics.RedeliveriesTotal, nil, 2},
		{metrics.DeadLettersTotal, nil, 1},
		{metrics.DLQMessages, nil, 3},
		{metrics.JQTimeoutsTotal, map[string]string{"kind": "repository"}, 1},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, f := range families {
		if f.GetName() == metrics.RunDurationSeconds {
			if sum := f.GetMetric()[0].GetHistogram().GetSampleSum(); sum != 3 {
				t.Errorf("run duration sum = %v, want 3", sum)
			}
		}
	}
}

func TestNilWorkerIsNoop(t *testing.T) {
	var m *metrics.Worker
	m.ObserveRun(&run.Record{Status: run.Failed})
	m.Redelivered()
	m.DeadLettered()
	m.JQTimeout("k")
	m.SetDLQSize(1)
	m.WatchDLQ(context.Background(), time.Millisecond, nil)
}

func TestWatchDLQ(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.WatchDLQ(ctx, time.Hour, func(context.Context) (uint64, error) {
			select {
			case calls <- struct{}{}:
			default:
			}
			return 7, nil
		})
	}()
	<-calls
	cancel()
	<-done
	g, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range g {
		if f.GetName() == metrics.DLQMessages {
			if v := f.GetMetric()[0].GetGauge().GetValue(); v != 7 {
				t.Errorf("dlq gauge = %v, want 7", v)
			}
			return
		}
	}
	t.Error("dlq gauge not gathered")
}

func TestNewTwiceOnOneRegistryPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.New(reg)
	defer func() {
		if recover() == nil {
			t.Error("registering twice did not panic")
		}
	}()
	metrics.New(reg)
}
