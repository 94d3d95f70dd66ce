package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/configsync/configsync/blueprint"
)

// txCounter is a go-redis hook that counts the XADDs sent inside MULTI/EXEC, which
// only createTx sends: one per change it writes.
type txCounter struct {
	mu      sync.Mutex
	changes int
	scripts int
}

func (h *txCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *txCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *txCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		tx := len(cmds) > 0 && cmds[0].Name() == "multi"
		for _, c := range cmds {
			switch {
			case tx && c.Name() == "xadd":
				h.changes++
			case c.Name() == "evalsha" || c.Name() == "eval":
				h.scripts++
			}
		}
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (h *txCounter) reset() (changes, scripts int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	changes, scripts, h.changes, h.scripts = h.changes, h.scripts, 0, 0
	return changes, scripts
}

// TestCreateTxMatchesScript writes the same batches into two tenants, one through the
// create transaction and one through upsertScript alone, and requires the same
// outcomes, the same keys with the same contents, and the same changes per entity in
// the same order (change identifiers aside). It also checks that the transaction did
// write the changes it should have, so that the comparison is not between two runs of
// the script.
func TestCreateTxMatchesScript(t *testing.T) {
	pr := func(e *env, id, repo string) Write {
		return e.w("githubPullRequest", id, map[string]any{"status": "open"}, map[string]any{"repository": repo})
	}
	cases := []struct {
		name string
		// before runs on both tenants first; batch is then written in one Upsert.
		before  func(e *env, cat *Catalog, tenant string)
		batch   func(e *env) []Write
		fence   bool // write with a lost lease
		txWrote int  // changes the transaction writes (barebones included)
	}{
		{
			name: "creates with a barebones target",
			batch: func(e *env) []Write {
				return []Write{
					e.w("githubRepository", "a", repo("a"), map[string]any{"organization": "acme"}),
					e.w("githubRepository", "b", repo("b"), map[string]any{"organization": "acme"}),
					e.w("githubRepository", "c", repo("c"), map[string]any{"organization": nil}),
				}
			},
			txWrote: 4,
		},
		{
			name: "existing target",
			before: func(e *env, cat *Catalog, tenant string) {
				mustUpsert(e, cat, tenant, e.w("githubOrganization", "acme", map[string]any{"name": "Acme"}, nil))
			},
			batch: func(e *env) []Write {
				return []Write{
					e.w("githubRepository", "a", repo("a"), map[string]any{"organization": "acme"}),
					pr(e, "pr1", "a"),
				}
			},
			txWrote: 2,
		},
		{
			name: "missing targets without createMissing",
			before: func(e *env, cat *Catalog, tenant string) {
				mustUpsert(e, cat, tenant, e.w("githubRepository", "b", repo("b"), nil))
			},
			batch: func(e *env) []Write {
				w := e.w("service", "checkout", map[string]any{"tier": 1}, map[string]any{"repos": []any{"a", "b"}, "mainRepo": "a"})
				w.CreateMissing = false
				ok := e.w("service", "cart", nil, map[string]any{"repos": []any{"b"}})
				ok.CreateMissing = false
				return []Write{w, ok}
			},
			txWrote: 1,
		},
		{
			name: "the same entity twice in a batch",
			batch: func(e *env) []Write {
				second := e.w("githubRepository", "r1", repo("r1"), nil)
				second.Entity.Properties["stars"] = 4
				return []Write{e.w("githubRepository", "r1", repo("r1"), nil), e.w("githubRepository", "r2", repo("r2"), nil), second}
			},
			txWrote: 2,
		},
		{
			name: "a target written later in the batch",
			batch: func(e *env) []Write {
				return []Write{
					e.w("service", "s", nil, map[string]any{"repos": []any{"x", "y"}, "mainRepo": "x"}),
					e.w("githubRepository", "x", repo("x"), nil),
				}
			},
			txWrote: 3, // x and y barebones, s; x itself is then an update
		},
		{
			name: "existing entities among new ones",
			before: func(e *env, cat *Catalog, tenant string) {
				mustUpsert(e, cat, tenant, e.w("githubRepository", "old", repo("old"), nil), e.w("githubRepository", "same", repo("same"), nil))
			},
			batch: func(e *env) []Write {
				changed := e.w("githubRepository", "old", repo("old"), nil)
				changed.Entity.Properties["stars"] = 9
				return []Write{changed, e.w("githubRepository", "n1", repo("n1"), nil), e.w("githubRepository", "same", repo("same"), nil),
					e.w("githubRepository", "n2", repo("n2"), nil)}
			},
			txWrote: 2,
		},
		{
			name: "a live delete's tombstone",
			before: func(e *env, cat *Catalog, tenant string) {
				if _, err := cat.DeleteLive(e.ctx, tenant, "gh", Ref{Blueprint: "githubRepository", Identifier: "gone"}, e.clock.Now(), false); err != nil {
					e.t.Fatal(err)
				}
			},
			batch: func(e *env) []Write {
				return []Write{e.w("githubRepository", "gone", repo("gone"), nil), e.w("githubRepository", "kept", repo("kept"), nil)}
			},
			txWrote: 1,
		},
		{
			name: "invalid writes and a merge that leaves a required relation out",
			batch: func(e *env) []Write {
				merge := e.w("githubPullRequest", "pr9", map[string]any{"status": "open"}, nil)
				merge.Merge = true
				return []Write{
					merge,
					e.w("githubRepository", "nourl", map[string]any{"stars": 1}, nil),
					e.w("githubRepository", "fine", repo("fine"), nil),
				}
			},
			txWrote: 1,
		},
		{
			name:  "a lost lease",
			fence: true,
			batch: func(e *env) []Write {
				return []Write{e.w("githubRepository", "a", repo("a"), nil), e.w("githubRepository", "b", repo("b"), nil)}
			},
			txWrote: 0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			counter := &txCounter{}
			e.rdb.AddHook(counter)
			script := New(e.rdb, e.prefix, e.clock.Now)
			script.createSkip.Store(1 << 30) // never tries the transaction
			putBlueprints(t, e, script, "other")

			var fence, otherFence *Fence
			if tc.fence {
				fence = &Fence{Key: e.T() + ":lease:gh", Token: 7}
				otherFence = &Fence{Key: script.tkey("other") + ":lease:gh", Token: 7}
				e.rdb.Set(e.ctx, fence.Key, 8, 0)
				e.rdb.Set(e.ctx, otherFence.Key, 8, 0)
			}
			if tc.before != nil {
				tc.before(e, e.cat, e.tenant)
				tc.before(e, script, "other")
			}
			e.clock.Add(time.Second)
			counter.reset()
			got, err := e.cat.Upsert(e.ctx, e.tenant, fence, tc.batch(e))
			if err != nil {
				t.Fatal(err)
			}
			txChanges, _ := counter.reset()
			want, err := script.Upsert(e.ctx, "other", otherFence, tc.batch(e))
			if err != nil {
				t.Fatal(err)
			}
			if _, scripts := counter.reset(); txChanges != tc.txWrote || (scripts == 0 && len(want) > 0) {
				t.Errorf("the transaction wrote %d changes, want %d (the script path made %d script calls)", txChanges, tc.txWrote, scripts)
			}
			if g, w := comparable(got), comparable(want); !reflect.DeepEqual(g, w) {
				t.Errorf("outcomes differ:\n tx:     %s\n script: %s", g, w)
			}
			gs, ws := dumpTenant(t, e, e.T()), dumpTenant(t, e, script.tkey("other"))
			if !reflect.DeepEqual(gs, ws) {
				for k := range merged(gs, ws) {
					if !reflect.DeepEqual(gs[k], ws[k]) {
						t.Errorf("key %q:\n tx:     %v\n script: %v", k, gs[k], ws[k])
					}
				}
			}
		})
	}
}

// TestCreateTxLosesARace: when a watched key changes between the transaction's reads
// and its EXEC, Redis refuses the transaction and every write goes to the script,
// which decides with what the rival did: another writer's create of b makes ours an
// update; a live delete of b (a tombstone, watched through T:tombgen) makes it older.
func TestCreateTxLosesARace(t *testing.T) {
	cases := []struct {
		name   string
		rival  func(e *env, rival *Catalog) error
		early  bool // our writes were fetched before the rival acted
		want   Status
		outbox []string
	}{
		{
			name: "another writer creates the entity",
			rival: func(e *env, rival *Catalog) error {
				w := e.w("githubRepository", "b", repo("b"), nil)
				w.Integration = "rival"
				_, err := rival.Upsert(e.ctx, e.tenant, nil, []Write{w})
				return err
			},
			want:   Updated,
			outbox: []string{"b:created", "a:created", "b:updated"},
		},
		{
			name: "a live delete of the item",
			rival: func(e *env, rival *Catalog) error {
				_, err := rival.DeleteLive(e.ctx, e.tenant, "gh", Ref{Blueprint: "githubRepository", Identifier: "b"}, e.clock.Now(), false)
				return err
			},
			early:  true,
			want:   SkippedOlder,
			outbox: []string{"a:created"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			fetched := e.clock.Now()
			e.clock.Add(time.Second)
			rival := New(e.rdb, e.prefix, e.clock.Now)
			race := &raceHook{run: func() {
				if err := tc.rival(e, rival); err != nil {
					t.Error(err)
				}
			}}
			e.rdb.AddHook(race)
			a, b := e.w("githubRepository", "a", repo("a"), nil), e.w("githubRepository", "b", repo("b"), nil)
			if tc.early {
				a.FetchedAt, b.FetchedAt = fetched, fetched
			}
			outs := e.upsert(nil, a, b)
			if !race.done {
				t.Fatal("the race never ran: the test does not test anything")
			}
			if outs[0].Status != Created || outs[1].Status != tc.want {
				t.Fatalf("outcomes %s, %s; want created, %s", outs[0].Status, outs[1].Status, tc.want)
			}
			entries, err := e.cat.PendingChanges(e.ctx, e.tenant, 100)
			if err != nil {
				t.Fatal(err)
			}
			var ops []string
			for _, en := range entries {
				ops = append(ops, en.Change.Identifier+":"+en.Change.Op)
			}
			if !slices.Equal(ops, tc.outbox) {
				t.Errorf("outbox %v, want %v", ops, tc.outbox)
			}
		})
	}
}

// raceHook runs run once, from another connection, right after the first pipeline
// holding EXISTS (createTx's reads) and before its MULTI/EXEC.
type raceHook struct {
	run  func()
	done bool
	// before runs it once, right before the pipeline holding createTx's WATCH and
	// reads, instead.
	before bool
	// sent lists the names of the commands sent, in order, pipelines included.
	sent []string
}

func (h *raceHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *raceHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.sent = append(h.sent, cmd.Name())
		return next(ctx, cmd)
	}
}
func (h *raceHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.before {
			if !h.done && slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return c.Name() == "watch" }) {
				h.done = true
				h.run()
				h.sent = nil // the rival's own commands, sent through the same client
			}
			for _, c := range cmds {
				h.sent = append(h.sent, c.Name())
			}
			return next(ctx, cmds)
		}
		err := next(ctx, cmds)
		if !h.done && slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return c.Name() == "exists" }) {
			h.done = true
			h.run()
		}
		return err
	}
}

// TestCreateTxLeavesNoWatch: a create transaction that gives up before EXEC ends
// its WATCH. The WATCH rides in one round trip with the reads, where go-redis does not
// see it; one left on a pooled connection would make a later transaction on that
// connection fail for no reason of its own.
func TestCreateTxLeavesNoWatch(t *testing.T) {
	cases := []struct {
		name  string
		rival func(e *env, a Write)
	}{
		{"the blueprints changed under the reads", func(e *env, a Write) {
			bps, err := blueprint.Parse([]byte(`[{"identifier": "extra", "title": "Extra", "schema": {"properties": {}}}]`))
			if err != nil {
				e.t.Fatal(err)
			}
			if err := New(e.rdb, e.prefix, e.clock.Now).PutBlueprint(e.ctx, e.tenant, bps[0]); err != nil {
				e.t.Error(err)
			}
		}},
		{"another writer created the entity", func(e *env, a Write) {
			a.Integration = "rival"
			mustUpsert(e, New(e.rdb, e.prefix, e.clock.Now), e.tenant, a)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			mustUpsert(e, e.cat, e.tenant, e.w("githubRepository", "warm", repo("warm"), nil)) // caches the blueprints
			a := e.w("githubRepository", "a", repo("a"), nil)
			race := &raceHook{before: true, run: func() { tc.rival(e, a) }}
			e.rdb.AddHook(race)
			e.upsert(nil, a)
			if !race.done {
				t.Fatal("the rival never acted: the test does not test anything")
			}
			w := slices.Index(race.sent, "watch")
			next := slices.IndexFunc(race.sent[w+1:], func(n string) bool { return n == "exec" || n == "unwatch" || n == "evalsha" })
			if next < 0 || race.sent[w+1+next] != "unwatch" {
				t.Fatalf("after its WATCH and reads the transaction sent %q: no UNWATCH before anything else", race.sent[w+1:])
			}
			if !e.exists("githubRepository", "a") {
				t.Fatal("the write was lost")
			}
		})
	}
}

func mustUpsert(e *env, cat *Catalog, tenant string, ws ...Write) {
	e.t.Helper()
	outs, err := cat.Upsert(e.ctx, tenant, nil, ws)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, o := range outs {
		if o.Err != nil {
			e.t.Fatal(o.Err)
		}
	}
}

func putBlueprints(t *testing.T, e *env, cat *Catalog, tenant string) {
	t.Helper()
	bps, err := blueprint.Parse([]byte(testBlueprints))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bps {
		if err := cat.PutBlueprint(e.ctx, tenant, b); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		iter := e.rdb.Scan(context.Background(), 0, cat.tkey(tenant)+"*", 1000).Iterator()
		for iter.Next(context.Background()) {
			e.rdb.Unlink(context.Background(), iter.Val())
		}
	})
}

// comparable renders outcomes without their change identifiers, which are random.
func comparable(outs []Outcome) string {
	var b strings.Builder
	for _, o := range outs {
		fmt.Fprintf(&b, "[%s missing=%v created=%v warnings=%v err=%v", o.Status, o.Missing, o.Created, o.Warnings, o.Err != nil)
		if o.Change != nil {
			c := *o.Change
			c.ChangeID = ""
			ent, _ := json.Marshal(c)
			fmt.Fprintf(&b, " change=%s", ent)
		}
		for _, c := range o.CreatedChanges {
			c.ChangeID = ""
			ent, _ := json.Marshal(c)
			fmt.Fprintf(&b, " createdChange=%s", ent)
		}
		b.WriteString("] ")
	}
	return b.String()
}

// dumpTenant reads every key of a tenant prefix t into comparable values, keyed by
// the key without t. The outbox becomes, per entity, the list of its changes in
// order, each decoded and without its identifier: the order of changes of different
// entities may differ, since the transaction's changes precede the script's.
func dumpTenant(t *testing.T, e *env, tp string) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	iter := e.rdb.Scan(ctx, 0, tp+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		name := strings.TrimPrefix(k, tp)
		if strings.Contains(name, ":lease:") {
			continue
		}
		typ, err := e.rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "hash":
			out[name] = e.rdb.HGetAll(ctx, k).Val()
		case "zset":
			out[name] = e.rdb.ZRangeWithScores(ctx, k, 0, -1).Val()
		case "set":
			m := e.rdb.SMembers(ctx, k).Val()
			slices.Sort(m)
			out[name] = m
		case "string":
			out[name] = e.rdb.Get(ctx, k).Val()
		case "stream":
			per := map[string][]any{}
			for _, m := range e.rdb.XRange(ctx, k, "-", "+").Val() {
				var ch map[string]any
				if err := json.Unmarshal([]byte(m.Values[outboxField].(string)), &ch); err != nil {
					t.Fatal(err)
				}
				delete(ch, "changeId")
				id := fmt.Sprint(ch["blueprint"], "/", ch["identifier"])
				per[id] = append(per[id], ch)
			}
			out[name] = per
		default:
			t.Fatalf("key %s of type %s", k, typ)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func merged(a, b map[string]any) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// TestAppendJSONStringMatchesMarshal: stored values are hashed, so the fast path must
// write exactly what json.Marshal writes.
func TestAppendJSONStringMatchesMarshal(t *testing.T) {
	for _, s := range []string{"", "plain", "https://github.com/acme/api", "a\"b", `back\slash`, "<html>&amp;", "tab\there", "é", "😀", "\x7f", "line\nbreak", "\u2028", "bad \xff utf-8"} {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s, json.Marshal gives %s", s, got, want)
		}
	}
}
