package httpsource

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/itchyny/gojq"
)

// jqExpr is a compiled selector jq expression (dataPath, cursorPath, a
// discovery field, a custom auth pick). A *gojq.Code is safe for concurrent
// runs, so one compiled expression serves every fetch of a resource.
type jqExpr struct {
	// where names the field it came from ("selector.dataPath"), for messages.
	where string
	src   string
	code  *gojq.Code
	// fields is the path of a dataPath made only of field names (see
	// pathFields), and simple says it is one: its items can be cut from the
	// response's bytes (splitRaw).
	fields []string
	simple bool
}

// noEnviron is the environment jq's env and $ENV see: none, since in a
// multi-tenant service every variable may hold someone's secret.
func noEnviron() []string { return []string{} }

// compileJQ parses and compiles src; its errors name where.
func compileJQ(where, src string) (*jqExpr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, fmt.Errorf("%s: jq expression is empty", where)
	}
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: jq %q: %w", where, src, err)
	}
	code, err := gojq.Compile(q, gojq.WithEnvironLoader(noEnviron))
	if err != nil {
		return nil, fmt.Errorf("%s: jq %q: %w", where, src, err)
	}
	fields, simple := pathFields(src)
	return &jqExpr{where: where, src: src, code: code, fields: fields, simple: simple}, nil
}

// optJQ compiles the optional string field key of m.
func optJQ(m map[string]any, key, where string) (*jqExpr, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	s, ok := v.(string)
	if !ok {
		// YAML reads the jq literals true, false and numbers as scalars.
		if t, ok := scalarText(v); ok {
			s = t
		} else {
			return nil, fmt.Errorf("%s must be a jq expression (a string), got %s", where, kindOf(v))
		}
	}
	return compileJQ(where, s)
}

// jqRunError is a jq expression that failed at run time. Its message comes
// from gojq, which quotes the values it failed on; for expressions run on
// token responses the message is withheld, since it may quote the token.
type jqRunError struct {
	where, src, msg string
	// cause is the context error when the time limit or a cancellation
	// stopped the expression; gojq's own error is not kept, so nothing
	// unscrubbed hides in the chain.
	cause error
}

// Error formats the error.
func (e *jqRunError) Error() string {
	return fmt.Sprintf("%s: jq %q: %s", e.where, e.src, e.msg)
}

// Unwrap returns the context error, if any.
func (e *jqRunError) Unwrap() error { return e.cause }

// run evaluates e on input, calling fn on each output, under a time limit of
// timeout. fn's error stops the run and is returned as is. scrub cleans
// gojq's messages (nil: withhold them).
func (e *jqExpr) run(ctx context.Context, timeout time.Duration, input any, scrub func(string) string, fn func(any) error) error {
	jctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	iter := e.code.RunWithContext(jctx, input)
	for {
		v, ok := iter.Next()
		if !ok {
			return nil
		}
		if err, isErr := v.(error); isErr {
			return e.runError(ctx, jctx, timeout, err, scrub)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
}

// runError turns a gojq error into a *jqRunError.
func (e *jqExpr) runError(ctx, jctx context.Context, timeout time.Duration, err error, scrub func(string) string) error {
	if ctx.Err() != nil {
		return &jqRunError{where: e.where, src: e.src, msg: ctx.Err().Error(), cause: ctx.Err()}
	}
	if jctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return &jqRunError{where: e.where, src: e.src, msg: fmt.Sprintf("stopped after the time limit of %v", timeout), cause: context.DeadlineExceeded}
	}
	var he *gojq.HaltError
	if errors.As(err, &he) && he.Value() == nil {
		return &jqRunError{where: e.where, src: e.src, msg: "halted"}
	}
	if scrub == nil {
		return &jqRunError{where: e.where, src: e.src, msg: "failed (the message is withheld: it may quote a credential)"}
	}
	msg := scrub(err.Error())
	if len(msg) > 300 {
		msg = strings.ToValidUTF8(msg[:300], "") + "…"
	}
	return &jqRunError{where: e.where, src: e.src, msg: msg}
}

// first returns the first output of e on input, or ok false when there is none.
func (e *jqExpr) first(ctx context.Context, timeout time.Duration, input any, scrub func(string) string) (v any, ok bool, err error) {
	errFound := errors.New("found")
	err = e.run(ctx, timeout, input, scrub, func(x any) error {
		v, ok = x, true
		return errFound
	})
	if err == errFound {
		err = nil
	}
	return v, ok, err
}
