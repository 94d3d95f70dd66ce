package catalog

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/configsync/configsync/blueprint"
)

func TestCreateUpdateUnchanged(t *testing.T) {
	e := setup(t)
	w := e.w("githubRepository", "api", repo("api"), map[string]any{"organization": "acme"})
	w.Entity.Title, w.Entity.Team = "API", []string{"platform"}

	o := e.one(w, Created)
	if o.Change == nil || o.Change.Op != OpCreated || e.published(o.Change).Title != "API" {
		t.Fatalf("change = %+v", o.Change)
	}
	got := e.get("githubRepository", "api")
	want := &Entity{
		Identifier: "api", Blueprint: "githubRepository", Title: "API", Team: []string{"platform"},
		Properties: map[string]any{"url": "https://github.com/acme/api", "stars": json.Number("3"), "visibility": "public"},
		Relations:  map[string]any{"organization": "acme"}, Integration: "gh", Kind: "repository",
		CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stored\n%+v\nwant\n%+v", got, want)
	}
	if score := e.rdb.ZScore(e.ctx, ownKey(e.T(), "gh", "repository"), "githubRepository"+US+"api").Val(); score != float64(e.clock.Now().UnixMilli()) {
		t.Errorf("ownership score %v", score)
	}

	// The same write again, later: nothing is written, no change, but ownership is refreshed.
	before := e.raw("githubRepository", "api")
	later := e.clock.Add(time.Minute)
	w2 := w
	w2.Entity.Properties = map[string]any{"url": "https://github.com/acme/api", "stars": 3.0, "visibility": "public"} // 3.0 encodes as 3
	w2.FetchedAt = w.FetchedAt
	o = e.one(w2, Unchanged)
	if o.Change != nil || len(o.CreatedChanges) != 0 {
		t.Errorf("unchanged write produced a change: %+v", o)
	}
	if after := e.raw("githubRepository", "api"); !maps.Equal(before, after) {
		t.Errorf("unchanged write changed the hash:\nbefore %q\nafter  %q", before, after)
	}
	if score := e.rdb.ZScore(e.ctx, ownKey(e.T(), "gh", "repository"), "githubRepository"+US+"api").Val(); score != float64(later.UnixMilli()) {
		t.Errorf("ownership not refreshed: score %v, want %v", score, later.UnixMilli())
	}

	// A real change.
	w3 := w
	w3.Entity.Properties = repo("api")
	w3.Entity.Properties["stars"] = 4
	w3.FetchedAt = later
	o = e.one(w3, Updated)
	if o.Change == nil || o.Change.Op != OpUpdated || e.published(o.Change).Properties["stars"] != json.Number("4") {
		t.Fatalf("change = %+v", o.Change)
	}
	got = e.get("githubRepository", "api")
	if got.Properties["stars"] != json.Number("4") || !got.UpdatedAt.Equal(later) || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("after update: %+v", got)
	}
}

func TestMergeVsReplace(t *testing.T) {
	stored := func(e *env) {
		w := e.w("service", "checkout", map[string]any{"tier": 1}, map[string]any{"repos": []any{"a", "b"}, "mainRepo": "a"})
		w.Entity.Title, w.Entity.Icon = "Checkout", "Service"
		e.one(w, Created)
	}
	cases := []struct {
		name      string
		merge     bool
		title     string
		props     map[string]any
		rels      map[string]any
		wantTitle string
		wantIcon  string
		wantProps map[string]any
		wantRels  map[string]any
	}{
		{
			name: "merge keeps what the write leaves out", merge: true,
			rels: map[string]any{"repos": []any{"c"}}, wantTitle: "Checkout", wantIcon: "Service",
			wantProps: map[string]any{"tier": json.Number("1")},
			wantRels:  map[string]any{"repos": []string{"c"}, "mainRepo": "a"},
		},
		{
			name: "merge overwrites what the write sets", merge: true, title: "New",
			props: map[string]any{"tier": 2}, rels: map[string]any{"mainRepo": nil}, wantTitle: "New", wantIcon: "Service",
			wantProps: map[string]any{"tier": json.Number("2")},
			wantRels:  map[string]any{"repos": []string{"a", "b"}, "mainRepo": nil},
		},
		{
			name: "replace drops what the write leaves out", merge: false,
			rels: map[string]any{"repos": []any{"c"}}, wantTitle: "", wantIcon: "",
			wantProps: map[string]any{},
			wantRels:  map[string]any{"repos": []string{"c"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			stored(e)
			w := e.w("service", "checkout", tc.props, tc.rels)
			w.Entity.Title, w.Merge = tc.title, tc.merge
			o := e.one(w, Updated)
			got := e.get("service", "checkout")
			if got.Title != tc.wantTitle || got.Icon != tc.wantIcon || !reflect.DeepEqual(got.Properties, tc.wantProps) || !reflect.DeepEqual(got.Relations, tc.wantRels) {
				t.Errorf("stored %+v\nwant title %q icon %q props %v rels %v", got, tc.wantTitle, tc.wantIcon, tc.wantProps, tc.wantRels)
			}
			// The change carries the whole entity after the merge, not just the write.
			ch := e.published(o.Change)
			if ch.Title != tc.wantTitle || ch.Icon != tc.wantIcon || len(ch.Properties) != len(tc.wantProps) || len(ch.Relations) != len(tc.wantRels) {
				t.Errorf("change entity %+v", ch)
			}
			// The reverse index follows the stored relations exactly.
			for _, id := range []string{"a", "b", "c"} {
				var want []string
				if rels, ok := tc.wantRels["repos"].([]string); ok && slices.Contains(rels, id) {
					want = append(want, "service"+US+"checkout"+US+"repos"+US+"0")
				}
				if tc.wantRels["mainRepo"] == id {
					want = append(want, "service"+US+"checkout"+US+"mainRepo"+US+"0")
				}
				got := e.rev("githubRepository", id)
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("rev(%s) = %q, want %q", id, got, want)
				}
			}
			// Writing the merged result again is unchanged: the hash covers the merged content.
			e.one(w, Unchanged)
		})
	}
}

func TestSkippedOlder(t *testing.T) {
	e := setup(t)
	t0 := e.clock.Now()
	newer := e.w("githubRepository", "api", repo("api"), nil)
	newer.FetchedAt = t0.Add(10 * time.Second) // a live event fetched during the run
	e.one(newer, Created)

	older := e.w("githubRepository", "api", map[string]any{"url": "https://old.example/api"}, nil)
	older.FetchedAt = t0 // the run fetched it before the live event
	e.one(older, SkippedOlder)
	if got := e.get("githubRepository", "api").Properties["url"]; got != "https://github.com/acme/api" {
		t.Errorf("older write overwrote the newer one: url %v", got)
	}

	same := older
	same.FetchedAt = newer.FetchedAt // equal times are not older
	e.one(same, Updated)
}

func TestFenced(t *testing.T) {
	e := setup(t)
	lease := e.T() + ":lease:gh"
	if err := e.rdb.Set(e.ctx, lease, 7, 0).Err(); err != nil {
		t.Fatal(err)
	}
	fence := &Fence{Key: lease, Token: 7}
	if o := e.upsert(fence, e.w("githubRepository", "a", repo("a"), nil))[0]; o.Status != Created {
		t.Fatalf("with the lease: %s %v", o.Status, o.Err)
	}
	e.rdb.Set(e.ctx, lease, 8, 0) // another worker took the lease over
	outs := e.upsert(fence, e.w("githubRepository", "b", repo("b"), nil), e.w("githubRepository", "a", map[string]any{"url": "https://x.io"}, nil))
	for i, o := range outs {
		if o.Status != Fenced {
			t.Errorf("write %d after losing the lease: %s", i, o.Status)
		}
	}
	if e.exists("githubRepository", "b") || e.get("githubRepository", "a").Properties["url"] != "https://github.com/acme/a" {
		t.Error("a fenced write changed the catalog")
	}
	e.clock.Add(time.Hour)
	_, err := e.cat.DeleteStale(e.ctx, e.tenant, fence, "gh", []string{"repository"}, e.clock.Now(), 1, false)
	if !errors.Is(err, ErrFenced) {
		t.Errorf("DeleteStale with a lost lease: %v, want ErrFenced", err)
	}
	if !e.exists("githubRepository", "a") {
		t.Error("a fenced deletion deleted")
	}
	if _, err := e.cat.Upsert(e.ctx, e.tenant, &Fence{Key: "cs:{other}:lease", Token: 1}, nil); err == nil {
		t.Error("a fence key outside the tenant's hash slot was accepted")
	}
}

func TestBarebonesAndTakeover(t *testing.T) {
	e := setup(t)
	o := e.one(e.w("githubRepository", "api", repo("api"), map[string]any{"organization": "acme"}), Created)
	if !reflect.DeepEqual(o.Created, refsOf("githubOrganization", "acme")) {
		t.Fatalf("created %v", o.Created)
	}
	if len(o.CreatedChanges) != 1 || o.CreatedChanges[0].Op != OpCreated || o.CreatedChanges[0].Identifier != "acme" {
		t.Fatalf("created changes %+v", o.CreatedChanges)
	}
	org := e.get("githubOrganization", "acme")
	if org.Integration != "" || org.Kind != "" || len(org.Properties) != 0 {
		t.Errorf("barebones entity %+v", org)
	}
	// Barebones entities are owned by no one, so never stale.
	e.clock.Add(time.Hour)
	rep, err := e.cat.DeleteStale(e.ctx, e.tenant, nil, "gh", []string{"repository", "organization"}, e.clock.Now(), 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if !e.exists("githubOrganization", "acme") || rep.Owned != 1 {
		t.Errorf("stale deletion touched the barebones entity: %+v", rep)
	}
	// The integration that writes it takes it over.
	o = e.one(e.w("githubOrganization", "acme", map[string]any{"name": "Acme"}, nil), Updated)
	if ent := e.published(o.Change); ent.Integration != "gh" {
		t.Errorf("change %+v", ent)
	}
	if org := e.get("githubOrganization", "acme"); org.Integration != "gh" || org.Kind != "organization" {
		t.Errorf("after takeover %+v", org)
	}
	if n, _ := e.cat.CountOwned(e.ctx, e.tenant, "gh", "organization"); n != 1 {
		t.Errorf("CountOwned = %d", n)
	}
	// A second write pointing at it creates nothing.
	if o := e.one(e.w("githubRepository", "web", repo("web"), map[string]any{"organization": "acme"}), Created); len(o.Created) != 0 {
		t.Errorf("created %v for an existing target", o.Created)
	}
}

func TestMissingTargets(t *testing.T) {
	e := setup(t)
	w := e.w("service", "checkout", nil, map[string]any{"repos": []any{"a", "b"}, "mainRepo": "a"})
	w.CreateMissing = false
	e.one(e.w("githubRepository", "b", repo("b"), nil), Created)
	o := e.one(w, MissingTargets)
	if !reflect.DeepEqual(o.Missing, refsOf("githubRepository", "a")) || o.Change != nil {
		t.Errorf("outcome %+v", o)
	}
	if e.exists("service", "checkout") || e.exists("githubRepository", "a") || len(e.rev("githubRepository", "b")) != 0 {
		t.Error("an entity with missing targets was (partly) written")
	}
	// The worker retries at the end of the run, once the target arrived.
	e.one(e.w("githubRepository", "a", repo("a"), nil), Created)
	e.one(w, Created)
	// Pointing at itself is not missing.
	self := e.w("githubRepository", "c", repo("c"), nil)
	self.CreateMissing = false
	e.one(self, Created)
}

func TestValidation(t *testing.T) {
	cases := []struct {
		name     string
		write    func(e *env) Write
		status   Status
		errHas   []string
		warnings []string
	}{
		{"unknown blueprint", func(e *env) Write { return e.w("nope", "x", nil, nil) }, Invalid, []string{`blueprint "nope" does not exist`}, nil},
		{"property types", func(e *env) Write {
			return e.w("githubRepository", "x", map[string]any{"url": "not a url", "stars": "3", "visibility": "secret"}, nil)
		}, Invalid, []string{`acme`, "githubRepository/x", "url: ", "stars: want a number", "visibility: "}, nil},
		{"required property", func(e *env) Write { return e.w("githubRepository", "x", map[string]any{"stars": 1}, nil) }, Invalid, []string{"url: is required"}, nil},
		{"required relation", func(e *env) Write { return e.w("githubPullRequest", "x", nil, nil) }, Invalid, []string{`relation "repository" is required`}, nil},
		{"required relation null", func(e *env) Write {
			return e.w("githubPullRequest", "x", nil, map[string]any{"repository": nil})
		}, Invalid, []string{`relation "repository" is required, got no target`}, nil},
		{"list for a single relation", func(e *env) Write {
			return e.w("githubRepository", "x", repo("x"), map[string]any{"organization": []any{"a", "b"}})
		}, Invalid, []string{`relation "organization": takes one identifier`}, nil},
		{"identifier with the separator", func(e *env) Write { return e.w("githubRepository", "x\x1fy", repo("x"), nil) }, Invalid, []string{"unit separator"}, nil},
		{"no fetch time", func(e *env) Write {
			w := e.w("githubRepository", "x", repo("x"), nil)
			w.FetchedAt = time.Time{}
			return w
		}, Invalid, []string{"FetchedAt"}, nil},
		{"merge without a required property and nothing stored", func(e *env) Write {
			w := e.w("githubRepository", "x", map[string]any{"stars": 1}, nil)
			w.Merge = true
			return w
		}, Invalid, []string{`property "url" is required, and neither the merged write nor the stored entity sets it`}, nil},
		{"merge without a required property that is stored", func(e *env) Write {
			e.one(e.w("githubRepository", "x", repo("x"), nil), Created)
			w := e.w("githubRepository", "x", map[string]any{"stars": 9}, nil)
			w.Merge = true
			return w
		}, Updated, nil, nil},
		{"undeclared property and relation dropped", func(e *env) Write {
			p := repo("x")
			p["__internal"] = true
			return e.w("githubRepository", "x", p, map[string]any{"team": "core"})
		}, Created, nil, []string{
			`property "__internal" is not in blueprint "githubRepository"'s schema; dropped`,
			`relation "team" is not in blueprint "githubRepository"; dropped`,
		}},
		{"a string for a many relation is a list of one", func(e *env) Write {
			return e.w("service", "x", nil, map[string]any{"repos": "a"})
		}, Created, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			w := tc.write(e)
			o := e.upsert(nil, w)[0]
			if o.Status != tc.status {
				t.Fatalf("status %s (%v), want %s", o.Status, o.Err, tc.status)
			}
			for _, s := range tc.errHas {
				if o.Err == nil || !strings.Contains(o.Err.Error(), s) {
					t.Errorf("err %v lacks %q", o.Err, s)
				}
			}
			if !slices.Equal(o.Warnings, tc.warnings) {
				t.Errorf("warnings %q, want %q", o.Warnings, tc.warnings)
			}
			if tc.status == Invalid && o.Change != nil {
				t.Error("an invalid write produced a change")
			}
			if tc.status == Created {
				got := e.get(w.Entity.Blueprint, w.Entity.Identifier)
				if _, ok := got.Properties["__internal"]; ok {
					t.Error("undeclared property stored")
				}
				if _, ok := got.Relations["team"]; ok {
					t.Error("undeclared relation stored")
				}
			}
		})
	}
}

func TestOwnershipMoves(t *testing.T) {
	e := setup(t)
	member := "githubRepository" + US + "api"
	owners := func() map[string]bool {
		got := map[string]bool{}
		for _, k := range []string{ownKey(e.T(), "gh", "repository"), ownKey(e.T(), "gh", "monorepo"), ownKey(e.T(), "gitlab", "project")} {
			if e.rdb.ZScore(e.ctx, k, member).Err() == nil {
				got[k] = true
			}
		}
		return got
	}
	steps := []struct {
		integration, kind string
		status            Status
	}{
		{"gh", "repository", Created},
		{"gh", "monorepo", Updated},    // same content, new kind: the member moves
		{"gitlab", "project", Updated}, // another integration takes it over
		{"gitlab", "project", Unchanged},
	}
	for _, s := range steps {
		w := e.w("githubRepository", "api", repo("api"), nil)
		w.Integration, w.Kind = s.integration, s.kind
		e.one(w, s.status)
		want := map[string]bool{ownKey(e.T(), s.integration, s.kind): true}
		if got := owners(); !maps.Equal(got, want) {
			t.Errorf("after %s/%s: owned by %v, want %v", s.integration, s.kind, got, want)
		}
		if ent := e.get("githubRepository", "api"); ent.Integration != s.integration || ent.Kind != s.kind {
			t.Errorf("entity owner %s/%s", ent.Integration, ent.Kind)
		}
	}
	kinds, err := e.cat.OwnedKinds(e.ctx, e.tenant, "gh")
	if err != nil || len(kinds) != 0 {
		t.Errorf("gh still owns kinds %v (%v)", kinds, err)
	}
}

// TestBlueprintChangeUnderCache: another process changes a blueprint; this one's
// cache is stale, and the script sends the write back to be validated again.
func TestBlueprintChangeUnderCache(t *testing.T) {
	e := setup(t)
	e.one(e.w("githubOrganization", "acme", map[string]any{"name": "Acme"}, nil), Created) // fills the cache
	other := New(e.rdb, e.prefix, e.clock.Now)
	b, err := other.GetBlueprint(e.ctx, e.tenant, "githubOrganization")
	if err != nil {
		t.Fatal(err)
	}
	b.Schema.Properties["country"] = blueprint.Property{Type: "string"}
	if err := other.PutBlueprint(e.ctx, e.tenant, *b); err != nil {
		t.Fatal(err)
	}
	o := e.one(e.w("githubOrganization", "acme", map[string]any{"name": "Acme", "country": "NL"}, nil), Updated)
	if len(o.Warnings) != 0 || e.get("githubOrganization", "acme").Properties["country"] != "NL" {
		t.Errorf("written with the old blueprint: %+v", o)
	}

	// A blueprint the cache has never seen, and a property whose type the cache has
	// wrong: both look invalid by the cache, and both must be written.
	team := blueprint.Blueprint{Identifier: "githubTeam", Schema: blueprint.Schema{Properties: map[string]blueprint.Property{"size": {Type: "number"}}}}
	if err := other.PutBlueprint(e.ctx, e.tenant, team); err != nil {
		t.Fatal(err)
	}
	b.Schema.Properties["name"] = blueprint.Property{Type: "number"}
	if err := other.PutBlueprint(e.ctx, e.tenant, *b); err != nil {
		t.Fatal(err)
	}
	outs := e.upsert(nil, e.w("githubTeam", "core", map[string]any{"size": 3}, nil), e.w("githubOrganization", "acme", map[string]any{"name": 7}, nil))
	if outs[0].Status != Created || outs[1].Status != Updated {
		t.Errorf("with a stale cache: %s (%v), %s (%v)", outs[0].Status, outs[0].Err, outs[1].Status, outs[1].Err)
	}
}

// TestConcurrentWriters: many goroutines write the same entities with different fetch
// times; whatever the interleaving, each entity ends with the newest data.
func TestConcurrentWriters(t *testing.T) {
	e := setup(t)
	base := e.clock.Now()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ws []Write
			for i := range 20 {
				id := "r" + string(rune('a'+i))
				p := repo(id)
				p["stars"] = g
				w := e.w("githubRepository", id, p, map[string]any{"organization": "acme"})
				w.FetchedAt = base.Add(time.Duration(g) * time.Second)
				ws = append(ws, w)
			}
			if _, err := e.cat.Upsert(e.ctx, e.tenant, nil, ws); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range 20 {
		id := "r" + string(rune('a'+i))
		if got := e.get("githubRepository", id).Properties["stars"]; got != json.Number("7") {
			t.Errorf("%s: stars %v, want the newest write's 7", id, got)
		}
	}
	if got := len(e.rev("githubOrganization", "acme")); got != 20 {
		t.Errorf("rev(acme) has %d members, want 20", got)
	}
}

// TestPipelineLoadsMissingScript: a script Redis does not know (new process, restart)
// is loaded and the pipeline sent again. A script with a unique body is certainly not
// cached; flushing the cache instead would disturb other users of the shared Redis.
func TestPipelineLoadsMissingScript(t *testing.T) {
	e := setup(t)
	s := redis.NewScript("-- " + e.prefix + "\nreturn ARGV[1]")
	res, err := e.cat.runPipeline(e.ctx, s, []scriptCall{{keys: []string{e.T() + ":x"}, args: []any{"a"}}, {keys: []string{e.T() + ":x"}, args: []any{"b"}}}, e.tenant)
	if err != nil || !reflect.DeepEqual(res, []any{"a", "b"}) {
		t.Fatalf("runPipeline = %v, %v", res, err)
	}
}

// TestContentHashMatchesLua: the fast unchanged path compares a hash Go computes with
// one the scripts compute (after merges and cleared relations); they must agree.
func TestContentHashMatchesLua(t *testing.T) {
	e := setup(t)
	w := e.w("service", "ünïcode", map[string]any{"tier": 1.5}, map[string]any{"repos": []any{"a", "b"}, "mainRepo": nil})
	w.Entity.Title, w.Entity.Icon, w.Entity.Team = "Tïtle with \x00 and 12:34", "", []string{"a", "b"}
	e.one(w, Created)
	hashScript := redis.NewScript(luaPrelude + `return contentHash(toMap(redis.call('HGETALL', KEYS[1])))`)
	luaHash, err := hashScript.Run(e.ctx, e.rdb, []string{entityKey(e.T(), "service", "ünïcode")}).Text()
	if err != nil {
		t.Fatal(err)
	}
	f := e.raw("service", "ünïcode")
	var fields []string
	for k, v := range f {
		if !strings.HasPrefix(k, "_") {
			fields = append(fields, k, v)
		}
	}
	if goHash := contentHash(fields); goHash != luaHash || f["_hash"] != luaHash {
		t.Errorf("Go %s, Lua %s, stored %s", goHash, luaHash, f["_hash"])
	}
	if contentHash(nil) != "da39a3ee5e6b4b0d3255bfef95601890afd80709" {
		t.Error("the hash of no content is not SHA-1 of the empty string, as the Lua side has it")
	}
}
