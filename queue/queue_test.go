package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/configsync/configsync/natstest"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/rawjson"
)

// env is one test's NATS server, connection and Queue.
type env struct {
	t      *testing.T
	srv    *server.Server
	js     jetstream.JetStream
	q      *queue.Queue
	errs   *errorLog
	ctx    context.Context
	cancel context.CancelFunc
}

// errorLog collects what Consume reports through Options.OnError.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func newEnv(t *testing.T, o queue.Options) *env {
	t.Helper()
	t.Parallel()
	e := &env{t: t, srv: natstest.Server(t), errs: &errorLog{}}
	e.js = natstest.JetStream(t, e.srv)
	e.ctx, e.cancel = context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(e.cancel)
	e.q = e.open(o)
	return e
}

// open opens another Queue, on its own connection as another worker would.
func (e *env) open(o queue.Options) *queue.Queue {
	e.t.Helper()
	if o.OnError == nil {
		o.OnError = e.errs.add
	}
	q, err := queue.Open(e.ctx, natstest.JetStream(e.t, e.srv), o)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	return q
}

// consume runs q.Consume in the background and returns a function that stops it and
// returns its result; the test's cleanup stops it too.
func (e *env) consume(q *queue.Queue, handle func(context.Context, *queue.Delivery)) (stop func() error) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- q.Consume(ctx, handle) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Consume did not return within 30s of its context ending")
			}
		})
		return err
	}
	e.t.Cleanup(func() { _ = stop() })
	return stop
}

func (e *env) publish(typ, tenant, integration string, data any) queue.Envelope {
	e.t.Helper()
	ev, err := queue.NewEnvelope(typ, tenant, integration, data)
	if err != nil {
		e.t.Fatalf("NewEnvelope: %v", err)
	}
	if err := e.q.Publish(e.ctx, ev); err != nil {
		e.t.Fatalf("Publish: %v", err)
	}
	return ev
}

func (e *env) streamInfo(name string) *jetstream.StreamInfo {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, name)
	if err != nil {
		e.t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		e.t.Fatalf("stream %s info: %v", name, err)
	}
	return info
}

func (e *env) consumerInfo() *jetstream.ConsumerInfo {
	e.t.Helper()
	c, err := e.js.Consumer(e.ctx, queue.CommandsStream, queue.WorkersConsumer)
	if err != nil {
		e.t.Fatalf("consumer: %v", err)
	}
	info, err := c.Info(e.ctx)
	if err != nil {
		e.t.Fatalf("consumer info: %v", err)
	}
	return info
}

// dlq returns every dead letter kept, in order.
func (e *env) dlq() []*jetstream.RawStreamMsg {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, queue.DLQStream)
	if err != nil {
		e.t.Fatal(err)
	}
	info := e.streamInfo(queue.DLQStream)
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(e.ctx, seq)
		if err != nil {
			e.t.Fatalf("DLQ message %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// eventually polls cond every 20ms until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// collector records deliveries and acks them.
type collector struct {
	mu   sync.Mutex
	got  []*queue.Delivery
	ack  bool
	hook func(*queue.Delivery)
}

func (c *collector) handle(ctx context.Context, d *queue.Delivery) {
	if c.hook != nil {
		c.hook(d)
	}
	c.mu.Lock()
	c.got = append(c.got, d)
	c.mu.Unlock()
	if c.ack {
		if err := d.Ack(); err != nil {
			panic(err)
		}
	}
}

func (c *collector) deliveries() []*queue.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*queue.Delivery(nil), c.got...)
}

func (c *collector) count() int { return len(c.deliveries()) }

func TestPublishConsumeEachType(t *testing.T) {
	e := newEnv(t, queue.Options{})
	sent := []queue.Envelope{
		e.publish(queue.TypeConfigPatched, "acme", "github-main", queue.ConfigPatched{ConfigVersion: 3}),
		e.publish(queue.TypeConfigPatched, "acme", "github-main", queue.ConfigPatched{
			Config: json.RawMessage(`{"config":{"resources":[{"kind":"repository"}]}}`),
		}),
		e.publish(queue.TypeResyncRequested, "acme", "jira", queue.ResyncRequested{Reason: "scheduled", RunID: "run-1"}),
		e.publish(queue.TypeResources, "beta", "k8s", queue.ResourcesData{
			Kind:   "deployment",
			Upsert: []json.RawMessage{json.RawMessage(`{"name":"api","replicas":3}`)},
			Delete: []json.RawMessage{json.RawMessage(`{"name":"old"}`)},
		}),
	}
	c := &collector{ack: true}
	stop := e.consume(e.q, c.handle)
	eventually(t, 10*time.Second, "4 deliveries", func() bool { return c.count() >= 4 })
	if err := stop(); err != nil {
		t.Fatalf("Consume: %v", err)
	}

	byID := map[string]*queue.Delivery{}
	for _, d := range c.deliveries() {
		byID[d.Envelope.ID] = d
	}
	if len(byID) != len(sent) || c.count() != len(sent) {
		t.Fatalf("got %d deliveries of %d events, want %d", c.count(), len(byID), len(sent))
	}
	for _, s := range sent {
		d := byID[s.ID]
		if d == nil {
			t.Fatalf("event %s not delivered", s.ID)
		}
		g := d.Envelope
		if g.Type != s.Type || g.Tenant != s.Tenant || g.Integration != s.Integration ||
			!g.Time.Equal(s.Time) || string(g.Data) != string(s.Data) {
			t.Errorf("delivered %+v, sent %+v", g, s)
		}
		if d.Subject != s.Subject() || d.NumDelivered != 1 || d.StreamSeq == 0 {
			t.Errorf("delivery %s: subject %s, delivered %d, seq %d", s.ID, d.Subject, d.NumDelivered, d.StreamSeq)
		}
	}
	cp, err := byID[sent[1].ID].Envelope.ConfigPatched()
	if err != nil || string(cp.PortConfig()) != `{"resources":[{"kind":"repository"}]}` {
		t.Errorf("inline config: %s, %v", cp.PortConfig(), err)
	}
	res, err := byID[sent[3].ID].Envelope.Resources()
	if err != nil || res.Kind != "deployment" || len(res.Upsert) != 1 || len(res.Delete) != 1 {
		t.Errorf("resources: %+v, %v", res, err)
	}
	// Acked events leave the work-queue stream.
	eventually(t, 5*time.Second, "an empty commands stream", func() bool {
		return e.streamInfo(queue.CommandsStream).State.Msgs == 0
	})
	if errs := e.errs.all(); len(errs) > 0 {
		t.Errorf("errors reported: %v", errs)
	}
}

func TestDuplicateIDDeliveredOnce(t *testing.T) {
	e := newEnv(t, queue.Options{})
	ev := e.publish(queue.TypeResyncRequested, "acme", "gh", queue.ResyncRequested{Reason: "twice"})
	if err := e.q.Publish(e.ctx, ev); err != nil {
		t.Fatalf("republishing: %v", err)
	}
	if n := e.streamInfo(queue.CommandsStream).State.Msgs; n != 1 {
		t.Fatalf("stream holds %d messages after a republish, want 1", n)
	}
	c := &collector{ack: true}
	e.consume(e.q, c.handle)
	eventually(t, 10*time.Second, "the delivery", func() bool { return c.count() == 1 })
	time.Sleep(500 * time.Millisecond)
	if n := c.count(); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
}

func TestTwoWorkersShareTheWork(t *testing.T) {
	e := newEnv(t, queue.Options{Concurrency: 2})
	q2 := e.open(queue.Options{Concurrency: 2})
	const n = 40
	want := map[string]bool{}
	for i := range n {
		want[e.publish(queue.TypeResyncRequested, "acme", fmt.Sprintf("i%d", i), queue.ResyncRequested{Reason: "r"}).ID] = true
	}
	slow := func(*queue.Delivery) { time.Sleep(10 * time.Millisecond) }
	a, b := &collector{ack: true, hook: slow}, &collector{ack: true, hook: slow}
	e.consume(e.q, a.handle)
	e.consume(q2, b.handle)
	eventually(t, 20*time.Second, "all events", func() bool { return a.count()+b.count() >= n })
	time.Sleep(300 * time.Millisecond) // a second delivery of anything would show now

	seen := map[string]int{}
	for _, d := range append(a.deliveries(), b.deliveries()...) {
		seen[d.Envelope.ID]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("event %s delivered %d times", id, seen[id])
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct events delivered, want %d", len(seen), n)
	}
	if a.count() == 0 || b.count() == 0 {
		t.Errorf("work not shared: worker A got %d, worker B got %d", a.count(), b.count())
	}
	t.Logf("worker A handled %d, worker B %d", a.count(), b.count())
}

func TestNakWithDelayRedelivers(t *testing.T) {
	e := newEnv(t, queue.Options{})
	e.publish(queue.TypeResyncRequested, "acme", "gh", queue.ResyncRequested{Reason: "r"})
	const delay = 700 * time.Millisecond
	var first time.Time
	type seen struct {
		n  uint64
		at time.Time
	}
	got := make(chan seen, 4)
	e.consume(e.q, func(ctx context.Context, d *queue.Delivery) {
		got <- seen{d.NumDelivered, time.Now()}
		if d.NumDelivered == 1 {
			if err := d.NakWithDelay(delay); err != nil {
				t.Errorf("NakWithDelay: %v", err)
			}
			return
		}
		if err := d.Ack(); err != nil {
			t.Errorf("Ack: %v", err)
		}
	})
	s1 := <-got
	first = s1.at
	var s2 seen
	select {
	case s2 = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("not redelivered")
	}
	if s1.n != 1 || s2.n != 2 {
		t.Fatalf("NumDelivered %d then %d, want 1 then 2", s1.n, s2.n)
	}
	if waited := s2.at.Sub(first); waited < delay-50*time.Millisecond {
		t.Fatalf("redelivered after %s, before the %s delay", waited, delay)
	}
	select {
	case s := <-got:
		t.Fatalf("third delivery (%d) after an ack", s.n)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestInProgressExtendsAckWait(t *testing.T) {
	const ackWait = time.Second
	e := newEnv(t, queue.Options{AckWait: ackWait, Concurrency: 2})
	// Control: a handler that sits on an event past AckWait without InProgress
	// loses it to a redelivery, so the extension below is not luck.
	t.Run("without InProgress it is redelivered", func(t *testing.T) {
		e.publish(queue.TypeResyncRequested, "acme", "silent", queue.ResyncRequested{Reason: "r"})
		var deliveries atomic.Int32
		release := make(chan struct{})
		stop := e.consume(e.q, func(ctx context.Context, d *queue.Delivery) {
			if deliveries.Add(1) == 1 {
				<-release
				return
			}
			_ = d.Ack()
		})
		eventually(t, 3*ackWait+2*time.Second, "a redelivery after AckWait", func() bool { return deliveries.Load() >= 2 })
		close(release)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("with InProgress it is not", func(t *testing.T) {
		ev := e.publish(queue.TypeResyncRequested, "acme", "busy", queue.ResyncRequested{Reason: "r"})
		var deliveries atomic.Int32
		stop := e.consume(e.q, func(ctx context.Context, d *queue.Delivery) {
			deliveries.Add(1)
			for range 10 { // 10 x 300ms = 3 x AckWait
				time.Sleep(300 * time.Millisecond)
				if err := d.InProgress(); err != nil {
					t.Errorf("InProgress: %v", err)
				}
			}
			if err := d.Ack(); err != nil {
				t.Errorf("Ack after a long run: %v", err)
			}
		})
		eventually(t, 10*time.Second, "the ack", func() bool {
			return e.streamInfo(queue.CommandsStream).State.Msgs == 0
		})
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if n := deliveries.Load(); n != 1 {
			t.Fatalf("event %s delivered %d times while in progress, want 1", ev.ID, n)
		}
	})
}

func TestMalformedEventsAreDeadLettered(t *testing.T) {
	e := newEnv(t, queue.Options{MaxPayload: 2048, AckWait: time.Second})
	good := func(typ, tenant, integration string) map[string]any {
		return map[string]any{
			"id": "e-" + tenant + integration, "type": typ, "tenant": tenant, "integration": integration,
			"time": "2025-03-01T12:00:00Z", "data": map[string]any{"reason": "r"},
		}
	}
	enc := func(m map[string]any) []byte {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	unknownType := good("deleted", "acme", "gh")
	badTenant := good("resync.requested", "Acme", "gh")
	mismatch := good("resync.requested", "acme", "other")
	big := good("resync.requested", "acme", "gh")
	big["data"] = map[string]any{"reason": strings.Repeat("x", 1000), "runId": strings.Repeat("y", 1100)}
	cases := []struct {
		subject string
		payload []byte
		reason  string // what the reason header must say
		dlq     string // the DLQ subject
	}{
		{"configsync.acme.gh.resources", []byte(`{"id": "x", `), "envelope is not valid", "configsync-dlq.acme.gh"},
		{"configsync.acme.gh.resources", enc(unknownType), `type "deleted" is not one of`, "configsync-dlq.acme.gh"},
		{"configsync.Acme.gh.resync.requested", enc(badTenant), `tenant id "Acme"`, "configsync-dlq._invalid.gh"},
		{"configsync.acme.gh.resync.requested", enc(mismatch), "does not match", "configsync-dlq.acme.gh"},
		{"configsync.acme.gh.resync.requested", enc(big), "over the 2048-byte limit", "configsync-dlq.acme.gh"},
	}
	for _, c := range cases {
		msg := &nats.Msg{Subject: c.subject, Data: c.payload, Header: nats.Header{"Traceparent": {"00-abc-def-01"}}}
		if _, err := e.js.PublishMsg(e.ctx, msg); err != nil {
			t.Fatalf("publishing to %s: %v", c.subject, err)
		}
	}
	var handled atomic.Int32
	e.consume(e.q, func(context.Context, *queue.Delivery) { handled.Add(1) })
	eventually(t, 10*time.Second, "5 dead letters", func() bool {
		n, err := e.q.DLQSize(e.ctx)
		return err == nil && n == uint64(len(cases))
	})
	// Handlers run concurrently, so dead letters may be stored in any order: match
	// them to the cases by the original stream sequence (case i is sequence i+1).
	dl := map[string]*jetstream.RawStreamMsg{}
	for _, m := range e.dlq() {
		dl[m.Header.Get(queue.HeaderDLQStreamSeq)] = m
	}
	for i, c := range cases {
		m := dl[fmt.Sprint(i+1)]
		if m == nil {
			t.Fatalf("case %d: no dead letter for stream seq %d", i, i+1)
		}
		if string(m.Data) != string(c.payload) {
			t.Errorf("case %d: DLQ payload %q, want the original %q", i, m.Data, c.payload)
		}
		if m.Subject != c.dlq {
			t.Errorf("case %d: DLQ subject %s, want %s", i, m.Subject, c.dlq)
		}
		if r := m.Header.Get(queue.HeaderDLQReason); !strings.Contains(r, c.reason) {
			t.Errorf("case %d: reason %q does not say %q", i, r, c.reason)
		}
		if s := m.Header.Get(queue.HeaderDLQSubject); s != c.subject {
			t.Errorf("case %d: original subject header %q, want %q", i, s, c.subject)
		}
		if m.Header.Get(queue.HeaderDLQDelivered) != "1" ||
			m.Header.Get(queue.HeaderDLQTime) == "" || m.Header.Get("Traceparent") != "00-abc-def-01" {
			t.Errorf("case %d: headers %v", i, m.Header)
		}
	}
	// Terminated, so never redelivered: wait past AckWait twice and look again.
	time.Sleep(2500 * time.Millisecond)
	if n := handled.Load(); n != 0 {
		t.Errorf("the handler saw %d malformed events", n)
	}
	if n, _ := e.q.DLQSize(e.ctx); n != uint64(len(cases)) {
		t.Errorf("DLQ holds %d after waiting, want %d (redelivered and dead-lettered again?)", n, len(cases))
	}
	if n := e.streamInfo(queue.CommandsStream).State.Msgs; n != 0 {
		t.Errorf("commands stream still holds %d messages", n)
	}
	if ci := e.consumerInfo(); ci.NumAckPending != 0 || ci.NumRedelivered != 0 {
		t.Errorf("consumer: %d pending acks, %d redelivered", ci.NumAckPending, ci.NumRedelivered)
	}
}

func TestDeadLetterFromHandler(t *testing.T) {
	e := newEnv(t, queue.Options{AckWait: time.Second})
	ev := e.publish(queue.TypeConfigPatched, "acme", "gh", queue.ConfigPatched{Config: json.RawMessage(`{"resources":"not a list"}`)})
	want, _ := ev.MarshalJSON()
	var handled atomic.Int32
	e.consume(e.q, func(ctx context.Context, d *queue.Delivery) {
		handled.Add(1)
		if err := d.DeadLetter(ctx, "config does not parse:\nresources must be a list"); err != nil {
			t.Errorf("DeadLetter: %v", err)
		}
	})
	eventually(t, 10*time.Second, "the dead letter", func() bool {
		n, err := e.q.DLQSize(e.ctx)
		return err == nil && n == 1
	})
	m := e.dlq()[0]
	if string(m.Data) != string(want) {
		t.Errorf("DLQ payload %s, want %s", m.Data, want)
	}
	if got := m.Header.Get(queue.HeaderDLQReason); got != "config does not parse: resources must be a list" {
		t.Errorf("reason %q", got)
	}
	if m.Subject != "configsync-dlq.acme.gh" || m.Header.Get(queue.HeaderDLQSubject) != ev.Subject() {
		t.Errorf("DLQ subject %s, original subject header %q", m.Subject, m.Header.Get(queue.HeaderDLQSubject))
	}
	time.Sleep(2500 * time.Millisecond)
	if n := handled.Load(); n != 1 {
		t.Errorf("handled %d times, want 1", n)
	}
	if n := e.streamInfo(queue.CommandsStream).State.Msgs; n != 0 {
		t.Errorf("commands stream holds %d", n)
	}
}

func TestUnsettledEventsAreRetriedThenDeadLettered(t *testing.T) {
	e := newEnv(t, queue.Options{MaxDeliver: 2})
	e.publish(queue.TypeResyncRequested, "acme", "gh", queue.ResyncRequested{Reason: "r"})
	var seen []uint64
	var mu sync.Mutex
	e.consume(e.q, func(_ context.Context, d *queue.Delivery) {
		mu.Lock()
		seen = append(seen, d.NumDelivered)
		mu.Unlock()
		if d.NumDelivered == 2 {
			panic("handler bug")
		}
		// Delivery 1 returns without settling.
	})
	eventually(t, 15*time.Second, "the dead letter", func() bool {
		n, err := e.q.DLQSize(e.ctx)
		return err == nil && n == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != 1 || seen[1] != 2 {
		t.Errorf("handler saw deliveries %v, want [1 2]", seen)
	}
	if r := e.dlq()[0].Header.Get(queue.HeaderDLQReason); !strings.Contains(r, "not completed after 2 deliveries") {
		t.Errorf("reason %q", r)
	}
	var panicked bool
	for _, err := range e.errs.all() {
		panicked = panicked || strings.Contains(err.Error(), "handler panicked")
	}
	if !panicked {
		t.Errorf("the panic was not reported: %v", e.errs.all())
	}
}

func TestConsumeStopsCleanly(t *testing.T) {
	t.Run("in-flight handlers finish and ack", func(t *testing.T) {
		e := newEnv(t, queue.Options{})
		e.publish(queue.TypeResyncRequested, "acme", "gh", queue.ResyncRequested{Reason: "r"})
		started, release := make(chan struct{}), make(chan struct{})
		var ackErr error
		stop := e.consume(e.q, func(ctx context.Context, d *queue.Delivery) {
			close(started)
			<-release
			ackErr = ctx.Err()
			if ackErr == nil {
				ackErr = d.Ack()
			}
		})
		<-started
		stopped := make(chan error, 1)
		go func() { stopped <- stop() }()
		select {
		case err := <-stopped:
			t.Fatalf("Consume returned (%v) while a handler was running", err)
		case <-time.After(300 * time.Millisecond):
		}
		close(release)
		if err := <-stopped; err != nil {
			t.Fatalf("Consume: %v", err)
		}
		if ackErr != nil {
			t.Fatalf("the handler could not finish: %v", ackErr)
		}
		if n := e.streamInfo(queue.CommandsStream).State.Msgs; n != 0 {
			t.Fatalf("commands stream holds %d after the ack", n)
		}
	})
	t.Run("after the grace handlers are cancelled and the event goes on", func(t *testing.T) {
		e := newEnv(t, queue.Options{ShutdownGrace: 200 * time.Millisecond})
		ev := e.publish(queue.TypeResyncRequested, "acme", "gh", queue.ResyncRequested{Reason: "r"})
		started := make(chan struct{})
		stop := e.consume(e.q, func(ctx context.Context, d *queue.Delivery) {
			close(started)
			<-ctx.Done() // a long run that honours cancellation, leaving the event unsettled
		})
		<-started
		t0 := time.Now()
		if err := stop(); err != nil {
			t.Fatalf("Consume: %v", err)
		}
		if took := time.Since(t0); took < 200*time.Millisecond || took > 5*time.Second {
			t.Errorf("stopping took %s, want the 200ms grace", took)
		}
		// The unsettled event was nakked at once: another worker gets it now, not
		// after AckWait (30s).
		c := &collector{ack: true}
		e.consume(e.open(queue.Options{}), c.handle)
		eventually(t, 5*time.Second, "the redelivery", func() bool { return c.count() == 1 })
		if d := c.deliveries()[0]; d.Envelope.ID != ev.ID || d.NumDelivered != 2 {
			t.Errorf("redelivered %s as delivery %d", d.Envelope.ID, d.NumDelivered)
		}
	})
	t.Run("idle Consume stops within the pull wait", func(t *testing.T) {
		e := newEnv(t, queue.Options{})
		stop := e.consume(e.q, func(context.Context, *queue.Delivery) {})
		time.Sleep(100 * time.Millisecond)
		t0 := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(t0); took > 4*time.Second {
			t.Errorf("idle stop took %s", took)
		}
	})
}

func TestChangesReplayable(t *testing.T) {
	e := newEnv(t, queue.Options{})
	var changes []queue.Change
	for i := range 300 {
		op, entity := queue.OpCreated, json.RawMessage(fmt.Sprintf(`{"identifier":"e%d","blueprint":"service"}`, i))
		switch i % 10 {
		case 8:
			op = queue.OpUpdated
		case 9:
			op, entity = queue.OpDeleted, nil
		}
		changes = append(changes, queue.Change{
			ChangeID: fmt.Sprintf("c-%03d", i), Op: op, Blueprint: "service", Identifier: fmt.Sprintf("e%d", i), Entity: entity,
		})
	}
	if err := e.q.PublishChanges(e.ctx, "acme", changes); err != nil {
		t.Fatalf("PublishChanges: %v", err)
	}
	// A republish of the whole batch (after a failure, say) stores nothing new.
	if err := e.q.PublishChanges(e.ctx, "acme", changes); err != nil {
		t.Fatalf("PublishChanges again: %v", err)
	}
	if n := e.streamInfo(queue.ChangesStream).State.Msgs; n != 300 {
		t.Fatalf("changes stream holds %d, want 300", n)
	}
	// A reader that comes later replays everything from the start, in order.
	for reader := range 2 {
		oc, err := e.js.OrderedConsumer(e.ctx, queue.ChangesStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{queue.ChangesSubject("acme")},
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 300 {
			m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatalf("reader %d, change %d: %v", reader, i, err)
			}
			var c queue.Change
			if err := json.Unmarshal(m.Data(), &c); err != nil {
				t.Fatalf("change %d: %v", i, err)
			}
			if c.ChangeID != changes[i].ChangeID || c.Op != changes[i].Op || c.Identifier != changes[i].Identifier {
				t.Fatalf("reader %d, change %d: %+v, want %+v", reader, i, c, changes[i])
			}
			if c.Op == queue.OpDeleted && string(c.Entity) != "null" {
				t.Fatalf("delete change with entity %s", c.Entity)
			}
			if m.Headers().Get(jetstream.MsgIDHeader) != c.ChangeID {
				t.Fatalf("Nats-Msg-Id %q, want %q", m.Headers().Get(jetstream.MsgIDHeader), c.ChangeID)
			}
		}
	}
	if err := e.q.PublishChanges(e.ctx, "acme", []queue.Change{{ChangeID: "x", Op: "merge", Blueprint: "b", Identifier: "i"}}); err == nil {
		t.Error("PublishChanges accepted op merge")
	}
	if err := e.q.PublishChanges(e.ctx, "ACME", changes[:1]); err == nil {
		t.Error("PublishChanges accepted tenant ACME")
	}
}

func TestOpenIsIdempotent(t *testing.T) {
	e := newEnv(t, queue.Options{AckWait: 5 * time.Second, ChangesMaxAge: time.Hour})
	e.publish(queue.TypeResyncRequested, "acme", "gh", queue.ResyncRequested{Reason: "kept"})
	before := e.streamInfo(queue.CommandsStream)

	// Many workers starting together.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := queue.Open(e.ctx, e.js, queue.Options{AckWait: 5 * time.Second, ChangesMaxAge: time.Hour})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	after := e.streamInfo(queue.CommandsStream)
	if after.Created != before.Created || after.State.Msgs != 1 {
		t.Fatalf("Open recreated or emptied the stream: %v/%d -> %v/%d", before.Created, before.State.Msgs, after.Created, after.State.Msgs)
	}
	cfg := after.Config
	if cfg.Retention != jetstream.WorkQueuePolicy || cfg.Storage != jetstream.FileStorage || cfg.Duplicates != 2*time.Minute {
		t.Errorf("commands stream config: %+v", cfg)
	}
	ch := e.streamInfo(queue.ChangesStream).Config
	if ch.Retention != jetstream.LimitsPolicy || ch.MaxAge != time.Hour || ch.Duplicates != 5*time.Second {
		t.Errorf("changes stream config: %+v", ch)
	}
	ci := e.consumerInfo()
	if ci.Config.AckWait != 5*time.Second || ci.Config.AckPolicy != jetstream.AckExplicitPolicy ||
		ci.Config.MaxAckPending != queue.DefaultMaxAckPending || ci.Config.Durable != queue.WorkersConsumer {
		t.Errorf("consumer config: %+v", ci.Config)
	}

	// Open with new settings updates them in place.
	if _, err := queue.Open(e.ctx, e.js, queue.Options{AckWait: 10 * time.Second, ChangesMaxAge: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := e.consumerInfo().Config.AckWait; got != 10*time.Second {
		t.Errorf("AckWait after reopening: %s", got)
	}
	if got := e.streamInfo(queue.ChangesStream).Config.MaxAge; got != 2*time.Hour {
		t.Errorf("changes MaxAge after reopening: %s", got)
	}
	if n := e.streamInfo(queue.CommandsStream).State.Msgs; n != 1 {
		t.Errorf("commands stream holds %d after reopening, want 1", n)
	}
}

func TestOpenConcurrentlyOnAFreshServer(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		js := natstest.JetStream(t, srv) // each worker has its own connection
		wg.Go(func() {
			_, err := queue.Open(ctx, js, queue.Options{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Open on a fresh server: %v", err)
		}
	}
}

func TestOptionsAndPublishAreChecked(t *testing.T) {
	e := newEnv(t, queue.Options{MaxPayload: 2048})
	for _, o := range []queue.Options{
		{AckWait: 31 * time.Second}, {AckWait: time.Millisecond}, {MaxAckPending: -1},
		{MaxAckPending: 1_000_000}, {Concurrency: -1}, {MaxPayload: 10}, {Replicas: 7},
	} {
		if _, err := queue.Open(e.ctx, e.js, o); err == nil {
			t.Errorf("Open accepted %+v", o)
		}
	}
	big, err := queue.NewEnvelope(queue.TypeResources, "acme", "gh", queue.ResourcesData{
		Kind: "k", Upsert: []json.RawMessage{json.RawMessage(`{"blob":"` + strings.Repeat("x", 3000) + `"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.q.Publish(e.ctx, big); !errors.Is(err, queue.ErrInvalidEvent) || !strings.Contains(err.Error(), "limit") {
		t.Errorf("Publish of an oversized event: %v", err)
	}
	bad := queue.Envelope{ID: "x", Type: queue.TypeResources, Tenant: "acme", Integration: "gh", Time: time.Now(), Data: json.RawMessage(`{}`)}
	if err := e.q.Publish(e.ctx, bad); !errors.Is(err, queue.ErrInvalidEvent) || !strings.Contains(err.Error(), "kind") {
		t.Errorf("Publish of a resources event without kind: %v", err)
	}
	if n := e.streamInfo(queue.CommandsStream).State.Msgs; n != 0 {
		t.Errorf("refused events reached the stream: %d", n)
	}
}

func TestOversizedDeadLetterIsTruncated(t *testing.T) {
	// An event just under the server's max_payload, over the queue's 8 MiB bound:
	// with the DLQ headers added it no longer fits, so its head is kept.
	e := newEnv(t, queue.Options{AckWait: time.Second})
	payload := []byte(`{"id":"big","type":"resources","tenant":"acme","integration":"gh","time":"2025-03-01T12:00:00Z","data":{"kind":"k","upsert":[{"x":"`)
	payload = append(payload, strings.Repeat("x", natstest.MaxPayload-len(payload)-100)...)
	payload = append(payload, `"}]}}`...)
	if _, err := e.js.PublishMsg(e.ctx, &nats.Msg{Subject: "configsync.acme.gh.resources", Data: payload}); err != nil {
		t.Fatalf("publishing %d bytes: %v", len(payload), err)
	}
	var handled atomic.Int32
	e.consume(e.q, func(context.Context, *queue.Delivery) { handled.Add(1) })
	eventually(t, 20*time.Second, "the dead letter", func() bool {
		n, err := e.q.DLQSize(e.ctx)
		return err == nil && n == 1
	})
	m := e.dlq()[0]
	if got := m.Header.Get(queue.HeaderDLQTruncated); got != fmt.Sprint(len(payload)) {
		t.Errorf("truncated header %q, want %d", got, len(payload))
	}
	if len(m.Data) != 64<<10 || string(m.Data) != string(payload[:64<<10]) {
		t.Errorf("kept %d bytes, want the first %d", len(m.Data), 64<<10)
	}
	if r := m.Header.Get(queue.HeaderDLQReason); !strings.Contains(r, "over the 8388608-byte limit") {
		t.Errorf("reason %q", r)
	}
	if handled.Load() != 0 {
		t.Error("the handler saw the oversized event")
	}
}

func TestConsumeSurvivesServerRestart(t *testing.T) {
	e := newEnv(t, queue.Options{})
	c := &collector{ack: true}
	e.consume(e.q, c.handle)
	e.publish(queue.TypeResyncRequested, "acme", "before", queue.ResyncRequested{Reason: "r"})
	eventually(t, 10*time.Second, "the first event", func() bool { return c.count() == 1 })

	natstest.Restart(t, e.srv)
	// The producer retries until the restarted server has JetStream back.
	ev, err := queue.NewEnvelope(queue.TypeResyncRequested, "acme", "after", queue.ResyncRequested{Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a publish after the restart", func() bool {
		ctx, cancel := context.WithTimeout(e.ctx, time.Second)
		defer cancel()
		return e.q.Publish(ctx, ev) == nil
	})
	eventually(t, 20*time.Second, "the event published after the restart", func() bool { return c.count() == 2 })
	if got := c.deliveries()[1].Envelope.ID; got != ev.ID {
		t.Fatalf("second delivery %s, want %s", got, ev.ID)
	}
}

func TestConsumeRecreatesADeletedConsumer(t *testing.T) {
	e := newEnv(t, queue.Options{})
	c := &collector{ack: true}
	e.consume(e.q, c.handle)
	time.Sleep(100 * time.Millisecond) // let a pull be open when the consumer goes
	if err := e.js.DeleteConsumer(e.ctx, queue.CommandsStream, queue.WorkersConsumer); err != nil {
		t.Fatal(err)
	}
	ev := e.publish(queue.TypeResyncRequested, "acme", "gh", queue.ResyncRequested{Reason: "r"})
	eventually(t, 20*time.Second, "the event, through a recreated consumer", func() bool { return c.count() == 1 })
	if got := c.deliveries()[0].Envelope.ID; got != ev.ID {
		t.Fatalf("delivered %s, want %s", got, ev.ID)
	}
	if len(e.errs.all()) == 0 {
		t.Error("the lost consumer was not reported")
	}
	t.Logf("reported: %v", e.errs.all())
}

// TestPublishRawChanges: raw changes are stored byte for byte with their id as the
// Nats-Msg-Id, deduplicated on republish; a batch with an invalid change publishes
// nothing, and the error names the change and the tenant.
func TestPublishRawChanges(t *testing.T) {
	e := newEnv(t, queue.Options{})
	good := []queue.RawChange{
		{ChangeID: "0123456789abcdef0123456789abcdef", Data: []byte(`{"changeId":"0123456789abcdef0123456789abcdef","op":"created","blueprint":"b","identifier":"a\/<&>","entity":{"n":123456789012345678901234567890}}`)},
		{ChangeID: "c-2", Data: []byte(" \n{\"changeId\":\"c-2\",\"op\":\"deleted\",\"blueprint\":\"b\",\"identifier\":\"ü\",\"entity\":null}")},
	}
	for range 2 { // the second time, as duplicates
		if stored, err := e.q.PublishRawChanges(e.ctx, "acme", good); err != nil || stored != len(good) {
			t.Fatalf("PublishRawChanges: %d stored, %v", stored, err)
		}
	}
	if n := e.streamInfo(queue.ChangesStream).State.Msgs; n != 2 {
		t.Fatalf("changes stream holds %d, want 2", n)
	}
	oc, err := e.js.OrderedConsumer(e.ctx, queue.ChangesStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{queue.ChangesSubject("acme")}})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range good {
		m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		if string(m.Data()) != string(c.Data) || m.Headers().Get(jetstream.MsgIDHeader) != c.ChangeID {
			t.Errorf("change %d: stored %q with id %q, want %q with id %q", i, m.Data(), m.Headers().Get(jetstream.MsgIDHeader), c.Data, c.ChangeID)
		}
		if got := m.Headers().Get(jetstream.ExpectedStreamHeader); got != queue.ChangesStream {
			t.Errorf("change %d: published expecting stream %q, want %q", i, got, queue.ChangesStream)
		}
	}

	bad := []struct {
		name string
		c    queue.RawChange
		has  string
	}{
		{"empty id", queue.RawChange{ChangeID: "", Data: []byte(`{}`)}, "change id"},
		{"id with a space", queue.RawChange{ChangeID: "a b", Data: []byte(`{}`)}, `"a b"`},
		{"id too long", queue.RawChange{ChangeID: strings.Repeat("a", 129), Data: []byte(`{}`)}, "change id"},
		{"no data", queue.RawChange{ChangeID: "x1"}, "not a JSON object"},
		{"only space", queue.RawChange{ChangeID: "x1", Data: []byte("  ")}, "not a JSON object"},
		{"an array", queue.RawChange{ChangeID: "x1", Data: []byte(`[{}]`)}, "not a JSON object"},
		{"a string", queue.RawChange{ChangeID: "x1", Data: []byte(`"{}"`)}, "not a JSON object"},
		{"null", queue.RawChange{ChangeID: "x1", Data: []byte(`null`)}, "not a JSON object"},
		{"cut short", queue.RawChange{ChangeID: "x1", Data: []byte(`{"changeId":"x1","entity":{`)}, "invalid change data"},
		{"trailing data", queue.RawChange{ChangeID: "x1", Data: []byte(`{"changeId":"x1"} {}`)}, "invalid change data"},
		{"duplicate names", queue.RawChange{ChangeID: "x1", Data: []byte(`{"changeId":"x1","changeId":"x2"}`)}, "invalid change data"},
		{"invalid UTF-8", queue.RawChange{ChangeID: "x1", Data: []byte("{\"identifier\":\"a\xffb\"}")}, "invalid change data"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			ok := queue.RawChange{ChangeID: "ok-" + strings.ReplaceAll(tc.name, " ", "-"), Data: []byte(`{"op":"created"}`)}
			stored, err := e.q.PublishRawChanges(e.ctx, "acme", []queue.RawChange{ok, tc.c})
			if stored != 0 {
				t.Errorf("%d stored, want 0", stored)
			}
			if err == nil || !strings.Contains(err.Error(), tc.has) || !strings.Contains(err.Error(), `tenant "acme"`) {
				t.Fatalf("error %v; want one naming the tenant and %q", err, tc.has)
			}
			if tc.c.ChangeID != "" && !strings.Contains(err.Error(), tc.c.ChangeID[:min(len(tc.c.ChangeID), 8)]) {
				t.Errorf("error %v does not name change %q", err, tc.c.ChangeID)
			}
			if n := e.streamInfo(queue.ChangesStream).State.Msgs; n != 2 {
				t.Errorf("a batch with an invalid change stored something: %d messages, want 2", n)
			}
		})
	}
	if _, err := e.q.PublishRawChanges(e.ctx, "ACME", good); err == nil {
		t.Error("PublishRawChanges accepted tenant ACME")
	}
}

// TestPublishRawChangesStoredPrefix: when one change of a batch cannot be published
// (here, larger than the server's max payload), PublishRawChanges says how many before
// it the stream stored, so that the caller clears those and republishes the rest.
func TestPublishRawChangesStoredPrefix(t *testing.T) {
	e := newEnv(t, queue.Options{})
	change := func(id string, size int) queue.RawChange {
		return queue.RawChange{ChangeID: id, Data: []byte(`{"changeId":"` + id + `","pad":"` + strings.Repeat("x", size) + `"}`)}
	}
	batch := []queue.RawChange{change("p-1", 10), change("p-2", 10), change("p-3", 10), change("p-big", natstest.MaxPayload+1), change("p-5", 10)}
	stored, err := e.q.PublishRawChanges(e.ctx, "acme", batch)
	if err == nil || !strings.Contains(err.Error(), "p-big") {
		t.Fatalf("error %v, want one naming change p-big", err)
	}
	if stored != 3 {
		t.Errorf("%d stored, want 3", stored)
	}
	if n := e.streamInfo(queue.ChangesStream).State.Msgs; n != 3 {
		t.Errorf("changes stream holds %d, want 3", n)
	}
}

// BenchmarkRawChangeCheck measures the validity checks PublishRawChanges makes of
// every change, on a typical 1.3 KB change: rawjson.UniqueValue, and
// jsontext.Value.IsValid, which decides when rawjson does not accept a change.
func BenchmarkRawChangeCheck(b *testing.B) {
	entity := map[string]any{"identifier": "repo-00042", "blueprint": "githubRepository", "title": "Repository <42>",
		"team": []string{"platform", "payments"}, "createdAt": "2025-03-01T12:00:00.123Z", "updatedAt": "2025-03-01T12:00:00.123Z",
		"integration": "gh", "kind": "repository",
		"properties": map[string]any{"stars": 42, "big": json.Number("123456789012345678901234567890"),
			"desc":   strings.Repeat("A service with a fairly long description & \"quotes\" </script>. ", 8),
			"topics": []any{"go", "api", "tier-1", 3, 4.5}, "archived": false,
			"meta": map[string]any{"url": "https://github.com/acme/repo", "owners": []any{"a", "b"}, "depth": map[string]any{"x": 1}}},
		"relations": map[string]any{"organization": "acme", "languages": []any{"go", "sql"}, "mirror": nil}}
	ent, _ := json.Marshal(entity)
	data, _ := json.Marshal(queue.Change{ChangeID: "0123456789abcdef0123456789abcdef", Op: "created", Blueprint: "githubRepository", Identifier: "repo-00042", Entity: ent})
	b.Run("UniqueValue", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if end, ok := rawjson.UniqueValue(data, 0); !ok || end != len(data) {
				b.Fatal("not accepted")
			}
		}
	})
	b.Run("IsValid", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if !jsontext.Value(data).IsValid() {
				b.Fatal("invalid")
			}
		}
	})
	// Without the duplicate-name check: the part of IsValid's cost that is bookkeeping.
	b.Run("AllowDuplicateNames", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if !jsontext.Value(data).IsValid(jsontext.AllowDuplicateNames(true)) {
				b.Fatal("invalid")
			}
		}
	})
}
