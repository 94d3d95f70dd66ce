package httpsource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/itchyny/gojq"

	"github.com/configsync/configsync/source"
)

// maxPlans bounds the compiled resources a source keeps.
const maxPlans = 64

// planFor returns the compiled plan of r, compiling it on first use: jq is
// compiled once per resource, not per page or item.
func (s *httpSource) planFor(r source.Resource) (*plan, error) {
	key, err := json.Marshal(r.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	k := r.Kind + "\x00" + string(key)
	s.plansMu.Lock()
	p, ok := s.plans[k]
	s.plansMu.Unlock()
	if ok {
		return p, nil
	}
	p, err = parsePlan(r.Kind, r.Selector, s.defaultPagination)
	if err != nil {
		return nil, err
	}
	s.plansMu.Lock()
	if len(s.plans) >= maxPlans {
		clear(s.plans)
	}
	s.plans[k] = p
	s.plansMu.Unlock()
	return p, nil
}

// Fetch streams the items of r (see SelectorFields): for each combination of
// its path parameters' values, every page of its request, each response's
// items yielded before the next request is sent, in pages of at most
// Options.PageSize items stamped with the time the request was sent.
//
// It returns nil only when every page of every combination was fetched. A
// request that finally fails, a pagination loop, maxPages reached with pages
// to come, a dataPath yielding null: each fails the fetch. Items that are not
// JSON objects are skipped and reported in a *source.ItemErrors returned at
// the end, so the good ones still sync and nothing is deleted.
func (s *httpSource) Fetch(ctx context.Context, r source.Resource, yield func(source.Page) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("http source: kind %q: %w", r.Kind, err)
	}
	p, err := s.planFor(r)
	if err != nil {
		return s.secrets.wrap(fmt.Errorf("http source: kind %q: %w", r.Kind, err))
	}
	f := &fetcher{s: s, plan: p, yield: yield, memo: make([]memo, len(p.params))}
	err = f.enumerate(ctx, 0, nil)
	if f.yieldErr != nil {
		return f.yieldErr
	}
	if err == nil {
		err = f.bad.Err()
	}
	if err != nil {
		return s.secrets.wrap(fmt.Errorf("http source: kind %q: %w", r.Kind, err))
	}
	return nil
}

// fetcher is the state of one Fetch.
type fetcher struct {
	s        *httpSource
	plan     *plan
	yield    func(source.Page) error
	yieldErr error
	bad      source.ItemErrors
	// memo keeps, per path parameter, the values of its last discovery, keyed
	// by the values of the parameters it depends on.
	memo []memo
}

// memo is one path parameter's last discovery.
type memo struct {
	key  string
	vals []any
	ok   bool
}

// enumerate calls fetchResource for every combination of the path parameters
// from index i on, given the values bound so far.
func (f *fetcher) enumerate(ctx context.Context, i int, bound map[string]any) error {
	if i == len(f.plan.params) {
		return f.fetchResource(ctx, bound)
	}
	pp := f.plan.params[i]
	vals, err := f.values(ctx, i, bound)
	if err != nil {
		return fmt.Errorf("path parameter %s: %w", pp.name, err)
	}
	for _, v := range vals {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := maps.Clone(bound)
		if b == nil {
			b = map[string]any{}
		}
		b[pp.name] = v
		if err := f.enumerate(ctx, i+1, b); err != nil {
			return err
		}
	}
	return nil
}

// values returns the values of path parameter i under the bound values of
// the parameters its discovery uses, discovering them unless the last
// discovery had the same inputs.
func (f *fetcher) values(ctx context.Context, i int, bound map[string]any) ([]any, error) {
	pp := f.plan.params[i]
	var key strings.Builder
	for _, dep := range pp.req.refs {
		text, _ := scalarText(bound[dep])
		key.WriteString(text)
		key.WriteByte(0)
	}
	if m := f.memo[i]; m.ok && m.key == key.String() {
		return m.vals, nil
	}
	vals, err := f.discover(ctx, pp, bound)
	if err != nil {
		return nil, err
	}
	f.memo[i] = memo{key: key.String(), vals: vals, ok: true}
	return vals, nil
}

// discover runs a path parameter's discovery request, through all its pages,
// and returns its distinct values in the order found.
func (f *fetcher) discover(ctx context.Context, pp *pathParam, bound map[string]any) ([]any, error) {
	s := f.s
	var vals []any
	seen := map[string]bool{}
	timeout := s.opts.JQTimeout
	each := func(_ *response, _ int, item any) error {
		if pp.filter != nil {
			keep, _, err := pp.filter.first(ctx, timeout, item, s.secrets.scrubFragments)
			if err != nil {
				return err
			}
			if keep != true {
				return nil
			}
		}
		return pp.field.run(ctx, timeout, item, s.secrets.scrubFragments, func(v any) error {
			text, ok := scalarText(v)
			if v == nil || !ok {
				return fmt.Errorf("%s: jq %q yielded %s, not a string or number", pp.field.where, pp.field.src, kindOf(v))
			}
			if seen[text] {
				return nil
			}
			if len(vals) >= s.opts.MaxDiscoveredValues {
				return fmt.Errorf("more than %d values discovered", s.opts.MaxDiscoveredValues)
			}
			seen[text] = true
			vals = append(vals, v)
			return nil
		})
	}
	if err := f.paginate(ctx, pp.req, bound, each, nil, nil); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	return vals, nil
}

// fetchResource fetches every page of the resource's request with the path
// parameters bound, yielding each response's items.
func (f *fetcher) fetchResource(ctx context.Context, bound map[string]any) error {
	s := f.s
	var items [][]byte
	var size int64
	budget := 2*s.opts.MaxResponseBytes + 1<<20
	var where string
	add := func(b []byte) error {
		size += int64(len(b))
		if size > budget {
			return fmt.Errorf("dataPath yielded more than %d bytes from one response: %w", budget, ErrResponseTooLarge)
		}
		items = append(items, b)
		return nil
	}
	// Without path parameters to add to them, the items of a simple dataPath
	// are the response's own bytes: no decoding, no re-encoding.
	var eachRaw func(*response, int, []byte) error
	if len(bound) == 0 {
		eachRaw = func(resp *response, index int, item []byte) error {
			if item[0] != '{' {
				if where == "" {
					where = s.redact(resp.url)
				}
				var v any
				_ = json.Unmarshal(item, &v)
				f.bad.Add(&source.ItemError{Path: where, Index: index, Err: fmt.Errorf("not a JSON object but %s", kindOf(v))})
				return nil
			}
			return add(item)
		}
	}
	each := func(resp *response, index int, item any) error {
		m, ok := item.(map[string]any)
		if !ok {
			if where == "" {
				where = s.redact(resp.url)
			}
			f.bad.Add(&source.ItemError{Path: where, Index: index, Err: fmt.Errorf("not a JSON object but %s", kindOf(item))})
			return nil
		}
		if len(bound) > 0 {
			m = maps.Clone(m)
			for k, v := range bound {
				m["__"+k] = v
			}
		}
		b, err := gojq.Marshal(m)
		if err != nil {
			return fmt.Errorf("encoding item %d: %w", index, err)
		}
		return add(b)
	}
	flush := func(resp *response) error {
		defer func() { items, size, where = nil, 0, "" }()
		// Items cut from a pooled buffer (see paginate) give it back once the
		// receiver has released every page of them.
		var release func()
		if resp.cut != nil {
			if len(items) == 0 {
				s.buffers.put(resp.cut)
			} else {
				release = s.buffers.shared(resp.cut, (len(items)+s.opts.PageSize-1)/s.opts.PageSize)
			}
			resp.cut = nil
		}
		for chunk := range slices.Chunk(items, s.opts.PageSize) {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := f.yield(source.Page{Items: chunk, FetchedAt: resp.sentAt, Release: release}); err != nil {
				f.yieldErr = err
				return err
			}
		}
		return nil
	}
	return f.paginate(ctx, f.plan.req, bound, each, eachRaw, flush)
}

// paginate sends spec's request, page after page, with the path parameters
// bound: each item its dataPath yields goes to each (with its index in the
// response), then the response to flush (if not nil), before the next page
// is asked for. When eachRaw is given and the dataPath is simple, the items
// go to it as slices of the body instead, unless the body needs jq's reading
// (see splitRaw); each item goes to exactly one of the two.
func (f *fetcher) paginate(ctx context.Context, spec *requestSpec, bound map[string]any,
	each func(*response, int, any) error, eachRaw func(*response, int, []byte) error, flush func(*response) error) error {
	s := f.s
	pg := newPager(s, spec.pagination)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		req, err := f.build(spec, bound)
		if err != nil {
			return err
		}
		if err := pg.prepare(req); err != nil {
			return fmt.Errorf("%s: %w", spec.where, err)
		}
		resp, err := s.do(ctx, req)
		if err != nil {
			return err
		}
		if err := pg.checkRepeat(resp.body); err != nil {
			return err
		}
		// The document, decoded once and only when asked for.
		docFn := sync.OnceValues(func() (any, error) { return s.decode(req, resp) })
		count := 0
		cutFromBody := false // the items point into resp.body
		if resp.status != http.StatusNoContent {
			var raw [][]byte
			rawErr := errNotSimple
			if eachRaw != nil && spec.dataPath.simple {
				// The receiver owns the items and may write into them: cut from a
				// copy when the pager still reads the body (cursor, nextLink,
				// hasMorePath), else from the body itself, which nothing reads after.
				body := resp.body
				if pg.readsBody() {
					body = s.buffers.get(len(resp.body))
					copy(body, resp.body)
				}
				raw, rawErr = splitRaw(body, spec.dataPath.fields)
				cutFromBody = rawErr == nil && !pg.readsBody()
				if rawErr == nil && flush != nil {
					resp.cut = body // flush hands it on with the pages
				} else if rawErr != nil && pg.readsBody() {
					s.buffers.put(body) // the copy holds no item
				}
			}
			if rawErr == nil {
				for _, item := range raw {
					count++
					if err = eachRaw(resp, count-1, item); err != nil {
						break
					}
				}
			} else {
				d, derr := docFn()
				if derr != nil {
					return derr
				}
				err = f.dataPath(ctx, spec, d, func(item any) error {
					count++
					return each(resp, count-1, item)
				})
			}
			if err != nil {
				if f.yieldErr != nil || ctx.Err() != nil && errors.Is(err, ctx.Err()) {
					return err
				}
				return fmt.Errorf("%s %s: %w", req.method, s.redact(resp.url), err)
			}
		}
		if flush != nil {
			if err := flush(resp); err != nil {
				return err
			}
		}
		more, err := pg.advance(ctx, resp, docFn, count)
		if err != nil {
			return fmt.Errorf("%s %s: %w", req.method, s.redact(resp.url), err)
		}
		if !cutFromBody {
			// Read for the last time (the document decoded is a copy).
			s.buffers.put(resp.body)
		}
		if !more {
			return nil
		}
	}
}

// build makes spec's request with the path parameters bound: {param} in the
// path is replaced by the value path-escaped, in query values by the value.
func (f *fetcher) build(spec *requestSpec, bound map[string]any) (*request, error) {
	s := f.s
	subst := func(text string, escape func(string) string) string {
		if len(bound) == 0 {
			return text
		}
		return placeholder.ReplaceAllStringFunc(text, func(ref string) string {
			v, ok := bound[ref[1:len(ref)-1]]
			if !ok {
				return ref
			}
			t, _ := scalarText(v)
			return escape(t)
		})
	}
	rel, rawQuery, hasQuery := strings.Cut(spec.path, "?")
	path := subst(rel, url.PathEscape)
	if hasQuery {
		path += "?" + subst(rawQuery, url.QueryEscape)
	}
	query := url.Values{}
	for k, vs := range spec.query {
		for _, v := range vs {
			query.Add(k, subst(v, func(t string) string { return t }))
		}
	}
	u, err := joinURL(s.base, path, query)
	if err != nil {
		return nil, fmt.Errorf("%s.path: %w", spec.where, err)
	}
	header := s.headers.Clone()
	for k, v := range spec.header {
		header[k] = v
	}
	body := spec.body
	if m, ok := body.(map[string]any); ok {
		body = maps.Clone(m)
	}
	return &request{method: spec.method, url: u, header: header, body: body, retryNonIdempotent: spec.retryNonIdempotent}, nil
}

// decode reads a response body as JSON, numbers kept as written (so that
// big integers survive). A 204 has no document.
func (s *httpSource) decode(req *request, resp *response) (any, error) {
	if resp.status == http.StatusNoContent {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.UseNumber()
	var doc any
	err := dec.Decode(&doc)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty body")
		}
		return nil, fmt.Errorf("%s %s: %d: the response is not JSON: %w: %s", req.method, s.redact(resp.url), resp.status,
			err, excerpt(resp.body, s.secrets.scrub))
	}
	return doc, nil
}

// dataPath runs spec's dataPath on doc and calls fn on each item: an array
// output yields its elements, anything else is one item. A null output is an
// error: a misspelt path yields null, and taking it for "no items" would
// delete the kind's entities.
func (f *fetcher) dataPath(ctx context.Context, spec *requestSpec, doc any, fn func(any) error) error {
	e := spec.dataPath
	return e.run(ctx, f.s.opts.JQTimeout, doc, f.s.secrets.scrubFragments, func(v any) error {
		switch x := v.(type) {
		case nil:
			return fmt.Errorf("%s: jq %q yielded null, not items (if null means none here, write %s // [])", e.where, e.src, e.src)
		case []any:
			for _, item := range x {
				if err := fn(item); err != nil {
					return err
				}
			}
			return nil
		}
		return fn(v)
	})
}
