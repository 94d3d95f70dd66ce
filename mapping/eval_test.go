package mapping

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// compileYAML compiles a config written for a test, failing the test on any error.
func compileYAML(t testing.TB, doc string, opts Options) *Program {
	t.Helper()
	c, ps := Parse([]byte(doc))
	if ps.HasErrors() {
		t.Fatalf("parse: %s", problemText(ps))
	}
	prog, ps := Compile(c, opts)
	if ps.HasErrors() {
		t.Fatalf("compile: %s", problemText(ps))
	}
	return prog
}

// mapItem maps one item with the config's first resource and returns the entities as
// JSON lines.
func mapItem(t testing.TB, prog *Program, item string) ([]string, Result) {
	t.Helper()
	res := prog.Resources[0].Map(context.Background(), NewMapper(), []byte(item))
	var lines []string
	for _, e := range res.Entities {
		lines = append(lines, string(e.AppendJSON(nil)))
	}
	return lines, res
}

func issuesText(res Result) string {
	var parts []string
	for _, i := range res.Issues {
		parts = append(parts, i.Error())
	}
	return strings.Join(parts, "\n")
}

// oneMapping wraps mapping fields into a one-resource config.
func oneMapping(selector, port, fields string) string {
	return fmt.Sprintf(`
resources:
  - kind: k
    selector:
      query: %s
    port:
%s      entity:
        mappings:
%s`, selector, port, fields)
}

func TestMapItem(t *testing.T) {
	const basic = "          identifier: .id\n          title: .name\n          blueprint: '\"svc\"'\n"
	tests := []struct {
		name     string
		config   string
		opts     Options
		item     string
		want     []string
		dropped  int
		filtered int
		issues   []string // substrings, in order
	}{
		{
			name:   "basic with properties and relations in config order",
			config: oneMapping("'true'", "", basic+"          properties:\n            z: .z\n            a: .a.b\n            missing: .nope.deeper\n          relations:\n            owner: .owner.login\n            tags: .tags\n"),
			item:   `{"id": "s1", "name": "Svc", "z": 1.5, "a": {"b": [1, {"c": null}]}, "owner": {"login": "me"}, "tags": ["x", "y"], "other": "ignored"}`,
			want:   []string{`{"identifier":"s1","title":"Svc","blueprint":"svc","properties":{"z":1.5,"a":[1,{"c":null}],"missing":null},"relations":{"owner":"me","tags":["x","y"]}}`},
		},
		{
			name:   "number identifier and title become strings, big integers survive",
			config: oneMapping("'true'", "", basic+"          properties:\n            big: .big\n            f: .f\n"),
			item:   `{"id": 12345678901234567890123, "name": 42, "big": 98765432109876543210, "f": 1e300}`,
			want:   []string{`{"identifier":"12345678901234567890123","title":"42","blueprint":"svc","properties":{"big":98765432109876543210,"f":1e+300},"relations":{}}`},
		},
		{
			name:   "icon and team",
			config: oneMapping("'true'", "", basic+"          icon: '\"Github\"'\n          team: .teams\n"),
			item:   `{"id": "a", "name": "A", "teams": ["t1", 7]}`,
			want:   []string{`{"identifier":"a","title":"A","blueprint":"svc","icon":"Github","team":["t1","7"],"properties":{},"relations":{}}`},
		},
		{
			name:     "selector false filters, no entity",
			config:   oneMapping(".keep", "", basic),
			item:     `{"id": "a", "keep": false}`,
			filtered: 1,
		},
		{
			name:   "selector non-boolean is an item error",
			config: oneMapping(".keep", "", basic),
			item:   `{"id": "a", "keep": "yes"}`,
			issues: []string{`resources[0].selector.query: item skipped: selector must yield a boolean, got string ("yes")`},
		},
		{
			name:   "field error gives null and a warning naming the field",
			config: oneMapping("'true'", "", basic+"          properties:\n            bad: .name | tonumber\n            empty: empty\n"),
			item:   `{"id": "a", "name": "x"}`,
			want:   []string{`{"identifier":"a","title":"x","blueprint":"svc","properties":{"bad":null,"empty":null},"relations":{}}`},
			issues: []string{"properties.bad: ", "properties.empty: expression yielded no value"},
		},
		{
			name:    "null identifier drops the entity and counts it",
			config:  oneMapping("'true'", "", basic),
			item:    `{"name": "no id"}`,
			dropped: 1,
		},
		{
			name:    "identifier that fails to evaluate is an item error, and a drop",
			config:  oneMapping("'true'", "", "          identifier: .id | tonumber\n          blueprint: '\"svc\"'\n"),
			item:    `{"id": "abc"}`,
			issues:  []string{"identifier: item skipped: "},
			dropped: 1,
		},
		{
			name:    "empty blueprint drops",
			config:  oneMapping("'true'", "", "          identifier: .id\n          blueprint: .bp\n"),
			item:    `{"id": "a", "bp": ""}`,
			dropped: 1,
		},
		{
			name:   "object identifier is a warning and a drop",
			config: oneMapping("'true'", "", basic),
			item:   `{"id": {"x": 1}}`,
			issues: []string{"identifier: item skipped: identifier must be a string or a number, got object"}, dropped: 1,
		},
		{
			name:   "relation of wrong type becomes null with a warning",
			config: oneMapping("'true'", "", basic+"          relations:\n            r: .r\n"),
			item:   `{"id": "a", "name": "A", "r": {"x": 1}}`,
			want:   []string{`{"identifier":"a","title":"A","blueprint":"svc","properties":{},"relations":{"r":null}}`},
			issues: []string{"relations.r: relation must be a string, a list of strings or null, got object"},
		},
		{
			name:   "mappings array yields one entity each",
			config: oneMapping("'true'", "", "          - identifier: .id\n            blueprint: '\"a\"'\n          - identifier: .id + \"-b\"\n            blueprint: '\"b\"'\n"),
			item:   `{"id": "x"}`,
			want:   []string{`{"identifier":"x","title":null,"blueprint":"a","properties":{},"relations":{}}`, `{"identifier":"x-b","title":null,"blueprint":"b","properties":{},"relations":{}}`},
		},
		{
			name:   "itemsToParse with top-level transform removes the parsed array",
			config: oneMapping(".item.ok", "      itemsToParse: .files\n", "          identifier: .item.name\n          blueprint: '\"file\"'\n          properties:\n            repo: .repo\n            hasFiles: has(\"files\")\n"),
			item:   `{"repo": "r", "files": [{"name": "a", "ok": true}, {"name": "b", "ok": false}, {"name": "c", "ok": true}]}`,
			want: []string{
				`{"identifier":"a","title":null,"blueprint":"file","properties":{"repo":"r","hasFiles":false},"relations":{}}`,
				`{"identifier":"c","title":null,"blueprint":"file","properties":{"repo":"r","hasFiles":false},"relations":{}}`,
			},
			filtered: 1,
		},
		{
			name:   "itemsToParse without transform keeps the array, custom name",
			config: oneMapping("'true'", "      itemsToParse: .files\n      itemsToParseName: f\n      itemsToParseTopLevelTransform: false\n", "          identifier: .f\n          blueprint: '\"file\"'\n          properties:\n            n: .files | length\n"),
			item:   `{"files": ["a", "b"]}`,
			want: []string{
				`{"identifier":"a","title":null,"blueprint":"file","properties":{"n":2},"relations":{}}`,
				`{"identifier":"b","title":null,"blueprint":"file","properties":{"n":2},"relations":{}}`,
			},
		},
		{
			name:   "itemsToParse not an array skips the item",
			config: oneMapping("'true'", "      itemsToParse: .files\n", "          identifier: .item\n          blueprint: '\"file\"'\n"),
			item:   `{"files": "nope"}`,
			issues: []string{"port.itemsToParse: item skipped: itemsToParse must yield an array, got string"},
		},
		{
			name:   "single-quoted jq strings are rewritten as Ocean does",
			config: oneMapping("'true'", "", "          identifier: .id\n          blueprint: \"'svc'\"\n          title: .name // ''\n"),
			item:   `{"id": "a"}`,
			want:   []string{`{"identifier":"a","title":"","blueprint":"svc","properties":{},"relations":{}}`},
		},
		{
			name:   "search query identifier and relation",
			config: oneMapping("'true'", "", "          identifier:\n            combinator: '\"and\"'\n            rules:\n              - property: '\"email\"'\n                operator: '\"=\"'\n                value: .email\n          blueprint: '\"user\"'\n          relations:\n            team:\n              combinator: '\"or\"'\n              rules:\n                - combinator: '\"and\"'\n                  rules:\n                    - property: '\"$identifier\"'\n                      operator: '\"in\"'\n                      value: .teams\n"),
			item:   `{"email": "a@b.c", "teams": ["x"]}`,
			want:   []string{`{"identifier":{"combinator":"and","rules":[{"operator":"=","property":"email","value":"a@b.c"}]},"title":null,"blueprint":"user","properties":{},"relations":{"team":{"combinator":"or","rules":[{"combinator":"and","rules":[{"operator":"in","property":"$identifier","value":["x"]}]}]}}}`},
		},
		{
			name:   "Oniguruma regex: look-ahead in gsub (the compat github config)",
			config: oneMapping("'true'", "", basic+"          properties:\n            creator: (.login | gsub(\"\\\\[\"; \"-\") | gsub(\"\\\\](?=[^$])\"; \"-\") | gsub(\"\\\\]$\"; \"\"))\n            lb: .login | test(\"(?<=\\\\[)bot\")\n            backref: .rep | test(\"(\\\\w)\\\\1\")\n"),
			item:   `{"id": "a", "name": "A", "login": "dependabot[bot]x]", "rep": "aab"}`,
			want:   []string{`{"identifier":"a","title":"A","blueprint":"svc","properties":{"creator":"dependabot-bot-x","lb":true,"backref":true},"relations":{}}`},
		},
		{
			name:   "env is empty unless allowed",
			config: oneMapping("'true'", "", basic+"          properties:\n            env: env\n            ENV: $ENV\n"),
			opts:   Options{Environ: []string{"SECRET=hunter2", "CS_REGION=eu", "CS_ZONE=a"}},
			item:   `{"id": "a", "name": "A"}`,
			want:   []string{`{"identifier":"a","title":"A","blueprint":"svc","properties":{"env":{},"ENV":{}},"relations":{}}`},
		},
		{
			name:   "env allowlist shows only matching variables",
			config: oneMapping("'true'", "", basic+"          properties:\n            env: env\n            region: $ENV.CS_REGION\n"),
			opts:   Options{Environ: []string{"SECRET=hunter2", "CS_REGION=eu", "CS_ZONE=a"}, EnvAllow: []string{"CS_*"}},
			item:   `{"id": "a", "name": "A"}`,
			want:   []string{`{"identifier":"a","title":"A","blueprint":"svc","properties":{"env":{"CS_REGION":"eu","CS_ZONE":"a"},"region":"eu"},"relations":{}}`},
		},
		{
			name:   "invalid JSON item is an item error",
			config: oneMapping("'true'", "", basic),
			item:   `{"id": "a",}`,
			issues: []string{"item skipped: invalid JSON"},
		},
		{
			name:   "string repetition past the limit stops the field",
			config: oneMapping("'true'", "", basic+"          properties:\n            big: '\"x\" * 1e9'\n            ok: '\"ab\" * 2'\n"),
			item:   `{"id": "a", "name": "A"}`,
			want:   []string{`{"identifier":"a","title":"A","blueprint":"svc","properties":{"big":null,"ok":"abab"},"relations":{}}`},
			issues: []string{"properties.big: string repetition of 1 bytes × 1e+09 exceeds the limit"},
		},
		{
			name:   "runaway recursion stops the item at its time limit",
			config: oneMapping("'true'", "", basic+"          properties:\n            loop: 'def f: f; f'\n"),
			opts:   Options{ItemTimeout: 50 * time.Millisecond},
			item:   `{"id": "a", "name": "A"}`,
			issues: []string{"properties.loop: item skipped: item took longer than 50ms"},
		},
		{
			name:   "an endless generator stops the item at its time limit",
			config: oneMapping("'true'", "", basic+"          properties:\n            gen: 'last(repeat(.))'\n"),
			opts:   Options{ItemTimeout: 50 * time.Millisecond},
			item:   `{"id": "a", "name": "A"}`,
			issues: []string{"properties.gen: item skipped: item took longer than 50ms"},
		},
		{
			name:   "a 10 MB string is mapped, and repeating it is stopped by the size limit",
			config: oneMapping("'true'", "", basic+"          properties:\n            n: '.blob | length'\n            big: '.blob * 1000'\n"),
			item:   `{"id": "a", "name": "A", "blob": "` + strings.Repeat("x", 10<<20) + `"}`,
			want:   []string{`{"identifier":"a","title":"A","blueprint":"svc","properties":{"n":10485760,"big":null},"relations":{}}`},
			issues: []string{"properties.big: string repetition of 10485760 bytes × 1000 exceeds the limit"},
		},
		{
			name:   "nesting within the depth limit is mapped",
			config: oneMapping("'true'", "", basic+"          properties:\n            depth: '[.deep | paths] | length'\n"),
			item:   `{"id": "a", "name": "A", "deep": ` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `}`,
			want:   []string{`{"identifier":"a","title":"A","blueprint":"svc","properties":{"depth":499},"relations":{}}`},
		},
		{
			name:   "nesting past the depth limit is an item error",
			config: oneMapping("'true'", "", basic+"          properties:\n            depth: '[.deep | paths] | length'\n"),
			item:   `{"id": "a", "name": "A", "deep": ` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`,
			issues: []string{"item skipped: invalid JSON: nested deeper than 512 levels"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := compileYAML(t, tt.config, tt.opts)
			lines, res := mapItem(t, prog, tt.item)
			if strings.Join(lines, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("entities:\n got %s\nwant %s", strings.Join(lines, "\n     "), strings.Join(tt.want, "\n     "))
			}
			if res.Dropped != tt.dropped || res.Filtered != tt.filtered {
				t.Errorf("dropped %d filtered %d, want %d %d", res.Dropped, res.Filtered, tt.dropped, tt.filtered)
			}
			if len(res.Issues) != len(tt.issues) {
				t.Fatalf("issues:\n%s\nwant %d: %q", issuesText(res), len(tt.issues), tt.issues)
			}
			for i, want := range tt.issues {
				if !strings.Contains(res.Issues[i].Error(), want) {
					t.Errorf("issue %d: %q does not contain %q", i, res.Issues[i].Error(), want)
				}
			}
		})
	}
}

// TestRunawayMemory shows that an expression that allocates without end stops its item
// (by time or memory), and the next item still maps.
func TestRunawayMemory(t *testing.T) {
	prog := compileYAML(t, oneMapping("'true'", "", "          identifier: .id\n          blueprint: '\"b\"'\n          properties:\n            r: if .bomb then [range(1e12)] | length else 1 end\n"),
		Options{ItemTimeout: 2 * time.Second, MaxItemMemory: 64 << 20, Workers: 2})
	items := `{"id": "a"}` + "\n" + `{"id": "bomb", "bomb": true}` + "\n" + `{"id": "c"}` + "\n"
	var got []string
	var issues []Issue
	err := prog.Run(context.Background(), &lineSource{lines: strings.Split(strings.TrimSpace(items), "\n")}, RunOptions{Resources: prog.Resources}, func(r *ItemResult) error {
		for _, e := range r.Entities {
			got = append(got, string(e.AppendJSON(nil)))
		}
		issues = append(issues, r.Issues...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.Contains(got[0], `"a"`) || !strings.Contains(got[1], `"c"`) {
		t.Errorf("entities: %v", got)
	}
	if len(issues) != 1 || !issues[0].Skipped || !(errors.Is(issues[0].Err, ErrMemoryLimit) || errors.Is(issues[0].Err, context.DeadlineExceeded)) {
		t.Fatalf("want the bomb item stopped, got %v", issues)
	}
}

// lineSource feeds test items to Run.
type lineSource struct {
	lines []string
	i     int
}

func (s *lineSource) Next() ([]byte, error) {
	if s.i >= len(s.lines) {
		return nil, io.EOF
	}
	s.i++
	return []byte(s.lines[s.i-1]), nil
}

// TestRunOrder maps many items on several workers and checks the output order and the
// recoverable read errors.
func TestRunOrder(t *testing.T) {
	prog := compileYAML(t, oneMapping("'true'", "", "          identifier: .n | tostring\n          blueprint: '\"b\"'\n          properties:\n            slow: '[range(.n % 50 * 20)] | length'\n"), Options{Workers: 4, ItemTimeout: time.Minute})
	const n = 3000
	src := &errSource{n: n}
	next := 0
	err := prog.Run(context.Background(), src, RunOptions{
		Resources:   prog.Resources,
		Recoverable: func(err error) bool { return err.Error() == "bad item" },
		Transform: func(r *ItemResult) {
			for _, e := range r.Entities {
				r.Output = e.AppendJSON(r.Output)
			}
		},
	}, func(r *ItemResult) error {
		if r.Index != next {
			return fmt.Errorf("item %d emitted at position %d", r.Index, next)
		}
		next++
		if r.Index%97 == 0 {
			if r.ReadErr == nil {
				return fmt.Errorf("item %d: read error lost", r.Index)
			}
			return nil
		}
		var e struct{ Identifier string }
		if err := json.Unmarshal(r.Output, &e); err != nil || e.Identifier != fmt.Sprint(r.Index) {
			return fmt.Errorf("item %d: output %s, issues %v", r.Index, r.Output, r.Issues)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != n {
		t.Fatalf("emitted %d items, want %d", next, n)
	}
}

// errSource yields {"n": i} items, with a recoverable error in place of every 97th.
type errSource struct{ n, i int }

func (s *errSource) Next() ([]byte, error) {
	if s.i >= s.n {
		return nil, io.EOF
	}
	s.i++
	if (s.i-1)%97 == 0 {
		return nil, errors.New("bad item")
	}
	return fmt.Appendf(nil, `{"n": %d}`, s.i-1), nil
}

func TestRunStopsOnFatalReadError(t *testing.T) {
	prog := compileYAML(t, oneMapping("'true'", "", "          identifier: .n | tostring\n          blueprint: '\"b\"'\n"), Options{})
	err := prog.Run(context.Background(), &errSource{n: 10}, RunOptions{Resources: prog.Resources}, func(*ItemResult) error { return nil })
	if err == nil || err.Error() != "bad item" {
		t.Fatalf("want the read error, got %v", err)
	}
}

// sizedLines is a lineSource that says how many items it holds.
type sizedLines struct{ lineSource }

func (s *sizedLines) Len() int { return len(s.lines) }

// TestRunSplitsASizedSource: a small SizedSource (a page of a REST API) is mapped on
// several workers at once. Each item's Transform waits until another item is being
// transformed at the same time; mapped as one batch, by one worker, none ever is.
// A plain Source of the same items is one batch, as before.
func TestRunSplitsASizedSource(t *testing.T) {
	prog := compileYAML(t, oneMapping("'true'", "", "          identifier: .n | tostring\n          blueprint: '\"b\"'\n"), Options{Workers: 2})
	var lines []string
	for i := range 16 {
		lines = append(lines, fmt.Sprintf(`{"n":%d}`, i))
	}
	concurrent := func(src Source) bool {
		var mu sync.Mutex
		active, overlapped := 0, false
		err := prog.Run(context.Background(), src, RunOptions{Resources: prog.Resources, Transform: func(*ItemResult) {
			mu.Lock()
			active++
			mu.Unlock()
			for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				mu.Lock()
				if active > 1 {
					overlapped = true
				}
				done := overlapped
				mu.Unlock()
				if done {
					break
				}
			}
			mu.Lock()
			active--
			mu.Unlock()
		}}, func(*ItemResult) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return overlapped
	}
	if !concurrent(&sizedLines{lineSource{lines: lines}}) {
		t.Error("a sized source of 16 items was mapped by one worker at a time")
	}
	var raw [][]byte
	for _, l := range lines {
		raw = append(raw, []byte(l))
	}
	if !concurrent(NewSlice(raw)) {
		t.Error("a Slice of 16 items was mapped by one worker at a time")
	}
	if concurrent(&lineSource{lines: lines}) {
		t.Error("16 small items of a plain source were split: the test cannot tell the cases apart")
	}
}

// TestRunSlice: a Slice, mapped in place, gives what a Source of the same items
// gives, in order, across several batches and with item errors among them.
func TestRunSlice(t *testing.T) {
	prog := compileYAML(t, oneMapping("'true'", "", "          identifier: .n | tostring\n          blueprint: '\"b\"'\n"), Options{Workers: 3})
	var lines []string
	for i := range 700 {
		if i%97 == 0 {
			lines = append(lines, `{"n":`) // an item error
			continue
		}
		lines = append(lines, fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", i)))
	}
	collect := func(src Source) []string {
		var out []string
		err := prog.Run(context.Background(), src, RunOptions{Resources: prog.Resources}, func(r *ItemResult) error {
			s := fmt.Sprint(r.Index, ":")
			for _, e := range r.Entities {
				s += fmt.Sprint(e.Identifier)
			}
			for _, is := range r.Issues {
				s += " " + is.Error()
			}
			out = append(out, s)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var raw [][]byte
	for _, l := range lines {
		raw = append(raw, []byte(l))
	}
	want := collect(&lineSource{lines: lines})
	if got := collect(NewSlice(raw)); !slices.Equal(got, want) {
		t.Fatalf("a Slice mapped differently from a Source of the same items:\n%.300q\nwant\n%.300q", got, want)
	}
	if len(want) != 700 || !strings.Contains(want[97], "invalid JSON") || want[5] != "5:5" {
		t.Fatalf("unexpected results: %d, %q, %q", len(want), want[97], want[5])
	}
}
