// Package api is configsync's control-plane HTTP API: integrations (with write-only
// credentials and versioned Port configs), integration types, connection tests,
// resyncs and their run records, live resource events, blueprints and entities, plus
// /healthz, /readyz, /metrics and /openapi.json.
//
// New returns an http.Handler built on the standard ServeMux (method and wildcard
// patterns). Every /v1 route takes "Authorization: Bearer <JWT>" (HS256 with
// Config.JWTSecret or RS256 with Config.JWTPublicKey); the token's Claims name the
// tenants it may use and whether it may write. Another tenant's data answers 404, as
// if it did not exist. Errors are RFC 9457 problem documents
// (application/problem+json) with errors[] naming the fields at fault.
//
// The handlers call the existing stores and never hold state of their own: the
// integration.Store keeps integrations and encrypted credentials, catalog.Catalog the
// blueprints and entities, run.Store the run records, and queue.Queue carries
// config.patched, resync.requested and resources events to the workers.
//
// Credentials go one way: a request may set them, and no response, log line, event
// or error message carries them back; responses say only which credential names are
// set ("credentials": {"token": "set"}).
package api

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// DefaultMaxBodyBytes is Config.MaxBodyBytes when it is zero: 1 MiB. A larger request
// body is refused with 413.
const DefaultMaxBodyBytes = 1 << 20

// MinSecretBytes is the shortest HS256 secret New and MintToken accept: 32 bytes, the
// size of the hash output, as RFC 7518 section 3.2 requires.
const MinSecretBytes = 32

// Config is the API's configuration. At least one of JWTSecret and JWTPublicKey must
// be set.
type Config struct {
	// JWTSecret verifies HS256 tokens (at least MinSecretBytes bytes); nil refuses
	// HS256.
	JWTSecret []byte
	// JWTPublicKey verifies RS256 tokens; it must be an *rsa.PublicKey. nil refuses
	// RS256.
	JWTPublicKey crypto.PublicKey
	// Audience and Issuer, when set, must be the token's aud (one of) and iss.
	Audience, Issuer string
	// MaxBodyBytes bounds a request body (default DefaultMaxBodyBytes); a larger one
	// is refused with 413.
	MaxBodyBytes int64
	// HTTPSourceOptions are the deployment's options for connection tests of "http"
	// integrations (the same the workers' http source uses).
	HTTPSourceOptions httpsource.Options
	// Log receives one debug line per request and the causes of 5xx answers
	// (default: no logging). Request bodies and credentials are never logged.
	Log *zap.Logger
	// Now is the clock for token expiry and run records (default time.Now).
	Now func() time.Time
}

// Deps are the stores and services the API works with; cmd wires them. Every field
// but Ready and Metrics is required.
type Deps struct {
	// Integrations stores integrations, their credentials and config versions.
	Integrations *integration.Store
	// Catalog stores blueprints and entities.
	Catalog *catalog.Catalog
	// Runs stores run records.
	Runs *run.Store
	// Queue publishes command events to the workers.
	Queue *queue.Queue
	// Sources describes and validates the source types the deployment offers.
	Sources *source.Registry
	// Ready reports whether NATS and Redis are reachable, for /readyz (nil: always
	// ready).
	Ready func(context.Context) error
	// Metrics, when set, is gathered by /metrics along with the API's own metrics
	// (for example prometheus.DefaultGatherer, to show the process's other metrics).
	// nil serves a private registry: the API's metrics and the Go and process
	// collectors.
	Metrics prometheus.Gatherer
}

// server holds what the handlers share. It is immutable after New.
type server struct {
	cfg     Config
	d       Deps
	log     *zap.Logger
	now     func() time.Time
	parser  *jwt.Parser
	mux     *http.ServeMux
	metrics *metrics
	types   []byte // the GET /v1/integration-types body, built once
}

// New checks cfg and deps and returns the API's handler.
func New(cfg Config, deps Deps) (http.Handler, error) {
	s, err := newServer(cfg, deps)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(s.serveHTTP), nil
}

// newServer checks cfg and deps, fills in defaults and builds the mux.
func newServer(cfg Config, deps Deps) (*server, error) {
	switch {
	case deps.Integrations == nil, deps.Catalog == nil, deps.Runs == nil, deps.Queue == nil, deps.Sources == nil:
		return nil, errors.New("api: Deps.Integrations, Catalog, Runs, Queue and Sources are required")
	case len(cfg.JWTSecret) == 0 && cfg.JWTPublicKey == nil:
		return nil, errors.New("api: set Config.JWTSecret (HS256) or Config.JWTPublicKey (RS256)")
	case len(cfg.JWTSecret) > 0 && len(cfg.JWTSecret) < MinSecretBytes:
		return nil, fmt.Errorf("api: Config.JWTSecret is %d bytes, fewer than the %d HS256 needs", len(cfg.JWTSecret), MinSecretBytes)
	}
	var methods []string
	if len(cfg.JWTSecret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.JWTPublicKey != nil {
		if pk, ok := cfg.JWTPublicKey.(*rsa.PublicKey); !ok || pk == nil {
			return nil, fmt.Errorf("api: Config.JWTPublicKey is a %T, want a non-nil *rsa.PublicKey", cfg.JWTPublicKey)
		}
		methods = append(methods, jwt.SigningMethodRS256.Alg())
	}
	cfg.JWTSecret = bytes.Clone(cfg.JWTSecret) // the caller's slice may change later
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithTimeFunc(cfg.Now),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	s := &server{cfg: cfg, d: deps, log: cfg.Log, now: cfg.Now, parser: jwt.NewParser(opts...), mux: http.NewServeMux()}
	var err error
	if s.metrics, err = newMetrics(deps.Metrics); err != nil {
		return nil, err
	}
	if s.types, err = typesBody(deps.Sources); err != nil {
		return nil, err
	}
	for _, rt := range s.routes() {
		s.mux.Handle(rt.pattern(), s.wrap(rt))
	}
	return s, nil
}

// access says what a route asks of the caller.
type access int

const (
	// public routes take no token (health, metrics, the OpenAPI document).
	public access = iota
	// anyToken routes take a valid token, for no tenant in particular.
	anyToken
	// tenantRead routes take a token naming the path's {tenant}.
	tenantRead
	// tenantWrite routes take a token naming {tenant} that may write.
	tenantWrite
	// tokenTenantWrite routes take a writing token naming exactly one tenant, the
	// one they act on (Port's own config route).
	tokenTenantWrite
	// webhook routes take a writing token naming {tenant}, or an HMAC signature
	// under the integration's webhook secret.
	webhook
)

// route is one entry of the API: a method, a ServeMux path pattern, who may call it
// and its handler. routes() is the single list the mux is built from, and the
// OpenAPI test walks the same list.
type route struct {
	method string
	path   string
	access access
	h      handlerFunc
}

func (rt route) pattern() string { return rt.method + " " + rt.path }

// call is what a handler knows about its caller.
type call struct {
	// claims are the verified token's claims; nil on public routes and for
	// HMAC-signed events.
	claims *Claims
	// tenant is the tenant the request acts on, checked against the token.
	tenant string
	// body is the request body, already read (bounded) for webhook routes.
	body []byte
}

// handlerFunc handles one request. An error is answered as a problem: an *apiError as
// it says, anything else as a 500 whose cause is logged but not shown.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *call) error

// routes lists every route of the API.
func (s *server) routes() []route {
	const t = "/v1/tenants/{tenant}"
	const in = t + "/integrations/{id}"
	return []route{
		{"GET", "/healthz", public, s.healthz},
		{"GET", "/readyz", public, s.readyz},
		{"GET", "/metrics", public, s.serveMetrics},
		{"GET", "/openapi.json", public, serveOpenAPI},

		{"GET", "/v1/integration-types", anyToken, s.listTypes},
		{"PATCH", "/v1/integration/{id}/config", tokenTenantWrite, s.patchConfig},

		{"POST", t + "/integrations", tenantWrite, s.createIntegration},
		{"GET", t + "/integrations", tenantRead, s.listIntegrations},
		{"GET", in, tenantRead, s.getIntegration},
		{"PUT", in, tenantWrite, s.putIntegration},
		{"DELETE", in, tenantWrite, s.deleteIntegration},
		{"PATCH", in + "/config", tenantWrite, s.patchConfig},
		{"POST", in + "/test", tenantWrite, s.testConnection},
		{"POST", in + "/resync", tenantWrite, s.resync},
		{"GET", in + "/runs", tenantRead, s.listRuns},
		{"GET", in + "/runs/{runId}", tenantRead, s.getRun},
		{"POST", in + "/runs/{runId}/cancel", tenantWrite, s.cancelRun},
		{"POST", in + "/events", webhook, s.postEvents},

		{"GET", t + "/blueprints", tenantRead, s.listBlueprints},
		{"PUT", t + "/blueprints/{id}", tenantWrite, s.putBlueprint},
		{"GET", t + "/blueprints/{id}", tenantRead, s.getBlueprint},
		{"DELETE", t + "/blueprints/{id}", tenantWrite, s.deleteBlueprint},
		{"GET", t + "/blueprints/{id}/entities", tenantRead, s.listEntities},
		{"GET", t + "/blueprints/{id}/entities/{identifier...}", tenantRead, s.getEntity},
	}
}

// serveHTTP is the outermost handler: panics become 500s, the ServeMux's own 404 and
// 405 answers become problems, and every request is counted and timed by route.
func (s *server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, r: r, s: s}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panicked", zap.String("method", r.Method), zap.String("route", r.Pattern), zap.Any("panic", v))
			if !sw.wroteHeader {
				s.writeProblem(sw, r, newProblem(http.StatusInternalServerError, "internal", "internal error"))
			}
		}
		route := routeLabel(r)
		took := time.Since(start)
		s.metrics.observe(route, r.Method, sw.status(), took)
		s.log.Debug("request", zap.String("method", r.Method), zap.String("route", route), zap.String("path", r.URL.Path),
			zap.Int("status", sw.status()), zap.Duration("took", took))
	}()
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(sw, r)
}

// routeLabel is the route's path pattern for metrics and logs ("unmatched" when the
// ServeMux found none), so that ids never become label values.
func routeLabel(r *http.Request) string {
	if r.Pattern == "" {
		return "unmatched"
	}
	if _, p, ok := strings.Cut(r.Pattern, " "); ok {
		return p
	}
	return r.Pattern
}

// statusWriter records the status, and turns the ServeMux's plain-text 404 and 405
// (written when no pattern matched) into problems.
type statusWriter struct {
	http.ResponseWriter
	r           *http.Request
	s           *server
	code        int
	wroteHeader bool
	swallow     bool // the body is a problem already written; drop the mux's text
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// WriteHeader records code; a mux error answer (no pattern matched) is rewritten.
func (w *statusWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader, w.code = true, code
	if w.r.Pattern == "" && code >= 400 {
		w.swallow = true
		p := newProblem(code, "not-found", "no such route")
		if code == http.StatusMethodNotAllowed {
			p = newProblem(code, "method-not-allowed", "the route does not take method "+w.r.Method)
		}
		body := w.s.problemBody(w.r, p)
		h := w.Header()
		h.Set("Content-Type", problemContentType)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Del("Content-Length")
		w.ResponseWriter.WriteHeader(code)
		_, _ = w.ResponseWriter.Write(body)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write writes b, unless a rewritten error answer replaced the body.
func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap applies a route's access rule and runs its handler, answering errors as
// problems.
func (s *server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authorize(w, r, rt.access)
		if err == nil {
			err = rt.h(w, r, c)
		}
		if err != nil {
			s.fail(w, r, err)
		}
	})
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request, _ *call) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyzTimeout bounds the readiness check, so that a load balancer's probe is
// answered even while Redis or NATS hang.
const readyzTimeout = 3 * time.Second

func (s *server) readyz(w http.ResponseWriter, r *http.Request, _ *call) error {
	if s.d.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyzTimeout)
		defer cancel()
		// The check may not honour ctx (a Redis client without
		// ContextTimeoutEnabled waits out its own timeouts): the bound is kept here.
		res := make(chan error, 1)
		go func() { res <- s.d.Ready(ctx) }()
		var err error
		select {
		case err = <-res:
		case <-ctx.Done():
			err = fmt.Errorf("readiness check: %w", ctx.Err())
		}
		if err != nil {
			s.log.Warn("not ready", zap.Error(err))
			return &apiError{p: newProblem(http.StatusServiceUnavailable, "unavailable", "not ready: NATS or Redis is unreachable"), cause: err}
		}
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
