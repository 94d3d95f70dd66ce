package httpsource

import (
	"context"
	"fmt"
	"hash/maphash"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// pagination is a parsed pagination object:
//
//	type:            none | offset | page | cursor | nextLink | linkHeader
//	pageSize:        items asked per page, sent as sizeParam (offset: default 100);
//	                 when known, a shorter page is the last one
//	sizeParam:       name of the page size parameter (default limit; page: per_page)
//	offsetParam:     offset: name of the offset parameter (default offset)
//	startOffset:     offset: the first offset (default 0)
//	pageParam:       page: name of the page number parameter (default page)
//	startPage:       page: the first page number (default 1)
//	cursorParam:     cursor: name of the cursor parameter (default cursor)
//	cursorPath:      cursor: jq yielding the next cursor from a response (required)
//	nextLinkPath:    nextLink: jq yielding the next page's URL (required)
//	hasMorePath:     jq yielding a boolean; false ends the pagination
//	in:              query | body: where offset, page, cursor and size go (body: top-level
//	                 fields of the JSON body, for POST searches)
//	maxPages:        the guard (default 10,000); more pages fail the fetch
//	stopOnEmptyPage: an empty page (after dataPath) ends the pagination (default true)
type pagination struct {
	typ             string
	pageSize        int64
	sizeParam       string
	offsetParam     string
	startOffset     int64
	pageParam       string
	startPage       int64
	cursorParam     string
	cursorPath      *jqExpr
	nextLinkPath    *jqExpr
	hasMorePath     *jqExpr
	inBody          bool
	maxPages        int64
	stopOnEmptyPage bool
}

// paginationFields are the fields a pagination object may have.
var paginationFields = []string{"type", "pageSize", "sizeParam", "offsetParam", "startOffset", "pageParam", "startPage",
	"cursorParam", "cursorPath", "nextLinkPath", "hasMorePath", "in", "maxPages", "stopOnEmptyPage"}

// parsePagination reads a pagination object; nil for type none.
func parsePagination(m map[string]any, what string) (*pagination, error) {
	if err := onlyKeys(m, what, paginationFields...); err != nil {
		return nil, err
	}
	typ, err := optString(m, "type", what)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(paginationTypes, typ) {
		return nil, fmt.Errorf("%s.type must be one of %s", what, strings.Join(paginationTypes, ", "))
	}
	if typ == "none" {
		if len(m) > 1 {
			return nil, fmt.Errorf("%s: type none takes no other field", what)
		}
		return nil, nil
	}
	p := &pagination{typ: typ}
	str := func(key, def string) (string, error) {
		v, err := optString(m, key, what)
		if err != nil || v != "" {
			return v, err
		}
		return def, nil
	}
	const maxInt = 1 << 53
	if p.pageSize, err = optInt(m, "pageSize", what, 0, 1, maxInt); err != nil {
		return nil, err
	}
	sizeDefault := "limit"
	if typ == "page" {
		sizeDefault = "per_page"
	}
	if p.sizeParam, err = str("sizeParam", sizeDefault); err != nil {
		return nil, err
	}
	if p.offsetParam, err = str("offsetParam", "offset"); err != nil {
		return nil, err
	}
	if p.startOffset, err = optInt(m, "startOffset", what, 0, 0, maxInt); err != nil {
		return nil, err
	}
	if p.pageParam, err = str("pageParam", "page"); err != nil {
		return nil, err
	}
	if p.startPage, err = optInt(m, "startPage", what, 1, 0, maxInt); err != nil {
		return nil, err
	}
	if p.cursorParam, err = str("cursorParam", "cursor"); err != nil {
		return nil, err
	}
	if p.cursorPath, err = optJQ(m, "cursorPath", what+".cursorPath"); err != nil {
		return nil, err
	}
	if p.nextLinkPath, err = optJQ(m, "nextLinkPath", what+".nextLinkPath"); err != nil {
		return nil, err
	}
	if p.hasMorePath, err = optJQ(m, "hasMorePath", what+".hasMorePath"); err != nil {
		return nil, err
	}
	in, err := str("in", "query")
	if err != nil {
		return nil, err
	}
	if in != "query" && in != "body" {
		return nil, fmt.Errorf("%s.in must be query or body", what)
	}
	p.inBody = in == "body"
	if p.maxPages, err = optInt(m, "maxPages", what, DefaultMaxPages, 1, maxInt); err != nil {
		return nil, err
	}
	if p.stopOnEmptyPage, err = optBool(m, "stopOnEmptyPage", what, true); err != nil {
		return nil, err
	}
	switch typ {
	case "offset":
		if p.pageSize == 0 {
			p.pageSize = 100
		}
	case "cursor":
		if p.cursorPath == nil {
			return nil, fmt.Errorf("%s: type cursor needs cursorPath (jq yielding the next cursor)", what)
		}
	case "nextLink":
		if p.nextLinkPath == nil {
			return nil, fmt.Errorf("%s: type nextLink needs nextLinkPath (jq yielding the next page's URL)", what)
		}
	}
	if p.inBody && (typ == "nextLink" || typ == "linkHeader") {
		return nil, fmt.Errorf("%s: in body applies to offset, page and cursor", what)
	}
	return p, nil
}

// pager walks one pagination: it sets each page's parameters on the request
// and, from each response, decides whether there is a next page. It keeps a
// 64-bit hash per cursor or link seen (bounded by maxPages) and of the last
// body, to refuse loops.
type pager struct {
	p      *pagination
	s      *httpSource
	scrub  func(string) string
	pages  int64
	offset int64
	page   int64
	cursor string
	// next is the URL of the next page (nextLink, linkHeader); nil before the
	// second page.
	next     *url.URL
	seen     map[uint64]struct{}
	lastBody uint64
	// seed keys the body hashes: maphash reads a page's body at memory speed,
	// where FNV took a byte per step (5% of a sync's CPU).
	seed maphash.Seed
}

// newPager starts a pagination (p nil: a single request).
func newPager(s *httpSource, p *pagination) *pager {
	pg := &pager{p: p, s: s, scrub: s.secrets.scrubFragments, seed: maphash.MakeSeed()}
	if p != nil {
		pg.offset, pg.page = p.startOffset, p.startPage
		pg.seen = map[uint64]struct{}{}
	}
	return pg
}

// prepare sets the current page's parameters on r, whose url, header and body
// are the resource's, fresh for this page.
func (pg *pager) prepare(r *request) error {
	p := pg.p
	if p == nil {
		return nil
	}
	params := map[string]any{}
	switch p.typ {
	case "offset":
		params[p.offsetParam] = pg.offset
	case "page":
		params[p.pageParam] = pg.page
	case "cursor":
		if pg.pages > 0 {
			params[p.cursorParam] = pg.cursor
		}
	case "nextLink", "linkHeader":
		if pg.next != nil {
			// The link carries the query; the resource's own query was on page one.
			r.url = pg.next
			return nil
		}
	}
	if p.pageSize > 0 {
		params[p.sizeParam] = p.pageSize
	}
	if p.inBody {
		body, ok := r.body.(map[string]any)
		if r.body != nil && !ok {
			return fmt.Errorf("pagination in body needs a JSON object body")
		}
		body = maps.Clone(body)
		if body == nil {
			body = map[string]any{}
		}
		maps.Copy(body, params)
		r.body = body
		return nil
	}
	u := *r.url
	q := u.Query()
	for k, v := range params {
		text, _ := scalarText(v)
		q.Set(k, text)
	}
	u.RawQuery = q.Encode()
	r.url = &u
	return nil
}

// checkRepeat refuses a body identical to the previous page's: a server that
// ignores the page parameter would otherwise be paged until maxPages.
func (pg *pager) checkRepeat(body []byte) error {
	if pg.p == nil {
		return nil
	}
	sum := maphash.Bytes(pg.seed, body)
	if pg.pages > 0 && sum == pg.lastBody {
		return fmt.Errorf("page %d is the same as page %d (does the server honour the pagination parameters?): %w", pg.pages+1, pg.pages, ErrPaginationLoop)
	}
	pg.lastBody = sum
	return nil
}

// readsBody says whether advance reads the response's document.
func (pg *pager) readsBody() bool {
	p := pg.p
	return p != nil && (p.hasMorePath != nil || p.typ == "cursor" || p.typ == "nextLink")
}

// advance decides, from a response, its decoded document and the number of
// items dataPath found in it, whether another page follows, and prepares it.
// A page limit reached with more pages to come is ErrMaxPages. The document
// is asked of docFn only by the styles that read it (hasMorePath, cursor,
// nextLink), since the items may have been cut from the bytes without it.
func (pg *pager) advance(ctx context.Context, resp *response, docFn func() (any, error), count int) (bool, error) {
	p := pg.p
	if p == nil {
		return false, nil
	}
	var doc any
	if pg.readsBody() {
		d, err := docFn()
		if err != nil {
			return false, err
		}
		doc = d
	}
	pg.pages++
	timeout := pg.s.opts.JQTimeout
	if count == 0 && p.stopOnEmptyPage {
		return false, nil
	}
	if p.hasMorePath != nil {
		v, _, err := p.hasMorePath.first(ctx, timeout, doc, pg.scrub)
		if err != nil {
			return false, err
		}
		more, ok := v.(bool)
		if !ok {
			// A misspelt path yields null: stopping would pass off part of the
			// data as whole, so it is an error.
			return false, fmt.Errorf("%s: jq %q yielded %s, not a boolean", p.hasMorePath.where, p.hasMorePath.src, kindOf(v))
		}
		if !more {
			return false, nil
		}
	} else if p.pageSize > 0 && int64(count) < p.pageSize && p.typ != "nextLink" && p.typ != "linkHeader" {
		return false, nil
	}
	switch p.typ {
	case "offset":
		pg.offset += int64(count)
	case "page":
		pg.page++
	case "cursor":
		v, _, err := p.cursorPath.first(ctx, timeout, doc, pg.scrub)
		if err != nil {
			return false, err
		}
		if v == nil || v == "" {
			return false, nil
		}
		c, ok := scalarText(v)
		if !ok {
			return false, fmt.Errorf("%s: jq %q yielded %s, not a cursor", p.cursorPath.where, p.cursorPath.src, kindOf(v))
		}
		if err := pg.see("cursor", c); err != nil {
			return false, err
		}
		pg.cursor = c
	case "nextLink":
		v, _, err := p.nextLinkPath.first(ctx, timeout, doc, pg.scrub)
		if err != nil {
			return false, err
		}
		if v == nil || v == "" {
			return false, nil
		}
		link, ok := v.(string)
		if !ok {
			return false, fmt.Errorf("%s: jq %q yielded %s, not a URL", p.nextLinkPath.where, p.nextLinkPath.src, kindOf(v))
		}
		if err := pg.follow(resp.url, link); err != nil {
			return false, err
		}
	case "linkHeader":
		link := nextFromLinkHeader(resp.header)
		if link == "" {
			return false, nil
		}
		if err := pg.follow(resp.url, link); err != nil {
			return false, err
		}
	}
	if pg.pages >= p.maxPages {
		return false, fmt.Errorf("stopped after %d pages with more to come: %w", p.maxPages, ErrMaxPages)
	}
	return true, nil
}

// see records a cursor or link, refusing one seen before.
func (pg *pager) see(what, v string) error {
	sum := maphash.String(pg.seed, v)
	if _, dup := pg.seen[sum]; dup {
		return fmt.Errorf("after page %d the server sent a %s it had sent before: %w", pg.pages, what, ErrPaginationLoop)
	}
	pg.seen[sum] = struct{}{}
	return nil
}

// follow sets the next page's URL to link, resolved against the current
// page's URL. A link to an origin other than baseUrl's is refused: the
// credentials were given for that one.
func (pg *pager) follow(cur *url.URL, link string) error {
	ref, err := url.Parse(link)
	if err != nil {
		return fmt.Errorf("the next page link is not a URL: %w", bareURLError(err))
	}
	if pg.next == nil {
		// The first page's URL counts as seen: a link back to it is a loop.
		first := *cur
		first.User, first.Fragment, first.RawFragment = nil, "", ""
		_ = pg.see("next link", first.String())
	}
	next := cur.ResolveReference(ref)
	if base := pg.s.base; next.Scheme != base.Scheme || next.Host != base.Host {
		return fmt.Errorf("the next page link leads to another origin (%s://%s); only baseUrl's, %s://%s, is followed",
			next.Scheme, next.Host, base.Scheme, base.Host)
	}
	next.User, next.Fragment, next.RawFragment = nil, "", ""
	if err := pg.see("next link", next.String()); err != nil {
		return err
	}
	pg.next = next
	return nil
}

// nextFromLinkHeader returns the target of rel="next" in the Link headers
// (RFC 8288), or "".
func nextFromLinkHeader(h http.Header) string {
	for _, line := range h.Values("Link") {
		for _, link := range splitLinks(line) {
			link = strings.TrimSpace(link)
			if !strings.HasPrefix(link, "<") {
				continue
			}
			end := strings.IndexByte(link, '>')
			if end < 0 {
				continue
			}
			target := link[1:end]
			for _, param := range strings.Split(link[end+1:], ";") {
				name, val, ok := strings.Cut(strings.TrimSpace(param), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(name), "rel") {
					continue
				}
				val = strings.Trim(strings.TrimSpace(val), `"`)
				for _, rel := range strings.Fields(val) {
					if strings.EqualFold(rel, "next") {
						return target
					}
				}
			}
		}
	}
	return ""
}

// splitLinks splits a Link header at the commas between links, not those
// inside <...> or quotes.
func splitLinks(s string) []string {
	var out []string
	inURL, inQuote, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '<' && !inQuote:
			inURL = true
		case c == '>' && !inQuote:
			inURL = false
		case c == '"' && !inURL:
			inQuote = !inQuote
		case c == ',' && !inURL && !inQuote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
