package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// marker is in tenant beta's data; no answer to tenant acme may contain it.
const marker = "BETA-MARKER"

// routeBody is a plausible valid body for a route, so that a refusal is about who
// asks, not what is sent.
func (e *env) routeBody(rt route) any {
	p := rt.path
	switch {
	case strings.HasSuffix(p, "/integrations") && rt.method == "POST":
		return e.fileIntegration("new-one")
	case strings.HasSuffix(p, "/integrations/{id}") && rt.method == "PUT":
		return e.fileIntegration("bsvc")
	case strings.HasSuffix(p, "/config"):
		return `{"config": ` + fileConfig + `}`
	case strings.HasSuffix(p, "/events"):
		return `{"kind": "service", "upsert": [{"name": "x"}]}`
	case strings.HasSuffix(p, "/blueprints/{id}") && rt.method == "PUT":
		return `{"identifier": "service", "schema": {"properties": {}}}`
	}
	return nil
}

// fill puts values into a route's path wildcards: integration ids for {id}, or the
// blueprint under /blueprints/.
func fill(path string, vals map[string]string) string {
	out := path
	out = strings.Replace(out, "/blueprints/{id}", "/blueprints/"+vals["blueprint"], 1)
	for k, v := range vals {
		out = strings.ReplaceAll(out, "{"+k+"...}", v)
		out = strings.ReplaceAll(out, "{"+k+"}", v)
	}
	return out
}

// TestTenantIsolation walks every route with tokens of tenant acme against tenant
// beta's ids: each answer is 404 or 401 (403 for a read-only token on Port's route,
// which names no tenant), never beta's data, and beta's data is unchanged after.
// The same paths with beta's own read token answer 200, so the walk does point at
// data. Without a token every /v1 route is 401; a read-only token writing to its own
// tenant is 403.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	bw := e.token(true, "beta")
	want(t, e.req("POST", "/v1/tenants/beta/integrations", bw, map[string]any{
		"id": "bsvc", "displayName": marker + " name", "description": marker + " description", "type": "file",
		"parameters": map[string]any{"root": e.dir}, "config": rawJSON(fileConfig),
		"credentials": map[string]string{"token": marker + "-credential", WebhookSecretCredential: marker + "-webhook-secret"},
	}), http.StatusCreated)
	e.seedCatalog("beta", "bsvc")
	r := e.req("POST", "/v1/tenants/beta/integrations/bsvc/resync", bw, nil)
	want(t, r, http.StatusAccepted)
	runID := r.json(t)["runId"].(string)
	// acme has data of its own under other ids.
	aw, ar := e.token(true, "acme"), e.token(false, "acme")
	want(t, e.req("POST", "/v1/tenants/acme/integrations", aw, e.fileIntegration("asvc")), http.StatusCreated)
	eventsBefore := len(e.commands())
	redisBefore := e.redisValues()

	vals := map[string]string{"tenant": "beta", "id": "bsvc", "runId": runID, "identifier": "api", "blueprint": "service"}
	dataLeaks := []string{marker, `"lang"`, `"schema"`, `"configVersion"`, `"queued"`, `"credentials"`, `"runs"`, `"entities"`, `"integrations"`}
	walked := 0
	for _, rt := range (&server{}).routes() {
		if rt.access == public || rt.access == anyToken {
			continue
		}
		walked++
		path := fill(rt.path, vals)
		t.Run(rt.pattern(), func(t *testing.T) {
			for _, who := range []struct {
				name, token string
				want        []int
			}{
				{"acme writer", aw, []int{404, 401}},
				{"acme reader", ar, []int{404, 401}},
				{"no token", "", []int{401}},
			} {
				want := who.want
				if rt.access == tokenTenantWrite && who.token == ar {
					want = []int{403}
				}
				r := e.req(rt.method, path, who.token, e.routeBody(rt))
				if !contains(want, r.status) {
					t.Errorf("%s: %s %s: got %s", who.name, rt.method, path, r)
				}
				if ct := r.header.Get("Content-Type"); ct != problemContentType {
					t.Errorf("%s: Content-Type %q", who.name, ct)
				}
				for _, leak := range dataLeaks {
					if strings.Contains(string(r.body), leak) {
						t.Errorf("%s: %s %s: the answer holds %s: %s", who.name, rt.method, path, leak, r.body)
					}
				}
			}
			// beta's own token reads what acme's could not.
			if rt.method == "GET" {
				want(t, e.req("GET", path, e.token(false, "beta"), nil), http.StatusOK)
			}
			// A read-only token writing to its own tenant: 403.
			if rt.access != tenantRead {
				ownPath := fill(rt.path, map[string]string{"tenant": "acme", "id": "asvc", "runId": "run-x", "identifier": "x", "blueprint": "team"})
				wantProblem(t, e.req(rt.method, ownPath, ar, e.routeBody(rt)), http.StatusForbidden, "forbidden")
			}
		})
	}
	if walked < 19 {
		t.Fatalf("walked %d routes", walked)
	}
	// Nothing of beta's changed, and nothing was published.
	if n := len(e.commands()); n != eventsBefore {
		t.Fatalf("%d events published", n-eventsBefore)
	}
	after := e.redisValues()
	for k, v := range redisBefore {
		if strings.Contains(k, "{beta}") && after[k] != v && !strings.HasSuffix(k, ":bpgen") {
			t.Errorf("beta's key %s changed", k)
		}
	}
	for k := range after {
		if _, ok := redisBefore[k]; !ok && strings.Contains(k, "{beta}") {
			t.Errorf("beta's key %s appeared", k)
		}
	}
	in, err := e.ints.Get(context.Background(), "beta", "bsvc")
	if err != nil || in.ConfigVersion != 1 {
		t.Fatalf("beta's integration: %+v %v", in, err)
	}
}

func contains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// rawJSON embeds a JSON text in a body built as a map.
type rawJSON string

// MarshalJSON returns the text itself.
func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }
