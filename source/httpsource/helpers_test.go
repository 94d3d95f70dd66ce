package httpsource_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// fakeClock is a Clock whose Sleep returns at once, recording the wait and
// moving time forward by it.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.slept = append(c.slept, d)
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.slept...)
}

// testOptions are quick options for tests on httptest servers.
func testOptions() httpsource.Options {
	return httpsource.Options{
		AllowPrivate: true,
		RetryInitial: time.Millisecond,
		RetryMax:     5 * time.Millisecond,
		Clock:        newFakeClock(),
	}
}

// newSource builds an http source through a registry, as the sync does, so
// that parameters are validated and defaulted.
func newSource(t *testing.T, opts httpsource.Options, params map[string]any, creds map[string]string) source.Source {
	t.Helper()
	s, err := newSourceErr(opts, params, creds)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func newSourceErr(opts httpsource.Options, params map[string]any, creds map[string]string) (source.Source, error) {
	reg := source.NewRegistry(httpsource.Type(opts))
	return reg.New(httpsource.TypeID, params, creds)
}

// fetchAll fetches a resource and returns its items decoded, the pages and
// the error.
func fetchAll(t *testing.T, s source.Source, kind string, selector map[string]any) ([]map[string]any, []source.Page, error) {
	t.Helper()
	return fetchWith(t, s, source.Resource{Kind: kind, Selector: selector}, nil)
}

// fetchWith fetches r, calling onPage (if set) after each page is recorded.
func fetchWith(t *testing.T, s source.Source, r source.Resource, onPage func(n int)) ([]map[string]any, []source.Page, error) {
	t.Helper()
	var items []map[string]any
	var pages []source.Page
	err := s.Fetch(t.Context(), r, func(p source.Page) error {
		pages = append(pages, p)
		for _, raw := range p.Items {
			var m map[string]any
			dec := json.NewDecoder(strings.NewReader(string(raw)))
			dec.UseNumber()
			if err := dec.Decode(&m); err != nil {
				t.Errorf("item %q is not a JSON object: %v", raw, err)
			}
			items = append(items, m)
		}
		if onPage != nil {
			onPage(len(pages))
		}
		return nil
	})
	return items, pages, err
}

// ids returns the "id" of each item, as text.
func ids(items []map[string]any) []string {
	out := make([]string, len(items))
	for i, it := range items {
		switch v := it["id"].(type) {
		case string:
			out[i] = v
		case json.Number:
			out[i] = v.String()
		default:
			out[i] = "?"
		}
	}
	return out
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// idItems returns n items {"id": "<prefix><i>"} from start.
func idItems(prefix string, start, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"id": prefix + itoa(start+i)}
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// counter counts requests per path, safely.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) inc(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[path]++
	return c.n[path]
}

func (c *counter) get(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// server starts an httptest server with h, closed at the test's end.
func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// errorChain returns the messages of err and of every error it wraps.
func errorChain(err error) []string {
	if err == nil {
		return nil
	}
	out := []string{err.Error()}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		out = append(out, errorChain(u.Unwrap())...)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, errorChain(e)...)
		}
	}
	return out
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// containsAny reports whether any of msgs contains sub.
func containsAny(msgs []string, sub string) bool {
	for _, m := range msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}
