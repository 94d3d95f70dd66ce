package mapping

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/configsync/configsync/blueprint"
)

// compatDir finds ../shared/compat/ocean-integrations beside the module root.
func compatDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
	compat := filepath.Join(dir, "..", "shared", "compat", "ocean-integrations")
	if _, err := os.Stat(compat); err != nil {
		t.Skipf("compat corpus not found at %s (it sits beside the repository in CI): %v", compat, err)
	}
	return compat
}

// TestCompatCorpus checks that every real Ocean config validates, unchanged, against
// its own blueprints: it parses, every jq expression compiles, and every blueprint,
// property and relation it writes exists.
func TestCompatCorpus(t *testing.T) {
	dir := compatDir(t)
	configs, err := filepath.Glob(filepath.Join(dir, "*", "port-app-config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(configs) < 49 {
		t.Fatalf("found %d configs, want the corpus' 49", len(configs))
	}
	exprs, warnings := 0, 0 // exprs counts resources
	for _, path := range configs {
		name := filepath.Base(filepath.Dir(path))
		t.Run(name, func(t *testing.T) {
			doc, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, ps := Parse(doc)
			if ps.HasErrors() {
				t.Fatalf("parse:\n%s", problemText(ps))
			}
			prog, cps := Compile(cfg, Options{})
			ps = append(ps, cps...)
			if prog == nil {
				t.Fatalf("compile:\n%s", problemText(ps))
			}
			bpDoc, err := os.ReadFile(filepath.Join(filepath.Dir(path), "blueprints.json"))
			if err != nil {
				t.Fatal(err)
			}
			bps, err := blueprint.Parse(bpDoc)
			if err != nil {
				t.Fatalf("blueprints: %v", err)
			}
			ps = append(ps, CheckBlueprints(cfg, blueprint.NewSet(bps))...)
			if ps.HasErrors() {
				t.Fatalf("validate:\n%s", problemText(ps.Errors()))
			}
			for _, p := range ps {
				warnings++
				if !strings.Contains(p.Message, "file reference") && !strings.Contains(p.Message, "unknown field") && !strings.Contains(p.Message, "has no property") && !strings.Contains(p.Message, "unknown blueprint") {
					t.Errorf("unexpected warning: %s", p)
				}
			}
			exprs += len(prog.Resources)
		})
	}
	t.Logf("%d configs, %d resources, %d warnings", len(configs), exprs, warnings)
}

// TestCompatGitLabFileReference pins the one non-jq value of the corpus: a clear
// warning, not an error.
func TestCompatGitLabFileReference(t *testing.T) {
	dir := compatDir(t)
	doc, err := os.ReadFile(filepath.Join(dir, "gitlab", "port-app-config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, ps := Parse(doc)
	_, cps := Compile(cfg, Options{})
	ps = append(ps, cps...)
	if ps.HasErrors() || !strings.Contains(problemText(ps), `warning: `) || !strings.Contains(problemText(ps), `"file://README.md" is a file reference, not jq`) {
		t.Fatalf("want a file-reference warning, got:\n%s", problemText(ps))
	}
}
