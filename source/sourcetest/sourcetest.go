// Package sourcetest is the test suite that every source.Source implementation
// runs, so that all sources keep the contract the sync relies on: complete and
// ordered delivery, bounded non-empty pages of JSON objects owned by the
// receiver, yield's error returned as is, and prompt stops on cancellation.
//
// An implementation's test supplies a Harness that serves given items:
//
//	func TestConformance(t *testing.T) {
//		sourcetest.Run(t, sourcetest.Harness{MaxPageSize: 500, New: newServing})
//	}
package sourcetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/configsync/configsync/source"
)

// Harness adapts one Source implementation to the suite.
type Harness struct {
	// MaxPageSize is the most items the sources New returns put in one page.
	MaxPageSize int
	// New returns a source, and a resource of it, whose fetch delivers exactly
	// items, in order. Each item has an integer "i" (its position) and other
	// fields of any JSON type.
	New func(t *testing.T, items []map[string]any) (source.Source, source.Resource)
}

// Run runs the suite as subtests of t.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.MaxPageSize <= 0 || h.New == nil {
		t.Fatal("sourcetest: Harness needs MaxPageSize > 0 and New")
	}
	t.Run("Empty", func(t *testing.T) { testEmpty(t, h) })
	t.Run("Complete", func(t *testing.T) { testComplete(t, h) })
	t.Run("YieldError", func(t *testing.T) { testYieldError(t, h) })
	t.Run("CancelledBefore", func(t *testing.T) { testCancelledBefore(t, h) })
	t.Run("CancelledDuring", func(t *testing.T) { testCancelledDuring(t, h) })
	t.Run("ReceiverOwnsItems", func(t *testing.T) { testOwnership(t, h) })
	t.Run("Release", func(t *testing.T) { testRelease(t, h) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, h) })
}

// Items returns n items {"i": i, ...} with fields of every JSON type.
func Items(n int) []map[string]any {
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{
			"i":      i,
			"name":   fmt.Sprintf("item-%d <&> \"q\" é", i),
			"ok":     i%2 == 0,
			"score":  float64(i) + 0.5,
			"tags":   []any{"a", float64(i)},
			"nested": map[string]any{"deep": map[string]any{"i": i}},
			"none":   nil,
		}
	}
	return items
}

// collect fetches r and returns every page, checking each page as it comes.
func collect(t *testing.T, h Harness, ctx context.Context, s source.Source, r source.Resource) ([]source.Page, error) {
	t.Helper()
	var pages []source.Page
	start := time.Now()
	err := s.Fetch(ctx, r, func(p source.Page) error {
		checkPage(t, h, p, start)
		if n := len(pages); n > 0 && p.FetchedAt.Before(pages[n-1].FetchedAt) {
			t.Errorf("page %d FetchedAt %v before the previous page's %v", n, p.FetchedAt, pages[n-1].FetchedAt)
		}
		pages = append(pages, p)
		return nil
	})
	return pages, err
}

// checkPage checks the size, items and stamp of one page.
func checkPage(t *testing.T, h Harness, p source.Page, start time.Time) {
	t.Helper()
	if len(p.Items) == 0 {
		t.Error("empty page yielded")
	}
	if len(p.Items) > h.MaxPageSize {
		t.Errorf("page of %d items, more than MaxPageSize %d", len(p.Items), h.MaxPageSize)
	}
	for i, item := range p.Items {
		var obj map[string]any
		if err := json.Unmarshal(item, &obj); err != nil || obj == nil {
			t.Errorf("page item %d is not a JSON object: %q (%v)", i, item, err)
		}
	}
	if p.FetchedAt.IsZero() {
		t.Error("page FetchedAt is zero")
	} else if p.FetchedAt.After(time.Now()) {
		t.Errorf("page FetchedAt %v is in the future", p.FetchedAt)
	}
}

// positions decodes the "i" of every item of pages.
func positions(t *testing.T, pages []source.Page) []int {
	t.Helper()
	var got []int
	for _, p := range pages {
		for _, item := range p.Items {
			var v struct{ I *int }
			if err := json.Unmarshal(item, &v); err != nil || v.I == nil {
				t.Fatalf("item without an integer i: %q (%v)", item, err)
			}
			got = append(got, *v.I)
		}
	}
	return got
}

func testEmpty(t *testing.T, h Harness) {
	s, r := h.New(t, nil)
	pages, err := collect(t, h, t.Context(), s, r)
	if err != nil {
		t.Fatalf("Fetch of an empty resource: %v", err)
	}
	if len(pages) != 0 {
		t.Errorf("%d pages for an empty resource", len(pages))
	}
}

func testComplete(t *testing.T, h Harness) {
	n := 2*h.MaxPageSize + 3
	want := Items(n)
	s, r := h.New(t, want)
	pages, err := collect(t, h, t.Context(), s, r)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	got := positions(t, pages)
	if len(got) != n {
		t.Fatalf("got %d items, want %d", len(got), n)
	}
	for i, g := range got {
		if g != i {
			t.Fatalf("item %d has i=%d: items lost, repeated or reordered", i, g)
		}
	}
	// Full fidelity of one item.
	var first map[string]any
	if err := json.Unmarshal(pages[0].Items[0], &first); err != nil {
		t.Fatal(err)
	}
	wantFirst, _ := json.Marshal(want[0])
	var wf map[string]any
	_ = json.Unmarshal(wantFirst, &wf)
	if a, b := fmt.Sprint(first), fmt.Sprint(wf); a != b {
		t.Errorf("item 0:\n got %s\nwant %s", a, b)
	}
}

func testYieldError(t *testing.T, h Harness) {
	s, r := h.New(t, Items(2*h.MaxPageSize+1))
	stop := errors.New("receiver stops")
	calls := 0
	err := s.Fetch(t.Context(), r, func(source.Page) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Fetch returned %v, want yield's error", err)
	}
	if calls != 1 {
		t.Errorf("yield called %d times after returning an error, want 1", calls)
	}
}

func testCancelledBefore(t *testing.T, h Harness) {
	s, r := h.New(t, Items(3))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := 0
	err := s.Fetch(ctx, r, func(source.Page) error { calls++; return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch with a cancelled context returned %v, want context.Canceled", err)
	}
	if calls != 0 {
		t.Errorf("yield called %d times with a cancelled context", calls)
	}
}

func testCancelledDuring(t *testing.T, h Harness) {
	s, r := h.New(t, Items(3*h.MaxPageSize))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	err := s.Fetch(ctx, r, func(source.Page) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch cancelled during the run returned %v, want context.Canceled (a cancelled fetch is not whole)", err)
	}
	if calls != 1 {
		t.Errorf("yield called %d times, want 1: the fetch went on after cancellation", calls)
	}
}

// testRelease releases every other page as soon as it is read and keeps the
// others: a source may reuse a released page's memory for later pages, but never
// an unreleased one's, not even when both were cut from the same response.
func testRelease(t *testing.T, h Harness) {
	n := 6*h.MaxPageSize + 3
	s, r := h.New(t, Items(n))
	var kept []source.Page
	var keptCopies [][][]byte
	var got []int
	start := time.Now()
	index := -1
	err := s.Fetch(t.Context(), r, func(p source.Page) error {
		index++
		checkPage(t, h, p, start)
		got = append(got, positions(t, []source.Page{p})...)
		if index%2 == 0 && p.Release != nil {
			p.Release()
			return nil
		}
		copies := make([][]byte, len(p.Items))
		for i, item := range p.Items {
			copies[i] = append([]byte(nil), item...)
		}
		kept, keptCopies = append(kept, p), append(keptCopies, copies)
		return nil
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	for i, g := range got {
		if g != i {
			t.Fatalf("item %d has i=%d: items lost, repeated or reordered", i, g)
		}
	}
	for k, p := range kept {
		for i, item := range p.Items {
			if string(item) != string(keptCopies[k][i]) {
				t.Fatalf("kept page %d, item %d changed after other pages were released:\n got %q\nwant %q", k, i, item, keptCopies[k][i])
			}
		}
	}
}

func testOwnership(t *testing.T, h Harness) {
	n := 2*h.MaxPageSize + 1
	s, r := h.New(t, Items(n))
	var pages []source.Page
	err := s.Fetch(t.Context(), r, func(p source.Page) error {
		pages = append(pages, p)
		// The receiver scribbles over what it owns; later pages must not notice.
		if len(pages) == 1 {
			for _, item := range p.Items {
				for j := range item {
					item[j] = ' '
				}
			}
			p.Items = append(p.Items[:0], []byte(`{}`))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := positions(t, pages[1:])
	if len(got) == 0 || got[0] != len(pages[0].Items) {
		t.Fatalf("after the receiver changed page 0, page 1 starts with %v, want i=%d", got[:min(1, len(got))], len(pages[0].Items))
	}
	for k, g := range got {
		if g != len(pages[0].Items)+k {
			t.Fatalf("later pages changed by the receiver's writes to page 0: item %d has i=%d", k, g)
		}
	}
}

func testConcurrent(t *testing.T, h Harness) {
	n := h.MaxPageSize + 1
	s, r := h.New(t, Items(n))
	var wg sync.WaitGroup
	errs := make([]error, 4)
	counts := make([]int, 4)
	for g := range errs {
		wg.Go(func() {
			errs[g] = s.Fetch(t.Context(), r, func(p source.Page) error {
				counts[g] += len(p.Items)
				return nil
			})
		})
	}
	wg.Wait()
	for g := range errs {
		if errs[g] != nil || counts[g] != n {
			t.Errorf("concurrent fetch %d: %d items, %v", g, counts[g], errs[g])
		}
	}
}
