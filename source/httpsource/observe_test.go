package httpsource_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// TestObserveSeesEveryRequest: Options.Observe is called for every request sent:
// each redirect hop, each retry, and a request that got no response (status 0 and
// its error).
func TestObserveSeesEveryRequest(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	observe := func(method, host string, status int, err error, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s %d %v", method, status, err != nil))
		if d < 0 || host == "" {
			t.Errorf("observed %s %q after %v", method, host, d)
		}
	}
	var tries atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/old":
			http.Redirect(w, r, "/new", http.StatusFound)
		case "/new":
			if tries.Add(1) == 1 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			_, _ = w.Write([]byte(`[{"id": 1}]`))
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	opts := httpsource.Options{AllowPrivate: true, MaxRetries: 1, RetryInitial: time.Millisecond, RetryMax: time.Millisecond, Observe: observe}
	reg := source.NewRegistry(httpsource.Type(opts))
	fetch := func(base string) error {
		s, err := reg.New(httpsource.TypeID, map[string]any{"baseUrl": base}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s.Fetch(context.Background(), source.Resource{Kind: "x", Selector: map[string]any{"path": "/old"}}, func(source.Page) error { return nil })
	}
	if err := fetch(srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := fetch(closed.URL); err == nil {
		t.Fatal("a closed server answered")
	}
	// /old, /new (502), retry: /old, /new; then the closed server, tried twice.
	want := []string{"GET 302 false", "GET 502 false", "GET 302 false", "GET 200 false", "GET 0 true", "GET 0 true"}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, want) {
		t.Errorf("observed\n %q\nwant\n %q", seen, want)
	}
}
