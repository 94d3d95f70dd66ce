package catalog

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/configsync/configsync/blueprint"
)

func TestResolve(t *testing.T) {
	e := setup(t)
	for i, lang := range []string{"go", "python", "go", "rust"} {
		p := repo(fmt.Sprint("r", i))
		p["language"], p["stars"] = lang, i
		p["extra"] = []any{lang, map[string]any{"n": i}}
		w := e.w("githubRepository", fmt.Sprint("r", i), p, nil)
		w.Entity.Title = strings.ToUpper(lang)
		e.one(w, Created)
	}
	rule := func(p, op string, v any) map[string]any {
		return map[string]any{"property": p, "operator": op, "value": v}
	}
	q := func(comb string, rules ...any) map[string]any {
		return map[string]any{"combinator": comb, "rules": rules}
	}
	cases := []struct {
		name  string
		query map[string]any
		want  []string
		err   string
	}{
		{"= on a property", q("and", rule("language", "=", "go")), []string{"r0", "r2"}, ""},
		{"= on a number, by value", q("and", rule("stars", "=", 2.0)), []string{"r2"}, ""},
		{"in", q("and", rule("language", "in", []any{"python", "rust"})), []string{"r1", "r3"}, ""},
		{"$identifier =", q("and", rule("$identifier", "=", "r3")), []string{"r3"}, ""},
		{"$identifier in, one missing", q("and", rule("$identifier", "in", []any{"r1", "nope", "r2"})), []string{"r1", "r2"}, ""},
		{"$identifier and a property", q("and", rule("$identifier", "in", []any{"r0", "r1"}), rule("language", "=", "go")), []string{"r0"}, ""},
		{"$title", q("and", rule("$title", "=", "RUST")), []string{"r3"}, ""},
		{"or with nesting", q("or", rule("language", "=", "rust"), q("and", rule("language", "=", "go"), rule("stars", "=", 0))), []string{"r0", "r3"}, ""},
		{"= on an array, element by element", q("and", rule("extra", "=", []any{"go", map[string]any{"n": 2}})), []string{"r2"}, ""},
		{"in with arrays", q("and", rule("extra", "in", []any{[]any{"rust", map[string]any{"n": 3.0}}, "go"})), []string{"r3"}, ""},
		{"no match", q("and", rule("language", "=", "java")), nil, ""},
		{"unset property", q("and", rule("archived", "=", true)), nil, ""},
		{"bad operator", q("and", rule("language", "contains", "g")), nil, `operator "contains" is not supported`},
		{"in without a list", q("and", rule("language", "in", "go")), nil, `needs a list`},
		{"bad combinator", q("xor", rule("language", "=", "go")), nil, `combinator`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.cat.Resolve(e.ctx, e.tenant, "githubRepository", tc.query)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestListPaging(t *testing.T) {
	e := setup(t)
	var ws []Write
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("repo-%02d", 24-i) // written in reverse order
		ws = append(ws, e.w("githubRepository", id, repo(id), nil))
		want = append(want, fmt.Sprintf("repo-%02d", i))
	}
	e.upsert(nil, ws...)
	var got []string
	cursor, pages := "", 0
	for {
		page, next, err := e.cat.List(e.ctx, e.tenant, "githubRepository", cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, ent := range page {
			got = append(got, ent.Identifier)
			if ent.Properties["url"] != "https://github.com/acme/"+ent.Identifier {
				t.Errorf("%s: %v", ent.Identifier, ent.Properties)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Errorf("%d pages: %v", pages, got)
	}
	page, next, err := e.cat.List(e.ctx, e.tenant, "nothing", "", 10)
	if err != nil || len(page) != 0 || next != "" {
		t.Errorf("empty blueprint: %v %q %v", page, next, err)
	}
	if _, err := e.cat.Get(e.ctx, e.tenant, "githubRepository", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing entity: %v", err)
	}
}

func TestBlueprints(t *testing.T) {
	e := setup(t)
	list, err := e.cat.ListBlueprints(e.ctx, e.tenant)
	if err != nil || len(list) != 5 || list[0].Identifier != "githubOrganization" {
		t.Fatalf("ListBlueprints: %d %v", len(list), err)
	}
	if _, err := e.cat.GetBlueprint(e.ctx, e.tenant, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetBlueprint nope: %v", err)
	}
	if err := e.cat.PutBlueprint(e.ctx, e.tenant, blueprint.Blueprint{Identifier: "bad id"}); err == nil {
		t.Error("invalid blueprint accepted")
	}

	e.one(e.w("githubRepository", "api", repo("api"), nil), Created)
	e.one(e.w("service", "svc", nil, map[string]any{"mainRepo": "api"}), Created)
	if err := e.cat.DeleteBlueprint(e.ctx, e.tenant, "service"); err == nil || !strings.Contains(err.Error(), "still has 1 entities") {
		t.Errorf("DeleteBlueprint with entities: %v", err)
	}

	svc, _ := e.cat.GetBlueprint(e.ctx, e.tenant, "service")
	retarget := *svc
	retarget.Relations = map[string]blueprint.Relation{"mainRepo": {Target: "githubOrganization"}, "repos": svc.Relations["repos"]}
	if err := e.cat.PutBlueprint(e.ctx, e.tenant, retarget); err == nil || !strings.Contains(err.Error(), "change its target") {
		t.Errorf("retarget with entities: %v", err)
	}

	// Making mainRepo required turns the service into a dependent of the repository.
	required := *svc
	required.Relations = map[string]blueprint.Relation{"mainRepo": {Target: "githubRepository", Required: true}, "repos": svc.Relations["repos"]}
	if err := e.cat.PutBlueprint(e.ctx, e.tenant, required); err != nil {
		t.Fatal(err)
	}
	if got := e.rev("githubRepository", "api"); !slices.Equal(got, []string{"service" + US + "svc" + US + "mainRepo" + US + "1"}) {
		t.Errorf("rev after the required flip: %q", got)
	}
	rep, err := e.cat.Delete(e.ctx, e.tenant, nil, Ref{"githubRepository", "api"}, false)
	if err != nil || len(rep.KeptForDependents) != 1 {
		t.Errorf("after the flip the service is a dependent: %+v %v", rep, err)
	}

	if _, err := e.cat.Delete(e.ctx, e.tenant, nil, Ref{"service", "svc"}, false); err != nil {
		t.Fatal(err)
	}
	if err := e.cat.DeleteBlueprint(e.ctx, e.tenant, "service"); err != nil {
		t.Errorf("DeleteBlueprint without entities: %v", err)
	}
	if o := e.upsert(nil, e.w("service", "svc2", nil, nil))[0]; o.Status != Invalid {
		t.Errorf("write to a deleted blueprint: %s", o.Status)
	}
	if err := e.cat.DeleteBlueprint(e.ctx, e.tenant, "service"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting it again: %v", err)
	}
}

func TestTenantsAreSeparate(t *testing.T) {
	e := setup(t)
	e.one(e.w("githubRepository", "api", repo("api"), nil), Created)
	if _, err := e.cat.Get(e.ctx, "globex", "githubRepository", "api"); !errors.Is(err, ErrNotFound) {
		t.Errorf("another tenant sees the entity: %v", err)
	}
	if o, _ := e.cat.Upsert(e.ctx, "globex", nil, []Write{e.w("githubRepository", "api", repo("api"), nil)}); o[0].Status != Invalid {
		t.Errorf("another tenant has the blueprint: %s", o[0].Status)
	}
	if _, err := e.cat.Get(e.ctx, "a}b", "x", "y"); err == nil {
		t.Error("a tenant with a brace was accepted")
	}
	iter := e.rdb.Scan(e.ctx, 0, e.prefix+"*", 1000).Iterator() // SCAN, not KEYS: the Redis is shared
	n := 0
	for iter.Next(e.ctx) {
		n++
		if hashTag(iter.Val()) != e.tenant && iter.Val() != e.cat.outboxTenantsKey() {
			t.Errorf("key %q is outside the tenant's hash slot", iter.Val())
		}
	}
	if err := iter.Err(); err != nil || n == 0 {
		t.Fatalf("scanned %d keys: %v", n, err)
	}
}
