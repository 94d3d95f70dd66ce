package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/configsync/configsync/metrics"
	"github.com/configsync/configsync/natstest"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// series reads one gathered series' value (a histogram gives its sample count); ok
// is false when there is none.
func series(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			matched := 0
			for _, lp := range s.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want == lp.GetValue() {
					matched++
				}
			}
			if matched != len(labels) {
				continue
			}
			switch {
			case s.Counter != nil:
				return s.Counter.GetValue(), true
			case s.Gauge != nil:
				return s.Gauge.GetValue(), true
			case s.Histogram != nil:
				return float64(s.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func mustSeries(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := series(t, reg, name, labels)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

// TestSourceRequestMetrics: the http source, given metrics.Source's observer,
// reports every request it sends, retries included, by status, with its latency;
// a request without a response counts as "error".
func TestSourceRequestMetrics(t *testing.T) {
	var hits, flaky atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/items":
			// The first request is refused as overloaded; its retry succeeds.
			if flaky.Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			time.Sleep(20 * time.Millisecond)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`[{"id": 1}, {"id": 2}]`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	reg := prometheus.NewRegistry()
	m := metrics.NewSource(reg)
	opts := httpsource.Options{AllowPrivate: true, MaxRetries: 2, RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond,
		Observe: m.Observer(httpsource.TypeID)}
	sources := source.NewRegistry(httpsource.Type(opts))
	fetch := func(base, path string) error {
		s, err := sources.New(httpsource.TypeID, map[string]any{"baseUrl": base}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s.Fetch(context.Background(), source.Resource{Kind: "items", Selector: map[string]any{"path": path}},
			func(source.Page) error { return nil })
	}

	if err := fetch(srv.URL, "/items"); err != nil {
		t.Fatalf("fetching /items: %v", err)
	}
	if err := fetch(srv.URL, "/missing"); err == nil {
		t.Fatal("fetching /missing succeeded")
	}
	// Connection refused is retried: three attempts, none with a response.
	if err := fetch(closed.URL, "/items"); err == nil {
		t.Fatal("fetching from a closed server succeeded")
	}

	typ := map[string]string{"type": httpsource.TypeID}
	want := map[string]float64{"200": 1, "503": 1, "404": 1, metrics.StatusError: 3}
	total := 0.0
	for status, n := range want {
		got := mustSeries(t, reg, metrics.SourceRequestsTotal, map[string]string{"type": httpsource.TypeID, "status": status})
		if got != n {
			t.Errorf("%s{status=%q} = %v, want %v", metrics.SourceRequestsTotal, status, got, n)
		}
		total += got
	}
	if served := float64(hits.Load()) + want[metrics.StatusError]; total != served {
		t.Errorf("%v requests counted, but the server answered %d and 3 found no server", total, hits.Load())
	}
	if got := mustSeries(t, reg, metrics.SourceRequestDurationSeconds, typ); got != total {
		t.Errorf("%d request durations observed, want %v", int(got), total)
	}
	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetName() == metrics.SourceRequestDurationSeconds {
			// The successful /items request alone took 20ms on the server.
			if sum := f.GetMetric()[0].GetHistogram().GetSampleSum(); sum < 0.02 || sum > 10 {
				t.Errorf("request durations sum to %vs, want at least the 0.02s the server slept", sum)
			}
		}
	}
}

func TestNilSourceIsNoop(t *testing.T) {
	var m *metrics.Source
	m.Request("http", 200, nil, time.Second)
	if m.Observer("http") != nil {
		t.Error("a nil *Source gave an observer")
	}
	// A nil observer leaves the source unobserved, and working.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`[]`)) }))
	defer srv.Close()
	s, err := source.NewRegistry(httpsource.Type(httpsource.Options{AllowPrivate: true, Observe: m.Observer("http")})).
		New(httpsource.TypeID, map[string]any{"baseUrl": srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Fetch(context.Background(), source.Resource{Kind: "x", Selector: map[string]any{"path": "/"}}, func(source.Page) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// jetstreamWait bounds the test's own pulls.
var jetstreamWait = jetstream.FetchMaxWait(2 * time.Second)

// TestConsumerLag: the lag collector reads the workers' consumer at each scrape,
// on a real JetStream: the backlog, the events delivered and not acked, and the
// redelivered ones.
func TestConsumerLag(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Server(t)
	js := natstest.JetStream(t, ns)
	q, err := queue.Open(ctx, js, queue.Options{AckWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics.NewConsumerLag(reg, q.ConsumerInfo)
	lag := func() [3]float64 {
		t.Helper()
		return [3]float64{
			mustSeries(t, reg, metrics.ConsumerPendingMessages, nil),
			mustSeries(t, reg, metrics.ConsumerAckPendingMessages, nil),
			mustSeries(t, reg, metrics.ConsumerRedeliveredMessages, nil),
		}
	}
	// The server updates a consumer's counts after it has acknowledged the publish or
	// the ack that changes them: under load a scrape can come first, so each check
	// waits (up to 10 s) for the counts to arrive.
	lagBecomes := func(want [3]float64, what string) {
		t.Helper()
		got := lag()
		for deadline := time.Now().Add(10 * time.Second); got != want && time.Now().Before(deadline); got = lag() {
			time.Sleep(10 * time.Millisecond)
		}
		if got != want {
			t.Fatalf("%s: lag %v, want %v (pending, ack pending, redelivered)", what, got, want)
		}
	}
	lagBecomes([3]float64{0, 0, 0}, "empty stream")
	for range 3 {
		ev, err := queue.NewEnvelope(queue.TypeResyncRequested, "acme", "inv", queue.ResyncRequested{Reason: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	lagBecomes([3]float64{3, 0, 0}, "3 published")

	// A worker takes all three, acks one, hands one back, keeps one.
	cons, err := js.Consumer(ctx, queue.CommandsStream, queue.WorkersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(3, jetstreamWait)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != 3 {
		t.Fatalf("fetched %d events, want 3", len(msgs))
	}
	lagBecomes([3]float64{0, 3, 0}, "3 delivered")
	if err := msgs[0].DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	if err := msgs[1].Nak(); err != nil {
		t.Fatal(err)
	}
	// The nakked event is the only one left to deliver: it comes again.
	again, err := cons.Fetch(1, jetstreamWait)
	if err != nil {
		t.Fatal(err)
	}
	for m := range again.Messages() {
		if md, _ := m.Metadata(); md == nil || md.NumDelivered != 2 {
			t.Fatalf("refetched %+v, want the nakked event's second delivery", md)
		}
	}
	lagBecomes([3]float64{0, 2, 1}, "one acked, one redelivered")
}

// TestConsumerLagReadFails: a failed read leaves the three series out of the scrape
// (rather than a stale value), and the rest of the scrape works.
func TestConsumerLagReadFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewSource(reg)
	m.Request("http", 200, nil, time.Millisecond)
	metrics.NewConsumerLag(reg, func(context.Context) (uint64, uint64, uint64, error) {
		return 0, 0, 0, errors.New("nats: no responders")
	})
	for _, name := range metrics.ConsumerNames {
		if _, ok := series(t, reg, name, nil); ok {
			t.Errorf("%s reported although the read failed", name)
		}
	}
	if got := mustSeries(t, reg, metrics.SourceRequestsTotal, map[string]string{"type": "http", "status": "200"}); got != 1 {
		t.Errorf("the rest of the scrape: %v", got)
	}
}
