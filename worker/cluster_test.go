package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/lease"
	"github.com/configsync/configsync/natstest"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/redistest"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/secrets"
	"github.com/configsync/configsync/source"
)

// newEnvOn is newEnv on the given NATS connection and Redis: a cluster of either.
// ns is the server the test regards as its own (env.ns); qo is the queue's options
// (newEnv's AckWait, MaxDeliver and ShutdownGrace are used where qo leaves them zero).
func newEnvOn(t *testing.T, ns *server.Server, js jetstream.JetStream, rdb redis.UniversalClient, prefix string, qo queue.Options) *env {
	t.Helper()
	e := &env{t: t, tenant: "acme", ns: ns, js: js, rdb: rdb, prefix: prefix}
	if qo.AckWait == 0 {
		qo.AckWait = 3 * time.Second
	}
	if qo.MaxDeliver == 0 {
		qo.MaxDeliver = -1
	}
	if qo.ShutdownGrace == 0 {
		qo.ShutdownGrace = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, js, qo)
	if err != nil {
		t.Fatal(err)
	}
	e.q = q
	key, _ := secrets.GenerateKey()
	kr, err := secrets.ParseKeyring(key, "")
	if err != nil {
		t.Fatal(err)
	}
	e.ints = integration.NewStore(rdb, prefix, kr)
	e.runs = run.NewStore(rdb, prefix)
	e.cat = catalog.New(rdb, prefix, nil)
	e.leases = lease.New(rdb, prefix, 2*time.Second)
	e.dir = t.TempDir()
	e.sources = source.NewRegistry(source.FileType([]string{e.dir}, source.WithPageSize(50)), slowType())
	return e
}

// TestClusterRedisSync syncs two tenants into a real three-master Redis Cluster: the
// multi-key scripts (entity, indexes, outbox, lease fencing) must run without a
// CROSSSLOT error, every key of a tenant must sit in the one slot of its hash tag,
// and the two tenants' slots are on different masters, so the test would also catch
// a key built without the tag.
func TestClusterRedisSync(t *testing.T) {
	ctx := context.Background()
	cc := redistest.Cluster(t)
	ns := natstest.Server(t)
	e := newEnvOn(t, ns, natstest.JetStream(t, ns), cc, "cscluster", queue.Options{})

	// A second tenant whose slot is on another master than acme's.
	masterOf := func(key string) string {
		m, err := cc.(*redis.ClusterClient).MasterForKey(ctx, key)
		if err != nil {
			t.Fatalf("master for %s: %v", key, err)
		}
		return m.Options().Addr
	}
	acmeMaster := masterOf("{acme}")
	other := ""
	for _, cand := range []string{"globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell", "cyberdyne"} {
		if masterOf("{"+cand+"}") != acmeMaster {
			other = cand
			break
		}
	}
	if other == "" {
		t.Fatal("every candidate tenant hashes to acme's master: the cluster's slots are not spread")
	}

	e.seedTeamsAndServices()
	e.startWorker("w1")
	for _, tenant := range []string{"acme", other} {
		e.tenant = tenant
		e.putBlueprints()
		e.createIntegration("inv")
		e.patch("inv", serviceConfig(false, true, 0.9))
	}
	for _, tenant := range []string{"acme", other} {
		e.tenant = tenant
		r := e.waitRuns("inv", 1)
		if r.Status != run.Succeeded || len(r.Errors) > 0 {
			t.Fatalf("%s: run 1: %s %v (a CROSSSLOT error would show here)", tenant, r.Status, r.Errors)
		}
		if c := counts(r, "service"); c != (run.Counts{Fetched: 3, Selected: 2, Upserted: 2}) {
			t.Errorf("%s: service counts: %+v", tenant, c)
		}
		if c := counts(r, "team"); c != (run.Counts{Fetched: 2, Selected: 2, Upserted: 2}) {
			t.Errorf("%s: team counts: %+v", tenant, c)
		}
		e.wantEntities("team", `payments inv {"size":3} {}`, `search inv {"size":2} {}`)
		e.wantEntities("service",
			`checkout inv {"lang":"Go","tier":1} {"db":"pg-main","team":"payments"}`,
			`indexer inv {"lang":"Python","tier":2} {"db":null,"team":"search"}`)
		e.wantEntities("database", `pg-main - {} {}`)
		waitFor(t, func() bool { return len(e.changes()) == 5 })
	}

	// A deletion (the stale-entity and reverse-index scripts) on acme only.
	e.tenant = "acme"
	e.writeJSON("services.json", []obj{{"name": "checkout", "lang": "Go", "tier": 1, "team": "payments", "db": "pg-main"}})
	e.resync("inv")
	r := e.waitRuns("inv", 2)
	if c := counts(r, "service"); r.Status != run.Succeeded || c.Deleted != 1 || c.Unchanged != 1 || len(r.Errors) > 0 {
		t.Fatalf("acme: run 2: %s %+v %v", r.Status, counts(r, "service"), r.Errors)
	}
	e.wantEntities("service", `checkout inv {"lang":"Go","tier":1} {"db":"pg-main","team":"payments"}`)
	e.tenant = other
	if n := len(e.entities("service")); n != 2 {
		t.Fatalf("%s: %d services after acme's deletion, want still 2", other, n)
	}

	// Every key, found on the masters themselves: one slot per tenant, its tag's.
	var mu sync.Mutex
	slotsOf := map[string]map[int64][]string{} // tenant -> slot -> keys
	mastersOf := map[string]map[string]bool{}  // tenant -> master addresses
	var untagged []string
	err := cc.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		iter := m.Scan(ctx, 0, e.prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			slot, err := m.ClusterKeySlot(ctx, key).Result()
			if err != nil {
				return fmt.Errorf("CLUSTER KEYSLOT %s: %w", key, err)
			}
			mu.Lock()
			open, close := strings.Index(key, "{"), strings.Index(key, "}")
			if open < 0 || close < open {
				untagged = append(untagged, key)
			} else {
				tenant := key[open+1 : close]
				if slotsOf[tenant] == nil {
					slotsOf[tenant], mastersOf[tenant] = map[int64][]string{}, map[string]bool{}
				}
				slotsOf[tenant][slot] = append(slotsOf[tenant][slot], key)
				mastersOf[tenant][m.Options().Addr] = true
			}
			mu.Unlock()
		}
		return iter.Err()
	})
	if err != nil {
		t.Fatalf("scanning the masters: %v", err)
	}
	sort.Strings(untagged)
	// The two keys documented as outside any tenant (integration.Store.TenantsKey and
	// the catalog's outbox tenants, gone while every outbox is empty); no others.
	for _, k := range untagged {
		if k != e.prefix+":outbox-tenants" && k != e.prefix+":tenants" {
			t.Errorf("key %q has no hash tag", k)
		}
	}
	if len(slotsOf) != 2 {
		t.Fatalf("keys of %d tenants found (%v), want acme and %s", len(slotsOf), mapKeys(slotsOf), other)
	}
	tenantSlot := map[string]int64{}
	for _, tenant := range []string{"acme", other} {
		slots := slotsOf[tenant]
		if len(slots) != 1 {
			t.Errorf("%s's keys are in %d slots, want 1: %v", tenant, len(slots), slots)
			continue
		}
		want, err := cc.ClusterKeySlot(ctx, "{"+tenant+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		for slot, keys := range slots {
			tenantSlot[tenant] = slot
			if slot != want {
				t.Errorf("%s's keys are in slot %d, want %d (the slot of {%s})", tenant, slot, want, tenant)
			}
			// entities, indexes, integration, config versions, run records, lease...
			if len(keys) < 10 {
				t.Errorf("only %d keys of %s: %q", len(keys), tenant, keys)
			}
		}
		if len(mastersOf[tenant]) != 1 {
			t.Errorf("%s's keys are on %d masters, want 1", tenant, len(mastersOf[tenant]))
		}
	}
	if tenantSlot["acme"] == tenantSlot[other] {
		t.Errorf("acme and %s share slot %d", other, tenantSlot["acme"])
	}
	if slices.Equal(mapKeys(mastersOf["acme"]), mapKeys(mastersOf[other])) {
		t.Errorf("acme and %s are on the same master %v", other, mapKeys(mastersOf["acme"]))
	}
	t.Logf("acme: slot %d on %v; %s: slot %d on %v", tenantSlot["acme"], mapKeys(mastersOf["acme"]), other, tenantSlot[other], mapKeys(mastersOf[other]))
}

// TestNATSClusterNodeStopped runs the worker on a three-node JetStream cluster with
// the streams replicated three times, and shuts down, in the middle of a run, the
// node that is both the worker's server and the commands stream's leader. The run
// must still end, the catalog must be exactly the source's items, and every change
// event must be in the changes stream, once.
func TestNATSClusterNodeStopped(t *testing.T) {
	ctx := context.Background()
	servers := natstest.Cluster(t, 3)

	// Create the streams (R3) from any node, then find the commands stream's leader.
	setup := natstest.JetStream(t, servers[0])
	if _, err := queue.Open(ctx, setup, queue.Options{Replicas: 3, AckWait: 3 * time.Second}); err != nil {
		t.Fatalf("opening the queue with 3 replicas: %v", err)
	}
	leader := -1
	waitFor(t, func() bool {
		for i, s := range servers {
			if s.JetStreamIsStreamLeader("$G", queue.CommandsStream) {
				leader = i
				return true
			}
		}
		return false
	})
	for _, name := range []string{queue.CommandsStream, queue.ChangesStream, queue.DLQStream} {
		st, err := setup.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 3 {
			t.Fatalf("stream %s has %d replicas, want 3", name, r)
		}
	}

	// The worker's connection: every server, the leader first and chosen.
	urls := []string{servers[leader].ClientURL()}
	for i, s := range servers {
		if i != leader {
			urls = append(urls, s.ClientURL())
		}
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name(t.Name()), nats.DontRandomize(),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if got := nc.ConnectedServerName(); got != servers[leader].Name() {
		t.Fatalf("connected to %s, want the stream leader %s", got, servers[leader].Name())
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rdb, prefix := redistest.Client(t)
	e := newEnvOn(t, servers[leader], js, rdb, prefix, queue.Options{Replicas: 3})
	e.putBlueprints()
	const pages = 30 // of 10 items, 100ms apart: 3s of fetching
	slowIntegration(e, "slow", pages, 100)
	e.startWorker("w1")
	e.patch("slow", slowConfig)

	waitFor(t, func() bool {
		r, err := e.runs.Latest(ctx, e.tenant, "slow")
		return err == nil && r.Status == run.Running && len(e.entities("service")) >= 50
	})
	first, err := e.runs.Latest(ctx, e.tenant, "slow")
	if err != nil {
		t.Fatal(err)
	}
	stopped := servers[leader]
	stoppedAt := time.Now()
	stopped.Shutdown()
	stopped.WaitForShutdown()
	t.Logf("stopped %s (the commands stream's leader and the worker's server) at %d services", stopped.Name(), len(e.entities("service")))

	// The run (this one, or a retry of the event if it failed) ends; the last one
	// succeeds.
	var final *run.Record
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := e.runs.Latest(ctx, e.tenant, "slow")
		if err == nil && r.Status == run.Succeeded {
			final = r
			break
		}
		if time.Now().After(deadline) {
			recs, _, _ := e.runs.List(ctx, e.tenant, "slow", 0, 100)
			b, _ := json.MarshalIndent(recs, "", " ")
			t.Fatalf("no successful run within 60s of the node's shutdown; runs:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	recs, _, err := e.runs.List(ctx, e.tenant, "slow", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		t.Logf("run %s: %s %q by %s, %s", r.ID, r.Status, r.Message, r.Worker, r.Errors)
	}
	t.Logf("the run ended %s after the shutdown (%d runs; the interrupted one %s)", time.Since(stoppedAt).Round(time.Millisecond), len(recs), map[bool]string{true: "completed", false: "was retried"}[final.ID == first.ID])
	if final.ID == first.ID {
		if c := counts(final, "service"); c.Upserted != pages*10 || c.Failed != 0 {
			t.Errorf("the interrupted run's service counts: %+v, want %d upserted", c, pages*10)
		}
	}

	// Exactly the source's items, and the barebones team they relate to.
	var want []string
	for i := range pages * 10 {
		want = append(want, fmt.Sprintf(`s%d slow {"lang":"Go"} {"team":"t"}`, i))
	}
	sort.Strings(want)
	e.wantEntities("service", want...)
	e.wantEntities("team", `t - {} {}`)

	// Every change in the stream, once: 300 services and the team created.
	wantChanges := map[string]bool{"created team/t": true}
	for i := range pages * 10 {
		wantChanges[fmt.Sprintf("created service/s%d", i)] = true
	}
	var got []queue.Change
	deadline = time.Now().Add(45 * time.Second) // a change left in the outbox waits for the 30s sweep
	for {
		got = e.changes()
		if len(got) >= len(wantChanges) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	seen := map[string]int{}
	for _, c := range got {
		seen[fmt.Sprintf("%s %s/%s", c.Op, c.Blueprint, c.Identifier)]++
	}
	for k := range wantChanges {
		if seen[k] != 1 {
			t.Errorf("change %q is in the stream %d times, want once", k, seen[k])
		}
	}
	for k, n := range seen {
		if !wantChanges[k] {
			t.Errorf("unexpected change %q (%d times)", k, n)
		}
	}
	if len(got) != len(wantChanges) {
		t.Errorf("%d change events, want %d", len(got), len(wantChanges))
	}
	// The event was acked through the new leader: nothing left in the work queue.
	waitFor(t, func() bool {
		st, err := e.js.Stream(ctx, queue.CommandsStream)
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	if got := nc.ConnectedServerName(); got == stopped.Name() || !nc.IsConnected() {
		t.Errorf("the worker's connection is on %q (connected %v), want another server than %s", got, nc.IsConnected(), stopped.Name())
	}
	if dl := e.dlqReasons(); len(dl) > 0 {
		t.Errorf("dead letters: %q", dl)
	}
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
