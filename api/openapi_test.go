package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// openAPIDoc is the part of the document the test reads.
type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Parameters map[string]struct {
			Name string `json:"name"`
			In   string `json:"in"`
		} `json:"parameters"`
	} `json:"components"`
}

type operation struct {
	OperationID string `json:"operationId"`
	Parameters  []struct {
		Ref  string `json:"$ref"`
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
	Security  []map[string]any           `json:"security"`
	Responses map[string]json.RawMessage `json:"responses"`
}

var wildcard = regexp.MustCompile(`\{([A-Za-z]+)(\.\.\.)?\}`)

// TestOpenAPICoversRoutes walks the routes the mux is built from: each is registered
// (the mux routes a request for it to its pattern), each is documented with its path
// parameters and answers, and every documented operation is a route. Every $ref
// resolves.
func TestOpenAPICoversRoutes(t *testing.T) {
	e := newEnv(t)
	s, err := newServer(e.cfg, Deps{Integrations: e.ints, Catalog: e.cat, Runs: e.runs, Queue: e.q, Sources: e.sources})
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPIDoc
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	ids := map[string]bool{}
	for _, rt := range s.routes() {
		path := wildcard.ReplaceAllString(rt.path, "{$1}")
		key := rt.method + " " + path
		// The mux has the route: a request for it lands on its pattern.
		sample := wildcard.ReplaceAllString(rt.path, "x")
		if _, pattern := s.mux.Handler(httptest.NewRequest(rt.method, sample, nil)); pattern != rt.pattern() {
			t.Errorf("%s: the mux routes %s %s to %q", rt.pattern(), rt.method, sample, pattern)
		}
		raw, ok := doc.Paths[path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("route %s is not in openapi.json", key)
			continue
		}
		delete(documented, key)
		var op operation
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if op.OperationID == "" || ids[op.OperationID] {
			t.Errorf("%s: operationId %q missing or repeated", key, op.OperationID)
		}
		ids[op.OperationID] = true
		var pathParams []string
		for _, p := range op.Parameters {
			name, in := p.Name, p.In
			if p.Ref != "" {
				c := doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
				name, in = c.Name, c.In
			}
			if in == "path" {
				pathParams = append(pathParams, name)
			}
		}
		var wants []string
		for _, m := range wildcard.FindAllStringSubmatch(rt.path, -1) {
			wants = append(wants, m[1])
		}
		slices.Sort(pathParams)
		slices.Sort(wants)
		if !slices.Equal(pathParams, wants) {
			t.Errorf("%s: path parameters %v, want %v", key, pathParams, wants)
		}
		if _, ok := op.Responses["500"]; !ok {
			t.Errorf("%s: no 500 answer documented", key)
		}
		secured := len(op.Security) > 0
		if secured != (rt.access != public) {
			t.Errorf("%s: security %v does not match access %d", key, op.Security, rt.access)
		}
		if rt.access != public {
			if _, ok := op.Responses["401"]; !ok {
				t.Errorf("%s: no 401 answer documented", key)
			}
		}
		if rt.access == tenantWrite || rt.access == tokenTenantWrite {
			if _, ok := op.Responses["403"]; !ok {
				t.Errorf("%s: no 403 answer documented", key)
			}
		}
	}
	for key := range documented {
		t.Errorf("openapi.json documents %s, which is not a route", key)
	}
	// Every $ref points at something.
	var whole map[string]any
	_ = json.Unmarshal(openAPI, &whole)
	for _, ref := range regexp.MustCompile(`"\$ref":\s*"#/([^"]+)"`).FindAllStringSubmatch(string(openAPI), -1) {
		var cur any = whole
		for _, part := range strings.Split(ref[1], "/") {
			m, _ := cur.(map[string]any)
			cur = m[part]
		}
		if cur == nil {
			t.Errorf("$ref #/%s resolves to nothing", ref[1])
		}
	}
	// It is what /openapi.json serves.
	r := e.req("GET", "/openapi.json", "", nil)
	if r.status != http.StatusOK || string(r.body) != string(openAPI) || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("/openapi.json: %d %s", r.status, r.header.Get("Content-Type"))
	}
}
