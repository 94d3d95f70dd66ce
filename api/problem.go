package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// problemContentType is the media type of error answers (RFC 9457).
const problemContentType = "application/problem+json"

// ProblemTypePrefix starts the type URI of every problem the API answers; the rest
// is a slug such as "validation" or "not-found" (the OpenAPI document lists them).
const ProblemTypePrefix = "urn:configsync:problem:"

// Problem is an error answer (RFC 9457, application/problem+json).
type Problem struct {
	// Type is ProblemTypePrefix and a slug naming the kind of problem.
	Type string `json:"type"`
	// Title is the HTTP status text.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail says what went wrong with this request.
	Detail string `json:"detail,omitempty"`
	// Instance is the request's path.
	Instance string `json:"instance,omitempty"`
	// Errors lists the fields at fault (422 and some 400 answers).
	Errors []FieldError `json:"errors,omitempty"`
	// Warnings lists config problems that do not refuse it, alongside Errors.
	Warnings []FieldError `json:"warnings,omitempty"`
}

// FieldError is one problem with one field of a request.
type FieldError struct {
	// Field is the path of the field in the request body or query, such as
	// "displayName", "parameters.baseUrl" or
	// "config.resources[0].port.entity.mappings.identifier".
	Field string `json:"field"`
	// Message says what is wrong; it never contains a credential's value.
	Message string `json:"message"`
	// Line and Column locate the field's value in the request body (1-based), for
	// config problems.
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
	// JQLine and JQColumn locate a jq syntax error inside the expression (1-based).
	JQLine   int `json:"jqLine,omitempty"`
	JQColumn int `json:"jqColumn,omitempty"`
	// Resource is the index into config.resources[] of a config problem.
	Resource *int `json:"resource,omitempty"`
	// Kind is that resource's kind.
	Kind string `json:"kind,omitempty"`
}

// apiError is an error answered as its problem. cause, when set, is logged (for
// 5xx) and found by errors.Is/As, but never shown.
type apiError struct {
	p     Problem
	cause error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return e.p.Title + ": " + e.p.Detail + ": " + e.cause.Error()
	}
	return e.p.Title + ": " + e.p.Detail
}

func (e *apiError) Unwrap() error { return e.cause }

// newProblem returns a problem of the given status and type slug.
func newProblem(status int, slug, detail string) Problem {
	return Problem{Type: ProblemTypePrefix + slug, Title: http.StatusText(status), Status: status, Detail: detail}
}

func errBadRequest(detail string, fields ...FieldError) error {
	p := newProblem(http.StatusBadRequest, "bad-request", detail)
	p.Errors = fields
	return &apiError{p: p}
}

func errValidation(detail string, fields []FieldError) error {
	p := newProblem(http.StatusUnprocessableEntity, "validation", detail)
	p.Errors = fields
	return &apiError{p: p}
}

// errNotFound is the answer for what does not exist and for what belongs to a tenant
// the token does not name: the two must look the same.
func errNotFound(what string) error {
	return &apiError{p: newProblem(http.StatusNotFound, "not-found", what+" not found")}
}

func errConflict(detail string) error {
	return &apiError{p: newProblem(http.StatusConflict, "conflict", detail)}
}

func errUnavailable(detail string, cause error) error {
	return &apiError{p: newProblem(http.StatusServiceUnavailable, "unavailable", detail), cause: cause}
}

// fail answers err as a problem. Errors that are not *apiError are internal: the
// client sees a generic 500 and the log gets the cause; except a backing service
// being unreachable (Redis or NATS down, timed out), which is a 503 "unavailable" the
// client may retry.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case unreachable(err):
		ae = &apiError{p: newProblem(http.StatusServiceUnavailable, "unavailable", "a backing service (Redis or NATS) is unreachable; retry"), cause: err}
	default:
		ae = &apiError{p: newProblem(http.StatusInternalServerError, "internal", "internal error; the server log has the cause"), cause: err}
	}
	if ae.p.Status >= 500 {
		s.log.Error("request failed", zap.String("method", r.Method), zap.String("route", routeLabel(r)),
			zap.Int("status", ae.p.Status), zap.Error(ae.cause))
	}
	if ae.p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="configsync"`)
	}
	s.writeProblem(w, r, ae.p)
}

// unreachable reports whether err is a backing service (Redis, NATS) being away rather
// than a fault of the server: a network error (refused, reset, timed out), a
// connection closed under a command, a connection pool that gave none in time, a
// closed client, or a deadline. The stores wrap their client's errors with %w.
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrConnectionClosed)
}

// problemBody encodes p for the request r.
func (s *server) problemBody(r *http.Request, p Problem) []byte {
	p.Instance = r.URL.Path
	b, err := json.Marshal(p)
	if err != nil { // a Problem always encodes; keep the answer well-formed anyway
		return []byte(`{"type":"` + ProblemTypePrefix + `internal","title":"Internal Server Error","status":500}`)
	}
	return b
}

func (s *server) writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	w.Header().Set("Content-Type", problemContentType)
	w.WriteHeader(p.Status)
	_, _ = w.Write(s.problemBody(r, p))
}

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding the response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
	return nil
}
