package httpsource_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/sourcetest"
)

// TestConformance runs the shared source suite against the http source on a
// local server, with page pagination (server pages of 7, source pages of at
// most 5, so responses are split) and with cursor pagination and a dataPath.
func TestConformance(t *testing.T) {
	const maxPage = 5
	opts := testOptions()
	opts.PageSize = maxPage
	opts.Clock = nil // the suite checks FetchedAt against the wall clock

	t.Run("page", func(t *testing.T) {
		sourcetest.Run(t, sourcetest.Harness{MaxPageSize: maxPage, New: func(t *testing.T, items []map[string]any) (source.Source, source.Resource) {
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				page, _ := strconv.Atoi(r.URL.Query().Get("page"))
				size, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
				if r.URL.Path != "/things" || page < 1 || size != 7 {
					http.Error(w, "bad request", http.StatusBadRequest)
					return
				}
				lo, hi := min((page-1)*size, len(items)), min(page*size, len(items))
				writeJSON(w, append([]map[string]any{}, items[lo:hi]...))
			})
			s := newSource(t, opts, map[string]any{"baseUrl": srv.URL, "pagination": map[string]any{"type": "page", "pageSize": 7}}, nil)
			return s, source.Resource{Kind: "things"}
		}})
	})

	t.Run("cursor", func(t *testing.T) {
		sourcetest.Run(t, sourcetest.Harness{MaxPageSize: maxPage, New: func(t *testing.T, items []map[string]any) (source.Source, source.Resource) {
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				at, _ := strconv.Atoi(r.URL.Query().Get("after"))
				hi := min(at+6, len(items))
				next := any(nil)
				if hi < len(items) {
					next = strconv.Itoa(hi)
				}
				writeJSON(w, map[string]any{"data": append([]map[string]any{}, items[min(at, hi):hi]...), "meta": map[string]any{"next": next}})
			})
			s := newSource(t, opts, map[string]any{"baseUrl": srv.URL}, nil)
			return s, source.Resource{Kind: "things", Selector: map[string]any{
				"path": "/list", "dataPath": ".data",
				"pagination": map[string]any{"type": "cursor", "cursorPath": ".meta.next", "cursorParam": "after"},
			}}
		}})
	})
}
