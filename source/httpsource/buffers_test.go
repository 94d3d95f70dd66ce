package httpsource_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/configsync/configsync/source"
)

// TestReleasedBodiesAreReused fetches 30 one-page responses, releasing each page
// once read: later responses must land in the released buffers (a full resync reads
// its whole tool through a handful of them), whether the items were cut from the
// body itself or from a copy of it (cursor pagination reads the body after), and
// whether the server sent a Content-Length or not.
func TestReleasedBodiesAreReused(t *testing.T) {
	const responses = 30
	tests := []struct {
		name     string
		chunked  bool // no Content-Length: the body is read into a growing buffer first
		selector map[string]any
	}{
		{name: "page", selector: map[string]any{"pagination": map[string]any{"type": "page", "pageSize": 4}}},
		{name: "page without Content-Length", chunked: true, selector: map[string]any{"pagination": map[string]any{"type": "page", "pageSize": 4}}},
		{name: "cursor", selector: map[string]any{"dataPath": ".data", "pagination": map[string]any{"type": "cursor", "cursorPath": ".next", "cursorParam": "after"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				page, _ := strconv.Atoi(r.URL.Query().Get("page"))
				if after := r.URL.Query().Get("after"); after != "" {
					page, _ = strconv.Atoi(after)
				}
				page = max(page, 1)
				items := []any{}
				if page <= responses {
					items = idItems(fmt.Sprintf("p%d-", page), 0, 4)
				}
				if tc.chunked {
					w.Header().Set("Content-Type", "application/json")
					w.(http.Flusher).Flush() // headers out: no Content-Length
				}
				if _, ok := tc.selector["dataPath"]; ok {
					next := any(nil)
					if page < responses {
						next = strconv.Itoa(page + 1)
					}
					writeJSON(w, map[string]any{"data": items, "next": next})
					return
				}
				writeJSON(w, items)
			})
			opts := testOptions()
			opts.PageSize = 10
			s := newSource(t, opts, map[string]any{"baseUrl": srv.URL}, nil)
			buffers := map[*byte]bool{}
			var got []string
			err := s.Fetch(t.Context(), source.Resource{Kind: "things", Selector: tc.selector}, func(p source.Page) error {
				for _, item := range p.Items {
					got = append(got, string(item))
				}
				buffers[&p.Items[0][:1][0]] = true
				if p.Release == nil {
					t.Fatal("a page without Release")
				}
				p.Release()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 4*responses {
				t.Fatalf("got %d items, want %d", len(got), 4*responses)
			}
			// One buffer for the body and, with cursor pagination, one for the copy:
			// they trade places, so the items land in either.
			if len(buffers) > 2 {
				t.Errorf("%d responses were read into %d different buffers: released buffers are not reused", responses, len(buffers))
			}
		})
	}
}
