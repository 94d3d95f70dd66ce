// Package source defines how configsync fetches an integration's resources: the
// Source interface every kind of source implements, the Type that describes a
// kind of source to the API, a Registry of types that validates parameters, and
// the "file" source, which reads JSON and YAML files from a directory.
//
// A sync run calls Fetch once per resource of the integration's config. Fetch
// streams pages of raw JSON objects; its nil return is the source's promise that
// every item of the kind was delivered, which is what allows the run to delete
// stale entities (DESIGN.md, invariant 1). Any error, including a cancelled
// context or one malformed item, withholds that promise.
package source

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Source fetches one integration's resources. Implementations are safe for
// concurrent use: a run may fetch several kinds at once.
type Source interface {
	// Fetch streams the items of one resource as pages. It returns nil only when every
	// item was delivered: the kind was fetched whole, which is what allows the sync to
	// delete stale entities. yield's error stops the fetch and is returned.
	//
	// Fetch calls yield from its own goroutine, one page at a time, never with an
	// empty page, and not after it returns. It stops soon after ctx is done and
	// then returns an error that wraps ctx.Err().
	Fetch(ctx context.Context, r Resource, yield func(Page) error) error
}

// Resource is what a Source needs to know of one resource of the config.
type Resource struct {
	// Kind is the resource's kind, as written in the config.
	Kind string
	// Selector holds the selector's fields other than query (for the file
	// source, path).
	Selector map[string]any
	// ConfigExtra holds the config's top-level keys that are not part of the
	// mapping model.
	ConfigExtra map[string]any
}

// Page is a batch of items fetched together.
type Page struct {
	// Items are raw JSON objects. The receiver owns them: the source keeps no
	// reference to the slice or its items once yield is called.
	Items [][]byte
	// FetchedAt is when the page was read from its origin: the time reading of
	// its first item began, so that a write stamped with it never claims to be
	// newer than the data it carries.
	FetchedAt time.Time
	// Release, when not nil, gives the items' memory back to the source for a
	// later page. The receiver calls it at most once, when neither it nor anything
	// it handed them to reads or writes the items any more; a receiver that never
	// calls it leaves them to the garbage collector.
	Release func()
}

// ItemError reports an item a source could not deliver (not valid JSON, not an
// object). Sources report them in an *ItemErrors.
type ItemError struct {
	// Path locates the item's origin within the source (for the file source,
	// the file's path relative to root); empty when the source has no such notion.
	Path string
	// Index is the 0-based position of the item within Path.
	Index int
	// Err says what is wrong with the item.
	Err error
}

// Error formats the error as "<path>: item <index>: <err>".
func (e *ItemError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("item %d: %v", e.Index, e.Err)
	}
	return fmt.Sprintf("%s: item %d: %v", e.Path, e.Index, e.Err)
}

// Unwrap returns the cause.
func (e *ItemError) Unwrap() error { return e.Err }

// MaxItemErrors is the most *ItemError values an ItemErrors keeps; it counts
// the rest.
const MaxItemErrors = 10

// ItemErrors is what Fetch returns when it skipped malformed items: it
// delivered every item it could read, so the good ones are still synced, and
// then returns this error, so that the kind is not taken as fetched whole and
// nothing is deleted. errors.As finds the first *ItemError in it.
type ItemErrors struct {
	// Errs are the first MaxItemErrors problems, in the order met.
	Errs []*ItemError
	// Total counts every malformed item, including those not in Errs.
	Total int
}

// Add records one malformed item.
func (e *ItemErrors) Add(ie *ItemError) {
	e.Total++
	if len(e.Errs) < MaxItemErrors {
		e.Errs = append(e.Errs, ie)
	}
}

// Err returns e, or nil if it holds no error.
func (e *ItemErrors) Err() error {
	if e == nil || e.Total == 0 {
		return nil
	}
	return e
}

// Error formats the errors on one line:
// "2 malformed items skipped: a.json: item 1: ...; a.json: item 4: ...".
func (e *ItemErrors) Error() string {
	var b strings.Builder
	if e.Total == 1 {
		b.WriteString("1 malformed item skipped: ")
	} else {
		fmt.Fprintf(&b, "%d malformed items skipped: ", e.Total)
	}
	for i, ie := range e.Errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(ie.Error())
	}
	if more := e.Total - len(e.Errs); more > 0 {
		fmt.Fprintf(&b, "; and %d more", more)
	}
	return b.String()
}

// Unwrap returns the recorded errors, for errors.Is and errors.As.
func (e *ItemErrors) Unwrap() []error {
	errs := make([]error, len(e.Errs))
	for i, ie := range e.Errs {
		errs[i] = ie
	}
	return errs
}
