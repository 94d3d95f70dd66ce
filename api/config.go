package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"

	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/mapping"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/source/httpsource"
)

// jqPosition finds the position mapping adds to a jq syntax error.
var jqPosition = regexp.MustCompile(`at line (\d+), column (\d+) of the expression`)

// configProblems validates a config document as `configsync validate` does: Parse,
// Compile (every jq expression), and, for an "http" integration, each resource's
// selector fields. params are the integration's parameters (for the http source's
// default pagination). field names the document in the request ("config"); body and
// start locate it there, so that each problem's line and column are the request
// body's.
func configProblems(typeID string, params map[string]any, doc []byte, field string, body []byte, start int) (cfg *mapping.Config, errs, warns []FieldError) {
	cfg, problems := mapping.Parse(doc)
	if cfg != nil {
		_, cps := mapping.Compile(cfg, mapping.Options{})
		problems = append(problems, cps...)
	}
	if cfg != nil && typeID == httpsource.TypeID {
		pagination, _ := params["pagination"].(map[string]any)
		for i, r := range cfg.Resources {
			ignored, err := httpsource.CheckSelector(r.Kind, r.Selector.Extra, pagination)
			for _, f := range ignored {
				problems = append(problems, mapping.Problem{Severity: mapping.SeverityWarning, Resource: i, Kind: r.Kind,
					Path: r.Path + ".selector." + f, Message: "not a field of the http source; ignored"})
			}
			if err != nil {
				problems = append(problems, mapping.Problem{Severity: mapping.SeverityError, Resource: i, Kind: r.Kind,
					Path: r.Path + ".selector", Message: err.Error()})
			}
		}
	}
	baseLine, baseCol := 1, 1
	if start >= 0 {
		baseLine, baseCol = lineCol(body, start)
	}
	for _, p := range problems {
		fe := FieldError{Field: field, Message: p.Message, Kind: p.Kind}
		if p.Path != "" {
			fe.Field = field + "." + p.Path
		}
		if p.Resource >= 0 {
			fe.Resource = &p.Resource
		}
		if p.Line > 0 && start >= 0 {
			fe.Line, fe.Column = p.Line+baseLine-1, p.Column
			if p.Line == 1 {
				fe.Column = p.Column + baseCol - 1
			}
		}
		if m := jqPosition.FindStringSubmatch(p.Message); m != nil {
			fe.JQLine, _ = strconv.Atoi(m[1])
			fe.JQColumn, _ = strconv.Atoi(m[2])
		}
		if p.Severity == mapping.SeverityError {
			errs = append(errs, fe)
		} else {
			warns = append(warns, fe)
		}
	}
	return cfg, errs, warns
}

// configField checks the config member of a request body: a JSON object that passes
// configProblems. It returns the document as given (stored byte for byte: keys the
// mapping does not know are kept) and the warnings.
func configField(typeID string, params map[string]any, raw json.RawMessage, body []byte) (doc []byte, errs, warns []FieldError) {
	if jsonKind(raw) != "an object" {
		return nil, []FieldError{{Field: "config", Message: "must be an object (Port's integration config), not " + jsonKind(raw)}}, nil
	}
	_, errs, warns = configProblems(typeID, params, raw, "config", body, memberStart(body, "config"))
	return raw, errs, warns
}

// addConfig stores doc as the integration's next config version and publishes
// config.patched naming it, so that a worker syncs it. When publishing fails the
// version is stored but not announced: the answer is 503, and the caller repeats the
// request (which stores and announces the next version).
func (s *server) addConfig(ctx context.Context, tenant, id string, doc []byte) (int64, error) {
	v, err := s.d.Integrations.AddConfig(ctx, tenant, id, doc)
	if errors.Is(err, integration.ErrNotFound) {
		return 0, errNotFound("integration " + quoteShort(id))
	}
	if err != nil {
		return 0, err
	}
	ev, err := queue.NewEnvelope(queue.TypeConfigPatched, tenant, id, queue.ConfigPatched{ConfigVersion: v})
	if err != nil {
		return v, fmt.Errorf("building config.patched for %s/%s: %w", tenant, id, err)
	}
	if err := s.d.Queue.Publish(ctx, ev); err != nil {
		return v, errUnavailable(fmt.Sprintf("config version %d is stored but its config.patched event could not be published; "+
			"repeat the request", v), err)
	}
	return v, nil
}

// patchConfig serves PATCH /v1/tenants/{tenant}/integrations/{id}/config and Port's
// PATCH /v1/integration/{id}/config: body {"config": {...}}, validated, stored as the
// next version (even when it equals the last) and announced; 200 with
// {"ok": true, "integration": {...}}.
func (s *server) patchConfig(w http.ResponseWriter, r *http.Request, c *call) error {
	id := r.PathValue("id")
	in, err := s.integration(r.Context(), c.tenant, id)
	if err != nil {
		return err
	}
	m, body, err := s.object(w, r, false, "config")
	if err != nil {
		return err
	}
	raw, ok := m["config"]
	if !ok || isNull(raw) {
		return errValidation("config is required", []FieldError{{Field: "config", Message: "required"}})
	}
	doc, errs, warns := configField(in.Type, in.Parameters, raw, body)
	if len(errs) > 0 {
		return configRefused(errs, warns)
	}
	if _, err := s.addConfig(r.Context(), c.tenant, id, doc); err != nil {
		return err
	}
	if in, err = s.integration(r.Context(), c.tenant, id); err != nil {
		return err
	}
	v, err := s.view(r.Context(), in, true)
	if err != nil {
		return err
	}
	out := map[string]any{"ok": true, "integration": v}
	if len(warns) > 0 {
		out["warnings"] = warns
	}
	return writeJSON(w, http.StatusOK, out)
}

// configRefused is the 422 of a config with errors, warnings alongside.
func configRefused(errs, warns []FieldError) error {
	e := errValidation(fmt.Sprintf("the config has %d error(s)", len(errs)), errs).(*apiError)
	e.p.Warnings = warns
	return e
}

// newestConfig parses the integration's newest config; nil when it has none.
func (s *server) newestConfig(ctx context.Context, in *integration.Integration) (*mapping.Config, error) {
	if in.ConfigVersion == 0 {
		return nil, nil
	}
	doc, err := s.d.Integrations.Config(ctx, in.Tenant, in.ID, in.ConfigVersion)
	if err != nil {
		return nil, err
	}
	cfg, problems := mapping.Parse(doc)
	if cfg == nil {
		return nil, fmt.Errorf("config version %d of %s/%s: %w", in.ConfigVersion, in.Tenant, in.ID, problems.Err())
	}
	return cfg, nil
}
