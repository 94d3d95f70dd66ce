package worker

// Fault tests (issue #6): NATS restarted in the middle of a run while events are
// published, Redis unreachable for a while, and source failures the sync tests do not
// cover. Each ends with the catalog exactly as expected.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/lease"
	"github.com/configsync/configsync/natstest"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/redistest"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/secrets"
	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// waitUntil polls cond until it holds or the (generous) deadline passes.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// prefixedSlowConfig maps the slow source's items to services named "<id>-sN", with a
// lang that says which config version wrote them.
func prefixedSlowConfig(id, lang string) string {
	return fmt.Sprintf(`{"resources": [{"kind": "service", "selector": {"query": "true"},
  "port": {"entity": {"mappings": {"identifier": "\"%s-\" + .name", "blueprint": "\"service\"", "properties": {"lang": "\"%s\""}, "relations": {"team": ".team"}}}}}]}`, id, lang)
}

// publishRetrying publishes ev until NATS takes it, with the same event id each time:
// the Nats-Msg-Id dedup stores it once however many attempts reached the server.
func publishRetrying(q *queue.Queue, ev queue.Envelope, within time.Duration) (attempts int, err error) {
	deadline := time.Now().Add(within)
	for {
		attempts++
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = q.Publish(ctx, ev)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return attempts, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// commandsLeft is how many events CONFIGSYNC_COMMANDS still holds (unacked).
func (e *env) commandsLeft() uint64 {
	st, err := e.js.Stream(context.Background(), queue.CommandsStream)
	if err != nil {
		return 1 << 62
	}
	info, err := st.Info(context.Background())
	if err != nil {
		return 1 << 62
	}
	return info.State.Msgs
}

// checkChanges checks the change stream against the catalog: what we assert about
// "no visible effect applied twice" under at-least-once delivery.
//
//   - The same changeId may appear more than once only as a republish of one change
//     (at least once; consumers deduplicate by changeId). It is counted and reported,
//     and all copies must be identical.
//   - After deduplicating by changeId, each entity's first change is "created", no
//     change repeats the entity content of the one before it (that would be one write
//     applied twice, visible to consumers), there is no "deleted" (nothing was to be
//     deleted), and the last change carries exactly what the catalog holds.
//   - Every entity of the catalog has its changes (nothing lost).
func checkChanges(t *testing.T, e *env, blueprints ...string) (total, dups int) {
	t.Helper()
	all := e.changes()
	seen := map[string]queue.Change{}
	type key struct{ bp, id string }
	history := map[key][]queue.Change{}
	for _, c := range all {
		if prev, ok := seen[c.ChangeID]; ok {
			dups++
			if prev.Op != c.Op || prev.Identifier != c.Identifier || string(prev.Entity) != string(c.Entity) {
				t.Errorf("change id %s published twice with different content:\n %+v\n %+v", c.ChangeID, prev, c)
			}
			continue
		}
		seen[c.ChangeID] = c
		k := key{c.Blueprint, c.Identifier}
		history[k] = append(history[k], c)
	}
	for k, h := range history {
		if h[0].Op != "created" {
			t.Errorf("%s/%s: first change is %q, not created", k.bp, k.id, h[0].Op)
		}
		for i := 1; i < len(h); i++ {
			if h[i].Op == "deleted" {
				t.Errorf("%s/%s: deleted, though nothing was to be deleted", k.bp, k.id)
			}
			if sameEntity(t, h[i-1].Entity, h[i].Entity) {
				t.Errorf("%s/%s: change %d (%s) repeats the content of the one before: one write applied twice\n %s", k.bp, k.id, i, h[i].Op, h[i].Entity)
			}
		}
	}
	for _, bp := range blueprints {
		list, _, err := e.cat.List(context.Background(), e.tenant, bp, "", 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			continue
		}
		for _, ent := range list {
			h := history[key{bp, ent.Identifier}]
			if len(h) == 0 {
				t.Errorf("%s/%s is in the catalog but no change event says so", bp, ent.Identifier)
				continue
			}
			var last catalog.Entity
			if err := json.Unmarshal(h[len(h)-1].Entity, &last); err != nil {
				t.Fatalf("%s/%s: last change's entity: %v", bp, ent.Identifier, err)
			}
			got, _ := json.Marshal([]any{last.Properties, last.Relations})
			want, _ := json.Marshal([]any{ent.Properties, ent.Relations})
			if string(got) != string(want) {
				t.Errorf("%s/%s: last change carries %s, the catalog holds %s", bp, ent.Identifier, got, want)
			}
		}
	}
	for k := range history {
		if !slices.Contains(blueprints, k.bp) {
			t.Errorf("a change for %s/%s, a blueprint nothing should have written", k.bp, k.id)
		}
	}
	return len(all), dups
}

// sameEntity compares the content (properties, relations, title, owner-independent)
// of two change payloads.
func sameEntity(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y catalog.Entity
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal([]any{x.Title, x.Properties, x.Relations, x.Team, x.Icon})
	ya, _ := json.Marshal([]any{y.Title, y.Properties, y.Relations, y.Team, y.Icon})
	return string(xa) == string(ya)
}

// TestFaultNATSRestartDuringRunAndPublishing: two workers sync three slow
// integrations while a publisher sends config patches (stored as versions first and
// announced by version, as the API does), resyncs, and live resource events for a
// fourth integration; in the middle of a run NATS is shut down, stays away for a
// while, and comes back on the same port and store. Publishers retry with the same
// event id. In the end: every integration is on its newest config, its last run
// succeeded with it, no run is left running, the commands stream is empty, nothing
// was dead-lettered, the catalog holds exactly the expected entities, and the change
// stream holds no write twice (see checkChanges).
func TestFaultNATSRestartDuringRunAndPublishing(t *testing.T) {
	start := time.Now()
	e := newEnv(t)
	e.putBlueprints()
	ctx := context.Background()
	ids := []string{"alpha", "beta", "gamma"}
	const pages, rounds, liveEvents = 8, 6, 24
	for _, id := range ids {
		slowIntegration(e, id, pages, 150) // 1.2 s of fetching per run, more under -race
		if _, err := e.ints.AddConfig(ctx, e.tenant, id, []byte(prefixedSlowConfig(id, "v1"))); err != nil {
			t.Fatal(err)
		}
	}
	// "live" is only ever written by live events: it never runs.
	slowIntegration(e, "live", 1, 1)
	if _, err := e.ints.AddConfig(ctx, e.tenant, "live", []byte(prefixedSlowConfig("live", "live"))); err != nil {
		t.Fatal(err)
	}
	e.startWorker("w1")
	e.startWorker("w2")

	// The first round starts runs; the rest are published around the restart.
	var published, retried atomic.Int64
	var pubErr atomic.Value
	publish := func(ev queue.Envelope) {
		n, err := publishRetrying(e.q, ev, 90*time.Second)
		if err != nil {
			pubErr.Store(fmt.Errorf("event %s (%s) not published after %d attempts: %w", ev.ID, ev.Type, n, err))
			return
		}
		published.Add(1)
		if n > 1 {
			retried.Add(1)
		}
	}
	newEv := func(typ, id string, data any) queue.Envelope {
		ev, err := queue.NewEnvelope(typ, e.tenant, id, data)
		if err != nil {
			t.Error(err)
		}
		return ev
	}
	for _, id := range ids {
		publish(newEv(queue.TypeConfigPatched, id, queue.ConfigPatched{ConfigVersion: 1}))
	}
	// The publisher: round 2 before the outage; rounds 3 and 4 while NATS is down
	// (each event from its own goroutine, retrying until NATS is back); rounds 5 and
	// 6 after the restart.
	var duringOutage atomic.Int64
	down, restarted := make(chan struct{}), make(chan struct{})
	pubReady, pubDone := make(chan struct{}), make(chan struct{})
	var liveSent atomic.Int64
	go func() {
		defer close(pubDone)
		var inOutage sync.WaitGroup
		for r := 2; r <= rounds; r++ {
			send := publish
			switch r {
			case 3:
				close(pubReady)
				<-down
				send = func(ev queue.Envelope) {
					duringOutage.Add(1)
					inOutage.Go(func() { publish(ev) })
				}
			case 5:
				<-restarted
			}
			for _, id := range ids {
				// The version is stored before it is announced (Redis is up), as the
				// API's PATCH does.
				v, err := e.ints.AddConfig(ctx, e.tenant, id, []byte(prefixedSlowConfig(id, fmt.Sprintf("v%d", r))))
				if err != nil {
					pubErr.Store(err)
					return
				}
				send(newEv(queue.TypeConfigPatched, id, queue.ConfigPatched{ConfigVersion: v}))
				send(newEv(queue.TypeResyncRequested, id, queue.ResyncRequested{Reason: "fault test"}))
			}
			for range liveEvents / (rounds - 1) {
				item := json.RawMessage(fmt.Sprintf(`{"name": "L%d", "team": "t"}`, liveSent.Add(1)-1))
				send(newEv(queue.TypeResources, "live", queue.ResourcesData{Kind: "service", Upsert: []json.RawMessage{item}}))
			}
			time.Sleep(200 * time.Millisecond)
		}
		inOutage.Wait()
	}()

	// Restart NATS in the middle of a run, with entities written and more to come.
	<-pubReady
	waitUntil(t, 60*time.Second, "a run in the middle", func() bool {
		for _, id := range ids {
			r, err := e.runs.Latest(ctx, e.tenant, id)
			if err == nil && r.Status == run.Running && r.Counts["service"] != nil && r.Counts["service"].Fetched >= 20 && r.Counts["service"].Fetched < pages*10-20 {
				return true
			}
		}
		return false
	})
	var midRun []string
	for _, id := range ids {
		if r, err := e.runs.Latest(ctx, e.tenant, id); err == nil && r.Status == run.Running {
			midRun = append(midRun, fmt.Sprintf("%s v%d fetched %d", id, r.ConfigVersion, r.Counts["service"].Fetched))
		}
	}
	downAt := time.Now()
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	close(down)
	time.Sleep(8 * time.Second) // away for a while (longer than AckWait and a publish's time-out): publishes, pulls, heartbeats and acks fail meanwhile
	e.ns = natstest.Restart(t, e.ns)
	outageLen := time.Since(downAt)
	close(restarted)
	t.Logf("NATS down %v in the middle of runs %v", outageLen.Round(time.Millisecond), midRun)

	select {
	case <-pubDone:
	case <-time.After(3 * time.Minute):
		t.Fatal("the publisher did not finish")
	}
	if err, _ := pubErr.Load().(error); err != nil {
		t.Fatal(err)
	}

	// Everything settles: every event acked, every integration's last run on its
	// newest version, no outbox leftovers.
	waitUntil(t, 3*time.Minute, "every event processed and every integration on its newest config", func() bool {
		if e.commandsLeft() != 0 {
			return false
		}
		for _, id := range ids {
			r, err := e.runs.Latest(ctx, e.tenant, id)
			if err != nil || !r.Status.Done() || r.ConfigVersion != rounds {
				return false
			}
		}
		pending, err := e.cat.PendingChanges(ctx, e.tenant, 10)
		return err == nil && len(pending) == 0
	})
	if n, err := e.q.DLQSize(ctx); err != nil || n != 0 {
		t.Fatalf("dead letters: %d %v: %q", n, err, e.dlqReasons())
	}
	// Every event was stored exactly once, the retried ones included: the stream's
	// last sequence counts every message it ever stored.
	st, err := e.js.Stream(ctx, queue.CommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(published.Load()); info.State.LastSeq != want {
		t.Errorf("the commands stream stored %d messages for %d events: the retries were not deduplicated", info.State.LastSeq, want)
	}
	runsTotal := 0
	for _, id := range ids {
		in, err := e.ints.Get(ctx, e.tenant, id)
		if err != nil || in.ConfigVersion != rounds {
			t.Fatalf("%s: config version %d, want %d (%v)", id, in.ConfigVersion, rounds, err)
		}
		recs, _, err := e.runs.List(ctx, e.tenant, id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		runsTotal += len(recs)
		if recs[0].Status != run.Succeeded || recs[0].ConfigVersion != rounds {
			t.Errorf("%s: newest run %s v%d %s", id, recs[0].Status, recs[0].ConfigVersion, recs[0].Message)
		}
		for _, r := range recs {
			switch r.Status {
			case run.Running, run.Queued:
				t.Errorf("%s: run %s left %s", id, r.ID, r.Status)
			case run.Succeeded, run.Superseded:
			default:
				// A run the outage broke (its lease or writes were fine, but it may
				// have been cut short) is retried; report it.
				t.Logf("%s: run %s v%d %s: %s", id, r.ID, r.ConfigVersion, r.Status, r.Message)
			}
		}
	}

	// The catalog: every slow integration's 80 services on the newest config, the 24
	// live-only services, the barebones team, and nothing else.
	var want []string
	for _, id := range ids {
		for i := range pages * 10 {
			want = append(want, fmt.Sprintf(`%s-s%d %s {"lang":"v%d"} {"team":"t"}`, id, i, id, rounds))
		}
	}
	for i := range int(liveSent.Load()) {
		want = append(want, fmt.Sprintf(`live-L%d live {"lang":"live"} {"team":"t"}`, i))
	}
	sort.Strings(want)
	e.wantEntities("service", want...)
	e.wantEntities("team", `t - {} {}`)
	e.wantEntities("database")
	total, dups := checkChanges(t, e, "service", "team")
	t.Logf("published %d events (%d during the %v outage, %d needed a retry), %d runs, %d change events (%d republished ids), %d services; took %v",
		published.Load(), duringOutage.Load(), outageLen.Round(time.Millisecond), retried.Load(), runsTotal, total, dups, len(want), time.Since(start).Round(time.Millisecond))
}

// newEnvWithRedis is newEnv with the stores on rdb (e.g. a client through a
// redistest.Proxy) under the test's prefix; keys are cleaned up by the direct client.
func newEnvWithRedis(t *testing.T, rdb redis.UniversalClient) *env {
	t.Helper()
	e := newEnv(t)
	e.rdb = rdb
	key, _ := secrets.GenerateKey()
	kr, err := secrets.ParseKeyring(key, "")
	if err != nil {
		t.Fatal(err)
	}
	e.ints = integration.NewStore(rdb, e.prefix, kr)
	e.runs = run.NewStore(rdb, e.prefix)
	e.cat = catalog.New(rdb, e.prefix, nil)
	e.leases = lease.New(rdb, e.prefix, 2*time.Second)
	return e
}

// proxiedClient connects to Redis through a new proxy, with short timeouts so that an
// outage is noticed quickly.
func proxiedClient(t *testing.T) (*redistest.Proxy, redis.UniversalClient) {
	t.Helper()
	opts, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatal(err)
	}
	p := redistest.NewProxy(t, opts.Addr)
	opts.Addr = p.Addr()
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = time.Second, time.Second, time.Second
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return p, rdb
}

// TestFaultRedisOutage: Redis goes away in the middle of a run, events are published
// during the outage, then Redis comes back. While it is away the worker acks nothing
// and backs off (the events wait in the stream); after it, the interrupted run is
// marked lost and redone, the events are processed, and the catalog is as expected.
func TestFaultRedisOutage(t *testing.T) {
	start := time.Now()
	proxy, prdb := proxiedClient(t)
	e := newEnvWithRedis(t, prdb)
	// A direct client (not through the proxy) to look at Redis during the outage.
	direct, _ := redistest.Client(t)
	dcat := catalog.New(direct, e.prefix, nil)
	druns := run.NewStore(direct, e.prefix)
	ctx := context.Background()
	e.putBlueprints()
	slowIntegration(e, "slow", 12, 150)
	// "live" is written only by live events: it never runs.
	slowIntegration(e, "live", 1, 1)
	if _, err := e.ints.AddConfig(ctx, e.tenant, "live", []byte(prefixedSlowConfig("live", "live"))); err != nil {
		t.Fatal(err)
	}
	e.seedTeamsAndServices()
	e.createIntegration("inv")

	core, logs := observer.New(zapcore.WarnLevel)
	deps := e.deps()
	deps.Log = zap.New(zapcore.NewTee(zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Core(), core)).With(zap.String("worker", "w1"))
	w := New(Config{ID: "w1", LeaseTTL: 2 * time.Second, RetryInitial: 100 * time.Millisecond, RetryMax: time.Second, Heartbeat: 500 * time.Millisecond, BatchSize: 40}, deps)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(wctx) }()
	t.Cleanup(func() { cancel(); <-done })

	e.patch("slow", prefixedSlowConfig("slow", "v1"))
	var first *run.Record
	waitUntil(t, 60*time.Second, "the run in the middle", func() bool {
		r, err := druns.Latest(ctx, e.tenant, "slow")
		if err == nil && r.Status == run.Running && r.Counts["service"] != nil && r.Counts["service"].Fetched >= 30 {
			first = r
			return true
		}
		return false
	})

	proxy.Refuse()
	down := time.Now()
	// Events published while Redis is away: a patch of "inv" (its config carried
	// inline, stored by the worker when Redis is back) and a live event.
	e.patch("inv", serviceConfig(false, true, 0.9))
	item := json.RawMessage(`{"name": "L0", "team": "t"}`)
	e.live("live", queue.ResourcesData{Kind: "service", Upsert: []json.RawMessage{item}})
	const outageFor = 6 * time.Second
	time.Sleep(outageFor)
	// Nothing was acked while Redis was away: the two new events and the
	// interrupted run's event are still in the stream.
	if n := e.commandsLeft(); n != 3 {
		t.Errorf("%d events in the stream at the end of the outage, want 3 (none acked)", n)
	}
	failedAttempts := 0
	var longest time.Duration
	for _, le := range logs.All() {
		if le.Message == "event failed; retrying" {
			failedAttempts++
			if d, ok := le.ContextMap()["in"].(time.Duration); ok {
				longest = max(longest, d)
			}
		}
	}
	// It backs off rather than spin: with RetryInitial 100 ms (jitter 20%) and no
	// attempt count while Redis is away, each of the 3 events is tried at most about
	// every 80 ms (the handler's own failing Redis calls slow it further).
	if limit := 3*int(time.Since(down)/(80*time.Millisecond)) + 6; failedAttempts == 0 || failedAttempts > limit {
		t.Errorf("%d failed attempts while Redis was away, want 1..%d", failedAttempts, limit)
	}
	// And the back-off grows with the deliveries, towards RetryMax (1 s), though the
	// attempt count in Redis cannot be read.
	if longest < 500*time.Millisecond {
		t.Errorf("longest retry delay during the outage %v, want it grown past 500ms towards RetryMax", longest)
	}
	t.Logf("%d failed attempts during the outage, longest retry delay %v", failedAttempts, longest)
	proxy.Restore()
	outage := time.Since(down)
	restored := time.Now()

	waitUntil(t, 2*time.Minute, "every event processed after the outage", func() bool {
		if e.commandsLeft() != 0 {
			return false
		}
		a, err1 := druns.Latest(ctx, e.tenant, "slow")
		b, err2 := druns.Latest(ctx, e.tenant, "inv")
		return err1 == nil && err2 == nil && a.Status == run.Succeeded && b.Status == run.Succeeded && a.ID != first.ID
	})
	recovered := time.Since(restored)
	lost, err := druns.Get(ctx, e.tenant, first.ID)
	if err != nil || lost.Status == run.Running || lost.Status == run.Succeeded {
		t.Fatalf("the interrupted run: %+v %v", lost, err)
	}
	// Through the direct client: the expected catalog.
	var want []string
	for i := range 120 {
		want = append(want, fmt.Sprintf(`slow-s%d slow {"lang":"v1"} {"team":"t"}`, i))
	}
	want = append(want, `checkout inv {"lang":"Go","tier":1} {"db":"pg-main","team":"payments"}`,
		`indexer inv {"lang":"Python","tier":2} {"db":null,"team":"search"}`,
		`live-L0 live {"lang":"live"} {"team":"t"}`)
	sort.Strings(want)
	e.wantEntities("service", want...)
	e.wantEntities("team", `payments inv {"size":3} {}`, `search inv {"size":2} {}`, `t - {} {}`)
	e.wantEntities("database", `pg-main - {} {}`)
	if n, err := e.q.DLQSize(ctx); err != nil || n != 0 {
		t.Fatalf("dead letters: %d %v %q", n, err, e.dlqReasons())
	}
	if pending, err := dcat.PendingChanges(ctx, e.tenant, 10); err != nil {
		t.Fatal(err)
	} else if len(pending) > 0 {
		waitUntil(t, 60*time.Second, "the outbox drained", func() bool {
			p, err := dcat.PendingChanges(ctx, e.tenant, 10)
			return err == nil && len(p) == 0
		})
	}
	t.Logf("Redis away %v mid-run (run %s had fetched %d); %d failed attempts logged while away (backoff %v..%v); all done %v after restore (interrupted run: %s %q); took %v",
		outage.Round(time.Millisecond), first.ID, first.Counts["service"].Fetched, failedAttempts, 100*time.Millisecond, time.Second,
		recovered.Round(time.Millisecond), lost.Status, lost.Message, time.Since(start).Round(time.Millisecond))
}

// TestFaultSourceFailures adds the source failures TestNoDeletionOnIncompleteData does
// not cover (it has: a file source failing midway on a broken record, and the
// deletion threshold on an emptied source). Here, over the http source: a page k of n
// answering 500, a page that never answers (time-out), a page that is not JSON, the
// listing's owner gone (404), and an empty list where there were many (threshold). Each
// run is partial, deletes nothing, and the catalog is the one before.
func TestFaultSourceFailures(t *testing.T) {
	const total, perPage = 60, 20 // 3 pages
	items := func(from, to int) []obj {
		var out []obj
		for i := from; i < to; i++ {
			out = append(out, obj{"name": fmt.Sprintf("svc%02d", i), "lang": "Go", "tier": 1, "team": "payments"})
		}
		return out
	}
	tests := []struct {
		name string
		// page answers page p (1-based) of the second run; the first run always
		// answers the whole list.
		page    func(w http.ResponseWriter, r *http.Request, p int)
		message string
	}{
		{"page 2 of 3 answers 500", func(w http.ResponseWriter, _ *http.Request, p int) {
			if p == 2 {
				http.Error(w, "boom", http.StatusInternalServerError)
				return
			}
			writePage(w, items((p-1)*perPage, min(p*perPage, total-1))) // one item gone
		}, "not every kind was fetched whole: nothing was deleted"},
		{"page 3 of 3 times out", func(w http.ResponseWriter, r *http.Request, p int) {
			if p == 3 {
				select {
				case <-r.Context().Done():
				case <-time.After(30 * time.Second):
				}
				return
			}
			writePage(w, items((p-1)*perPage, p*perPage))
		}, "not every kind was fetched whole: nothing was deleted"},
		{"page 2 of 3 is not JSON", func(w http.ResponseWriter, _ *http.Request, p int) {
			if p == 2 {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`[{"name": "svc20", "lang": "Go"`))
				return
			}
			writePage(w, items((p-1)*perPage, p*perPage))
		}, "not every kind was fetched whole: nothing was deleted"},
		{"listing gone: 404", func(w http.ResponseWriter, _ *http.Request, _ int) {
			http.Error(w, "not found", http.StatusNotFound)
		}, "not every kind was fetched whole: nothing was deleted"},
		{"empty list where 60 were", func(w http.ResponseWriter, _ *http.Request, _ int) {
			writePage(w, []obj{})
		}, "60 of 60 owned entities are stale, more than entityDeletionThreshold 0.5: nothing was deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			var second atomic.Bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				p := 1
				fmt.Sscan(r.URL.Query().Get("page"), &p)
				if !second.Load() {
					writePage(w, items((p-1)*perPage, min(p*perPage, total)))
					return
				}
				tt.page(w, r, p)
			}))
			t.Cleanup(srv.Close)
			e := newEnv(t)
			e.sources = source.NewRegistry(httpsource.Type(httpsource.Options{AllowPrivate: true, MaxRetries: -1}))
			e.putBlueprints()
			in := &integration.Integration{Tenant: e.tenant, ID: "api", DisplayName: "api", Type: "http",
				Parameters: map[string]any{"baseUrl": srv.URL, "timeout": 2}}
			if _, err := e.ints.Put(context.Background(), in, nil); err != nil {
				t.Fatal(err)
			}
			e.startWorker("w1")
			e.patch("api", httpConfig)
			r := e.waitRuns("api", 1)
			if r.Status != run.Succeeded || counts(r, "service").Upserted != total {
				t.Fatalf("first run: %s %+v %s %v", r.Status, counts(r, "service"), r.Message, r.Errors)
			}
			before := e.entities("service")
			second.Store(true)
			e.resync("api")
			r = e.waitRuns("api", 2)
			if r.Status != run.Partial || r.Message != tt.message {
				t.Fatalf("second run: %s %q, want partial %q (errors %v)", r.Status, r.Message, tt.message, r.Errors)
			}
			if c := counts(r, "service"); c.Deleted != 0 {
				t.Fatalf("deleted %d", c.Deleted)
			}
			if after := e.entities("service"); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Fatalf("the catalog changed:\n%v\n%v", before, after)
			}
			e.wantEntities("team", `payments - {} {}`)
			t.Logf("%s: run %s %q, errors %q; took %v", tt.name, r.Status, r.Message, r.Errors, time.Since(start).Round(time.Millisecond))
		})
	}
}

// httpConfig lists services from the http source, 20 a page.
const httpConfig = `{"entityDeletionThreshold": 0.5, "resources": [{"kind": "service",
  "selector": {"query": "true", "path": "/services", "pagination": {"type": "page", "pageSize": 20}},
  "port": {"entity": {"mappings": {"identifier": ".name", "blueprint": "\"service\"", "properties": {"lang": ".lang", "tier": ".tier"}, "relations": {"team": ".team"}}}}}]}`

func writePage(w http.ResponseWriter, items []obj) {
	if items == nil {
		items = []obj{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(items)
}
