package catalog

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/configsync/configsync/blueprint"
	"github.com/configsync/configsync/redistest"
)

// testBlueprints model a GitHub-like catalog with every relation shape the rules
// care about: optional single (repository→organization), required single
// (pullRequest→repository, comment→pullRequest: a chain of dependents), optional
// single and many (service→repository).
const testBlueprints = `[
  {"identifier": "githubOrganization", "schema": {"properties": {"name": {"type": "string"}}}},
  {"identifier": "githubRepository", "title": "Repository", "schema": {
    "properties": {
      "url": {"type": "string", "format": "url"},
      "stars": {"type": "number"},
      "visibility": {"type": "string", "enum": ["public", "private", "internal"]},
      "language": {"type": "string"},
      "topics": {"type": "array", "items": {"type": "string"}},
      "extra": {"type": "array"},
      "archived": {"type": "boolean"},
      "pushedAt": {"type": "string", "format": "date-time"},
      "readme": {"type": "string", "format": "markdown"}
    },
    "required": ["url"]},
   "relations": {"organization": {"target": "githubOrganization", "required": false, "many": false}}},
  {"identifier": "githubPullRequest", "schema": {"properties": {"status": {"type": "string", "enum": ["open", "merged", "closed"]}}},
   "relations": {"repository": {"target": "githubRepository", "required": true, "many": false}}},
  {"identifier": "prComment", "schema": {"properties": {"body": {"type": "string"}}},
   "relations": {"pullRequest": {"target": "githubPullRequest", "required": true, "many": false}}},
  {"identifier": "service", "schema": {"properties": {"tier": {"type": "number"}}},
   "relations": {
     "repos": {"target": "githubRepository", "required": false, "many": true},
     "mainRepo": {"target": "githubRepository", "required": false, "many": false}}}
]`

// testClock is the catalog's clock in tests: it moves only when told to.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// env is one test's catalog on its own key prefix.
type env struct {
	t      testing.TB
	ctx    context.Context
	rdb    redis.UniversalClient
	prefix string
	cat    *Catalog
	clock  *testClock
	tenant string
}

func setup(t testing.TB) *env {
	t.Helper()
	rdb, prefix := redistest.Client(t)
	clock := &testClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	e := &env{t: t, ctx: context.Background(), rdb: rdb, prefix: prefix, cat: New(rdb, prefix, clock.Now), clock: clock, tenant: "acme"}
	bps, err := blueprint.Parse([]byte(testBlueprints))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bps {
		if err := e.cat.PutBlueprint(e.ctx, e.tenant, b); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// T is the tenant's key prefix, for asserting on raw keys.
func (e *env) T() string { return e.cat.tkey(e.tenant) }

func (e *env) upsert(fence *Fence, ws ...Write) []Outcome {
	e.t.Helper()
	out, err := e.cat.Upsert(e.ctx, e.tenant, fence, ws)
	if err != nil {
		e.t.Fatalf("Upsert: %v", err)
	}
	return out
}

// one writes a single entity and fails the test unless the status is want.
func (e *env) one(w Write, want Status) Outcome {
	e.t.Helper()
	o := e.upsert(nil, w)[0]
	if o.Status != want {
		e.t.Fatalf("%s/%s: status %s (err %v), want %s", w.Entity.Blueprint, w.Entity.Identifier, o.Status, o.Err, want)
	}
	return o
}

func (e *env) get(bp, id string) *Entity {
	e.t.Helper()
	ent, err := e.cat.Get(e.ctx, e.tenant, bp, id)
	if err != nil {
		e.t.Fatalf("Get %s/%s: %v", bp, id, err)
	}
	return ent
}

func (e *env) exists(bp, id string) bool {
	e.t.Helper()
	n, err := e.rdb.Exists(e.ctx, entityKey(e.T(), bp, id)).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return n == 1
}

func (e *env) raw(bp, id string) map[string]string {
	e.t.Helper()
	f, err := e.rdb.HGetAll(e.ctx, entityKey(e.T(), bp, id)).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

func (e *env) rev(bp, id string) []string {
	e.t.Helper()
	m, err := e.rdb.SMembers(e.ctx, revKey(e.T(), bp, id)).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// w builds a write by integration "gh" fetched now.
func (e *env) w(bp, id string, props map[string]any, rels map[string]any) Write {
	if props == nil {
		props = map[string]any{}
	}
	if rels == nil {
		rels = map[string]any{}
	}
	return Write{
		Entity:      Entity{Identifier: id, Blueprint: bp, Properties: props, Relations: rels},
		Integration: "gh", Kind: kindOf(bp), FetchedAt: e.clock.Now(), Merge: false, CreateMissing: true,
	}
}

func kindOf(bp string) string {
	switch bp {
	case "githubRepository":
		return "repository"
	case "githubPullRequest":
		return "pull-request"
	case "githubOrganization":
		return "organization"
	}
	return bp
}

func repo(id string) map[string]any {
	return map[string]any{"url": "https://github.com/acme/" + id, "stars": 3, "visibility": "public"}
}

func refsOf(rs ...string) []Ref {
	var out []Ref
	for i := 0; i+1 < len(rs); i += 2 {
		out = append(out, Ref{Blueprint: rs[i], Identifier: rs[i+1]})
	}
	return out
}
