package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/configsync/configsync/metrics"
	"github.com/configsync/configsync/natstest"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
	"github.com/configsync/configsync/worker"
)

// TestInstrumentWorker: the wiring of worker and dev: the worker's http sources
// report their requests, the consumer lag is scraped from NATS, and the other source
// types are still there.
func TestInstrumentWorker(t *testing.T) {
	ns := natstest.Server(t)
	q, err := queue.Open(context.Background(), natstest.JetStream(t, ns), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{q: q, sources: source.NewRegistry(source.FileType([]string{t.TempDir()}), httpsource.Type(httpsource.Options{}))}
	w := worker.New(worker.Config{}, worker.Deps{Sources: st.sources})
	reg := prometheus.NewRegistry()
	instrumentWorker(reg, w, st, true)

	if _, ok := w.Sources.Get("file"); !ok || w.Sources != st.sources {
		t.Fatal("the file source type was lost, or the worker and the stack no longer share the registry")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`[{"id": 1}]`)) }))
	defer srv.Close()
	// AllowPrivate was passed on: 127.0.0.1 is reachable.
	s, err := w.Sources.New(httpsource.TypeID, map[string]any{"baseUrl": srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Fetch(context.Background(), source.Resource{Kind: "x", Selector: map[string]any{"path": "/x"}}, func(source.Page) error { return nil }); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case m.Counter != nil:
				got[f.GetName()] += m.Counter.GetValue()
			case m.Gauge != nil:
				got[f.GetName()] += m.Gauge.GetValue()
			default:
				got[f.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if got[metrics.SourceRequestsTotal] != 1 {
		t.Errorf("%s = %v, want 1", metrics.SourceRequestsTotal, got[metrics.SourceRequestsTotal])
	}
	for _, name := range append([]string{metrics.SourceRequestDurationSeconds, metrics.DLQMessages}, metrics.ConsumerNames...) {
		if _, ok := got[name]; !ok {
			t.Errorf("%s not gathered", name)
		}
	}
}
