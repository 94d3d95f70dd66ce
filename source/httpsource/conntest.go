package httpsource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Result is a connection test's answer. A remote failure (refused,
// unauthorized, unreachable) is an answer with OK false, not an error.
type Result struct {
	// OK means the test request got a 2xx response.
	OK bool `json:"ok"`
	// Status is the remote's final HTTP status; 0 when there was no response.
	Status int `json:"status"`
	// Message says what happened, without credentials.
	Message string `json:"message"`
	// LatencyMs is how long the test took, token request included.
	LatencyMs int64 `json:"latencyMs"`
}

// TestConnection sends one authenticated GET of the testPath parameter (under
// baseUrl; when empty, baseUrl itself) and says whether it worked, for the
// API's test endpoint. The API fills testPath, when the user gave none, with
// DefaultTestPath of the config's first resource. params may lack defaults;
// they are filled in as the registry would. Invalid parameters, an auth
// method without a connection test (custom) and remote failures all give OK
// false with a message; nothing is retried but one token refresh after a 401.
func TestConnection(ctx context.Context, opts Options, params map[string]any, creds map[string]string) Result {
	o := opts.withDefaults()
	full := map[string]any{}
	for k, v := range params {
		full[k] = v
	}
	for _, p := range parameters() {
		if full[p.Name] == nil && p.Default != nil {
			full[p.Name] = p.Default
		}
	}
	authType, _ := full[paramAuthType].(string)
	for _, m := range authMethods() {
		if m.ID == authType && !m.ConfigTestSupported {
			return Result{Message: fmt.Sprintf("authType %s: connection test %v: its token request may not be safe to send on demand; the first sync tests it", authType, ErrNotSupported)}
		}
	}
	s, err := newSource(o, full, creds)
	if err != nil {
		return Result{Message: err.Error()}
	}
	if placeholder.MatchString(s.testPath) {
		return Result{Message: fmt.Sprintf("parameter %s has path parameters ({...}); give a path without them", paramTestPath)}
	}
	u, err := joinURL(s.base, s.testPath, nil)
	if err != nil {
		return Result{Message: s.secrets.scrub(fmt.Sprintf("parameter %s: %v", paramTestPath, err))}
	}
	start := time.Now()
	resp, err := s.do(ctx, &request{method: http.MethodGet, url: u, header: s.headers.Clone(), noRetry: true})
	latency := time.Since(start).Milliseconds()
	if err != nil {
		res := Result{LatencyMs: latency, Message: s.secrets.scrub(err.Error())}
		var he *HTTPError
		if errors.As(err, &he) {
			res.Status = he.StatusCode
		}
		return res
	}
	return Result{OK: true, Status: resp.status, LatencyMs: latency,
		Message: fmt.Sprintf("GET %s: %d %s", s.redact(resp.url), resp.status, http.StatusText(resp.status))}
}

// DefaultTestPath returns the path a connection test uses for a resource of
// the given kind and selector: its path, or the kind. A path with {param}
// placeholders cannot be tested without discovery, so it gives "" (baseUrl
// itself).
func DefaultTestPath(kind string, selector map[string]any) string {
	p, _ := selector["path"].(string)
	if p == "" {
		p = "/" + url.PathEscape(kind)
	}
	if placeholder.MatchString(p) {
		return ""
	}
	return p
}
