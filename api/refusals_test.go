package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/configsync/configsync/queue"
)

// TestRefusals sends bad requests to an API holding a file integration "svc" (with a
// config) and an http integration "custom" (whose auth method has no connection
// test), and checks each answer: status, problem type, and the fields named.
func TestRefusals(t *testing.T) {
	e := newEnv(t)
	tok := e.token(true, "acme")
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, e.fileIntegration("svc")), http.StatusCreated)
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, map[string]any{"id": "custom", "displayName": "Custom", "type": "http",
		"parameters": map[string]any{"baseUrl": "https://api.example.com", "authType": "custom",
			"customAuth": map[string]any{"request": map[string]any{"path": "/login", "body": map[string]any{"key": "{{credentials.key}}"}},
				"headers": map[string]any{"Authorization": `"Bearer " + .token`}}},
		"credentials": map[string]string{"key": "k"}}), http.StatusCreated)
	eventsBefore := len(e.commands())

	const ints = "/v1/tenants/acme/integrations"
	valid := func(change func(m map[string]any)) map[string]any {
		m := map[string]any{"displayName": "ok", "type": "file", "parameters": map[string]any{"root": e.dir}}
		change(m)
		return m
	}
	badJQ := "{\n  \"config\": {\n    \"resources\": [{\"kind\": \"service\", \"selector\": {\"query\": \"true\"},\n" +
		"      \"port\": {\"entity\": {\"mappings\": {\"identifier\": \".name | ascii_downcase(\", \"blueprint\": \"\\\"service\\\"\",\n" +
		"        \"properties\": {\"lang\": \".lang | nosuchfunction\"}}}}}]\n  }\n}"

	tests := []struct {
		name, method, path string
		body               any
		status             int
		slug               string
		fields             []string // errors[] must name exactly these fields
		detail             string   // the detail must contain this
		check              func(t *testing.T, m map[string]any)
	}{
		{name: "displayName of 101 characters", method: "POST", path: ints,
			body:   valid(func(m map[string]any) { m["displayName"] = strings.Repeat("é", 101) }),
			status: 422, slug: "validation", fields: []string{"displayName"}},
		{name: "description of 501 characters", method: "POST", path: ints,
			body:   valid(func(m map[string]any) { m["description"] = strings.Repeat("x", 501) }),
			status: 422, slug: "validation", fields: []string{"description"}},
		{name: "unknown top-level fields, all named", method: "POST", path: ints,
			body:   valid(func(m map[string]any) { m["colour"] = "red"; m["owner"] = "me" }),
			status: 422, slug: "validation", fields: []string{"colour", "owner"}, detail: `"colour", "owner"`},
		{name: "missing displayName and type", method: "POST", path: ints, body: map[string]any{},
			status: 422, slug: "validation", fields: []string{"displayName", "type"}},
		{name: "unknown type", method: "POST", path: ints, body: valid(func(m map[string]any) { m["type"] = "ftp" }),
			status: 422, slug: "validation", fields: []string{"type"}},
		{name: "parameters checked against the type's metadata", method: "POST", path: ints,
			body:   map[string]any{"displayName": "x", "type": "http", "parameters": map[string]any{"timeout": "fast", "maxConcurrentRequests": 500, "authType": "magic", "colour": 1}},
			status: 422, slug: "validation",
			fields: []string{"parameters.baseUrl", "parameters.timeout", "parameters.maxConcurrentRequests", "parameters.authType", "parameters.colour"}},
		{name: "the source refuses missing credentials", method: "POST", path: ints,
			body:   map[string]any{"displayName": "x", "type": "http", "parameters": map[string]any{"baseUrl": "https://x.example", "authType": "bearer"}},
			status: 422, slug: "validation", fields: []string{"parameters"}, detail: "source refuses"},
		{name: "credentials must be strings", method: "POST", path: ints,
			body:   valid(func(m map[string]any) { m["credentials"] = map[string]any{"token": 12, "webhookSecret": "short"} }),
			status: 422, slug: "validation", fields: []string{"credentials.token", "credentials.webhookSecret"}},
		{name: "resyncInterval under a minute", method: "POST", path: ints,
			body: valid(func(m map[string]any) { m["resyncInterval"] = "5s" }), status: 422, slug: "validation", fields: []string{"resyncInterval"}},
		{name: "tags not strings", method: "POST", path: ints,
			body: valid(func(m map[string]any) { m["tags"] = []any{1} }), status: 422, slug: "validation", fields: []string{"tags"}},
		{name: "invalid id", method: "POST", path: ints,
			body: valid(func(m map[string]any) { m["id"] = "Not_Valid" }), status: 422, slug: "validation", fields: []string{"id"}},
		{name: "PUT id differs from the path", method: "PUT", path: ints + "/svc",
			body: valid(func(m map[string]any) { m["id"] = "other" }), status: 422, slug: "validation", fields: []string{"id"}},
		{name: "not JSON", method: "POST", path: ints, body: `{"displayName": "x", "credentials": {"token": "s3cr3t"`,
			status: 400, slug: "bad-request", detail: "syntax error at byte"},
		{name: "not an object", method: "POST", path: ints, body: `["x"]`, status: 422, slug: "validation"},
		{name: "empty body", method: "POST", path: ints, body: ``, status: 400, slug: "bad-request"},
		{name: "bad jq: every problem with its path and positions", method: "PATCH", path: ints + "/svc/config", body: badJQ,
			status: 422, slug: "validation",
			fields: []string{"config.resources[0].port.entity.mappings.identifier", "config.resources[0].port.entity.mappings.properties.lang"},
			check: func(t *testing.T, m map[string]any) {
				fe := fieldErrors(t, m)
				id := fe["config.resources[0].port.entity.mappings.identifier"]
				// The value ".name | ascii_downcase(" sits on line 4 of the body; the jq
				// error is at its end, column 24 of the expression.
				if id["line"] != 4.0 || id["jqLine"] != 1.0 || id["jqColumn"] != 24.0 || id["resource"] != 0.0 || id["kind"] != "service" {
					t.Errorf("identifier problem: %v", id)
				}
				if col := id["column"].(float64); col < 40 {
					t.Errorf("column %v is not the value's", col)
				}
				if lang := fe["config.resources[0].port.entity.mappings.properties.lang"]; !strings.Contains(lang["message"].(string), "nosuchfunction") || lang["line"] != 5.0 {
					t.Errorf("lang problem: %v", lang)
				}
			}},
		{name: "config without resources", method: "PATCH", path: ints + "/svc/config", body: `{"config": {"deleteDependents": "yes"}}`,
			status: 422, slug: "validation", fields: []string{"config.deleteDependents", "config.resources"}},
		{name: "config not an object", method: "PATCH", path: ints + "/svc/config", body: `{"config": [1]}`,
			status: 422, slug: "validation", fields: []string{"config"}},
		{name: "PATCH without config", method: "PATCH", path: ints + "/svc/config", body: `{}`,
			status: 422, slug: "validation", fields: []string{"config"}},
		{name: "PATCH with an unknown field", method: "PATCH", path: ints + "/svc/config", body: `{"config": {"resources": []}, "cfg": 1}`,
			status: 422, slug: "validation", fields: []string{"cfg"}},
		{name: "bad config at create, with the rest", method: "POST", path: ints,
			body: valid(func(m map[string]any) {
				m["displayName"] = strings.Repeat("n", 101)
				m["config"] = map[string]any{"resources": []any{map[string]any{"kind": "k", "selector": map[string]any{"query": "("},
					"port": map[string]any{"entity": map[string]any{"mappings": map[string]any{"identifier": ".id", "blueprint": `"b"`}}}}}}
			}),
			status: 422, slug: "validation", fields: []string{"displayName", "config.resources[0].selector.query"}},
		{name: "http selector checked", method: "PATCH", path: ints + "/custom/config",
			body: `{"config": {"resources": [{"kind": "k", "selector": {"query": "true", "method": "BREW", "dataPath": "("},
			  "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": "\"b\""}}}}]}}`,
			status: 422, slug: "validation", fields: []string{"config.resources[0].selector"}},
		{name: "connection test of a type without one", method: "POST", path: ints + "/svc/test", status: 400, slug: "test-not-supported", detail: `"file"`},
		{name: "connection test of an auth method without one", method: "POST", path: ints + "/custom/test", status: 400, slug: "test-not-supported", detail: `"custom"`},
		{name: "connection test with an unknown field", method: "POST", path: ints + "/svc/test", body: `{"path": "/"}`, status: 422, slug: "validation", fields: []string{"path"}},
		{name: "limit over 1000", method: "GET", path: ints + "?limit=1001", status: 400, slug: "bad-request", fields: []string{"limit"}},
		{name: "limit zero", method: "GET", path: ints + "?limit=0", status: 400, slug: "bad-request", fields: []string{"limit"}},
		{name: "cursor not ours", method: "GET", path: ints + "?cursor=!!!", status: 400, slug: "bad-request", fields: []string{"cursor"}},
		{name: "runs cursor not ours", method: "GET", path: ints + "/svc/runs?cursor=eA", status: 400, slug: "bad-request", fields: []string{"cursor"}},
		{name: "missing integration", method: "GET", path: ints + "/nope", status: 404, slug: "not-found"},
		{name: "missing run", method: "GET", path: ints + "/svc/runs/run-x", status: 404, slug: "not-found"},
		{name: "resync with a blank reason", method: "POST", path: ints + "/svc/resync", body: `{"reason": " "}`, status: 422, slug: "validation", fields: []string{"reason"}},
		{name: "events without a body", method: "POST", path: ints + "/svc/events", body: ``, status: 400, slug: "bad-request"},
		{name: "blueprint not valid", method: "PUT", path: "/v1/tenants/acme/blueprints/bp",
			body:   `{"schema": {"properties": {"x": {"type": "strin"}}, "required": ["y"]}}`,
			status: 422, slug: "validation", fields: []string{"schema.properties.x.type", "schema.required[0]"}},
		{name: "blueprint identifier differs", method: "PUT", path: "/v1/tenants/acme/blueprints/bp",
			body: `{"identifier": "other", "schema": {"properties": {}}}`, status: 422, slug: "validation", fields: []string{"identifier"}},
		{name: "missing blueprint", method: "GET", path: "/v1/tenants/acme/blueprints/nope", status: 404, slug: "not-found"},
		{name: "missing blueprint delete", method: "DELETE", path: "/v1/tenants/acme/blueprints/nope", status: 404, slug: "not-found"},
		{name: "filter without a value", method: "GET", path: "/v1/tenants/acme/blueprints/team/entities?filter=x", status: 400, slug: "bad-request"},
	}
	e.seedCatalog("acme", "svc")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.req(tc.method, tc.path, tok, tc.body)
			m := wantProblem(t, r, tc.status, tc.slug)
			if tc.fields != nil {
				fe := fieldErrors(t, m)
				if len(fe) != len(tc.fields) {
					t.Errorf("errors name %d fields, want %v: %s", len(fe), tc.fields, r.body)
				}
				for _, f := range tc.fields {
					if fe[f] == nil || fe[f]["message"] == "" {
						t.Errorf("errors lack %s: %s", f, r.body)
					}
				}
			}
			if !strings.Contains(m["detail"].(string), tc.detail) {
				t.Errorf("detail %q lacks %q", m["detail"], tc.detail)
			}
			if strings.Contains(string(r.body), "s3cr3t") {
				t.Errorf("the answer echoes the body: %s", r.body)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
	// Nothing refused was stored or announced.
	if n := len(e.commands()); n != eventsBefore {
		t.Fatalf("%d events published by refused requests", n-eventsBefore)
	}
	if in, _ := e.ints.Get(context.Background(), "acme", "svc"); in.ConfigVersion != 1 {
		t.Fatalf("a refused config was stored: version %d", in.ConfigVersion)
	}
	// 100 characters is still fine.
	want(t, e.req("POST", ints, tok, valid(func(m map[string]any) { m["displayName"] = strings.Repeat("é", 100) })), http.StatusCreated)
}

// TestOversizedBody: a body over MaxBodyBytes is 413, whether its length is
// announced or streamed, on every kind of route that reads one.
func TestOversizedBody(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 4096 })
	tok := e.token(true, "acme")
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, e.fileIntegration("svc")), http.StatusCreated)
	big := `{"displayName": "` + strings.Repeat("x", 5000) + `", "type": "file"}`
	for _, path := range []string{
		"POST /v1/tenants/acme/integrations", "PUT /v1/tenants/acme/integrations/svc", "PATCH /v1/tenants/acme/integrations/svc/config",
		"PATCH /v1/integration/svc/config", "POST /v1/tenants/acme/integrations/svc/events", "PUT /v1/tenants/acme/blueprints/bp",
		"POST /v1/tenants/acme/integrations/svc/resync", "POST /v1/tenants/acme/integrations/svc/test",
	} {
		method, p, _ := strings.Cut(path, " ")
		wantProblem(t, e.req(method, p, tok, big), http.StatusRequestEntityTooLarge, "too-large")
		// Streamed without a Content-Length.
		r, err := http.NewRequest(method, e.srv.URL+p, io.MultiReader(bytes.NewReader([]byte(big))))
		if err != nil {
			t.Fatal(err)
		}
		r.ContentLength = -1
		r.Header.Set("Authorization", "Bearer "+tok)
		res, err := e.srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("%s streamed: %d", path, res.StatusCode)
		}
	}
	// The default limit is 1 MiB.
	d := newEnv(t)
	huge := `{"displayName": "` + strings.Repeat("x", DefaultMaxBodyBytes) + `", "type": "file"}`
	wantProblem(t, d.req("POST", "/v1/tenants/acme/integrations", d.token(true, "acme"), huge), http.StatusRequestEntityTooLarge, "too-large")
	if n := len(e.commandsOf(queue.TypeConfigPatched)); n != 1 {
		t.Fatalf("%d config.patched", n)
	}
}
