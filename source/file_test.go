package source_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/sourcetest"
	"go.yaml.in/yaml/v3"
)

// writeFiles creates files (slash paths relative to dir) with their contents.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// newFile makes a file source rooted at root, allowing allowed.
func newFile(t *testing.T, allowed []string, root string, opts ...source.FileOption) (source.Source, error) {
	t.Helper()
	return source.FileType(allowed, opts...).New(map[string]any{"root": root}, nil)
}

// fetchAll fetches r and returns its items compacted, and the page sizes.
func fetchAll(ctx context.Context, s source.Source, r source.Resource) (items []string, sizes []int, err error) {
	err = s.Fetch(ctx, r, func(p source.Page) error {
		sizes = append(sizes, len(p.Items))
		for _, it := range p.Items {
			var b bytes.Buffer
			if err := json.Compact(&b, it); err != nil {
				return fmt.Errorf("item %q: %w", it, err)
			}
			items = append(items, b.String())
		}
		return nil
	})
	return items, sizes, err
}

func res(kind, path string) source.Resource {
	r := source.Resource{Kind: kind}
	if path != "" {
		r.Selector = map[string]any{"path": path}
	}
	return r
}

func TestFileConformance(t *testing.T) {
	formats := map[string]func([]map[string]any) []byte{
		"json array": func(items []map[string]any) []byte {
			if items == nil {
				items = []map[string]any{}
			}
			b, _ := json.MarshalIndent(items, "", "  ")
			return b
		},
		"ndjson": func(items []map[string]any) []byte {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			for _, it := range items {
				_ = enc.Encode(it)
			}
			return b.Bytes()
		},
		"yaml": func(items []map[string]any) []byte {
			if items == nil {
				return nil
			}
			b, _ := yaml.Marshal(items)
			return b
		},
	}
	for name, encode := range formats {
		t.Run(name, func(t *testing.T) {
			sourcetest.Run(t, sourcetest.Harness{
				MaxPageSize: source.DefaultPageSize,
				New: func(t *testing.T, items []map[string]any) (source.Source, source.Resource) {
					dir := t.TempDir()
					file := "data/things.json"
					if name == "yaml" {
						file = "data/things.yaml"
					}
					writeFiles(t, dir, map[string]string{file: string(encode(items))})
					s, err := newFile(t, []string{dir}, "data")
					if err != nil {
						t.Fatal(err)
					}
					return s, source.Resource{Kind: "thing", Selector: map[string]any{"path": strings.TrimPrefix(file, "data/")}}
				},
			})
		})
	}
}

func TestFileFormats(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		r     source.Resource
		want  []string // compact JSON items, in order
	}{
		{"json array", map[string]string{"repo.json": `[{"a":1},{"a":2}]`}, res("repo", ""), []string{`{"a":1}`, `{"a":2}`}},
		{"json array pretty", map[string]string{"repo.json": "[\n  {\n    \"a\": 1\n  },\n  {\"a\": [1, {\"b\": null}]}\n]\n"}, res("repo", ""), []string{`{"a":1}`, `{"a":[1,{"b":null}]}`}},
		{"single object", map[string]string{"repo.json": "{\n \"a\": \"x\"\n}\n"}, res("repo", ""), []string{`{"a":"x"}`}},
		{"ndjson", map[string]string{"x.ndjson": "{\"a\":1}\n{\"a\":2}\n\n{\"a\":3}\n"}, res("repo", "x.ndjson"), []string{`{"a":1}`, `{"a":2}`, `{"a":3}`}},
		{"concatenated objects", map[string]string{"x.json": `{"a":1}{"a":2} {"a":3}`}, res("repo", "x.json"), []string{`{"a":1}`, `{"a":2}`, `{"a":3}`}},
		{"utf8 bom", map[string]string{"x.json": "\ufeff[{\"a\":\"é\"}]"}, res("repo", "x.json"), []string{`{"a":"é"}`}},
		{"empty array", map[string]string{"repo.json": `[]`}, res("repo", ""), nil},
		{"empty file", map[string]string{"repo.json": ``}, res("repo", ""), nil},
		{"yaml list", map[string]string{"r.yaml": "- name: a\n  n: 1\n- name: b\n  tags: [x, y]\n"}, res("repo", "r.yaml"),
			[]string{`{"n":1,"name":"a"}`, `{"name":"b","tags":["x","y"]}`}},
		{"yaml object yml", map[string]string{"r.yml": "name: a\nok: true\nnothing: ~\n"}, res("repo", "r.yml"), []string{`{"name":"a","nothing":null,"ok":true}`}},
		{"yaml upper-case extension", map[string]string{"r.YAML": "name: a\n"}, res("repo", "r.YAML"), []string{`{"name":"a"}`}},
		{"yaml documents", map[string]string{"r.yaml": "name: a\n---\n- name: b\n- name: c\n---\n---\nname: d\n"}, res("repo", "r.yaml"),
			[]string{`{"name":"a"}`, `{"name":"b"}`, `{"name":"c"}`, `{"name":"d"}`}},
		{"yaml keeps timestamps and stringifies keys", map[string]string{"r.yaml": "day: 2024-01-02\nat: 2024-01-02T03:04:05Z\n1: one\ntrue: yes\nhtml: <a&b>\n"}, res("repo", "r.yaml"),
			[]string{`{"1":"one","at":"2024-01-02T03:04:05Z","day":"2024-01-02","html":"<a&b>","true":"yes"}`}},
		{"yaml anchors and merge", map[string]string{"r.yaml": "- &base {team: core, tier: 1}\n- <<: *base\n  name: x\n- *base\n"}, res("repo", "r.yaml"),
			[]string{`{"team":"core","tier":1}`, `{"name":"x","team":"core","tier":1}`, `{"team":"core","tier":1}`}},
		{"yaml empty", map[string]string{"r.yaml": "# nothing\n"}, res("repo", "r.yaml"), nil},
		{"default path", map[string]string{"service.json": `[{"id":"s"}]`, "other.json": `[{"id":"o"}]`}, res("service", ""), []string{`{"id":"s"}`}},
		{"nested path", map[string]string{"a/b/c.json": `[{"id":1}]`}, res("x", "a/b/c.json"), []string{`{"id":1}`}},
		{"dot segments inside", map[string]string{"a/c.json": `[{"id":1}]`}, res("x", "./a/./c.json"), []string{`{"id":1}`}},
		{"glob across files in lexical order", map[string]string{
			"data/b.json": `[{"f":"b"}]`, "data/a.json": `{"f":"a"}`, "data/c.json": "{\"f\":\"c1\"}\n{\"f\":\"c2\"}", "data/skip.txt": `{"f":"no"}`,
		}, res("x", "data/*.json"), []string{`{"f":"a"}`, `{"f":"b"}`, `{"f":"c1"}`, `{"f":"c2"}`}},
		{"glob mixing json and yaml", map[string]string{"d/1.json": `[{"f":1}]`, "d/2.yaml": "- f: 2\n", "d/3.yml": "f: 3\n"}, res("x", "d/*"),
			[]string{`{"f":1}`, `{"f":2}`, `{"f":3}`}},
		{"glob across directories", map[string]string{"t1/items.json": `[{"t":1}]`, "t2/items.json": `[{"t":2}]`, "t3/other.json": `[{"t":3}]`, "file.json": `[]`}, res("x", "*/items.json"),
			[]string{`{"t":1}`, `{"t":2}`}},
		{"glob skips directories", map[string]string{"d/a.json": `[{"f":1}]`, "d/sub.json/x": `nope`}, res("x", "d/*.json"), []string{`{"f":1}`}},
		{"glob classes", map[string]string{"d/a1.json": `[{"f":1}]`, "d/a2.json": `[{"f":2}]`, "d/b1.json": `[{"f":3}]`}, res("x", "d/[a]?.json"), []string{`{"f":1}`, `{"f":2}`}},
		{"glob with empty files", map[string]string{"d/a.json": `[]`, "d/b.json": ``}, res("x", "d/*.json"), nil},
		{"unicode names", map[string]string{"données/élément.json": `[{"ok":1}]`}, res("x", "données/élément.json"), []string{`{"ok":1}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			s, err := newFile(t, []string{dir}, dir)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := fetchAll(t.Context(), s, tt.r)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("items:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name      string
		files     map[string]string
		r         source.Resource
		wantIs    error
		wantItem  int    // index of the first bad item when *ItemErrors is expected, else -1
		wantPath  string // the first ItemError's path
		delivered string // the good items delivered before the error, compact
		wantMsg   string
	}{
		{"missing file", nil, res("repo", ""), fs.ErrNotExist, -1, "", "", `kind "repo": repo.json: no such file`},
		{"missing dir", nil, res("repo", "nodir/x.json"), fs.ErrNotExist, -1, "", "", `nodir/x.json: no such file`},
		{"glob matches nothing", map[string]string{"d/a.txt": ``}, res("repo", "d/*.json"), source.ErrNoMatch, -1, "", "", `path "d/*.json": no file matches`},
		{"glob in missing dir", nil, res("repo", "nope/*.json"), source.ErrNoMatch, -1, "", "", `no file matches`},
		{"bad glob", nil, res("repo", "d/[a.json"), path.ErrBadPattern, -1, "", "", `bad glob`},
		{"path is a directory", map[string]string{"d/x": ``}, res("repo", "d"), nil, -1, "", "", `d: a directory, not a regular file`},
		{"invalid json item in array", map[string]string{"r.json": `[{"a":1},{"a":},{"a":3}]`}, res("repo", "r.json"), nil, 1, "r.json",
			`{"a":1} {"a":3}`, `1 malformed item skipped: r.json: item 1: invalid JSON`},
		{"invalid ndjson records", map[string]string{"r.json": "{\"a\":1}\n{\"a\":tru}\n{\"a\":3}\n{\"a\" 4}\n{\"a\":5}\n"}, res("repo", "r.json"), nil, 1, "r.json",
			`{"a":1} {"a":3} {"a":5}`, `2 malformed items skipped: r.json: item 1: invalid JSON: invalid character '}' in literal true (expecting 'e'); r.json: item 3: invalid JSON`},
		{"ndjson structural error resumes", map[string]string{"r.json": "{\"a\":1}\n]{\"a\":2}\n{\"a\":3}\n"}, res("repo", "r.json"), nil, 1, "r.json",
			`{"a":1} {"a":3}`, `r.json: item 1: line 2`},
		{"array structural error ends the file", map[string]string{"r.json": `[{"a":1} {"a":2}, {"a":3}]`}, res("repo", "r.json"), nil, 1, "r.json", `{"a":1}`, `r.json: item 1: line 1`},
		{"truncated array", map[string]string{"r.json": `[{"a":1},{"a":2`}, res("repo", "r.json"), nil, 1, "r.json", `{"a":1}`, `item 1`},
		{"non-object item", map[string]string{"r.json": `[{"a":1},[1,2]]`}, res("repo", "r.json"), nil, 1, "r.json", `{"a":1}`, `item 1: not a JSON object but an array`},
		{"scalar items", map[string]string{"r.json": `[1,"x",true,null]`}, res("repo", "r.json"), nil, 0, "r.json", "",
			`4 malformed items skipped: r.json: item 0: not a JSON object but a number; r.json: item 1: not a JSON object but a string; r.json: item 2: not a JSON object but a boolean; r.json: item 3: not a JSON object but null`},
		{"bad item in first of two files", map[string]string{"d/a.json": `[{"a":1},"x",{"a":2}]`, "d/b.json": `[{"b":1}]`}, res("repo", "d/*.json"), nil, 1, "d/a.json",
			`{"a":1} {"a":2} {"b":1}`, `d/a.json: item 1: not a JSON object but a string`},
		{"broken array then a good file", map[string]string{"d/a.json": `[{"a":1},`, "d/b.json": `{"b":1}`}, res("repo", "d/*.json"), nil, 1, "d/a.json", `{"a":1} {"b":1}`, `d/a.json: item 1`},
		{"yaml scalar in list", map[string]string{"r.yaml": "- a: 1\n- just text\n- a: 2\n"}, res("repo", "r.yaml"), nil, 1, "r.yaml", `{"a":1} {"a":2}`, `r.yaml: item 1: not an object but a scalar (str)`},
		{"yaml scalar document", map[string]string{"r.yaml": "42\n---\na: 1\n"}, res("repo", "r.yaml"), nil, 0, "r.yaml", `{"a":1}`, `neither a list of objects nor an object`},
		{"yaml syntax error ends the file", map[string]string{"r.yaml": "- a: 1\n---\na: [1, 2\nb: 3\n"}, res("repo", "r.yaml"), nil, 1, "r.yaml", `{"a":1}`, `r.yaml: item 1: yaml: line`},
		{"yaml complex key", map[string]string{"r.yaml": "- ? [a, b]\n  : 1\n"}, res("repo", "r.yaml"), nil, 0, "r.yaml", "", `item 0: decoding YAML: yaml: invalid map key`},
		{"yaml nan", map[string]string{"r.yaml": "- a: .nan\n"}, res("repo", "r.yaml"), nil, 0, "r.yaml", "", `converting to JSON`},
		{"selector path not a string", nil, source.Resource{Kind: "repo", Selector: map[string]any{"path": int64(3)}}, nil, -1, "", "", `selector.path must be a string, got number`},
		{"selector path empty", nil, source.Resource{Kind: "repo", Selector: map[string]any{"path": ""}}, nil, -1, "", "", `selector.path is empty`},
		{"no kind no path", nil, source.Resource{}, nil, -1, "", "", `no kind`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			s, err := newFile(t, []string{dir}, dir)
			if err != nil {
				t.Fatal(err)
			}
			items, _, err := fetchAll(t.Context(), s, tt.r)
			if err == nil {
				t.Fatal("Fetch succeeded: a broken resource must not count as fetched whole")
			}
			if got := strings.Join(items, " "); got != tt.delivered {
				t.Errorf("delivered %q, want %q", got, tt.delivered)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v, want errors.Is %v", err, tt.wantIs)
			}
			if tt.wantItem >= 0 {
				var ies *source.ItemErrors
				var ie *source.ItemError
				if !errors.As(err, &ies) || !errors.As(err, &ie) {
					t.Fatalf("error %v is not an *ItemErrors", err)
				}
				if ie.Index != tt.wantItem || ie.Path != tt.wantPath {
					t.Errorf("first ItemError at %s item %d, want %s item %d", ie.Path, ie.Index, tt.wantPath, tt.wantItem)
				}
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantMsg)
			}
			if tt.r.Kind != "" && !strings.Contains(err.Error(), fmt.Sprintf("kind %q", tt.r.Kind)) {
				t.Errorf("error %q does not name the kind", err)
			}
			if strings.Contains(err.Error(), dir) {
				t.Errorf("error %q reveals the server's directory", err)
			}
		})
	}
}

func TestFileManyBadItems(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := range 100 {
		if i%4 == 0 {
			fmt.Fprintf(&b, "{\"i\":%d}\n", i)
		} else {
			b.WriteString("[]\n")
		}
	}
	writeFiles(t, dir, map[string]string{"x.json": b.String()})
	s, err := newFile(t, []string{dir}, dir, source.WithPageSize(10))
	if err != nil {
		t.Fatal(err)
	}
	items, _, err := fetchAll(t.Context(), s, res("x", ""))
	var ies *source.ItemErrors
	if !errors.As(err, &ies) {
		t.Fatalf("error %v", err)
	}
	if len(items) != 25 || ies.Total != 75 || len(ies.Errs) != source.MaxItemErrors {
		t.Errorf("%d items delivered, %d bad, %d kept", len(items), ies.Total, len(ies.Errs))
	}
	if !strings.HasSuffix(err.Error(), "; and 65 more") || !strings.Contains(err.Error(), "75 malformed items skipped") {
		t.Errorf("message %q", err)
	}
}

func TestFileItemTooLarge(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"r.json": `[{"a":1},{"big":"` + strings.Repeat("x", 2000) + `"}]`,
		"r.yaml": "- big: " + strings.Repeat("x", 2000) + "\n",
	})
	s, err := newFile(t, []string{dir}, dir, source.WithMaxItemBytes(1000))
	if err != nil {
		t.Fatal(err)
	}
	var ie *source.ItemError
	if _, _, err := fetchAll(t.Context(), s, res("x", "r.json")); !errors.As(err, &ie) || ie.Index != 1 {
		t.Errorf("oversized JSON item: %v", err)
	}
	if _, _, err := fetchAll(t.Context(), s, res("x", "r.yaml")); err == nil || !strings.Contains(err.Error(), "YAML file larger than 1000 bytes") {
		t.Errorf("oversized YAML file: %v", err)
	}
}

func TestFilePages(t *testing.T) {
	var lines strings.Builder
	for i := range 1203 {
		fmt.Fprintf(&lines, "{\"i\":%d}\n", i)
	}
	var yamlDoc strings.Builder
	for i := range 1203 {
		fmt.Fprintf(&yamlDoc, "- i: %d\n", i)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"all.json": lines.String(), "all.yaml": yamlDoc.String(),
		"split/1.json": `[{"i":0},{"i":1},{"i":2}]`, "split/2.json": `[{"i":3},{"i":4},{"i":5}]`, "split/3.json": `{"i":6}`,
	})
	tests := []struct {
		name      string
		opts      []source.FileOption
		path      string
		wantSizes string
	}{
		{"default 500", nil, "all.json", "[500 500 203]"},
		{"default 500 yaml", nil, "all.yaml", "[500 500 203]"},
		{"page size 7", []source.FileOption{source.WithPageSize(7)}, "all.json", "[" + strings.TrimSpace(strings.Repeat("7 ", 171)) + " 6]"},
		{"page size 0 is default", []source.FileOption{source.WithPageSize(0)}, "all.json", "[500 500 203]"},
		{"pages span files", []source.FileOption{source.WithPageSize(4)}, "split/*.json", "[4 3]"},
		{"one item per page", []source.FileOption{source.WithPageSize(1)}, "split/*.json", "[1 1 1 1 1 1 1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := newFile(t, []string{dir}, dir, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			items, sizes, err := fetchAll(t.Context(), s, res("x", tt.path))
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(sizes); got != tt.wantSizes {
				t.Errorf("page sizes %s, want %s", got, tt.wantSizes)
			}
			for i, it := range items {
				if it != fmt.Sprintf(`{"i":%d}`, i) {
					t.Fatalf("item %d is %s", i, it)
				}
			}
		})
	}
}

func TestFileFetchedAt(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"x.json": `[{"i":0},{"i":1},{"i":2},{"i":3},{"i":4}]`})
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var ticks atomic.Int64
	clock := func() time.Time { return base.Add(time.Duration(ticks.Add(1)) * time.Second) }
	s, err := newFile(t, []string{dir}, dir, source.WithPageSize(2), source.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	var stamps []time.Time
	var readBefore []int64
	err = s.Fetch(t.Context(), res("x", ""), func(p source.Page) error {
		stamps = append(stamps, p.FetchedAt)
		readBefore = append(readBefore, ticks.Load())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(stamps) != 3 {
		t.Fatalf("%d pages", len(stamps))
	}
	for i, at := range stamps {
		tick := int64(at.Sub(base) / time.Second)
		// The stamp is taken when the page's first item is read: before the
		// page is yielded, after the previous page was.
		if tick < 1 || tick > readBefore[i] || (i > 0 && tick <= readBefore[i-1]) {
			t.Errorf("page %d stamped at tick %d; clock at yield %v", i, tick, readBefore)
		}
	}
}

func TestFileCancellation(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&lines, "{\"i\":%d}\n", i)
	}
	writeFiles(t, dir, map[string]string{"x.json": lines.String(), "y.yaml": strings.Repeat("- a: 1\n", 30)})
	s, err := newFile(t, []string{dir}, dir, source.WithPageSize(10))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"x.json", "y.yaml"} {
		ctx, cancel := context.WithCancel(t.Context())
		pages := 0
		err = s.Fetch(ctx, res("x", file), func(source.Page) error {
			pages++
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) || pages != 1 {
			t.Fatalf("%s: cancel during the fetch: %d pages, %v", file, pages, err)
		}
		if !strings.Contains(err.Error(), `kind "x"`) {
			t.Errorf("cancellation error %q does not name the kind", err)
		}
	}
	// A deadline stops it too.
	ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if err := s.Fetch(ctx, res("x", "x.json"), func(source.Page) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("expired deadline: %v", err)
	}
	// The yield's own error comes back as is, not wrapped.
	stop := errors.New("stop")
	if err := s.Fetch(t.Context(), res("x", "x.json"), func(source.Page) error { return stop }); err != stop {
		t.Errorf("yield error returned as %v", err)
	}
}
