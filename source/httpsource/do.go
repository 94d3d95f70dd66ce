package httpsource

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// request is one logical request; do may send it several times.
type request struct {
	method string
	url    *url.URL
	header http.Header
	// body is a JSON value sent as application/json; nil for none. It must be
	// a value do may hand to auth (which merges into a top-level object), so
	// callers give a fresh top-level map.
	body any
	// form, when set, is sent as application/x-www-form-urlencoded instead.
	form url.Values
	// noAuth skips the authenticator (token requests).
	noAuth bool
	// retryNonIdempotent allows retries of POST and PATCH.
	retryNonIdempotent bool
	// noRetry sends the request once (connection tests), but for one token
	// refresh after a 401.
	noRetry bool
}

// response is what do read of a successful response.
type response struct {
	status int
	header http.Header
	body   []byte
	// sentAt is when the attempt that succeeded was sent: no item of the
	// response is newer than that.
	sentAt time.Time
	// url is the final URL, after redirects, for resolving relative links.
	url *url.URL
	// latency is the duration of the successful attempt.
	latency time.Duration
	// cut is the pooled buffer the items of the response were cut from (the body
	// or a copy of it), until flush hands it on with their pages.
	cut []byte
}

// idempotent methods may be retried without the resource's consent (RFC 9110, 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

// retryableStatus are the statuses worth another attempt.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// errorBodyBytes is how much of a failed response's body is read, for its excerpt.
const errorBodyBytes = 4096

// do sends r until it succeeds or finally fails: with the credentials, within
// the concurrency and rate limits, retrying network errors and 429, 502, 503
// and 504 with exponential backoff and jitter (honouring Retry-After) when the
// method allows it, and refreshing a token once after a 401. Its errors are
// *HTTPError, *RequestError or wrap ctx.Err(); they hold no credential.
func (s *httpSource) do(ctx context.Context, r *request) (*response, error) {
	mayRetry := !r.noRetry && s.opts.MaxRetries > 0 && (idempotent(r.method) || r.retryNonIdempotent)
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     s.opts.RetryInitial,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         s.opts.RetryMax,
	}
	bo.Reset()
	retries, refreshed := 0, false
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		resp, gen, err := s.attempt(ctx, r)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var re *RequestError
			var ae *authError
			if errors.As(err, &ae) {
				return nil, err // the token request made its own retries
			}
			if !mayRetry || retries >= s.opts.MaxRetries || !errors.As(err, &re) || !retryableErr(re.Err) {
				return nil, err
			}
			retries++
			if err := s.opts.Clock.Sleep(ctx, bo.NextBackOff()); err != nil {
				return nil, err
			}
			continue
		}
		if resp.status >= 200 && resp.status < 300 {
			return resp, nil
		}
		if resp.status == http.StatusUnauthorized && !r.noAuth && !refreshed && s.auth.refreshable() {
			// The token may have been revoked or expired early: one fresh one.
			refreshed = true
			s.auth.invalidate(gen)
			continue
		}
		herr := &HTTPError{Method: r.method, URL: s.redact(r.url), StatusCode: resp.status, Excerpt: excerpt(resp.body, s.secrets.scrub)}
		if !mayRetry || retries >= s.opts.MaxRetries || !retryableStatus(resp.status) {
			return nil, herr
		}
		wait := bo.NextBackOff()
		if ra, ok := retryAfter(resp.header.Get("Retry-After"), s.opts.Clock.Now()); ok {
			if ra > s.opts.MaxRetryAfter {
				herr.Note = fmt.Sprintf("Retry-After %v is beyond this deployment's limit of %v", ra, s.opts.MaxRetryAfter)
				return nil, herr
			}
			wait = ra
		}
		retries++
		if err := s.opts.Clock.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// redact renders u for messages without the source's credentials.
func (s *httpSource) redact(u *url.URL) string {
	return s.secrets.scrub(redactURL(u, s.credQuery))
}

// attempt sends r once. A response of any status is returned as a response
// (a failed one with only the start of its body); no response is a
// *RequestError. gen is the generation of the credentials used.
func (s *httpSource) attempt(ctx context.Context, r *request) (*response, uint64, error) {
	if s.limiter != nil {
		if err := s.limiter.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			return nil, 0, fmt.Errorf("rate limit: %w", err)
		}
	}
	out := &request{method: r.method, header: r.header.Clone(), body: r.body, form: r.form}
	u := *r.url
	out.url = &u
	if out.header == nil {
		out.header = http.Header{}
	}
	if m, ok := r.body.(map[string]any); ok {
		out.body = maps.Clone(m) // auth may add fields
	}
	var gen uint64
	if !r.noAuth {
		var err error
		if gen, err = s.auth.apply(ctx, out); err != nil {
			if ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			return nil, 0, &authError{err: err}
		}
	}
	req, err := s.newHTTPRequest(ctx, out)
	if err != nil {
		return nil, 0, &RequestError{Method: r.method, URL: s.redact(r.url), Err: err}
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	defer func() { <-s.sem }()
	sentAt := s.opts.Clock.Now()
	start := time.Now()
	hresp, err := s.client.Do(req)
	if err != nil {
		return nil, gen, &RequestError{Method: r.method, URL: s.redact(r.url), Err: s.secrets.wrap(bareURLError(err))}
	}
	defer hresp.Body.Close()
	limit := s.opts.MaxResponseBytes
	ok := hresp.StatusCode >= 200 && hresp.StatusCode < 300
	if !ok {
		limit = errorBodyBytes
	} else if hresp.ContentLength > limit {
		return nil, gen, &RequestError{Method: r.method, URL: s.redact(r.url),
			Err: fmt.Errorf("Content-Length %d is beyond the limit of %d bytes: %w", hresp.ContentLength, limit, ErrResponseTooLarge)}
	}
	body, err := s.readBody(hresp, limit+1)
	if err != nil {
		if ctx.Err() != nil {
			return nil, gen, ctx.Err()
		}
		return nil, gen, &RequestError{Method: r.method, URL: s.redact(r.url), Err: fmt.Errorf("reading the body: %w", s.secrets.wrap(bareURLError(err)))}
	}
	if int64(len(body)) > limit {
		if !ok {
			body = body[:limit]
		} else {
			return nil, gen, &RequestError{Method: r.method, URL: s.redact(r.url),
				Err: fmt.Errorf("body beyond the limit of %d bytes: %w", limit, ErrResponseTooLarge)}
		}
	}
	return &response{status: hresp.StatusCode, header: hresp.Header, body: body, sentAt: sentAt,
		url: hresp.Request.URL, latency: time.Since(start)}, gen, nil
}

// newHTTPRequest builds the *http.Request of an attempt.
func (s *httpSource) newHTTPRequest(ctx context.Context, r *request) (*http.Request, error) {
	var body []byte
	var ctype string
	switch {
	case r.form != nil:
		body, ctype = []byte(r.form.Encode()), "application/x-www-form-urlencoded"
	case r.body != nil:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r.body); err != nil {
			return nil, fmt.Errorf("encoding the JSON body: %w", err)
		}
		body, ctype = bytes.TrimRight(buf.Bytes(), "\n"), "application/json"
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url.String(), rd)
	if err != nil {
		return nil, bareURLError(err)
	}
	req.Header = r.header
	if ctype != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", ctype)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "configsync-httpsource/1")
	}
	return req, nil
}

// retryableErr reports whether a request that got no response may succeed if
// sent again: network failures, not refusals by policy, TLS certificate
// problems or bodies too large.
func retryableErr(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.Is(err, ErrAddressNotAllowed), errors.Is(err, ErrResponseTooLarge),
		errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &invalid):
		return false
	case errors.Is(err, context.Canceled), errors.Is(err, errRedirectPolicy):
		return false
	}
	return true
}

// retryAfter parses a Retry-After header: seconds, or an HTTP date relative
// to now.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, true
		}
		if secs > int64(24*time.Hour/time.Second)*365 {
			secs = int64(24*time.Hour/time.Second) * 365
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// readBody reads at most n bytes of a response body and returns them in a slice the
// caller owns (items are cut from it), taken from s.buffers: whoever is last to read
// it may give it back (bufferPool.put). A body of known length is read straight into
// a slice of that size; one of unknown length into a pooled bytes.Buffer, then copied
// to a slice of its size, which costs a copy but not the unused half of a grown
// buffer.
func (s *httpSource) readBody(hresp *http.Response, n int64) ([]byte, error) {
	if l := hresp.ContentLength; l > 0 && l <= n {
		// net/http ends such a body at its length, and fails one that ends short.
		body := s.buffers.get(int(l))
		if _, err := io.ReadFull(hresp.Body, body); err != nil {
			s.buffers.put(body)
			return nil, err
		}
		return body, nil
	}
	buf, _ := s.bodies.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBody {
			s.bodies.Put(buf)
		}
	}()
	if hresp.ContentLength > 0 {
		buf.Grow(int(min(hresp.ContentLength+1, n)))
	}
	if _, err := buf.ReadFrom(io.LimitReader(hresp.Body, n)); err != nil {
		return nil, err
	}
	body := s.buffers.get(buf.Len())
	copy(body, buf.Bytes())
	return body, nil
}
