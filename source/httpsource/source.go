package httpsource

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/configsync/configsync/source"
)

// httpSource is one integration's source. It is immutable once made but for
// its caches, which lock, so it is safe for concurrent fetches.
type httpSource struct {
	opts    Options
	base    *url.URL
	headers http.Header
	timeout time.Duration
	// sem holds a token per request in flight (maxConcurrentRequests).
	sem chan struct{}
	// limiter paces requests (rateLimit); nil for none.
	limiter *rate.Limiter
	client  *http.Client
	// bodies holds read buffers (*bytes.Buffer) for response bodies: reading with
	// io.ReadAll reallocated its way up to each page's size, twice the page in garbage.
	bodies sync.Pool
	// buffers holds the buffers bodies end up in, which pages of items point into
	// until the run releases them (source.Page.Release).
	buffers bufferPool
	auth    authenticator
	secrets *scrubber
	// credHeaders and credQuery name what carries credentials: stripped on
	// redirects to another origin, redacted in URLs.
	credHeaders []string
	credQuery   []string
	// defaultPagination is the integration's pagination parameter, for
	// resources that give none.
	defaultPagination map[string]any
	testPath          string

	plansMu sync.Mutex
	plans   map[string]*plan
}

// reservedHeaders may not be set by parameters or selectors: the transport
// owns them.
var reservedHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Te", "Trailer"}

// newSource checks params and creds and builds the source. Its errors never
// quote a credential, nor the baseUrl (which might hold one by mistake).
func newSource(o Options, params map[string]any, creds map[string]string) (*httpSource, error) {
	s := &httpSource{opts: o, secrets: &scrubber{}, plans: map[string]*plan{}, buffers: newBufferPool()}
	for _, v := range creds {
		s.secrets.add(false, v)
	}
	if creds[credUsername] != "" || creds[credPassword] != "" {
		s.secrets.addBasic(creds[credUsername], creds[credPassword])
	}
	err := s.configure(params, creds)
	if err != nil {
		return nil, s.secrets.wrap(fmt.Errorf("http source: %w", err))
	}
	return s, nil
}

// configure reads the parameters into s.
func (s *httpSource) configure(params map[string]any, creds map[string]string) error {
	known := map[string]bool{}
	for _, p := range parameters() {
		known[p.Name] = true
	}
	var unknown []string
	for k := range params {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("unknown parameters: %s", strings.Join(unknown, ", "))
	}

	base, err := parseBaseURL(params[paramBaseURL])
	if err != nil {
		return err
	}
	s.base = base

	hdrs, err := stringMap(params[paramHeaders], paramHeaders)
	if err != nil {
		return err
	}
	if s.headers, err = checkHeaders(hdrs, paramHeaders); err != nil {
		return err
	}

	timeout := DefaultTimeout
	if v := params[paramTimeout]; v != nil {
		f, ok := source.Number(v)
		if !ok || f < 0.1 || f > 3600 {
			return fmt.Errorf("parameter %s must be a number of seconds between 0.1 and 3600", paramTimeout)
		}
		timeout = f
	}
	s.timeout = time.Duration(timeout * float64(time.Second))

	verify := true
	if v := params[paramVerifyTLS]; v != nil {
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("parameter %s must be a boolean, got %s", paramVerifyTLS, kindOf(v))
		}
		verify = b
	}

	conc := int64(DefaultMaxConcurrentRequests)
	if v := params[paramMaxConcurrent]; v != nil {
		i, ok := source.Integer(v)
		if !ok || i < 1 || i > 64 {
			return fmt.Errorf("parameter %s must be an integer between 1 and 64", paramMaxConcurrent)
		}
		conc = i
	}
	s.sem = make(chan struct{}, conc)

	if v := params[paramRateLimit]; v != nil {
		f, ok := source.Number(v)
		if !ok || f < 0 || f > 100000 {
			return fmt.Errorf("parameter %s must be a number of requests per second between 0 and 100000", paramRateLimit)
		}
		if f > 0 {
			s.limiter = rate.NewLimiter(rate.Limit(f), max(1, int(math.Ceil(f))))
		}
	}

	if v := params[paramPagination]; v != nil {
		m, ok := asObject(v)
		if !ok {
			return fmt.Errorf("parameter %s must be an object, got %s", paramPagination, kindOf(v))
		}
		// Checked now, so a bad default fails at creation, not mid-run.
		if _, err := parsePagination(m, "parameter "+paramPagination); err != nil {
			return err
		}
		s.defaultPagination = m
	}

	if v := params[paramTestPath]; v != nil {
		p, ok := v.(string)
		if !ok {
			return fmt.Errorf("parameter %s must be a string, got %s", paramTestPath, kindOf(v))
		}
		s.testPath = p
	}

	if err := s.configureAuth(params, creds); err != nil {
		return err
	}
	s.client = s.newClient(verify, int(conc))
	return nil
}

// parseBaseURL checks the baseUrl parameter. Its errors do not quote the URL.
func parseBaseURL(v any) (*url.URL, error) {
	raw, ok := v.(string)
	if !ok || raw == "" {
		return nil, fmt.Errorf("parameter %s is required and must be a string", paramBaseURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parameter %s is not a URL: %w", paramBaseURL, bareURLError(err))
	}
	switch {
	case u.User != nil:
		return nil, fmt.Errorf("parameter %s must not hold credentials (user:password@): use authType basic", paramBaseURL)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("parameter %s must be an http or https URL", paramBaseURL)
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("parameter %s has no host", paramBaseURL)
	case u.Fragment != "":
		return nil, fmt.Errorf("parameter %s must not have a #fragment", paramBaseURL)
	}
	return u, nil
}

// checkHeaders turns a name-to-value map into a header, refusing names and
// values HTTP does not allow and the headers the transport owns.
func checkHeaders(m map[string]string, what string) (http.Header, error) {
	h := http.Header{}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if !validHeaderName(name) {
			return nil, fmt.Errorf("%s: %q is not a valid header name", what, name)
		}
		if slices.Contains(reservedHeaders, http.CanonicalHeaderKey(name)) {
			return nil, fmt.Errorf("%s: header %s is set by the transport", what, name)
		}
		if strings.ContainsAny(m[name], "\r\n\x00") {
			return nil, fmt.Errorf("%s: the value of header %s holds a line break or NUL", what, name)
		}
		h.Set(name, m[name])
	}
	return h, nil
}

// validHeaderName reports whether name is an HTTP token (RFC 9110, 5.6.2).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// maxRedirects is how many redirects one request follows.
const maxRedirects = 10

// errRedirectPolicy is wrapped by the redirect policy's refusals, which a
// retry would meet again.
var errRedirectPolicy = errors.New("redirect refused")

// newClient builds the HTTP client: the transport with the address policy
// (unless Options.Transport replaces it) and the redirect policy.
func (s *httpSource) newClient(verifyTLS bool, conc int) *http.Client {
	rt := s.opts.Transport
	if rt == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		if !s.opts.AllowPrivate {
			d.Control = dialControl(s.opts.publicForTest)
		}
		rt = &http.Transport{
			// No proxy: a proxy would dial the target itself, past the address policy.
			Proxy:                 nil,
			DialContext:           d.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          conc,
			MaxIdleConnsPerHost:   conc,
			IdleConnTimeout:       30 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			TLSClientConfig:       &tls.Config{InsecureSkipVerify: !verifyTLS, MinVersion: tls.VersionTLS12}, //nolint:gosec // the user's explicit choice for a test server
		}
	}
	return &http.Client{
		Transport: observed(rt, s.opts.Observe),
		Timeout:   s.timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects: %w", maxRedirects, errRedirectPolicy)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirected to a URL that is not http or https: %w", errRedirectPolicy)
			}
			first := via[0].URL
			if req.URL.Host != first.Host || (first.Scheme == "https" && req.URL.Scheme != "https") {
				// Another origin (or a downgrade to plain HTTP): the credentials
				// were meant for the first one. Go drops Authorization itself
				// only for other domains, and never custom headers.
				for _, h := range s.credHeaders {
					req.Header.Del(h)
				}
				req.Header.Del("Authorization")
				req.Header.Del("Cookie")
			}
			return nil
		},
	}
}
