// Package httpsource is the "http" source: it syncs any REST API that answers
// JSON, as Ocean's Custom integration does, and plugs into package source.
//
// An integration of type "http" names a baseUrl, optional headers, limits
// (timeout, maxConcurrentRequests, rateLimit), a default pagination and an
// authType with its credentials (see Type for the public contract of those
// names). Each resource of its config says, in extra selector fields next to
// query, which request lists its kind: path, method, queryParams, headers,
// body, a jq dataPath picking the items out of each response, a pagination,
// and path parameters discovered by other requests (see SelectorFields).
// Selector fields it does not know are ignored (IgnoredSelectorFields lists
// them for `configsync validate`); CheckSelector compiles a selector ahead of
// any run.
//
// What the sync relies on, and how this package keeps it:
//
//   - Fetch returns nil only when the kind was fetched whole. Any request that
//     finally fails (after retries), a pagination that loops or passes maxPages,
//     a dataPath that yields null, an item that is not an object: each makes
//     Fetch return an error, so the run deletes nothing (DESIGN.md, invariant 1).
//   - Streaming: each response's items are yielded before the next request is
//     sent; what a fetch holds is one response (bounded by MaxResponseBytes) and
//     a few bytes per page to detect loops.
//   - Secrets: credentials, and the tokens obtained with them, never appear in
//     an error. URLs in errors lose their userinfo and the values of query
//     parameters that carry credentials, response excerpts are scrubbed of every
//     known secret, and jq errors on token responses are withheld.
//   - Addresses: unless Options.AllowPrivate, the dialer refuses loopback,
//     private, link-local, unspecified, multicast and other non-public
//     addresses. The check runs on the resolved IP at dial time, so a DNS answer
//     or a redirect that points inward is refused as well.
package httpsource

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/configsync/configsync/source"
)

// TypeID is the type id of the http source, as integrations name it.
const TypeID = "http"

// Defaults of Options and of the source's parameters.
const (
	// DefaultMaxResponseBytes bounds one response body (after decompression).
	DefaultMaxResponseBytes = 64 << 20
	// DefaultPageSize is the most items one yielded source.Page holds; a larger
	// response is yielded as several pages.
	DefaultPageSize = 500
	// DefaultMaxPages is the pagination guard: a resource (or one discovery
	// request) whose pagination goes on for more pages fails.
	DefaultMaxPages = 10000
	// DefaultMaxRetries is how many times a retryable failure is retried.
	DefaultMaxRetries = 5
	// DefaultRetryInitial is the first backoff interval; it grows 2x per retry,
	// with ±50% jitter.
	DefaultRetryInitial = 500 * time.Millisecond
	// DefaultRetryMax caps one backoff interval.
	DefaultRetryMax = 30 * time.Second
	// DefaultMaxRetryAfter caps the Retry-After a server may ask for; a longer
	// one fails the request at once rather than hold a worker for hours.
	DefaultMaxRetryAfter = 5 * time.Minute
	// DefaultJQTimeout bounds one evaluation of a selector jq expression.
	DefaultJQTimeout = 5 * time.Second
	// DefaultMaxDiscoveredValues bounds the values one discovery request may
	// produce for a path parameter.
	DefaultMaxDiscoveredValues = 100000
	// DefaultTimeout is the default of the timeout parameter, in seconds.
	DefaultTimeout = 30.0
	// DefaultMaxConcurrentRequests is the default of maxConcurrentRequests.
	DefaultMaxConcurrentRequests = 4
)

// Errors of the http source, for errors.Is.
var (
	// ErrAddressNotAllowed means the dialer refused an address that is not
	// public (loopback, private, link-local, ...) while Options.AllowPrivate is
	// false. It is never retried.
	ErrAddressNotAllowed = errors.New("address not allowed")
	// ErrResponseTooLarge means a response body passed Options.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("response too large")
	// ErrPaginationLoop means the server sent a cursor or next link it had sent
	// before, or the same page twice in a row: going on would loop forever, and
	// stopping quietly could drop data, so the fetch fails.
	ErrPaginationLoop = errors.New("pagination loops")
	// ErrMaxPages means a pagination still had pages after maxPages: the kind is
	// not known to be whole, so the fetch fails after yielding those pages.
	ErrMaxPages = errors.New("more pages than maxPages")
	// ErrNotSupported is wrapped by a connection test's message when the auth
	// method does not support one.
	ErrNotSupported = errors.New("not supported")
)

// Clock is the source's time: Now stamps pages and ages tokens, Sleep waits
// between retries. Tests substitute one that does not really sleep.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep waits for d, or until ctx is done, when it returns ctx.Err().
	Sleep(ctx context.Context, d time.Duration) error
}

// realClock is the Clock of the wall.
type realClock struct{}

// Now returns time.Now().
func (realClock) Now() time.Time { return time.Now() }

// Sleep waits d or until ctx is done.
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Options are a deployment's knobs for the http source: what integrations may
// not choose for themselves. The zero value gives the documented defaults, with
// private addresses refused.
type Options struct {
	// Transport, when set, sends every request instead of the source's own
	// transport, which then is not built: the address policy, verifyTls and
	// connection pooling are the Transport's business. Tests and proxies use it.
	Transport http.RoundTripper
	// AllowPrivate lets requests reach loopback, private, link-local and other
	// non-public addresses. configsync dev sets it to sync APIs on the laptop;
	// a shared deployment leaves it false, so an integration cannot reach the
	// deployment's own network (cloud metadata, Redis, admin endpoints).
	AllowPrivate bool
	// MaxResponseBytes bounds every response body read (default
	// DefaultMaxResponseBytes). A larger response fails the fetch.
	MaxResponseBytes int64
	// PageSize is the most items in one yielded page (default DefaultPageSize).
	PageSize int
	// Clock is the time source (default: the wall clock).
	Clock Clock
	// MaxRetries is how many times a retryable failure is retried (default
	// DefaultMaxRetries; negative: never).
	MaxRetries int
	// RetryInitial and RetryMax shape the exponential backoff (defaults
	// DefaultRetryInitial and DefaultRetryMax).
	RetryInitial, RetryMax time.Duration
	// MaxRetryAfter caps the Retry-After honoured (default
	// DefaultMaxRetryAfter); a server asking for longer fails the request.
	MaxRetryAfter time.Duration
	// JQTimeout bounds each evaluation of a selector's jq (default
	// DefaultJQTimeout).
	JQTimeout time.Duration
	// MaxDiscoveredValues bounds the values of one path parameter's discovery
	// (default DefaultMaxDiscoveredValues).
	MaxDiscoveredValues int
	// Observe, when set, is called once for every request the source sends
	// (retries, token requests and each redirect hop included), when its response
	// headers arrived or it failed, so that the deployment can measure the tools'
	// latency and errors (metrics.Source does). status is 0 when err is not nil.
	// It must be quick and safe for concurrent use. See observe.go.
	Observe ObserveFunc

	// publicForTest, when set, declares addresses public for the dial policy,
	// so tests on 127.0.0.1 can play an outside server.
	publicForTest func(netip.Addr) bool
}

// withDefaults fills in the zero fields.
func (o Options) withDefaults() Options {
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = DefaultMaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	if o.RetryInitial <= 0 {
		o.RetryInitial = DefaultRetryInitial
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.RetryMax < o.RetryInitial {
		o.RetryMax = o.RetryInitial
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.JQTimeout <= 0 {
		o.JQTimeout = DefaultJQTimeout
	}
	if o.MaxDiscoveredValues <= 0 {
		o.MaxDiscoveredValues = DefaultMaxDiscoveredValues
	}
	return o
}

// Type returns the "http" source type. Its Parameters and Auth are the public
// contract the API, `configsync apply` files and users' configs rely on; New
// builds a source from an integration's parameters and credentials (see
// package doc). New checks every parameter and credential it uses, so a
// misconfigured integration fails when it is created rather than mid-run.
func Type(opts Options) source.Type {
	o := opts.withDefaults()
	return source.Type{
		ID:          TypeID,
		DisplayName: "HTTP (any REST API)",
		Description: "Fetches each kind's items from a JSON REST API: one request per page, with pagination, " +
			"path parameters discovered by other requests, retries and authentication.",
		Parameters: parameters(),
		Auth:       authMethods(),
		New: func(params map[string]any, creds map[string]string) (source.Source, error) {
			s, err := newSource(o, params, creds)
			if err != nil {
				return nil, err // not a typed nil in the interface
			}
			return s, nil
		},
	}
}
