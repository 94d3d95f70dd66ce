package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
		docs               int
	}{
		{"two documents", "kind: blueprint\ntenant: t\nspec: {identifier: a}\n---\nkind: integration\ntenant: t\nspec: {id: i, type: file}\n", "", 2},
		{"bad kind", "kind: widget\ntenant: t\nspec: {}\n", `f.yaml document 1: kind must be blueprint or integration, got "widget"`, 0},
		{"bad tenant", "kind: blueprint\ntenant: Acme\nspec: {identifier: a}\n", `f.yaml document 1: tenant "Acme" must match`, 0},
		{"no spec", "kind: blueprint\ntenant: t\n", "f.yaml document 1: spec is required", 0},
		{"not yaml", "kind: [", "f.yaml document 1:", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Parse([]byte(tt.doc), "f.yaml")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(docs) != tt.docs {
				t.Fatalf("%d docs, %v", len(docs), err)
			}
		})
	}
}

func TestReadDirAndDecode(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yaml", "kind: integration\ntenant: t\nspec:\n  id: inv\n  displayName: Inventory\n  type: file\n  parameters: {root: data}\n  credentials: {token: x}\n  config: {resources: []}\n")
	write("a.yml", "kind: blueprint\ntenant: t\nspec: {identifier: team, schema: {properties: {size: {type: number}}}}\n")
	write("notes.txt", "ignored")
	docs, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Kind != "blueprint" || docs[0].Dir != dir {
		t.Fatalf("docs: %+v", docs)
	}
	bp, err := docs[0].Blueprint()
	if err != nil || bp.Identifier != "team" || !bp.HasProperty("size") {
		t.Fatalf("blueprint: %+v %v", bp, err)
	}
	spec, err := docs[1].Integration()
	if err != nil || spec.ID != "inv" || spec.Credentials["token"] != "x" || string(spec.Config) != `{"resources":[]}` {
		t.Fatalf("integration: %+v %v", spec, err)
	}
	write("c.yaml", "kind: integration\ntenant: t\nspec: {id: x, typo: 1}\n")
	docs, _ = ReadDir(dir)
	if _, err := docs[2].Integration(); err == nil || !strings.Contains(err.Error(), `unknown field "typo"`) {
		t.Fatalf("unknown field accepted: %v", err)
	}
}
