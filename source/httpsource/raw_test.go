package httpsource

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/configsync/configsync/fakegithub"
)

// jqItems is what the decode-and-jq path makes of body for a simple dataPath:
// the reference splitRaw must agree with.
func jqItems(t testing.TB, body []byte, src string) ([]any, error) {
	e, err := compileJQ("dataPath", src)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the value")
	}
	var out []any
	err = e.run(t.Context(), jqTestTimeout, doc, nil, func(v any) error {
		switch x := v.(type) {
		case nil:
			return errors.New("null")
		case []any:
			out = append(out, x...)
		default:
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

const jqTestTimeout = time.Second

func decodeAll(t testing.TB, items [][]byte) []any {
	out := []any{}
	for _, b := range items {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("item %q is not JSON: %v", b, err)
		}
		out = append(out, v)
	}
	return out
}

func TestPathFields(t *testing.T) {
	tests := []struct {
		src    string
		fields []string
		ok     bool
	}{
		{".", nil, true},
		{" . ", nil, true},
		{".items", []string{"items"}, true},
		{".data.items_2", []string{"data", "items_2"}, true},
		{".items[]", nil, false},
		{".items?", nil, false},
		{`.["items"]`, nil, false},
		{".a | .b", nil, false},
		{"..", nil, false},
		{".2a", nil, false},
	}
	for _, tt := range tests {
		fields, ok := pathFields(tt.src)
		if ok != tt.ok || !reflect.DeepEqual(fields, tt.fields) {
			t.Errorf("pathFields(%q) = %q, %v; want %q, %v", tt.src, fields, ok, tt.fields, tt.ok)
		}
	}
}

// TestSplitRaw: the bytes path answers plain documents like jq does, and leaves
// everything else (null, missing, repeated or non-object members, invalid JSON,
// invalid UTF-8, trailing data) to jq.
func TestSplitRaw(t *testing.T) {
	tests := []struct {
		name, body, path string
		want             int // items; -1: left to jq
	}{
		{"top-level array", `[{"a":1}, {"b": [1,2]} ,{}]`, ".", 3},
		{"top-level object", ` {"a": {"b": 1}} `, ".", 1},
		{"nested", `{"meta": {"n": 2}, "data": {"items": [{"id": 1}, 7, "x"]}, "z": null}`, ".data.items", 3},
		{"empty array", `{"items": []}`, ".items", 0},
		{"escaped name", `{"it\u0065ms": [{"id": 1}]}`, ".items", 1},
		{"null", `{"items": null}`, ".items", -1},
		{"missing", `{"other": []}`, ".items", -1},
		{"repeated member", `{"items": [], "items": [{}]}`, ".items", -1},
		{"repeated name inside an item", `[{"a": 1, "a": 2}]`, ".", 1},
		{"through a non-object", `{"data": [1]}`, ".data.items", -1},
		{"scalar", `7`, ".", -1},
		{"invalid", `[{"a":1},]`, ".", -1},
		{"trailing data", `[] []`, ".", -1},
		{"invalid UTF-8", "[{\"a\": \"\xff\"}]", ".", -1},
		{"empty", ``, ".", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields, _ := pathFields(tt.path)
			items, err := splitRaw([]byte(tt.body), fields)
			if tt.want < 0 {
				if !errors.Is(err, errNotSimple) {
					t.Fatalf("splitRaw = %q, %v; want it left to jq", items, err)
				}
				return
			}
			if err != nil || len(items) != tt.want {
				t.Fatalf("splitRaw = %q, %v; want %d items", items, err, tt.want)
			}
			want, err := jqItems(t, []byte(tt.body), tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := decodeAll(t, items); !reflect.DeepEqual(got, append([]any{}, want...)) {
				t.Fatalf("items %v, jq gives %v", got, want)
			}
			for i := range items {
				if cap(items[i]) != len(items[i]) {
					t.Fatalf("item %d has room to grow into its neighbour", i)
				}
			}
		})
	}
}

// FuzzSplitRaw: whenever the bytes path answers, it gives exactly jq's items.
func FuzzSplitRaw(f *testing.F) {
	for _, s := range []string{`[{"a":1},{"b":"x"}]`, `{"items":[{"id":1}],"next":"c"}`, `{"items":{"id":2}}`, `{"a":{"items":[1,"2",null,{}]}}`, `[]`, `{"items": [], "items": []}`} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(2))
	}
	paths := []string{".", ".items", ".a.items"}
	f.Fuzz(func(t *testing.T, body []byte, p uint8) {
		path := paths[int(p)%len(paths)]
		fields, _ := pathFields(path)
		items, err := splitRaw(body, fields)
		if err != nil {
			return
		}
		want, jerr := jqItems(t, body, path)
		if jerr != nil {
			t.Fatalf("splitRaw gave %d items where jq fails: %v", len(items), jerr)
		}
		if got := decodeAll(t, items); !reflect.DeepEqual(got, append([]any{}, want...)) {
			t.Fatalf("items %v, jq gives %v", got, want)
		}
	})
}

// BenchmarkSplitRaw cuts a page of 100 GitHub-like repositories (≈ 530 KB) into its
// items, against jsontext reading the same values one by one (how splitRaw did it
// before rawjson) as the baseline in the same run.
func BenchmarkSplitRaw(b *testing.B) {
	page := []byte(`{"items":[`)
	for i := range 100 {
		if i > 0 {
			page = append(page, ',')
		}
		page = fakegithub.AppendRepository(page, i, fakegithub.RepositoryOptions{})
	}
	page = append(page, `],"next":null}`...)
	b.Run("rawjson", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			items, err := splitRaw(page, []string{"items"})
			if err != nil || len(items) != 100 {
				b.Fatalf("%d items, %v", len(items), err)
			}
		}
	})
	b.Run("jsontext", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			dec := jsontext.NewDecoder(bytes.NewReader(page), jsontext.AllowDuplicateNames(true))
			_, _ = dec.ReadToken()
			_, _ = dec.ReadToken()
			_, _ = dec.ReadToken()
			n := 0
			for dec.PeekKind() != ']' {
				if _, err := dec.ReadValue(); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if n != 100 {
				b.Fatalf("%d items", n)
			}
		}
	})
}
