package httpsource

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// SelectorFields returns the selector fields the http source reads, next to
// the mapping's query:
//
//	path                the request path under baseUrl (default: the kind); may hold
//	                    {param} placeholders, each defined in pathParameters, and a ?query
//	method              GET (default), POST, PUT or PATCH
//	queryParams         query parameters: scalars or arrays of scalars; values may hold
//	                    {param}. (Not "query": that name is the mapping's jq filter.)
//	headers             request headers, strings
//	body                the JSON body
//	dataPath            jq yielding the items of one response (default "."): an array
//	                    yields its elements, an object is one item; null is an error
//	pagination          {type: none|offset|page|cursor|nextLink|linkHeader, ...}
//	                    (default: the integration's pagination parameter, else none)
//	pathParameters      {param: {path, method, queryParams, headers, body, dataPath,
//	                    pagination, field, filter}}: a discovery request per
//	                    parameter; field is jq yielding the values from each
//	                    discovered item, filter jq keeping the items it yields true
//	                    for; a discovery path may use other parameters (chained)
//	retryNonIdempotent  retry POST and PATCH too (default false)
func SelectorFields() []string { return slices.Clone(selectorFields) }

// selectorFields backs SelectorFields.
var selectorFields = []string{"path", "method", "queryParams", "headers", "body", "dataPath", "pagination", "pathParameters", "retryNonIdempotent"}

// discoveryFields are the fields of one path parameter.
var discoveryFields = []string{"path", "method", "queryParams", "headers", "body", "dataPath", "pagination", "retryNonIdempotent", "field", "filter"}

// IgnoredSelectorFields returns, sorted, the fields of a resource's selector
// (its extra fields, without query) that the http source does not read. They
// are ignored, so that configs written for other integrations (github's
// includedFiles) still run; `configsync validate` warns about them, since a
// misspelt field is ignored too.
func IgnoredSelectorFields(selector map[string]any) []string {
	var out []string
	for k := range selector {
		if k != "query" && !slices.Contains(selectorFields, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// CheckSelector parses a resource's selector as Fetch will, compiling its jq,
// and returns the ignored fields (see IgnoredSelectorFields). defaultPagination
// is the integration's pagination parameter (nil for none). It lets
// `configsync validate` refuse a bad selector before any run.
func CheckSelector(kind string, selector, defaultPagination map[string]any) (ignored []string, err error) {
	if _, err := parsePlan(kind, selector, defaultPagination); err != nil {
		return IgnoredSelectorFields(selector), err
	}
	return IgnoredSelectorFields(selector), nil
}

// allowedMethods are the methods a resource may use: reading ones, and those
// APIs use for searches with a body.
var allowedMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch}

// placeholder matches a {param} in a path or query value.
var placeholder = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_\-]*)\}`)

// requestSpec is a parsed request of a resource or of a discovery.
type requestSpec struct {
	where              string
	path               string // may hold {param}
	method             string
	query              url.Values // values may hold {param}
	header             http.Header
	body               any
	dataPath           *jqExpr
	pagination         *pagination
	retryNonIdempotent bool
	// refs are the parameters the path and query use, in order of appearance.
	refs []string
}

// parseRequest reads the request fields of m.
func parseRequest(m map[string]any, where, defaultPath string, defaultPagination map[string]any) (*requestSpec, error) {
	r := &requestSpec{where: where, method: http.MethodGet}
	var err error
	if r.path, err = optString(m, "path", where); err != nil {
		return nil, err
	}
	if r.path == "" {
		if defaultPath == "" {
			return nil, fmt.Errorf("%s.path is required", where)
		}
		r.path = defaultPath
	}
	if strings.Contains(r.path, "://") || strings.HasPrefix(r.path, "//") {
		return nil, fmt.Errorf("%s.path must be a path under baseUrl, not a URL", where)
	}
	mth, err := optString(m, "method", where)
	if err != nil {
		return nil, err
	}
	if mth != "" {
		r.method = strings.ToUpper(mth)
		if !slices.Contains(allowedMethods, r.method) {
			return nil, fmt.Errorf("%s.method must be one of %s", where, strings.Join(allowedMethods, ", "))
		}
	}
	r.query = url.Values{}
	if v := m["queryParams"]; v != nil {
		qm, ok := asObject(v)
		if !ok {
			return nil, fmt.Errorf("%s.queryParams must be an object, got %s", where, kindOf(v))
		}
		for _, k := range slices.Sorted(maps.Keys(qm)) {
			vals := []any{qm[k]}
			if l, ok := asList(qm[k]); ok {
				vals = l
			}
			for _, x := range vals {
				text, ok := scalarText(x)
				if !ok {
					return nil, fmt.Errorf("%s.queryParams.%s must be a string, number, boolean or an array of them", where, k)
				}
				r.query.Add(k, text)
			}
		}
	}
	hdrs, err := stringMap(m["headers"], where+".headers")
	if err != nil {
		return nil, err
	}
	if r.header, err = checkHeaders(hdrs, where+".headers"); err != nil {
		return nil, err
	}
	if r.body, err = toJSONValue(m["body"], where+".body"); err != nil {
		return nil, err
	}
	if r.body != nil && r.method == http.MethodGet {
		return nil, fmt.Errorf("%s.body needs a method that sends one (POST, PUT or PATCH)", where)
	}
	if bm, ok := asObject(r.body); ok {
		r.body = bm
	}
	dp := "."
	if _, ok := m["dataPath"]; ok && m["dataPath"] != nil {
		e, err := optJQ(m, "dataPath", where+".dataPath")
		if err != nil {
			return nil, err
		}
		r.dataPath = e
	} else if r.dataPath, err = compileJQ(where+".dataPath", dp); err != nil {
		return nil, err
	}
	pm := defaultPagination
	pwhere := "parameter " + paramPagination
	if v, ok := m["pagination"]; ok && v != nil {
		if pm, ok = asObject(v); !ok {
			return nil, fmt.Errorf("%s.pagination must be an object, got %s", where, kindOf(v))
		}
		pwhere = where + ".pagination"
	}
	if pm != nil {
		if r.pagination, err = parsePagination(pm, pwhere); err != nil {
			return nil, err
		}
	}
	if r.pagination != nil && r.pagination.inBody {
		if r.method == http.MethodGet {
			return nil, fmt.Errorf("%s: pagination in body needs a method that sends one (POST, PUT or PATCH)", where)
		}
		if _, ok := r.body.(map[string]any); r.body != nil && !ok {
			return nil, fmt.Errorf("%s: pagination in body needs body to be an object", where)
		}
	}
	if r.retryNonIdempotent, err = optBool(m, "retryNonIdempotent", where, false); err != nil {
		return nil, err
	}
	addRefs := func(s string) {
		for _, sm := range placeholder.FindAllStringSubmatch(s, -1) {
			if !slices.Contains(r.refs, sm[1]) {
				r.refs = append(r.refs, sm[1])
			}
		}
	}
	addRefs(r.path)
	for _, k := range slices.Sorted(maps.Keys(r.query)) {
		for _, v := range r.query[k] {
			addRefs(v)
		}
	}
	return r, nil
}

// pathParam is a parsed path parameter: its discovery request, the jq
// yielding its values from each discovered item, and the optional filter.
type pathParam struct {
	name   string
	req    *requestSpec
	field  *jqExpr
	filter *jqExpr
}

// plan is a parsed resource: its request and its path parameters, ordered so
// that each comes after those its discovery uses.
type plan struct {
	kind   string
	req    *requestSpec
	params []*pathParam
}

// parsePlan reads and compiles a resource's selector.
func parsePlan(kind string, selector, defaultPagination map[string]any) (*plan, error) {
	if kind == "" && selector["path"] == nil {
		return nil, errors.New("the resource has no kind and its selector no path")
	}
	main, err := parseRequest(selector, "selector", "/"+url.PathEscape(kind), defaultPagination)
	if err != nil {
		return nil, err
	}
	p := &plan{kind: kind, req: main}
	defs := map[string]*pathParam{}
	if v := selector["pathParameters"]; v != nil {
		pm, ok := asObject(v)
		if !ok {
			return nil, fmt.Errorf("selector.pathParameters must be an object, got %s", kindOf(v))
		}
		for _, name := range slices.Sorted(maps.Keys(pm)) {
			where := "selector.pathParameters." + name
			if !placeholder.MatchString("{" + name + "}") {
				return nil, fmt.Errorf("%s: a parameter name is letters, digits, _ and -", where)
			}
			dm, ok := asObject(pm[name])
			if !ok {
				return nil, fmt.Errorf("%s must be an object, got %s", where, kindOf(pm[name]))
			}
			if err := onlyKeys(dm, where, discoveryFields...); err != nil {
				return nil, err
			}
			req, err := parseRequest(dm, where, "", defaultPagination)
			if err != nil {
				return nil, err
			}
			pp := &pathParam{name: name, req: req}
			if pp.field, err = optJQ(dm, "field", where+".field"); err != nil {
				return nil, err
			}
			if pp.field == nil {
				return nil, fmt.Errorf("%s.field is required (jq yielding the parameter's values from each discovered item)", where)
			}
			if pp.filter, err = optJQ(dm, "filter", where+".filter"); err != nil {
				return nil, err
			}
			defs[name] = pp
		}
	}
	// Order the parameters the request uses after those their discovery uses.
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name, from string) error
	visit = func(name, from string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("selector.pathParameters.%s: its discovery depends on itself (through %s)", name, from)
		case 2:
			return nil
		}
		pp, ok := defs[name]
		if !ok {
			return fmt.Errorf("%s uses {%s}, which selector.pathParameters does not define", from, name)
		}
		state[name] = 1
		for _, dep := range pp.req.refs {
			if err := visit(dep, "selector.pathParameters."+name+".path"); err != nil {
				return err
			}
		}
		state[name] = 2
		p.params = append(p.params, pp)
		return nil
	}
	for _, name := range main.refs {
		if err := visit(name, "selector.path"); err != nil {
			return nil, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(defs)) {
		if state[name] == 0 {
			return nil, fmt.Errorf("selector.pathParameters.%s is not used by the path, its query or another parameter's discovery", name)
		}
	}
	return p, nil
}

// joinURL joins a path (with an optional ?query, already substituted) under
// base's path, and merges the queries: base's, the path's, then extra.
func joinURL(base *url.URL, path string, extra url.Values) (*url.URL, error) {
	rel, rawQuery, _ := strings.Cut(path, "?")
	if rel == "" {
		rel = base.EscapedPath() // the base itself, as written
	} else {
		rel = strings.TrimSuffix(base.EscapedPath(), "/") + "/" + strings.TrimPrefix(rel, "/")
	}
	for seg := range strings.SplitSeq(rel, "/") {
		if seg == ".." || strings.EqualFold(seg, "%2e%2e") {
			return nil, errors.New("a path may not climb out of baseUrl's path with \"..\"")
		}
	}
	if !strings.HasPrefix(rel, "/") {
		rel = "/" + rel
	}
	ref, err := url.Parse(rel)
	if err != nil || ref.Scheme != "" || ref.Host != "" {
		return nil, fmt.Errorf("%q is not a valid path", rel)
	}
	u := *base
	u.Path, u.RawPath = ref.Path, ref.RawPath
	u.Fragment, u.RawFragment = "", ""
	q := base.Query()
	pq, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("the path's query: %w", err)
	}
	for k, v := range pq {
		q[k] = v
	}
	for k, v := range extra {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return &u, nil
}
