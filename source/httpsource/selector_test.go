package httpsource_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// TestRequestShape checks what a resource's selector puts in its request:
// the path joined under baseUrl's path (default: the kind), baseUrl's query
// and the selector's, headers from the integration and the selector, the
// method and the JSON body.
func TestRequestShape(t *testing.T) {
	var got struct {
		method, path, query, hdrA, hdrB, body, ctype string
	}
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.method, got.path, got.query = r.Method, r.URL.EscapedPath(), r.URL.RawQuery
		got.hdrA, got.hdrB, got.body, got.ctype = r.Header.Get("X-A"), r.Header.Get("X-B"), string(b), r.Header.Get("Content-Type")
		writeJSON(w, []any{})
	})
	params := map[string]any{"baseUrl": srv.URL + "/api/v3?api-version=7", "headers": map[string]any{"X-A": "from-integration", "X-B": "overridden"}}
	s := newSource(t, testOptions(), params, nil)

	if _, _, err := fetchAll(t, s, "repos", nil); err != nil {
		t.Fatal(err)
	}
	if got.method != "GET" || got.path != "/api/v3/repos" || got.query != "api-version=7" || got.hdrA != "from-integration" {
		t.Errorf("default request: %+v", got)
	}

	sel := map[string]any{
		"path": "search/issues?sort=updated", "method": "post", "queryParams": map[string]any{"state": []any{"open", "closed"}, "n": int64(5)},
		"headers": map[string]any{"X-B": "from-selector"}, "body": map[string]any{"q": "is:open", "big": json.Number("12345678901234567890")},
	}
	if _, _, err := fetchAll(t, s, "issues", sel); err != nil {
		t.Fatal(err)
	}
	if got.method != "POST" || got.path != "/api/v3/search/issues" || got.hdrB != "from-selector" || got.ctype != "application/json" {
		t.Errorf("request: %+v", got)
	}
	if got.query != "api-version=7&n=5&sort=updated&state=open&state=closed" {
		t.Errorf("query %q", got.query)
	}
	if got.body != `{"big":12345678901234567890,"q":"is:open"}` {
		t.Errorf("body %s", got.body)
	}
}

// TestItems checks the items made of responses: big integers and number
// spellings survive, an object response is one item, items that are not
// objects are skipped and reported (failing the fetch so nothing is
// deleted), and unknown selector fields are ignored.
func TestItems(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/big":
			_, _ = w.Write([]byte(`[{"id": 12345678901234567890123, "f": 1.50, "e": 1e400, "s": "é\u2028<&>"}]`))
		case "/one":
			_, _ = w.Write([]byte(`{"id": "only"}`))
		case "/mixed":
			_, _ = w.Write([]byte(`[{"id": "a"}, 7, "x", {"id": "b"}, null, [1]]`))
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		}
	})
	s := newSource(t, testOptions(), map[string]any{"baseUrl": srv.URL}, nil)

	// A plain dataPath hands out the response's own bytes; one that needs jq, the
	// value jq made, re-encoded. Numbers are as written either way.
	for _, tt := range []struct{ dataPath, want string }{
		{".", `{"id": 12345678901234567890123, "f": 1.50, "e": 1e400, "s": "é\u2028<&>"}`},
		{"[.[] | select(.id)]", `{"e":1e400,"f":1.50,"id":12345678901234567890123,"s":"é` + "\u2028" + `<&>"}`},
	} {
		var raw []byte
		err := s.Fetch(t.Context(), source.Resource{Kind: "x", Selector: map[string]any{"path": "/big", "dataPath": tt.dataPath, "includedFiles": []any{"README.md"}}},
			func(p source.Page) error { raw = p.Items[0]; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) != tt.want {
			t.Errorf("dataPath %s: item %s, want %s", tt.dataPath, raw, tt.want)
		}
	}

	items, _, err := fetchAll(t, s, "x", map[string]any{"path": "/one"})
	if err != nil || !slices.Equal(ids(items), []string{"only"}) {
		t.Errorf("object response: %v %v", ids(items), err)
	}

	items, _, err = fetchAll(t, s, "x", map[string]any{"path": "/mixed"})
	var ie *source.ItemErrors
	if !errors.As(err, &ie) || ie.Total != 4 {
		t.Fatalf("Fetch: %v, want 4 item errors", err)
	}
	if !slices.Equal(ids(items), []string{"a", "b"}) {
		t.Errorf("good items %v", ids(items))
	}
	if !strings.Contains(err.Error(), "item 1: not a JSON object but a number") {
		t.Errorf("error %q", err)
	}

	items, pages, err := fetchAll(t, s, "x", map[string]any{"path": "/nocontent"})
	if err != nil || len(items) != 0 || len(pages) != 0 {
		t.Errorf("204: %d items, %d pages, %v", len(items), len(pages), err)
	}
}

// TestSelectorChecks checks IgnoredSelectorFields and CheckSelector, which
// `configsync validate` uses to warn and refuse before any run.
func TestSelectorChecks(t *testing.T) {
	sel := map[string]any{"path": "/x", "includedFiles": []any{"a"}, "query": ".x", "dataPth": ".items", "pagination": map[string]any{"type": "page"}}
	if got := httpsource.IgnoredSelectorFields(sel); !slices.Equal(got, []string{"dataPth", "includedFiles"}) {
		t.Errorf("IgnoredSelectorFields: %v", got)
	}
	ignored, err := httpsource.CheckSelector("x", sel, nil)
	if err != nil || len(ignored) != 2 {
		t.Errorf("CheckSelector: %v %v", ignored, err)
	}
	bad := []struct {
		sel  map[string]any
		want string
	}{
		{map[string]any{"dataPath": ".items["}, "selector.dataPath: jq"},
		{map[string]any{"method": "DELETE"}, "method must be one of"},
		{map[string]any{"body": map[string]any{"a": 1}}, "body needs a method"},
		{map[string]any{"path": "https://elsewhere.example/x"}, "not a URL"},
		{map[string]any{"pagination": map[string]any{"type": "pages"}}, "type must be one of"},
		{map[string]any{"pagination": map[string]any{"type": "page", "pagesize": 10}}, "unknown fields pagesize"},
		{map[string]any{"pagination": map[string]any{"type": "cursor"}}, "needs cursorPath"},
		{map[string]any{"pagination": map[string]any{"type": "offset", "in": "body"}}, "needs a method that sends one"},
		{map[string]any{"pagination": map[string]any{"type": "page", "maxPages": 0}}, "maxPages must be between"},
		{map[string]any{"headers": map[string]any{"Bad Header": "x"}}, "not a valid header name"},
		{map[string]any{"queryParams": map[string]any{"a": map[string]any{}}}, "must be a string, number, boolean"},
	}
	for _, tt := range bad {
		if _, err := httpsource.CheckSelector("x", tt.sel, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckSelector(%v): %v, want %q", tt.sel, err, tt.want)
		}
	}
	// The integration's default pagination applies, and a resource can turn it off.
	if _, err := httpsource.CheckSelector("x", map[string]any{"pagination": map[string]any{"type": "none"}}, map[string]any{"type": "page"}); err != nil {
		t.Errorf("type none over a default: %v", err)
	}
}

// TestPathEscapesBase checks that a path cannot climb out of baseUrl's path.
func TestPathEscapesBase(t *testing.T) {
	s := newSource(t, testOptions(), map[string]any{"baseUrl": "http://127.0.0.1:1/api"}, nil)
	_, _, err := fetchAll(t, s, "x", map[string]any{"path": "/../admin"})
	if err == nil || !strings.Contains(err.Error(), "climb out") {
		t.Errorf("Fetch: %v", err)
	}
}
