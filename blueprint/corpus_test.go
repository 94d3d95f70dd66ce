package blueprint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

// corpusFiles returns Ocean's blueprints.json files by integration name, or skips the
// test when the corpus is not checked out next to the project (it is kept outside the
// module on purpose; CI always has it).
func corpusFiles(tb testing.TB) map[string]string {
	tb.Helper()
	files, reason := findCorpus()
	if files == nil {
		tb.Skip(reason)
	}
	return files
}

// findCorpus locates ../shared/compat/ocean-integrations from the module root (found
// by walking up to go.mod, since tests run in the package's directory). It returns nil
// and the reason when the corpus is not there.
func findCorpus() (map[string]string, string) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, "cannot locate the Ocean corpus: " + err.Error()
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, "no go.mod above the test's directory, so the Ocean corpus cannot be located"
		}
		dir = parent
	}
	corpus := filepath.Join(dir, "..", "shared", "compat", "ocean-integrations")
	paths, err := filepath.Glob(filepath.Join(corpus, "*", "blueprints.json"))
	if err != nil || len(paths) == 0 {
		return nil, "Ocean corpus not found at " + corpus + " (it lives beside the project, at ../shared/compat/ocean-integrations)"
	}
	files := map[string]string{}
	for _, p := range paths {
		files[filepath.Base(filepath.Dir(p))] = p
	}
	return files, ""
}

// TestOceanCorpus loads every blueprint file of Ocean's integrations: configsync must
// accept them as they are.
func TestOceanCorpus(t *testing.T) {
	files := corpusFiles(t)
	if len(files) != 49 {
		t.Errorf("corpus has %d blueprint files, want 49", len(files))
	}
	sets := map[string]Set{}
	total := 0
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		data, err := os.ReadFile(files[name])
		if err != nil {
			t.Fatal(err)
		}
		bps, err := Parse(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		total += len(bps)
		sets[name] = NewSet(bps)
		checkNoLoss(t, name, data, bps)
	}
	if total != 194 {
		t.Errorf("corpus has %d blueprints, want 194", total)
	}

	facts := []struct {
		name string
		got  any
		want any
	}{
		{"github identifiers", sets["github"].Identifiers(), []string{"githubOrganization", "githubRepository", "githubPullRequest"}},
		{"github repository→organization", relation(sets["github"], "githubRepository", "organization"),
			Relation{Title: "Organization", Target: "githubOrganization"}},
		{"github readme is markdown", property(sets["github"], "githubRepository", "readme").Format, "markdown"},
		{"github is self-contained", sets["github"].MissingTargets(), []string(nil)},
		{"github-copilot points outside", sets["github-copilot"].MissingTargets(), []string{"githubTeam"}},
		{"jira team members", relation(sets["jira"], "jiraTeam", "members"),
			Relation{Title: "Users", Description: "The Jira users belonging to this team", Target: "jiraUser", Many: true}},
		{"pagerduty blueprints", sets["pagerduty"].Len(), 6},
		{"aws status items enum", len(property(sets["aws"], "awsAccount", "status").Items.Enum), 3},
		{"aws status default", string(property(sets["aws"], "awsAccount", "status").Default), `["ACTIVE"]`},
		{"argocd's enum type", property(sets["argocd"], "argocdCluster", "status").Type, TypeEnum},
		{"gitlab has one blueprint", sets["gitlab"].Identifiers(), []string{"service"}},
		{"custom has none", sets["custom"].Len(), 0},
	}
	for _, f := range facts {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s = %#v, want %#v", f.name, f.got, f.want)
		}
	}
}

// checkNoLoss checks that writing the parsed blueprints out keeps every value of the
// file (the output may add the relation defaults required/many and drop keys whose
// value is ""), and that reading the output gives the same blueprints.
func checkNoLoss(t *testing.T, name string, data []byte, bps []Blueprint) {
	t.Helper()
	out, err := json.Marshal(bps)
	if err != nil {
		t.Errorf("%s: Marshal: %v", name, err)
		return
	}
	var in, written any
	if err := json.Unmarshal(data, &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &written); err != nil {
		t.Fatal(err)
	}
	if path, ok := subset(in, written, "$"); !ok {
		t.Errorf("%s: output lost or changed %s", name, path)
	}
	again, err := Parse(out)
	if err != nil {
		t.Errorf("%s: Parse(Marshal): %v", name, err)
	} else if !reflect.DeepEqual(again, bps) {
		t.Errorf("%s: Parse(Marshal(bps)) differs from bps", name)
	}
}

// subset reports whether every value in a is in b at the same place, returning the
// first path where it is not.
func subset(a, b any, path string) (string, bool) {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok {
			return path, false
		}
		for k, v := range a {
			if _, kept := bm[k]; !kept && v == "" {
				continue // empty strings are written as absent keys
			}
			if p, ok := subset(v, bm[k], path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		bs, ok := b.([]any)
		if !ok || len(bs) != len(a) {
			return path, false
		}
		for i := range a {
			if p, ok := subset(a[i], bs[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, false
			}
		}
		return "", true
	}
	return path, reflect.DeepEqual(a, b)
}

func relation(s Set, id, name string) Relation {
	b, ok := s.Get(id)
	if !ok {
		return Relation{}
	}
	r, _ := b.Relation(name)
	return r
}

func property(s Set, id, name string) Property {
	if b, ok := s.Get(id); ok {
		if p, ok := b.Property(name); ok {
			return p
		}
	}
	return Property{Items: &Property{}}
}
