package httpsource_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// TestPaginationStyles fetches 7 items through every pagination style and
// checks the items and the requests sent.
func TestPaginationStyles(t *testing.T) {
	all := idItems("i", 0, 7)
	slice := func(lo, n int) []any { return all[min(lo, len(all)):min(lo+n, len(all))] }
	tests := []struct {
		name     string
		selector map[string]any
		params   map[string]any // integration parameters besides baseUrl
		handler  func(w http.ResponseWriter, r *http.Request)
		requests int
	}{
		{
			name: "none", selector: map[string]any{"path": "/all"},
			handler:  func(w http.ResponseWriter, r *http.Request) { writeJSON(w, all) },
			requests: 1,
		},
		{
			name:     "offset, short page ends",
			selector: map[string]any{"pagination": map[string]any{"type": "offset", "pageSize": 3}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
				lim, _ := strconv.Atoi(r.URL.Query().Get("limit"))
				writeJSON(w, slice(off, lim))
			},
			requests: 3, // 3, 3, 1
		},
		{
			name:     "offset, renamed parameters, empty page ends",
			selector: map[string]any{"pagination": map[string]any{"type": "offset", "offsetParam": "skip", "sizeParam": "take", "pageSize": 7}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				off, _ := strconv.Atoi(r.URL.Query().Get("skip"))
				lim, _ := strconv.Atoi(r.URL.Query().Get("take"))
				writeJSON(w, slice(off, lim))
			},
			requests: 2, // 7 (a full page), 0
		},
		{
			name:     "page, from the integration default, empty page ends",
			params:   map[string]any{"pagination": map[string]any{"type": "page", "pageParam": "p", "startPage": 0}},
			selector: map[string]any{"dataPath": ".results"},
			handler: func(w http.ResponseWriter, r *http.Request) {
				p, _ := strconv.Atoi(r.URL.Query().Get("p"))
				writeJSON(w, map[string]any{"results": slice(p*3, 3)})
			},
			requests: 4, // 3, 3, 1, 0
		},
		{
			name: "cursor with hasMore",
			selector: map[string]any{"dataPath": ".data[]", "pagination": map[string]any{
				"type": "cursor", "cursorPath": ".next", "hasMorePath": ".has_more", "cursorParam": "starting_after", "pageSize": 2, "sizeParam": "n"}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				at := 0
				if c := r.URL.Query().Get("starting_after"); c != "" {
					at, _ = strconv.Atoi(strings.TrimPrefix(c, "i"))
					at++
				}
				n, _ := strconv.Atoi(r.URL.Query().Get("n"))
				page := slice(at, n)
				writeJSON(w, map[string]any{"data": page, "has_more": at+n < len(all), "next": page[len(page)-1].(map[string]any)["id"]})
			},
			requests: 4, // 2, 2, 2, 1 (has_more false)
		},
		{
			name:     "cursor ends on a null cursor",
			selector: map[string]any{"dataPath": ".items", "pagination": map[string]any{"type": "cursor", "cursorPath": ".meta.cursor"}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				at, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
				var next any
				if at+4 < len(all) {
					next = at + 4 // a number cursor
				}
				writeJSON(w, map[string]any{"items": slice(at, 4), "meta": map[string]any{"cursor": next}})
			},
			requests: 2,
		},
		{
			name:     "nextLink, relative",
			selector: map[string]any{"path": "/v1/things", "queryParams": map[string]any{"q": "x"}, "dataPath": ".value", "pagination": map[string]any{"type": "nextLink", "nextLinkPath": ".links.next"}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("q") != "x" {
					http.Error(w, "lost the query", 400)
					return
				}
				at, _ := strconv.Atoi(r.URL.Query().Get("skiptoken"))
				links := map[string]any{}
				if at+3 < len(all) {
					links["next"] = fmt.Sprintf("things?q=x&skiptoken=%d", at+3)
				}
				writeJSON(w, map[string]any{"value": slice(at, 3), "links": links})
			},
			requests: 3,
		},
		{
			name:     "linkHeader",
			selector: map[string]any{"pagination": map[string]any{"type": "linkHeader", "pageSize": 3, "sizeParam": "per_page"}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				p, _ := strconv.Atoi(r.URL.Query().Get("page"))
				per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
				p = max(p, 1)
				link := fmt.Sprintf(`<https://other.example/x?page=1>; rel="first", <%s?page=%d&per_page=%d>; rel="prev"`, r.URL.Path, p-1, per)
				if p*per < len(all) {
					link += fmt.Sprintf(`, <http://%s%s?page=%d&per_page=%d>; rel="next last"`, r.Host, r.URL.Path, p+1, per)
				}
				w.Header().Set("Link", link)
				writeJSON(w, slice((p-1)*per, per))
			},
			requests: 3,
		},
		{
			name: "body paging for a POST search",
			selector: map[string]any{"path": "/search", "method": "POST", "body": map[string]any{"query": "kind = x"}, "dataPath": ".hits",
				"pagination": map[string]any{"type": "offset", "in": "body", "pageSize": 4, "offsetParam": "from", "sizeParam": "size"}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				var body struct {
					Query      string
					From, Size int
				}
				if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Method != "POST" || body.Query != "kind = x" || r.URL.RawQuery != "" {
					http.Error(w, "bad search", 400)
					return
				}
				writeJSON(w, map[string]any{"hits": slice(body.From, body.Size)})
			},
			requests: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				tt.handler(w, r)
			})
			params := map[string]any{"baseUrl": srv.URL}
			for k, v := range tt.params {
				params[k] = v
			}
			s := newSource(t, testOptions(), params, nil)
			items, _, err := fetchAll(t, s, "things", tt.selector)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			want := ids(toMaps(all))
			if got := ids(items); !slices.Equal(got, want) {
				t.Errorf("items %v, want %v", got, want)
			}
			if int(n.Load()) != tt.requests {
				t.Errorf("%d requests, want %d", n.Load(), tt.requests)
			}
		})
	}
}

func toMaps(l []any) []map[string]any {
	out := make([]map[string]any, len(l))
	for i, x := range l {
		out[i] = x.(map[string]any)
	}
	return out
}

// TestPaginationFailures shows the cases that must fail the fetch, so that the
// run deletes nothing: loops, the maxPages guard, a has-more path that yields
// no boolean, and a next link to another origin. Each yields the pages it got
// first.
func TestPaginationFailures(t *testing.T) {
	tests := []struct {
		name     string
		selector map[string]any
		handler  func(w http.ResponseWriter, r *http.Request)
		want     error
		msg      string
		pages    int
	}{
		{
			name:     "cursor repeats",
			selector: map[string]any{"dataPath": ".data", "pagination": map[string]any{"type": "cursor", "cursorPath": ".next"}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				c := r.URL.Query().Get("cursor")
				writeJSON(w, map[string]any{"data": idItems("c"+c, 0, 1), "next": "abc"})
			},
			want: httpsource.ErrPaginationLoop, msg: "a cursor it had sent before", pages: 2,
		},
		{
			name:     "cursor cycles",
			selector: map[string]any{"dataPath": ".data", "pagination": map[string]any{"type": "cursor", "cursorPath": ".next"}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				next := map[string]string{"": "a", "a": "b", "b": "a"}[r.URL.Query().Get("cursor")]
				writeJSON(w, map[string]any{"data": idItems("c"+r.URL.Query().Get("cursor"), 0, 1), "next": next})
			},
			want: httpsource.ErrPaginationLoop, pages: 3,
		},
		{
			name:     "next link back to the first page",
			selector: map[string]any{"path": "/l", "dataPath": ".data", "pagination": map[string]any{"type": "nextLink", "nextLinkPath": ".next"}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				next := "/l?p=2"
				if r.URL.Query().Get("p") == "2" {
					next = "/l"
				}
				writeJSON(w, map[string]any{"data": idItems("p"+r.URL.Query().Get("p"), 0, 1), "next": next})
			},
			want: httpsource.ErrPaginationLoop, pages: 2,
		},
		{
			name:     "page parameter ignored",
			selector: map[string]any{"pagination": map[string]any{"type": "page"}},
			handler:  func(w http.ResponseWriter, r *http.Request) { writeJSON(w, idItems("same", 0, 2)) },
			want:     httpsource.ErrPaginationLoop, msg: "is the same as page 1", pages: 1,
		},
		{
			name:     "maxPages",
			selector: map[string]any{"pagination": map[string]any{"type": "page", "maxPages": 3}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, idItems("p"+r.URL.Query().Get("page"), 0, 1))
			},
			want: httpsource.ErrMaxPages, pages: 3,
		},
		{
			name:     "hasMore path misspelt",
			selector: map[string]any{"dataPath": ".data", "pagination": map[string]any{"type": "page", "hasMorePath": ".hasMore"}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, map[string]any{"data": idItems("p"+r.URL.Query().Get("page"), 0, 1), "has_more": true})
			},
			msg: "yielded null, not a boolean", pages: 1,
		},
		{
			name:     "next link to another origin",
			selector: map[string]any{"dataPath": ".data", "pagination": map[string]any{"type": "nextLink", "nextLinkPath": ".next"}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, map[string]any{"data": idItems("a", 0, 1), "next": "https://evil.example/steal"})
			},
			msg: "another origin", pages: 1,
		},
		{
			name:     "dataPath yields null",
			selector: map[string]any{"dataPath": ".itmes"},
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, map[string]any{"items": idItems("a", 0, 1)})
			},
			msg: `jq ".itmes" yielded null`, pages: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server(t, tt.handler)
			s := newSource(t, testOptions(), map[string]any{"baseUrl": srv.URL}, nil)
			_, pages, err := fetchAll(t, s, "things", tt.selector)
			if err == nil {
				t.Fatal("Fetch returned nil: the kind would count as whole")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if tt.msg != "" && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q lacks %q", err, tt.msg)
			}
			if !strings.Contains(err.Error(), `kind "things"`) {
				t.Errorf("error %q does not name the kind", err)
			}
			if len(pages) != tt.pages {
				t.Errorf("%d pages yielded before the failure, want %d", len(pages), tt.pages)
			}
		})
	}
}

// TestRetries shows retries of 429, 502, 503 and 504 and of network errors,
// Retry-After honoured (in seconds and as a date), no retry of other
// statuses, of POST unless the resource opts in, or of a Retry-After beyond
// the limit; and a 500 midway failing the fetch after the first page.
func TestRetries(t *testing.T) {
	type step struct {
		status     int
		retryAfter string
		hangUp     bool // close the connection without an answer
	}
	tests := []struct {
		name     string
		selector map[string]any
		steps    []step // the answers to page 2's attempts; then success
		ok       bool
		attempts int           // attempts of page 2
		slept    time.Duration // the first wait, when exact (Retry-After)
	}{
		{name: "429 with Retry-After seconds", steps: []step{{status: 429, retryAfter: "7"}}, ok: true, attempts: 2, slept: 7 * time.Second},
		{name: "503 with Retry-After date", steps: []step{{status: 503, retryAfter: "Wed, 01 May 2024 12:00:30 GMT"}}, ok: true, attempts: 2, slept: 30 * time.Second},
		{name: "502, 504 then success", steps: []step{{status: 502}, {status: 504}}, ok: true, attempts: 3},
		{name: "network error then success", steps: []step{{hangUp: true}}, ok: true, attempts: 2},
		{name: "500 midway fails", steps: []step{{status: 500}}, attempts: 1},
		{name: "404 fails", steps: []step{{status: 404}}, attempts: 1},
		{name: "Retry-After beyond the limit fails", steps: []step{{status: 429, retryAfter: "3600"}}, attempts: 1},
		{name: "retries run out", steps: []step{{status: 503}, {status: 503}, {status: 503}, {status: 503}}, attempts: 3},
		{name: "POST not retried", selector: map[string]any{"method": "POST"}, steps: []step{{status: 503}}, attempts: 1},
		{name: "POST retried when the resource opts in", selector: map[string]any{"method": "POST", "retryNonIdempotent": true},
			steps: []step{{status: 503}}, ok: true, attempts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int32
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				page := r.URL.Query().Get("page")
				if page == "2" {
					n := int(attempts.Add(1))
					if n <= len(tt.steps) {
						st := tt.steps[n-1]
						if st.hangUp {
							conn, _, _ := w.(http.Hijacker).Hijack()
							conn.Close()
							return
						}
						if st.retryAfter != "" {
							w.Header().Set("Retry-After", st.retryAfter)
						}
						w.WriteHeader(st.status)
						fmt.Fprintf(w, `{"error": "status %d"}`, st.status)
						return
					}
				}
				if page == "3" {
					writeJSON(w, []any{})
					return
				}
				writeJSON(w, idItems("p"+page, 0, 1))
			})
			clock := newFakeClock()
			opts := testOptions()
			opts.Clock = clock
			opts.MaxRetries = 2
			opts.MaxRetryAfter = time.Minute
			sel := map[string]any{"pagination": map[string]any{"type": "page"}}
			for k, v := range tt.selector {
				sel[k] = v
			}
			s := newSource(t, opts, map[string]any{"baseUrl": srv.URL}, nil)
			items, pages, err := fetchAll(t, s, "things", sel)
			if tt.ok != (err == nil) {
				t.Fatalf("Fetch: %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && !slices.Equal(ids(items), []string{"p10", "p20"}) {
				t.Errorf("items %v", ids(items))
			}
			if !tt.ok {
				if len(pages) != 1 {
					t.Errorf("%d pages before the failure, want 1", len(pages))
				}
				var he *httpsource.HTTPError
				if errors.As(err, &he) && (he.Method == "" || !strings.Contains(he.URL, "page=2") || he.Excerpt == "") {
					t.Errorf("HTTPError lacks method, URL or excerpt: %+v", he)
				}
			}
			if got := int(attempts.Load()); got != tt.attempts {
				t.Errorf("%d attempts of page 2, want %d", got, tt.attempts)
			}
			if slept := clock.Slept(); tt.slept != 0 && (len(slept) == 0 || slept[0] != tt.slept) {
				t.Errorf("slept %v, want first %v", slept, tt.slept)
			}
			if tt.name == "Retry-After beyond the limit fails" && (err == nil || !strings.Contains(err.Error(), "beyond this deployment's limit")) {
				t.Errorf("error %v does not say why it did not wait", err)
			}
		})
	}
}

// TestRealBackoffIsBounded runs retries on the real clock with tiny backoff
// options: the test stays fast, and the waits are really taken.
func TestRealBackoffIsBounded(t *testing.T) {
	var n atomic.Int32
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, idItems("a", 0, 1))
	})
	opts := httpsource.Options{AllowPrivate: true, RetryInitial: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond}
	s := newSource(t, opts, map[string]any{"baseUrl": srv.URL}, nil)
	start := time.Now()
	if _, _, err := fetchAll(t, s, "x", nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 10*time.Millisecond || d > 2*time.Second {
		t.Errorf("two retries took %v", d)
	}
}

// TestStreaming shows pages yielded as they arrive: the server holds page 2
// until the receiver has page 1, which a source that read every page first
// would never get.
func TestStreaming(t *testing.T) {
	gotFirst := make(chan struct{})
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("page") {
		case "1":
			writeJSON(w, idItems("a", 0, 3))
		case "2":
			select {
			case <-gotFirst:
			case <-time.After(5 * time.Second):
				http.Error(w, "page 1 was not yielded before page 2 was asked for", 500)
				return
			}
			writeJSON(w, idItems("b", 0, 3))
		default:
			writeJSON(w, []any{})
		}
	})
	s := newSource(t, testOptions(), map[string]any{"baseUrl": srv.URL, "pagination": map[string]any{"type": "page"}}, nil)
	items, _, err := fetchWith(t, s, source.Resource{Kind: "x"}, func(n int) {
		if n == 1 {
			close(gotFirst)
		}
	})
	if err != nil || len(items) != 6 {
		t.Fatalf("Fetch: %d items, %v", len(items), err)
	}
}

// TestConcurrencyLimit shows maxConcurrentRequests bounding the requests in
// flight across concurrent fetches of one source.
func TestConcurrencyLimit(t *testing.T) {
	var inFlight, peak atomic.Int32
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		inFlight.Add(-1)
		writeJSON(w, idItems("a", 0, 1))
	})
	s := newSource(t, testOptions(), map[string]any{"baseUrl": srv.URL, "maxConcurrentRequests": 2}, nil)
	done := make(chan error, 8)
	for range 8 {
		go func() {
			done <- s.Fetch(t.Context(), source.Resource{Kind: "x"}, func(source.Page) error { return nil })
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p > 2 {
		t.Errorf("%d requests in flight, want at most 2", p)
	}
}

// TestRateLimit shows rateLimit pacing requests: at 100 per second (a burst
// of 100), 111 requests take at least 100ms.
func TestRateLimit(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("page") == "111" {
			writeJSON(w, []any{})
			return
		}
		writeJSON(w, idItems("p"+r.URL.Query().Get("page"), 0, 1))
	})
	s := newSource(t, testOptions(), map[string]any{"baseUrl": srv.URL, "rateLimit": 100, "pagination": map[string]any{"type": "page"}}, nil)
	start := time.Now()
	items, _, err := fetchAll(t, s, "x", nil)
	if err != nil || len(items) != 110 {
		t.Fatalf("Fetch: %d items, %v", len(items), err)
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("111 requests at 100/s took %v, want at least 100ms", d)
	}
}
