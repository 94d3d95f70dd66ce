package httpsource

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/configsync/configsync/source"
)

// authenticator adds credentials to requests.
type authenticator interface {
	// apply adds credentials to r (header, query or body) and returns the
	// generation of the credentials used, for invalidate.
	apply(ctx context.Context, r *request) (gen uint64, err error)
	// refreshable reports whether fresh credentials may cure a 401.
	refreshable() bool
	// invalidate drops the credentials of generation gen, if they are still
	// the current ones, so that the next apply gets new ones.
	invalidate(gen uint64)
}

// authError is a failure to get credentials (a token request that failed).
// do does not retry the request it was for: the token request made its own
// retries.
type authError struct{ err error }

// Error returns the cause's message.
func (e *authError) Error() string { return "authenticating: " + e.err.Error() }

// Unwrap returns the cause.
func (e *authError) Unwrap() error { return e.err }

// staticAuth sends fixed credentials: none, bearer, basic, apiKey.
type staticAuth struct {
	header http.Header
	query  url.Values
}

// apply sets the fixed headers and query parameters.
func (a *staticAuth) apply(_ context.Context, r *request) (uint64, error) {
	for k, v := range a.header {
		r.header[k] = v
	}
	if len(a.query) > 0 {
		q := r.url.Query()
		for k, v := range a.query {
			q[k] = v
		}
		r.url.RawQuery = q.Encode()
	}
	return 0, nil
}

// refreshable is false: fixed credentials do not change.
func (a *staticAuth) refreshable() bool { return false }

// invalidate does nothing.
func (a *staticAuth) invalidate(uint64) {}

// configureAuth reads authType and its parameters and credentials.
func (s *httpSource) configureAuth(params map[string]any, creds map[string]string) error {
	authType := AuthNone
	if v := params[paramAuthType]; v != nil {
		t, ok := v.(string)
		if !ok || !slices.Contains(authTypes, t) {
			return fmt.Errorf("parameter %s must be one of %s", paramAuthType, strings.Join(authTypes, ", "))
		}
		authType = t
	}
	need := func(names ...string) error {
		var missing []string
		for _, n := range names {
			if creds[n] == "" {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("authType %s needs the credentials %s", authType, strings.Join(missing, ", "))
		}
		return nil
	}
	static := &staticAuth{header: http.Header{}, query: url.Values{}}
	switch authType {
	case AuthNone:
		s.auth = static
	case AuthBearer:
		if err := need(credToken); err != nil {
			return err
		}
		if strings.ContainsAny(creds[credToken], "\r\n\x00") {
			return errors.New("credential token holds a line break or NUL")
		}
		static.header.Set("Authorization", "Bearer "+creds[credToken])
		s.auth = static
	case AuthBasic:
		if err := need(credUsername, credPassword); err != nil {
			return err
		}
		static.header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(creds[credUsername]+":"+creds[credPassword])))
		s.auth = static
	case AuthAPIKey:
		if err := need(credAPIKey); err != nil {
			return err
		}
		hdr, _ := params[paramAPIKeyHeader].(string)
		q, _ := params[paramAPIKeyQuery].(string)
		switch {
		case (hdr == "") == (q == ""):
			return fmt.Errorf("authType apiKey needs exactly one of the parameters %s and %s", paramAPIKeyHeader, paramAPIKeyQuery)
		case hdr != "":
			if !validHeaderName(hdr) || slices.Contains(reservedHeaders, http.CanonicalHeaderKey(hdr)) {
				return fmt.Errorf("parameter %s is not a header name this source may set", paramAPIKeyHeader)
			}
			if strings.ContainsAny(creds[credAPIKey], "\r\n\x00") {
				return errors.New("credential apiKey holds a line break or NUL")
			}
			static.header.Set(hdr, creds[credAPIKey])
			s.credHeaders = append(s.credHeaders, http.CanonicalHeaderKey(hdr))
		default:
			static.query.Set(q, creds[credAPIKey])
			s.credQuery = append(s.credQuery, q)
		}
		s.auth = static
	case AuthOAuth2ClientCredentials:
		if err := need(credClientID, credClientSecret); err != nil {
			return err
		}
		a, err := s.newOAuth2(params, creds)
		if err != nil {
			return err
		}
		s.auth = a
	case AuthCustom:
		a, err := s.newCustomAuth(params, creds)
		if err != nil {
			return err
		}
		s.auth = a
	}
	return nil
}

// token is credentials obtained by a token request.
type token struct {
	gen    uint64
	header http.Header
	query  url.Values
	body   map[string]any
	// refreshAt is when to get a new one (zero: keep it until a 401).
	refreshAt time.Time
}

// tokenAuth caches a token, gets a new one before it expires and after a
// 401, and lets one goroutine at a time fetch: the others wait for its token.
type tokenAuth struct {
	s *httpSource
	// fetch gets a new token and says how long it lives (0: unknown).
	fetch func(ctx context.Context) (*token, time.Duration, error)
	// fetching is a one-slot lock held while a token is fetched; a channel so
	// that waiting respects the context.
	fetching chan struct{}

	mu  sync.Mutex
	cur *token
	gen uint64
}

// newTokenAuth returns a tokenAuth around fetch.
func newTokenAuth(s *httpSource, fetch func(context.Context) (*token, time.Duration, error)) *tokenAuth {
	return &tokenAuth{s: s, fetch: fetch, fetching: make(chan struct{}, 1)}
}

// valid returns the current token if it need not be refreshed yet.
func (a *tokenAuth) valid() *token {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur != nil && (a.cur.refreshAt.IsZero() || a.s.opts.Clock.Now().Before(a.cur.refreshAt)) {
		return a.cur
	}
	return nil
}

// get returns a valid token, fetching one if needed: one fetch at a time.
func (a *tokenAuth) get(ctx context.Context) (*token, error) {
	if t := a.valid(); t != nil {
		return t, nil
	}
	select {
	case a.fetching <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-a.fetching }()
	if t := a.valid(); t != nil {
		return t, nil // fetched while this one waited
	}
	obtained := a.s.opts.Clock.Now()
	t, life, err := a.fetch(ctx)
	if err != nil {
		return nil, err
	}
	if life > 0 {
		// Refresh ahead of expiry: by a quarter of the lifetime, at most a minute,
		// so that a request sent with the token does not arrive after it.
		t.refreshAt = obtained.Add(life - min(life/4, time.Minute))
	}
	a.mu.Lock()
	a.gen++
	t.gen = a.gen
	a.cur = t
	a.mu.Unlock()
	return t, nil
}

// apply adds the token's header, query and body fields.
func (a *tokenAuth) apply(ctx context.Context, r *request) (uint64, error) {
	t, err := a.get(ctx)
	if err != nil {
		return 0, err
	}
	for k, v := range t.header {
		r.header[k] = v
	}
	if len(t.query) > 0 {
		q := r.url.Query()
		for k, v := range t.query {
			q[k] = v
		}
		r.url.RawQuery = q.Encode()
	}
	if len(t.body) > 0 && (r.method == http.MethodPost || r.method == http.MethodPut || r.method == http.MethodPatch) {
		switch b := r.body.(type) {
		case nil:
			r.body = maps.Clone(t.body)
		case map[string]any:
			maps.Copy(b, t.body) // do gave a fresh copy
		}
	}
	return t.gen, nil
}

// refreshable is true: a new token may cure a 401.
func (a *tokenAuth) refreshable() bool { return true }

// invalidate drops the token of generation gen, unless a newer one replaced it.
func (a *tokenAuth) invalidate(gen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur != nil && a.cur.gen == gen {
		a.cur = nil
	}
}

// resolveRef resolves a token URL against baseUrl: absolute URLs stay, others
// are joined under baseUrl's path like resource paths.
func (s *httpSource) resolveRef(raw, what string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s is not a URL: %w", what, bareURLError(err))
	}
	if u.IsAbs() {
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("%s must be an http or https URL", what)
		}
		if u.User != nil {
			return nil, fmt.Errorf("%s must not hold credentials (user:password@)", what)
		}
		return u, nil
	}
	return joinURL(s.base, raw, nil)
}

// newOAuth2 builds the oauth2ClientCredentials authenticator.
func (s *httpSource) newOAuth2(params map[string]any, creds map[string]string) (*tokenAuth, error) {
	raw, _ := params[paramTokenURL].(string)
	if raw == "" {
		return nil, fmt.Errorf("authType %s needs the parameter %s", AuthOAuth2ClientCredentials, paramTokenURL)
	}
	tokenURL, err := s.resolveRef(raw, "parameter "+paramTokenURL)
	if err != nil {
		return nil, err
	}
	var scopes []string
	if v := params[paramScopes]; v != nil {
		l, ok := asList(v)
		if !ok {
			return nil, fmt.Errorf("parameter %s must be an array of strings", paramScopes)
		}
		for _, x := range l {
			sc, ok := x.(string)
			if !ok || sc == "" || strings.ContainsAny(sc, " \t\r\n") {
				return nil, fmt.Errorf("parameter %s must be an array of strings without spaces", paramScopes)
			}
			scopes = append(scopes, sc)
		}
	}
	style := "header"
	if v := params[paramTokenAuthStyle]; v != nil {
		st, ok := v.(string)
		if !ok || (st != "header" && st != "body") {
			return nil, fmt.Errorf("parameter %s must be header or body", paramTokenAuthStyle)
		}
		style = st
	}
	id, secret := creds[credClientID], creds[credClientSecret]
	// RFC 6749, 2.3.1: both are form-encoded before Basic encoding.
	basicID, basicSecret := url.QueryEscape(id), url.QueryEscape(secret)
	s.secrets.addBasic(basicID, basicSecret)
	s.credHeaders = append(s.credHeaders, "Authorization")
	fetch := func(ctx context.Context) (*token, time.Duration, error) {
		form := url.Values{"grant_type": {"client_credentials"}}
		if len(scopes) > 0 {
			form.Set("scope", strings.Join(scopes, " "))
		}
		h := http.Header{}
		if style == "header" {
			h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(basicID+":"+basicSecret)))
		} else {
			form.Set("client_id", id)
			form.Set("client_secret", secret)
		}
		resp, err := s.do(ctx, &request{method: http.MethodPost, url: tokenURL, header: h, form: form,
			noAuth: true, retryNonIdempotent: true})
		if err != nil {
			return nil, 0, fmt.Errorf("token request: %w", err)
		}
		tok, err := parseOAuth2Token(resp)
		if err != nil {
			return nil, 0, fmt.Errorf("token response of %s: %w", s.redact(tokenURL), err)
		}
		s.secrets.add(true, tok.accessToken)
		t := &token{header: http.Header{}}
		t.header.Set("Authorization", tok.tokenType+" "+tok.accessToken)
		return t, tok.expiresIn, nil
	}
	return newTokenAuth(s, fetch), nil
}

// oauth2Token is the part of a token response this source uses.
type oauth2Token struct {
	accessToken, tokenType string
	expiresIn              time.Duration
}

// parseOAuth2Token reads a token response (RFC 6749, 5.1): JSON, or the form
// encoding some servers answer with. Its errors never quote the response.
func parseOAuth2Token(resp *response) (oauth2Token, error) {
	var tok oauth2Token
	var expires any
	ct := resp.header.Get("Content-Type")
	if strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "text/plain") {
		vals, err := url.ParseQuery(string(resp.body))
		if err != nil {
			return tok, errors.New("not a form-encoded token response")
		}
		tok.accessToken, tok.tokenType = vals.Get("access_token"), vals.Get("token_type")
		if e := vals.Get("expires_in"); e != "" {
			expires = json.Number(e)
		}
	} else {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(resp.body))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return tok, errors.New("not a JSON object")
		}
		tok.accessToken, _ = m["access_token"].(string)
		tok.tokenType, _ = m["token_type"].(string)
		expires = m["expires_in"]
	}
	if tok.accessToken == "" {
		return tok, errors.New("no access_token string in it")
	}
	if strings.ContainsAny(tok.accessToken, "\r\n\x00") {
		return tok, errors.New("access_token holds a line break or NUL")
	}
	if tok.tokenType == "" || strings.EqualFold(tok.tokenType, "bearer") {
		tok.tokenType = "Bearer"
	}
	if expires != nil {
		if e, ok := expires.(string); ok {
			expires = json.Number(e)
		}
		f, ok := source.Number(expires)
		if !ok || f < 0 {
			return tok, errors.New("expires_in is not a number of seconds")
		}
		tok.expiresIn = time.Duration(f * float64(time.Second))
	}
	return tok, nil
}

// customAuth is the parsed customAuth parameter.
type customAuth struct {
	method  string
	url     *url.URL
	header  http.Header
	query   url.Values
	body    any
	form    bool
	headers map[string]*jqExpr
	queries map[string]*jqExpr
	bodies  map[string]*jqExpr
	expires *jqExpr
}

// credentialRef is a credential placeholder in a custom token request.
var credentialRef = regexp.MustCompile(`\{\{\s*credentials\.([A-Za-z0-9_.\-]+)\s*\}\}`)

// newCustomAuth builds the custom authenticator from the customAuth parameter.
func (s *httpSource) newCustomAuth(params map[string]any, creds map[string]string) (*tokenAuth, error) {
	const what = "parameter " + paramCustomAuth
	m, ok := asObject(params[paramCustomAuth])
	if !ok {
		return nil, fmt.Errorf("authType %s needs the parameter %s (an object)", AuthCustom, paramCustomAuth)
	}
	if err := onlyKeys(m, what, "request", "headers", "query", "body", "expiresIn"); err != nil {
		return nil, err
	}
	reqM, ok := asObject(m["request"])
	if !ok {
		return nil, fmt.Errorf("%s.request is required and must be an object", what)
	}
	if err := onlyKeys(reqM, what+".request", "path", "url", "method", "headers", "query", "body", "form"); err != nil {
		return nil, err
	}
	var missing []string
	expand := func(text string) string {
		return credentialRef.ReplaceAllStringFunc(text, func(ref string) string {
			name := credentialRef.FindStringSubmatch(ref)[1]
			v, ok := creds[name]
			if !ok || v == "" {
				missing = append(missing, name)
			}
			return v
		})
	}
	c := &customAuth{method: http.MethodPost}
	if mth, err := optString(reqM, "method", what+".request"); err != nil {
		return nil, err
	} else if mth != "" {
		c.method = strings.ToUpper(mth)
	}
	path, err := optString(reqM, "path", what+".request")
	if err != nil {
		return nil, err
	}
	abs, err := optString(reqM, "url", what+".request")
	if err != nil {
		return nil, err
	}
	switch {
	case (path == "") == (abs == ""):
		return nil, fmt.Errorf("%s.request needs exactly one of path and url", what)
	case abs != "":
		if c.url, err = s.resolveRef(abs, what+".request.url"); err != nil {
			return nil, err
		}
	default:
		if c.url, err = joinURL(s.base, path, nil); err != nil {
			return nil, fmt.Errorf("%s.request.path: %w", what, err)
		}
	}
	hdrs, err := stringMap(reqM["headers"], what+".request.headers")
	if err != nil {
		return nil, err
	}
	for k, v := range hdrs {
		hdrs[k] = expand(v)
	}
	if c.header, err = checkHeaders(hdrs, what+".request.headers"); err != nil {
		return nil, err
	}
	q, err := stringMap(reqM["query"], what+".request.query")
	if err != nil {
		return nil, err
	}
	c.query = url.Values{}
	for k, v := range q {
		c.query.Set(k, expand(v))
	}
	if c.form, err = optBool(reqM, "form", what+".request", false); err != nil {
		return nil, err
	}
	if b := reqM["body"]; b != nil {
		c.body = expandAll(b, expand)
		if _, err := toJSONValue(c.body, what+".request.body"); err != nil {
			return nil, err
		}
		if c.form {
			if _, err := stringMap(c.body, what+".request.body"); err != nil {
				return nil, fmt.Errorf("%w (a form body is an object of scalars)", err)
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("%s refers to credentials that are not given: %s", what, strings.Join(slices.Compact(missing), ", "))
	}
	picks := func(key string) (map[string]*jqExpr, error) {
		v := m[key]
		if v == nil {
			return nil, nil
		}
		pm, ok := asObject(v)
		if !ok {
			return nil, fmt.Errorf("%s.%s must be an object of jq expressions", what, key)
		}
		out := map[string]*jqExpr{}
		for name := range pm {
			e, err := optJQ(pm, name, what+"."+key+"."+name)
			if err != nil {
				return nil, err
			}
			if e != nil {
				out[name] = e
			}
		}
		return out, nil
	}
	if c.headers, err = picks("headers"); err != nil {
		return nil, err
	}
	for name := range c.headers {
		if !validHeaderName(name) || slices.Contains(reservedHeaders, http.CanonicalHeaderKey(name)) {
			return nil, fmt.Errorf("%s.headers: %q is not a header name this source may set", what, name)
		}
		s.credHeaders = append(s.credHeaders, http.CanonicalHeaderKey(name))
	}
	if c.queries, err = picks("query"); err != nil {
		return nil, err
	}
	for name := range c.queries {
		s.credQuery = append(s.credQuery, name)
	}
	if c.bodies, err = picks("body"); err != nil {
		return nil, err
	}
	if len(c.headers)+len(c.queries)+len(c.bodies) == 0 {
		return nil, fmt.Errorf("%s places nothing in requests: give headers, query or body", what)
	}
	if c.expires, err = optJQ(m, "expiresIn", what+".expiresIn"); err != nil {
		return nil, err
	}
	return newTokenAuth(s, func(ctx context.Context) (*token, time.Duration, error) { return s.customToken(ctx, c) }), nil
}

// expandAll applies expand to every string within v.
func expandAll(v any, expand func(string) string) any {
	switch x := v.(type) {
	case string:
		return expand(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = expandAll(e, expand)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = expandAll(e, expand)
		}
		return out
	}
	if m, ok := asObject(v); ok {
		return expandAll(m, expand)
	}
	if l, ok := asList(v); ok && v != nil {
		if _, isBytes := v.([]byte); !isBytes {
			return expandAll(l, expand)
		}
	}
	return v
}

// customToken sends the custom token request and picks the token's fields.
func (s *httpSource) customToken(ctx context.Context, c *customAuth) (*token, time.Duration, error) {
	r := &request{method: c.method, url: c.url, header: c.header.Clone(), noAuth: true, retryNonIdempotent: true}
	if len(c.query) > 0 {
		u := *c.url
		q := u.Query()
		for k, v := range c.query {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		r.url = &u
	}
	if c.body != nil {
		if c.form {
			m, _ := stringMap(c.body, "")
			r.form = url.Values{}
			for k, v := range m {
				r.form.Set(k, v)
			}
		} else {
			r.body = c.body
			if m, ok := c.body.(map[string]any); ok {
				r.body = maps.Clone(m)
			}
		}
	}
	resp, err := s.do(ctx, r)
	if err != nil {
		return nil, 0, fmt.Errorf("custom token request: %w", err)
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, 0, fmt.Errorf("custom token response of %s is not JSON", s.redact(c.url))
	}
	t := &token{header: http.Header{}, query: url.Values{}, body: map[string]any{}}
	timeout := s.opts.JQTimeout
	// A nil scrub withholds jq's messages: they may quote the token.
	pickText := func(name string, e *jqExpr) (string, error) {
		v, ok, err := e.first(ctx, timeout, doc, nil)
		if err != nil {
			return "", err
		}
		text, isScalar := scalarText(v)
		if !ok || v == nil || !isScalar {
			return "", fmt.Errorf("%s: jq %q yielded %s, not a string", e.where, e.src, kindOf(v))
		}
		if strings.ContainsAny(text, "\r\n\x00") {
			return "", fmt.Errorf("%s: the value holds a line break or NUL", e.where)
		}
		s.secrets.add(true, text)
		return text, nil
	}
	for name, e := range c.headers {
		text, err := pickText(name, e)
		if err != nil {
			return nil, 0, err
		}
		t.header.Set(name, text)
	}
	for name, e := range c.queries {
		text, err := pickText(name, e)
		if err != nil {
			return nil, 0, err
		}
		t.query.Set(name, text)
	}
	for name, e := range c.bodies {
		v, ok, err := e.first(ctx, timeout, doc, nil)
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			return nil, 0, fmt.Errorf("%s: jq %q yielded nothing", e.where, e.src)
		}
		if str, isStr := v.(string); isStr {
			s.secrets.add(true, str)
		}
		t.body[name] = v
	}
	var life time.Duration
	if c.expires != nil {
		v, ok, err := c.expires.first(ctx, timeout, doc, nil)
		if err != nil {
			return nil, 0, err
		}
		kind := kindOf(v)
		if str, isStr := v.(string); isStr {
			v = json.Number(str) // some servers quote it
		}
		f, isNum := source.Number(v)
		if !ok || !isNum || f < 0 {
			return nil, 0, fmt.Errorf("%s: jq %q yielded %s, not a number of seconds", c.expires.where, c.expires.src, kind)
		}
		life = time.Duration(f * float64(time.Second))
		if life == 0 {
			life = time.Nanosecond // expires at once: used for this request only
		}
	}
	return t, life, nil
}

// onlyKeys refuses keys of m beyond allowed: within this source's own
// objects, a misspelt key must not be silently ignored.
func onlyKeys(m map[string]any, what string, allowed ...string) error {
	var extra []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return fmt.Errorf("%s: unknown fields %s (known: %s)", what, strings.Join(extra, ", "), strings.Join(allowed, ", "))
	}
	return nil
}
