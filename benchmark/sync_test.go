package benchmark

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"

	"github.com/configsync/configsync/redistest"
)

func TestRunCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end benchmark run")
	}
	const cfg = "../../shared/compat/ocean-integrations/github/port-app-config.yml"
	if _, err := os.Stat(cfg); err != nil {
		t.Skipf("compat corpus not found: %v", err)
	}
	url := os.Getenv(redistest.EnvURL)
	if url == "" {
		url = redistest.DefaultURL
	}
	const n = 2000
	res, err := Run(context.Background(), Options{Items: n, RedisURL: url, ConfigPath: cfg, LatencySamples: 3, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Phases) != 3 {
		t.Fatalf("phases: %d", len(res.Phases))
	}
	want := []struct{ fetched, upserted, deleted int }{{n, n, 0}, {n, 0, 0}, {n - n/100, n / 100, n / 100}}
	for i, p := range res.Phases {
		c := p.Counts
		if c.Fetched != want[i].fetched || c.Upserted != want[i].upserted || c.Deleted != want[i].deleted {
			t.Errorf("%s: fetched %d upserted %d deleted %d, want %+v", p.Name, c.Fetched, c.Upserted, c.Deleted, want[i])
		}
		if p.RedisCommands <= 0 || p.PeakRSS <= 0 {
			t.Errorf("%s: redis commands %d, peak RSS %d", p.Name, p.RedisCommands, p.PeakRSS)
		}
	}
	if len(res.Latencies) != 3 || res.MedianLatency() <= 0 {
		t.Errorf("latencies %v", res.Latencies)
	}
}

// TestServerPages checks that pages served from the rendered file are the pages
// rendered per request, before and after a change, and that a page past the end is
// empty.
func TestServerPages(t *testing.T) {
	s := &server{dir: t.TempDir(), perPage: 10, present: make([]int, 95)}
	for i := range s.present {
		s.present[i] = i
	}
	get := func(page, per int) string {
		t.Helper()
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/repos?page=%d&per_page=%d", page, per), nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("page %d of %d: status %d", page, per, rec.Code)
		}
		if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
			t.Fatalf("page %d of %d: Content-Length %s for %d bytes", page, per, cl, rec.Body.Len())
		}
		return rec.Body.String()
	}
	check := func(stage string) {
		t.Helper()
		for page := 1; page <= 11; page++ {
			fromFile := get(page, 10)
			want := string(appendPage(nil, s.present, s.changed, page, 10))
			if fromFile != want {
				t.Fatalf("%s: page %d from the file differs from the rendered page", stage, page)
			}
			var items []map[string]any
			if err := json.Unmarshal([]byte(fromFile), &items); err != nil {
				t.Fatalf("%s: page %d: %v", stage, page, err)
			}
			if wantN := min(10, max(0, len(s.present)-(page-1)*10)); len(items) != wantN {
				t.Fatalf("%s: page %d has %d items, want %d", stage, page, len(items), wantN)
			}
		}
	}
	s.file = "" // nothing rendered yet: every page is rendered per request
	check("unrendered")
	if err := s.render(); err != nil {
		t.Fatal(err)
	}
	first := s.file
	check("rendered")
	if get(2, 7) != string(appendPage(nil, s.present, s.changed, 2, 7)) {
		t.Fatal("a page of another size differs")
	}
	before := get(1, 10)
	if changed, removed := s.change(); changed == 0 || removed == 0 {
		t.Fatalf("change: %d changed, %d removed", changed, removed)
	}
	if err := s.render(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Errorf("the first page file is still there: %v", err)
	}
	check("changed")
	if get(1, 10) == before {
		t.Error("page 1 did not change")
	}
}
