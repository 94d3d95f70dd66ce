package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/configsync/configsync/mapping"
)

// runCLI runs the command in-process and returns its exit status and output.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &environment{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, environ: []string{"SECRET=x"}}
	code = dispatch(context.Background(), env, args)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const testConfig = `
resources:
  - kind: repo
    selector:
      query: .archived | not
    port:
      entity:
        mappings:
          identifier: .name
          title: .name
          blueprint: '"repo"'
          properties:
            stars: .stars
            lang: .language // ''
          relations:
            org: .owner.login
  - kind: team
    selector:
      query: 'true'
    port:
      entity:
        mappings:
          identifier: .slug
          blueprint: '"team"'
`

func TestMap(t *testing.T) {
	cfg := writeFile(t, "config.yml", testConfig)
	const a = `{"name": "a", "stars": 3, "language": "Go", "owner": {"login": "o"}}`
	const b = `{"name": "b", "stars": 12345678901234567890, "owner": {"login": "o"}, "archived": false}`
	const archived = `{"name": "c", "archived": true}`
	wantA := `{"identifier":"a","title":"a","blueprint":"repo","properties":{"stars":3,"lang":"Go"},"relations":{"org":"o"}}`
	wantB := `{"identifier":"b","title":"b","blueprint":"repo","properties":{"stars":12345678901234567890,"lang":""},"relations":{"org":"o"}}`
	tests := []struct {
		name      string
		args      []string
		stdin     string
		code      int
		stdout    string
		stderrHas []string
	}{
		{name: "ndjson", args: []string{"--kind", "repo"}, stdin: a + "\n" + b + "\n" + archived + "\n", stdout: wantA + "\n" + wantB + "\n",
			stderrHas: []string{"map: 3 items, 2 entities, 0 dropped, 1 filtered, 0 errors, 0 warnings"}},
		{name: "array", args: []string{"--kind", "repo"}, stdin: "[" + a + ",\n" + b + "]", stdout: wantA + "\n" + wantB + "\n"},
		{name: "one pretty object", args: []string{"--kind", "repo"}, stdin: "{\n  \"name\": \"a\",\n  \"stars\": 3, \"language\": \"Go\", \"owner\": {\"login\": \"o\"}\n}\n", stdout: wantA + "\n"},
		{name: "bad line is reported and skipped", args: []string{"--kind", "repo"}, stdin: a + "\n{\"name\": \n" + b + "\n", stdout: wantA + "\n" + wantB + "\n",
			stderrHas: []string{"item 1: ", "1 errors"}},
		{name: "item error reported with index", args: []string{"--kind", "repo"}, stdin: a + "\n" + `{"name": "x", "archived": tru}` + "\n",
			stdout: wantA + "\n", stderrHas: []string{`item 1: error: resource 0 (kind "repo"): item skipped: invalid JSON`}},
		{name: "strict fails on item errors", args: []string{"--kind", "repo", "--strict"}, stdin: `{"name": "x", "archived": tru}`, code: 1},
		{name: "strict passes clean input", args: []string{"--kind", "repo", "--strict"}, stdin: a, stdout: wantA + "\n"},
		{name: "kind required with several kinds", args: nil, stdin: a, code: 2, stderrHas: []string{"the config has 2 kinds (repo, team): choose one with --kind"}},
		{name: "unknown kind", args: []string{"--kind", "nope"}, stdin: a, code: 2, stderrHas: []string{`no resource of kind "nope" (it has: repo, team)`}},
		{name: "other kind", args: []string{"--kind", "team"}, stdin: `{"slug": "t"}`, stdout: `{"identifier":"t","title":null,"blueprint":"team","properties":{},"relations":{}}` + "\n"},
		{name: "unterminated array is fatal", args: []string{"--kind", "repo"}, stdin: "[" + a + ",", code: 1, stdout: wantA + "\n", stderrHas: []string{"reading input after item 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.stdin, append([]string{"map", "--config", cfg}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if tt.stdout != "" || tt.code == 0 {
				if stdout != tt.stdout {
					t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.stdout)
				}
			}
			for _, s := range tt.stderrHas {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := writeFile(t, "good.yml", testConfig)
	bad := writeFile(t, "bad.yml", strings.Replace(testConfig, ".archived | not", ".archived |", 1))
	bps := writeFile(t, "bp.json", `[{"identifier": "repo", "schema": {"properties": {"stars": {"type": "number"}}}, "relations": {}}]`)
	tests := []struct {
		name string
		args []string
		code int
		has  []string
	}{
		{"valid", []string{"--config", good}, 0, []string{"good.yml: valid (0 warning(s))"}},
		{"jq error with position", []string{"--config", bad}, 1, []string{"bad.yml:5:14: error: resource 0 (kind \"repo\"): resources[0].selector.query: jq: unexpected EOF at line 1, column 12 of the expression", "invalid: 1 error(s)"}},
		{"blueprints reported", []string{"--config", good, "--blueprints", bps}, 0, []string{
			`warning: resource 0 (kind "repo"): resources[0].port.entity.mappings.properties.lang: blueprint "repo" has no property "lang"`,
			`blueprint "repo" has no relation "org"`,
			`resources[1].port.entity.mappings.blueprint: unknown blueprint "team"`,
		}},
		{"http selector fields", []string{"--config", writeFile(t, "http.yml", "resources:\n  - kind: repo\n    selector: {query: 'true', path: /repos, includedFiles: [README.md], pagination: {type: sideways}}\n    port: {entity: {mappings: {identifier: .name, blueprint: '\"repo\"'}}}\n"), "--source-type", "http"}, 1, []string{
			`warning: resource 0 (kind "repo"): resources[0].selector.includedFiles: not a field of the http source; ignored`,
			`error: resource 0 (kind "repo"): resources[0].selector: `,
		}},
		{"missing flag", nil, 2, nil},
		{"missing file", []string{"--config", "/nonexistent.yml"}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "", append([]string{"validate"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.has {
				if !strings.Contains(stdout, s) {
					t.Errorf("output lacks %q:\n%s", s, stdout)
				}
			}
		})
	}
}

// TestCompatConfigsValidate runs validate on every corpus config with its own
// blueprints, as a user would.
func TestCompatConfigsValidate(t *testing.T) {
	dirs, _ := filepath.Glob("../../../shared/compat/ocean-integrations/*/port-app-config.yml")
	if len(dirs) == 0 {
		t.Skip("compat corpus not found beside the repository")
	}
	for _, cfg := range dirs {
		bp := filepath.Join(filepath.Dir(cfg), "blueprints.json")
		code, stdout, stderr := runCLI(t, "", "validate", "--config", cfg, "--blueprints", bp)
		if code != 0 {
			t.Errorf("%s: exit %d\n%s%s", cfg, code, stdout, stderr)
		}
	}
}

// TestMapMatchesJQ maps GitHub-like repositories with the compat github config and
// compares the entities with what the jq CLI computes from the translated program.
func TestMapMatchesJQ(t *testing.T) {
	jq, err := exec.LookPath("jq")
	if err != nil {
		t.Skip("jq CLI not installed (scripts/services installs it)")
	}
	cfgPath := "../../../shared/compat/ocean-integrations/github/port-app-config.yml"
	doc, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Skip("compat corpus not found beside the repository")
	}
	dir := t.TempDir()
	input := filepath.Join(dir, "in.ndjson")
	if err := writeItems(input, 500); err != nil {
		t.Fatal(err)
	}
	cfg, _ := parseConfigForTest(t, doc)
	prog, err := jqProgram(cfg, "repository")
	if err != nil {
		t.Fatal(err)
	}
	progPath := writeFile(t, "p.jq", prog)
	jqOut, err := exec.Command(jq, "-c", "-f", progPath, input).Output()
	if err != nil {
		t.Fatal(err)
	}
	code, csOut, stderr := runCLI(t, "", "map", "--config", cfgPath, "--kind", "repository", "--input", input)
	if code != 0 {
		t.Fatalf("map: %s", stderr)
	}
	a, b := writeFile(t, "jq.out", string(jqOut)), writeFile(t, "cs.out", csOut)
	if err := sameEntities(a, b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(csOut, "\n"); n != 500 {
		t.Fatalf("%d entities", n)
	}
}

func TestUsage(t *testing.T) {
	if code, _, stderr := runCLI(t, "", "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("exit %d: %s", code, stderr)
	}
	if code, stdout, _ := runCLI(t, "", "version"); code != 0 || !strings.HasPrefix(stdout, "configsync ") {
		t.Errorf("version: %d %q", code, stdout)
	}
	if code, _, _ := runCLI(t, "", "map", "-h"); code != 0 {
		t.Errorf("map -h: exit %d", code)
	}
}

func parseConfigForTest(t *testing.T, doc []byte) (*mapping.Config, mapping.Problems) {
	t.Helper()
	cfg, ps := mapping.Parse(doc)
	if ps.HasErrors() {
		t.Fatal(ps.Err())
	}
	return cfg, ps
}

func TestRedactURLs(t *testing.T) {
	got := redactURLs("nats://u:s3cret@h1:4222,nats://h2:4222,redis://:pw@r:6379/0")
	if strings.Contains(got, "s3cret") || strings.Contains(got, ":pw@") || !strings.Contains(got, "nats://h2:4222") {
		t.Fatalf("redactURLs = %q", got)
	}
}
