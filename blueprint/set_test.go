package blueprint

import (
	"reflect"
	"testing"
)

func TestSet(t *testing.T) {
	bps, err := Parse([]byte(`[
		{"identifier":"service","schema":{"properties":{"url":{"type":"string"}}},
		 "relations":{"owner":{"target":"_team"},"deps":{"target":"service","many":true},"env":{"target":"environment"}}},
		{"identifier":"environment","relations":{"cluster":{"target":"cluster"},"team":{"target":"_team"}}}
	]`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	s := NewSet(bps)
	bps[0].Identifier = "changed" // the set holds its own copy

	tests := []struct {
		name string
		got  any
		want any
	}{
		{"Len", s.Len(), 2},
		{"Identifiers", s.Identifiers(), []string{"service", "environment"}},
		{"MissingTargets", s.MissingTargets(), []string{"_team", "cluster"}},
		{"Get unknown", get(s, "nope"), false},
		{"Get known", get(s, "service"), true},
		{"HasProperty", must(s, "service").HasProperty("url"), true},
		{"HasProperty unknown", must(s, "service").HasProperty("lang"), false},
		{"Relation many", relMany(must(s, "service"), "deps"), true},
		{"Relation one", relMany(must(s, "service"), "owner"), false},
		{"Relation target", relTarget(must(s, "environment"), "cluster"), "cluster"},
		{"Relation unknown", relTarget(must(s, "environment"), "nope"), "<none>"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestSetEdges(t *testing.T) {
	var zero Set
	if _, ok := zero.Get("x"); ok || zero.Len() != 0 || len(zero.MissingTargets()) != 0 || len(zero.Identifiers()) != 0 {
		t.Error("the zero Set is not empty")
	}

	s := NewSet([]Blueprint{{Identifier: "a", Title: "first"}, {Identifier: "b"}, {Identifier: "a", Title: "second"}})
	if b, _ := s.Get("a"); b.Title != "second" {
		t.Errorf("duplicate: Get(a).Title = %q, want the later one", b.Title)
	}
	if got := s.Identifiers(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("Identifiers = %q, want first-seen order without repeats", got)
	}

	ids := s.Identifiers()
	ids[0] = "mutated"
	if s.Identifiers()[0] != "a" {
		t.Error("Identifiers returned the set's own slice")
	}
}

func get(s Set, id string) bool {
	_, ok := s.Get(id)
	return ok
}

func must(s Set, id string) *Blueprint {
	b, ok := s.Get(id)
	if !ok {
		return &Blueprint{}
	}
	return b
}

func relMany(b *Blueprint, name string) bool {
	r, _ := b.Relation(name)
	return r.Many
}

func relTarget(b *Blueprint, name string) string {
	r, ok := b.Relation(name)
	if !ok {
		return "<none>"
	}
	return r.Target
}
