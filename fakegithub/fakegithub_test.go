package fakegithub

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestRepositoriesAreValidAndDistinct(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteRepositoriesNDJSON(&buf, 50, RepositoryOptions{Orgs: 3}); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 50 {
		t.Fatalf("%d lines", len(lines))
	}
	names := map[string]bool{}
	for i, l := range lines {
		var r struct {
			Name        string
			Owner       struct{ Login string }
			Description *string
			HTMLURL     string `json:"html_url"`
			Fields      int
		}
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("line %d: %v\n%s", i, err, l)
		}
		var all map[string]any
		_ = json.Unmarshal(l, &all)
		if len(all) < 80 || len(l) < 4000 {
			t.Errorf("line %d: %d fields, %d bytes: not GitHub-sized", i, len(all), len(l))
		}
		if names[r.Name] || r.Owner.Login != OrgLogin(i%3) || r.HTMLURL == "" {
			t.Errorf("line %d: %+v", i, r)
		}
		names[r.Name] = true
	}
}

func TestRevisionChangesOnlyChosenItems(t *testing.T) {
	a := AppendRepository(nil, 10, RepositoryOptions{})
	b := AppendRepository(nil, 10, RepositoryOptions{Revision: 1, RevisionEvery: 5})
	c := AppendRepository(nil, 11, RepositoryOptions{Revision: 1, RevisionEvery: 5})
	if bytes.Equal(a, b) || !bytes.Equal(c, AppendRepository(nil, 11, RepositoryOptions{})) {
		t.Fatal("revision should change item 10 only")
	}
}
