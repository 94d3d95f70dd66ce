package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/configsync/configsync/blueprint"
)

// outbox returns every entry of the tenant's outbox, oldest first.
func (e *env) outbox() []OutboxEntry {
	e.t.Helper()
	entries, err := e.cat.PendingChanges(e.ctx, e.tenant, maxPending)
	if err != nil {
		e.t.Fatalf("PendingChanges: %v", err)
	}
	return entries
}

// published returns the entity of the outbox change that an outcome names: outcomes
// name their change, and the outbox holds its entity.
func (e *env) published(ch *Change) *Entity {
	e.t.Helper()
	if ch == nil {
		e.t.Fatal("no change")
	}
	for _, en := range e.outbox() {
		if en.Change.ChangeID == ch.ChangeID {
			if en.Change.Op != ch.Op || en.Change.Blueprint != ch.Blueprint || en.Change.Identifier != ch.Identifier {
				e.t.Fatalf("outbox change %+v, outcome %+v", en.Change, ch)
			}
			return en.Change.Entity
		}
	}
	e.t.Fatalf("change %s is not in the outbox", ch.ChangeID)
	return nil
}

// drainOutbox acks every entry of the tenant's outbox, as a publisher would.
func (e *env) drainOutbox() {
	e.t.Helper()
	e.drainOutboxBy(1000)
}

// outboxTenantListed says whether the tenant is in the outbox tenants set itself (not
// what OutboxTenants makes of it).
func (e *env) outboxTenantListed(tenant string) bool {
	e.t.Helper()
	ok, err := e.rdb.SIsMember(e.ctx, e.cat.outboxTenantsKey(), tenant).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

// upsertChanges lists the changes of Upsert outcomes in outbox order: each write's
// barebones targets, then the write itself.
func upsertChanges(outs []Outcome) []Change {
	var out []Change
	for _, o := range outs {
		out = append(out, o.CreatedChanges...)
		if o.Change != nil {
			out = append(out, *o.Change)
		}
	}
	return out
}

// jsonValue is v encoded to JSON and decoded back generically, numbers as text: two
// values with the same jsonValue publish the same event.
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOutboxWritePaths: every write path leaves exactly its changes in the outbox, in
// order, the same (same ChangeID, same JSON) as the changes it returned; an entity
// change carries the entity as stored, a deletion the entity as it was.
func TestOutboxWritePaths(t *testing.T) {
	upsert := func(e *env, ws ...Write) []Change { return upsertChanges(e.upsert(nil, ws...)) }
	noOrg := func(e *env, id string) Write { return e.w("githubRepository", id, repo(id), nil) }
	deletion := func(rep DeletionReport, err error) []Change {
		if err != nil {
			panic(err) // reported by the test's recover below
		}
		return rep.Changes
	}
	cases := []struct {
		name  string
		setup func(e *env) // the outbox is drained after it
		act   func(e *env) []Change
		want  []string // "op blueprint/identifier", oldest first
	}{
		{
			name: "create",
			act:  func(e *env) []Change { return upsert(e, noOrg(e, "api")) },
			want: []string{"created githubRepository/api"},
		},
		{
			name: "create with a barebones target, the target first",
			act: func(e *env) []Change {
				return upsert(e, e.w("githubRepository", "api", repo("api"), map[string]any{"organization": "acme"}))
			},
			want: []string{"created githubOrganization/acme", "created githubRepository/api"},
		},
		{
			name: "a batch in write order",
			act: func(e *env) []Change {
				return upsert(e, e.w("service", "svc", map[string]any{"tier": 1}, nil), noOrg(e, "b"),
					e.w("githubOrganization", "o", map[string]any{"name": "O"}, nil))
			},
			want: []string{"created service/svc", "created githubRepository/b", "created githubOrganization/o"},
		},
		{
			name:  "update",
			setup: func(e *env) { e.one(noOrg(e, "api"), Created) },
			act: func(e *env) []Change {
				w := noOrg(e, "api")
				w.Entity.Properties["stars"] = 4
				w.FetchedAt = e.clock.Add(time.Minute)
				return upsert(e, w)
			},
			want: []string{"updated githubRepository/api"},
		},
		{
			name: "a merge carries the whole merged entity",
			setup: func(e *env) {
				w := e.w("service", "checkout", map[string]any{"tier": 1}, map[string]any{"repos": []any{"a", "b"}, "mainRepo": "a"})
				w.Entity.Title, w.Entity.Icon = "Checkout", "Service"
				e.one(w, Created)
			},
			act: func(e *env) []Change {
				w := e.w("service", "checkout", map[string]any{"tier": 2}, nil)
				w.Merge, w.FetchedAt = true, e.clock.Add(time.Minute)
				return upsert(e, w)
			},
			want: []string{"updated service/checkout"},
		},
		{
			name:  "a takeover by another integration",
			setup: func(e *env) { e.one(noOrg(e, "api"), Created) },
			act: func(e *env) []Change {
				w := noOrg(e, "api")
				w.Integration, w.FetchedAt = "gitlab", e.clock.Add(time.Minute)
				return upsert(e, w)
			},
			want: []string{"updated githubRepository/api"},
		},
		{
			name:  "unchanged writes nothing",
			setup: func(e *env) { e.one(noOrg(e, "api"), Created) },
			act: func(e *env) []Change {
				w := noOrg(e, "api")
				w.FetchedAt = e.clock.Add(time.Minute)
				return upsert(e, w)
			},
		},
		{
			name:  "an older write writes nothing",
			setup: func(e *env) { e.one(noOrg(e, "api"), Created) },
			act: func(e *env) []Change {
				w := noOrg(e, "api")
				w.Entity.Properties["stars"] = 9
				w.FetchedAt = w.FetchedAt.Add(-time.Second)
				return upsert(e, w)
			},
		},
		{
			name: "missing targets and invalid writes write nothing",
			act: func(e *env) []Change {
				missing := e.w("githubRepository", "api", repo("api"), map[string]any{"organization": "acme"})
				missing.CreateMissing = false
				invalid := e.w("githubRepository", "web", map[string]any{"stars": 1}, nil) // no url
				return upsert(e, missing, invalid)
			},
		},
		{
			// A stored relation whose target vanished (only a broken invariant does
			// that): a merge leaving a required field out takes the slow path, which
			// recreates the target although the entity is unchanged.
			name: "unchanged, yet a lost target recreated",
			setup: func(e *env) {
				e.one(e.w("githubRepository", "api", repo("api"), map[string]any{"organization": "acme"}), Created)
				e.rdb.Del(e.ctx, entityKey(e.T(), "githubOrganization", "acme"))
			},
			act: func(e *env) []Change {
				w := e.w("githubRepository", "api", map[string]any{"stars": 3}, map[string]any{"organization": "acme"})
				w.Merge, w.FetchedAt = true, e.clock.Add(time.Minute)
				outs := e.upsert(nil, w)
				if outs[0].Status != Unchanged {
					e.t.Errorf("status %s, want unchanged", outs[0].Status)
				}
				return upsertChanges(outs)
			},
			want: []string{"created githubOrganization/acme"},
		},
		{
			name:  "delete",
			setup: func(e *env) { e.one(noOrg(e, "api"), Created) },
			act: func(e *env) []Change {
				return deletion(e.cat.Delete(e.ctx, e.tenant, nil, Ref{"githubRepository", "api"}, false))
			},
			want: []string{"deleted githubRepository/api"},
		},
		{
			name: "delete clears optional relations",
			setup: func(e *env) {
				e.one(noOrg(e, "api"), Created)
				e.one(e.w("service", "svc", nil, map[string]any{"repos": []any{"api", "web"}, "mainRepo": "api"}), Created)
			},
			act: func(e *env) []Change {
				return deletion(e.cat.Delete(e.ctx, e.tenant, nil, Ref{"githubRepository", "api"}, false))
			},
			want: []string{"deleted githubRepository/api", "updated service/svc"},
		},
		{
			name:  "stale delete with dependents",
			setup: chain,
			act: func(e *env) []Change {
				return deletion(e.cat.DeleteStale(e.ctx, e.tenant, nil, "gh", []string{"repository"}, e.clock.Add(time.Hour), 1, true))
			},
			want: []string{"deleted prComment/api-1-c1", "deleted githubPullRequest/api-1", "deleted githubRepository/api", "updated service/api-svc"},
		},
		{
			name:  "stale delete kept for dependents writes nothing",
			setup: chain,
			act: func(e *env) []Change {
				return deletion(e.cat.DeleteStale(e.ctx, e.tenant, nil, "gh", []string{"repository"}, e.clock.Add(time.Hour), 1, false))
			},
		},
		{
			name:  "stale delete over the threshold writes nothing",
			setup: chain,
			act: func(e *env) []Change {
				return deletion(e.cat.DeleteStale(e.ctx, e.tenant, nil, "gh", []string{"repository"}, e.clock.Add(time.Hour), 0, true))
			},
		},
		{
			name: "delete owned",
			setup: func(e *env) {
				e.one(noOrg(e, "a"), Created)
				e.clock.Add(time.Second)
				e.one(noOrg(e, "b"), Created)
			},
			act: func(e *env) []Change {
				return deletion(e.cat.DeleteOwned(e.ctx, e.tenant, "gh", false))
			},
			want: []string{"deleted githubRepository/a", "deleted githubRepository/b"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			e.drainOutbox()
			var returned []Change
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatal(r)
					}
				}()
				returned = tc.act(e)
			}()
			entries := e.outbox()
			var got []string
			for _, en := range entries {
				got = append(got, en.Change.Op+" "+en.Change.Blueprint+"/"+en.Change.Identifier)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("outbox %q, want %q", got, tc.want)
			}
			if len(returned) != len(entries) {
				t.Fatalf("returned %d changes, the outbox has %d", len(returned), len(entries))
			}
			for i, en := range entries {
				ch := en.Change
				if len(ch.ChangeID) != 32 || ch.ChangeID != returned[i].ChangeID {
					t.Errorf("entry %d: change id %q, returned %q", i, ch.ChangeID, returned[i].ChangeID)
				}
				named := ch
				if returned[i].Entity == nil {
					named.Entity = nil // writes name their change; the outbox holds its entity
				}
				if g, w := jsonValue(t, named), jsonValue(t, returned[i]); !reflect.DeepEqual(g, w) {
					t.Errorf("entry %d differs from the returned change:\noutbox   %v\nreturned %v", i, g, w)
				}
				if ch.Entity == nil || ch.Entity.Blueprint != ch.Blueprint || ch.Entity.Identifier != ch.Identifier {
					t.Errorf("entry %d: entity %+v", i, ch.Entity)
					continue
				}
				if ch.Op == OpDeleted {
					// Deletions return the entity as decodeEntity reads it, as the outbox does.
					if !reflect.DeepEqual(ch, returned[i]) {
						t.Errorf("entry %d:\noutbox   %+v\nreturned %+v", i, ch.Entity, returned[i].Entity)
					}
					if e.exists(ch.Blueprint, ch.Identifier) {
						t.Errorf("entry %d: %s/%s still exists", i, ch.Blueprint, ch.Identifier)
					}
				} else if stored := e.get(ch.Blueprint, ch.Identifier); !reflect.DeepEqual(ch.Entity, stored) {
					t.Errorf("entry %d: the change's entity is not the stored one:\nchange %+v\nstored %+v", i, ch.Entity, stored)
				}
			}
			if len(entries) > 0 && !e.outboxTenantListed(e.tenant) {
				t.Error("the tenant has changes but is not in the outbox tenants")
			}
		})
	}
}

// TestOutboxEntityJSON: an entity with everything JSON can trip on goes through the
// outbox exactly: the change's entity is what Get returns.
func TestOutboxEntityJSON(t *testing.T) {
	e := setup(t)
	w := e.w("githubRepository", "ünï/\"code\" <&>", map[string]any{
		"url": "https://github.com/acme/a?b=c&d=<e>", "stars": json.Number("123456789012345678901234567890"), "language": "\x00\x1f\u2028 \\ \"",
		"extra":  []any{map[string]any{"nested": []any{1.5, nil, true}, "": "empty key"}, "ünï", 1e300},
		"topics": []any{}, "archived": true, "pushedAt": "2025-02-28T10:00:00.123Z",
	}, map[string]any{"organization": "org with spaces/and\\slashes"})
	w.Entity.Title, w.Entity.Icon, w.Entity.Team = "Tïtle \x00 \"q\" </script>", "Git\tHub", []string{"a\"b", "ü"}
	o := e.one(w, Created)
	entries := e.outbox()
	if len(entries) != 2 {
		t.Fatalf("%d entries, want the barebones organization and the repository", len(entries))
	}
	got := entries[1].Change
	stored := e.get("githubRepository", w.Entity.Identifier)
	if !reflect.DeepEqual(got.Entity, stored) {
		t.Errorf("outbox entity\n%#v\nstored\n%#v", got.Entity, stored)
	}
	named := got
	named.Entity = nil
	if g, want := jsonValue(t, named), jsonValue(t, *o.Change); !reflect.DeepEqual(g, want) {
		t.Errorf("outbox change\n%v\nreturned\n%v", g, want)
	}
	if n := got.Entity.Properties["stars"]; n != json.Number("123456789012345678901234567890") {
		t.Errorf("a big number came out as %#v", n)
	}
	// Barebones: no owner, no content, the write's time.
	org := entries[0].Change.Entity
	if want := e.get("githubOrganization", "org with spaces/and\\slashes"); !reflect.DeepEqual(org, want) || org.Integration != "" || !org.CreatedAt.Equal(e.clock.Now()) {
		t.Errorf("barebones %#v, stored %#v", org, want)
	}
}

// TestJSONTimeMatchesGo: the scripts write times as encoding/json writes msTime.
func TestJSONTimeMatchesGo(t *testing.T) {
	e := setup(t)
	ms := []int64{0, 1, -1, 10, 100, 120, 999, 1000, -1000, -86_400_001, 951_782_400_000 /* 2000-02-29 */, 951_868_799_999,
		1_740_830_400_123, 4_107_542_400_000 /* 2100-03-01 */, 253_402_300_799_999 /* 9999-12-31T23:59:59.999 */, -62_135_596_800_000 /* year 1 */}
	for i := int64(0); i < 200; i++ {
		ms = append(ms, i*i*i*7_919_993+i*31) // spread over 1970..2200, with every kind of fraction
	}
	args := make([]any, 0, len(ms)+2)
	want := make([]string, 0, len(ms)+2)
	for _, m := range ms {
		args = append(args, fmt.Sprint(m))
		data, err := json.Marshal(msTime(m))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, string(data))
	}
	args = append(args, "", "12x")
	want = append(want, `"0001-01-01T00:00:00Z"`, `"0001-01-01T00:00:00Z"`)
	script := redis.NewScript(luaPrelude + `
local out = {}
for i = 1, #ARGV do out[i] = jsonTime(ARGV[i]) end
return out`)
	got, err := script.Run(e.ctx, e.rdb, []string{e.T() + ":x"}, args...).StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%v ms: Lua %s, Go %s", args[i], got[i], want[i])
		}
	}
}

// TestOutboxFencedWritesNothing: a write or deletion refused by its fence leaves the
// outbox as it was.
func TestOutboxFencedWritesNothing(t *testing.T) {
	e := setup(t)
	lease := e.T() + ":lease:gh"
	if err := e.rdb.Set(e.ctx, lease, 7, 0).Err(); err != nil {
		t.Fatal(err)
	}
	fence := &Fence{Key: lease, Token: 7}
	e.upsert(fence, e.w("githubRepository", "a", repo("a"), map[string]any{"organization": "acme"}))
	if n := len(e.outbox()); n != 2 {
		t.Fatalf("with the lease: %d changes, want 2", n)
	}
	e.drainOutbox()

	e.rdb.Set(e.ctx, lease, 8, 0) // another worker took the lease over
	w := e.w("githubRepository", "a", map[string]any{"url": "https://x.io"}, nil)
	w.FetchedAt = e.clock.Add(time.Minute)
	for i, o := range e.upsert(fence, e.w("githubRepository", "b", repo("b"), map[string]any{"organization": "globex"}), w) {
		if o.Status != Fenced || o.Change != nil || len(o.CreatedChanges) != 0 {
			t.Errorf("write %d: %s %+v", i, o.Status, o)
		}
	}
	if _, err := e.cat.DeleteStale(e.ctx, e.tenant, fence, "gh", []string{"repository"}, e.clock.Add(time.Hour), 1, true); !errors.Is(err, ErrFenced) {
		t.Errorf("DeleteStale: %v, want ErrFenced", err)
	}
	if _, err := e.cat.Delete(e.ctx, e.tenant, fence, Ref{"githubRepository", "a"}, true); !errors.Is(err, ErrFenced) {
		t.Errorf("Delete: %v, want ErrFenced", err)
	}
	if got := e.outbox(); len(got) != 0 {
		t.Errorf("fenced writes left %d changes: %+v", len(got), got)
	}
}

// TestPendingAndAckChanges: oldest first, at most max, acked ones gone, acking twice
// harmless, an empty outbox forgets its tenant.
func TestPendingAndAckChanges(t *testing.T) {
	e := setup(t)
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("o%d", i)
		e.one(e.w("githubOrganization", id, map[string]any{"name": id}, nil), Created)
		want = append(want, id)
	}
	idsOf := func(entries []OutboxEntry) (ids, idents []string) {
		for _, en := range entries {
			ids, idents = append(ids, en.ID), append(idents, en.Change.Identifier)
		}
		return ids, idents
	}
	cases := []struct {
		max  int
		want []string
	}{
		{max: 2, want: want[:2]},
		{max: 5, want: want},
		{max: 6, want: want},
		{max: 0, want: want}, // 0 means 100
		{max: -1, want: want},
	}
	for _, tc := range cases {
		entries, err := e.cat.PendingChanges(e.ctx, e.tenant, tc.max)
		if err != nil {
			t.Fatal(err)
		}
		if _, got := idsOf(entries); !slices.Equal(got, tc.want) {
			t.Errorf("max %d: %v, want %v", tc.max, got, tc.want)
		}
	}

	first, _ := e.cat.PendingChanges(e.ctx, e.tenant, 2)
	acked, _ := idsOf(first)
	for range 2 { // twice: the second is a no-op
		if err := e.cat.AckChanges(e.ctx, e.tenant, acked); err != nil {
			t.Fatal(err)
		}
		if _, got := idsOf(e.outbox()); !slices.Equal(got, want[2:]) {
			t.Errorf("after acking %v: %v, want %v", acked, got, want[2:])
		}
		if !e.outboxTenantListed(e.tenant) {
			t.Error("the tenant was forgotten with changes left")
		}
	}
	if err := e.cat.AckChanges(e.ctx, e.tenant, []string{"not-an-id"}); err == nil {
		t.Error("a malformed entry id was accepted")
	}
	e.drainOutbox()
	if got := e.outbox(); len(got) != 0 || e.outboxTenantListed(e.tenant) {
		t.Errorf("after acking all: %d left, listed %v", len(got), e.outboxTenantListed(e.tenant))
	}
	if got, err := e.cat.PendingChanges(e.ctx, "nobody", 10); err != nil || len(got) != 0 {
		t.Errorf("a tenant without an outbox: %v, %v", got, err)
	}
	if _, err := e.cat.PendingChanges(e.ctx, "a{b", 10); err == nil {
		t.Error("a tenant with a brace was accepted")
	}
}

// TestOutboxTenants: tenants with changes are listed, forgotten once drained, and a
// removal that raced with a change puts the tenant back.
func TestOutboxTenants(t *testing.T) {
	e := setup(t)
	bps, err := blueprint.Parse([]byte(testBlueprints))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bps {
		if err := e.cat.PutBlueprint(e.ctx, "globex", b); err != nil {
			t.Fatal(err)
		}
	}
	tenants := func() []string {
		t.Helper()
		got, err := e.cat.OutboxTenants(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := tenants(); len(got) != 0 {
		t.Fatalf("before any write: %v", got)
	}
	e.one(e.w("githubRepository", "api", repo("api"), nil), Created)
	if _, err := e.cat.Upsert(e.ctx, "globex", nil, []Write{e.w("githubRepository", "web", repo("web"), nil)}); err != nil {
		t.Fatal(err)
	}
	if got := tenants(); !slices.Equal(got, []string{"acme", "globex"}) {
		t.Errorf("after writes: %v", got)
	}

	e.drainOutbox() // acme's publisher caught up
	if got := tenants(); !slices.Equal(got, []string{"globex"}) {
		t.Errorf("after draining acme: %v", got)
	}

	// An unchanged write lists its tenant before its script (it cannot know it will
	// change nothing); OutboxTenants forgets it again.
	w := e.w("githubRepository", "api", repo("api"), nil)
	w.FetchedAt = e.clock.Add(time.Minute)
	e.one(w, Unchanged)
	if !e.outboxTenantListed("acme") {
		t.Error("a write did not list its tenant first")
	}
	if got := tenants(); !slices.Equal(got, []string{"globex"}) || e.outboxTenantListed("acme") {
		t.Errorf("after an unchanged write: %v, acme listed %v", got, e.outboxTenantListed("acme"))
	}

	// A remover that saw globex empty just before a change: its second look puts
	// globex back.
	if back, err := e.cat.forgetOutboxTenants(e.ctx, []string{"globex"}); err != nil || !slices.Equal(back, []string{"globex"}) || !e.outboxTenantListed("globex") {
		t.Errorf("forgetting a tenant with changes: back %v, %v; listed %v", back, err, e.outboxTenantListed("globex"))
	}
	// A remover that saw acme's outbox empty before a write's script, and removes
	// acme after the script ran: the writer's second add lists it again.
	hook := &afterPipeline{fn: func() { e.rdb.SRem(e.ctx, e.cat.outboxTenantsKey(), "acme") }}
	e.rdb.AddHook(hook)
	w.Entity.Properties["stars"] = 5
	w.FetchedAt = e.clock.Add(time.Minute)
	e.one(w, Updated)
	if hook.fn != nil {
		t.Fatal("the hook did not run")
	}
	if got := tenants(); !slices.Equal(got, []string{"acme", "globex"}) {
		t.Errorf("after an update: %v", got)
	}
	// The same for a deletion.
	e.drainOutbox()
	hook.fn = func() { e.rdb.SRem(e.ctx, e.cat.outboxTenantsKey(), "acme") }
	if _, err := e.cat.Delete(e.ctx, e.tenant, nil, Ref{"githubRepository", "api"}, false); err != nil {
		t.Fatal(err)
	}
	if got := tenants(); hook.fn != nil || !slices.Equal(got, []string{"acme", "globex"}) {
		t.Errorf("after a deletion: %v", got)
	}
}

// afterPipeline is a go-redis hook that runs fn once, right after the next pipeline
// of script calls.
type afterPipeline struct{ fn func() }

func (h *afterPipeline) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *afterPipeline) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *afterPipeline) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		scripts := slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return c.Name() == "evalsha" })
		if fn := h.fn; fn != nil && scripts {
			h.fn = nil
			fn()
		}
		return err
	}
}

// TestOutboxCap: the outbox keeps about the newest outboxMax changes, dropping the
// oldest.
func TestOutboxCap(t *testing.T) {
	e := setup(t)
	e.cat.outboxMax = 10
	const total = 300
	var ws []Write
	for i := range total {
		id := fmt.Sprintf("o%03d", i)
		ws = append(ws, e.w("githubOrganization", id, map[string]any{"name": id}, nil))
	}
	for start := 0; start < total; start += 100 {
		e.upsert(nil, ws[start:start+100]...)
	}
	n, err := e.rdb.XLen(e.ctx, outboxKey(e.T())).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 || n >= total {
		t.Errorf("outbox holds %d of %d changes with a cap of about 10", n, total)
	}
	// The last Upsert's creates go in parallel transactions of createChunk writes,
	// so which of its chunks wrote last is not fixed; it is one of them.
	entries := e.outbox()
	if first, last := entries[0].Change.Identifier, entries[len(entries)-1].Change.Identifier; first == "o000" || last < "o200" {
		t.Errorf("outbox runs from %s to %s; want the newest kept", first, last)
	}
}

// TestPendingRawChanges: the raw entries are the decoded ones undecoded: same entry
// ids, same change ids, and Data decodes to the same Change.
func TestPendingRawChanges(t *testing.T) {
	e := setup(t)
	e.upsert(nil, e.w("githubRepository", "api/<&>", repo("api"), map[string]any{"organization": "acme/x"}),
		e.w("service", "svc", map[string]any{"tier": 1}, map[string]any{"repos": []any{"api/<&>"}, "mainRepo": nil}))
	if _, err := e.cat.Delete(e.ctx, e.tenant, nil, Ref{"githubRepository", "api/<&>"}, false); err != nil {
		t.Fatal(err)
	}
	decoded := e.outbox()
	raw, err := e.cat.PendingRawChanges(e.ctx, e.tenant, maxPending)
	if err != nil {
		t.Fatal(err)
	}
	if len(decoded) != 5 || len(raw) != len(decoded) {
		t.Fatalf("%d raw entries, %d decoded, want 5 (org, repo, service, delete, service update)", len(raw), len(decoded))
	}
	for i, r := range raw {
		d := decoded[i]
		if r.ID != d.ID || r.ChangeID != d.Change.ChangeID || !strings.HasPrefix(string(r.Data), changePrefix+r.ChangeID+`"`) {
			t.Errorf("entry %d: raw %s %s %.60s, decoded %s %s", i, r.ID, r.ChangeID, r.Data, d.ID, d.Change.ChangeID)
		}
		ch, err := decodeChange(string(r.Data))
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if !reflect.DeepEqual(ch, d.Change) {
			t.Errorf("entry %d: raw data decodes to\n%+v\nwant\n%+v", i, ch, d.Change)
		}
	}
	if _, err := e.cat.PendingRawChanges(e.ctx, "a{b", 10); err == nil {
		t.Error("a tenant with a brace was accepted")
	}
	if got, err := e.cat.PendingRawChanges(e.ctx, e.tenant, 2); err != nil || len(got) != 2 || got[1].ID != decoded[1].ID {
		t.Errorf("max 2: %d entries, %v", len(got), err)
	}
}

// TestPendingRawChangesEntries: entries the scripts did not write read their change id
// by decoding, and those without a usable one are errors naming the entry and tenant.
func TestPendingRawChangesEntries(t *testing.T) {
	long := strings.Repeat("a", 129)
	cases := []struct {
		name   string
		values map[string]any // the stream entry
		id     string         // the change id; "" when an error is wanted
		data   string         // Data, when it is not the stored change
		errHas string
	}{
		{name: "the scripts' layout", values: map[string]any{"change": `{"changeId":"0123456789abcdef0123456789abcdef","op":"created"}`}, id: "0123456789abcdef0123456789abcdef"},
		{name: "another member first", values: map[string]any{"change": `{"op":"created","entity":{"changeId":"inner"},"changeId":"abc-1"}`}, id: "abc-1"},
		{name: "leading space", values: map[string]any{"change": ` {"changeId":"x.y:Z_9"}`}, id: "x.y:Z_9"},
		{name: "escaped id", values: map[string]any{"change": `{"changeId":"a\u0062c"}`}, id: "abc"},
		{name: "longest id", values: map[string]any{"change": `{"changeId":"` + long[:128] + `"}`}, id: long[:128]},
		{name: "invalid UTF-8 is replaced", values: map[string]any{"change": "{\"changeId\":\"c1\",\"identifier\":\"a\xffb\"}"}, id: "c1",
			data: "{\"changeId\":\"c1\",\"identifier\":\"a\uFFFDb\"}"},
		{name: "no change field", values: map[string]any{"other": "{}"}, errHas: `has no "change" field`},
		{name: "id with a space", values: map[string]any{"change": `{"changeId":"a b"}`}, errHas: `change id "a b"`},
		{name: "escaped invalid id", values: map[string]any{"change": `{"changeId":"a\nb"}`}, errHas: "change id"},
		{name: "empty id", values: map[string]any{"change": `{"changeId":""}`}, errHas: `change id ""`},
		{name: "id too long", values: map[string]any{"change": `{"changeId":"` + long + `"}`}, errHas: "change id"},
		{name: "id not a string", values: map[string]any{"change": `{"changeId":12}`}, errHas: "not a string"},
		{name: "no id", values: map[string]any{"change": `{"op":"created"}`}, errHas: "no change id"},
		{name: "not an object", values: map[string]any{"change": `["changeId"]`}, errHas: "not a JSON object"},
		{name: "not JSON", values: map[string]any{"change": `{"changeId":"abc`}, errHas: "reading the change id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			id, err := e.rdb.XAdd(e.ctx, &redis.XAddArgs{Stream: outboxKey(e.T()), Values: tc.values}).Result()
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.cat.PendingRawChanges(e.ctx, e.tenant, 10)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), `"acme"`) {
					t.Fatalf("got %+v, error %v; want an error naming the entry, the tenant and %q", got, err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.data
			if want == "" {
				want = tc.values["change"].(string)
			}
			if len(got) != 1 || got[0].ID != id || got[0].ChangeID != tc.id || string(got[0].Data) != want {
				t.Fatalf("got %+v, want id %s, change id %q, data %q", got, id, tc.id, want)
			}
		})
	}
}
