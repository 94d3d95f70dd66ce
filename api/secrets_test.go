package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/configsync/configsync/integration"
)

// TestPlantedSecret creates integrations with secret credentials, calls every route
// (successes and refusals, some with the secret in the request), and then looks for
// the secret in every response body, every log line (debug level), every message of
// every NATS stream, and every Redis value under the test's prefix.
func TestPlantedSecret(t *testing.T) {
	e := newEnv(t)
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	planted := "PLANTED" + hex.EncodeToString(rnd[:])
	hook := planted + "-hook"
	given := planted + "-given"
	// The remote echoes the Authorization header it got into its refusals.
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+planted {
			http.Error(w, "bad credentials: "+r.Header.Get("Authorization"), http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`[]`))
	}))
	defer remote.Close()

	tok := e.token(true, "acme")
	called := map[string]bool{}
	do := func(pattern, path string, body any, hdr ...string) *resp {
		t.Helper()
		called[pattern] = true
		method, _, _ := strings.Cut(pattern, " ")
		token := tok
		if len(hdr) > 0 && hdr[0] == SignatureHeader {
			token = ""
		}
		if strings.HasSuffix(pattern, "z") || strings.HasSuffix(pattern, "/metrics") || strings.HasSuffix(pattern, ".json") {
			token = ""
		}
		return e.req(method, path, token, body, hdr...)
	}
	const t0 = "/v1/tenants/{tenant}"
	const in0 = t0 + "/integrations/{id}"
	const ints = "/v1/tenants/acme/integrations"
	httpIntegration := map[string]any{
		"id": "web", "displayName": "API", "type": "http",
		"parameters": map[string]any{"baseUrl": remote.URL, "authType": "bearer"},
		"config": rawJSON(`{"resources": [{"kind": "item", "selector": {"query": "true", "path": "/items"},
		  "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": "\"service\""}}}}]}`),
		"credentials": map[string]string{"token": planted, WebhookSecretCredential: hook},
	}
	want(t, do("POST "+t0+"/integrations", ints, httpIntegration), http.StatusCreated)
	basic := map[string]any{"id": "basic", "displayName": "Basic", "type": "http",
		"parameters":  map[string]any{"baseUrl": remote.URL, "authType": "basic"},
		"credentials": map[string]string{"username": "user-" + planted, "password": planted}}
	want(t, do("PUT "+in0, ints+"/basic", basic), http.StatusCreated)
	want(t, do("GET "+t0+"/integrations", ints, nil), http.StatusOK)
	want(t, do("GET "+in0, ints+"/web", nil), http.StatusOK)
	delete(httpIntegration, "credentials")
	want(t, do("PUT "+in0, ints+"/web", httpIntegration), http.StatusOK)
	want(t, do("PATCH "+in0+"/config", ints+"/web/config", `{"config": {"resources": []}}`), http.StatusOK)
	want(t, do("PATCH /v1/integration/{id}/config", "/v1/integration/web/config", `{"config": {"resources": []}, "note": "`+planted+`"}`), http.StatusUnprocessableEntity)
	want(t, do("PATCH /v1/integration/{id}/config", "/v1/integration/web/config", `{"config": {"resources": [{"kind": "item", "selector": {"query": "true", "path": "/items"},
	  "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": "\"service\""}}}}]}}`), http.StatusOK)

	r := do("POST "+in0+"/test", ints+"/web/test", nil)
	want(t, r, http.StatusOK)
	if r.json(t)["ok"] != true {
		t.Fatalf("test with the stored credentials: %s", r)
	}
	r = do("POST "+in0+"/test", ints+"/web/test", `{"credentials": {"token": "`+given+`"}}`)
	want(t, r, http.StatusOK)
	if r.json(t)["ok"] != false || r.json(t)["status"] != 401.0 {
		t.Fatalf("test with wrong credentials: %s", r)
	}
	r = do("POST "+in0+"/test", ints+"/basic/test", nil)
	want(t, r, http.StatusOK)
	if r.json(t)["ok"] != false {
		t.Fatalf("test with basic credentials: %s", r)
	}

	r = do("POST "+in0+"/resync", ints+"/web/resync", nil)
	want(t, r, http.StatusAccepted)
	runID := r.json(t)["runId"].(string)
	want(t, do("GET "+in0+"/runs", ints+"/web/runs", nil), http.StatusOK)
	want(t, do("GET "+in0+"/runs/{runId}", ints+"/web/runs/"+runID, nil), http.StatusOK)
	want(t, do("POST "+in0+"/runs/{runId}/cancel", ints+"/web/runs/"+runID+"/cancel", nil), http.StatusAccepted)

	ev := `{"kind": "item", "upsert": [{"id": "a"}]}`
	want(t, do("POST "+in0+"/events", ints+"/web/events", ev, SignatureHeader, signature(hook, ev)), http.StatusAccepted)
	want(t, do("POST "+in0+"/events", ints+"/web/events", ev, SignatureHeader, signature(planted, ev)), http.StatusUnauthorized)
	want(t, do("POST "+in0+"/events", ints+"/web/events", ev), http.StatusAccepted)

	// Refusals with the secret in the request.
	want(t, do("POST "+t0+"/integrations", ints, `{"displayName": "x", "type": "http", "credentials": {"token": "`+planted+`"`), http.StatusBadRequest)
	want(t, do("POST "+t0+"/integrations", ints, map[string]any{"displayName": "x", "type": "http", "colour": 1,
		"parameters": map[string]any{"baseUrl": remote.URL}, "credentials": map[string]any{"token": []string{planted}}}), http.StatusUnprocessableEntity)
	want(t, do("POST "+t0+"/integrations", ints, map[string]any{"displayName": "x", "type": "http",
		"parameters": map[string]any{"baseUrl": "https://user:" + planted + "@example.com"}, "credentials": map[string]string{"token": planted}}), http.StatusUnprocessableEntity)
	want(t, do("PUT "+in0, ints+"/web", map[string]any{"displayName": "x", "type": "http",
		"parameters":  map[string]any{"baseUrl": "https://" + planted + "@example.com", "authType": "bearer"},
		"credentials": map[string]string{"token": planted}}), http.StatusUnprocessableEntity)

	// The catalog routes, with entities owned by web.
	e.seedCatalog("acme", "web")
	called["PUT "+t0+"/blueprints/{id}"] = true // seedCatalog PUTs the blueprints
	want(t, do("GET "+t0+"/blueprints", "/v1/tenants/acme/blueprints", nil), http.StatusOK)
	want(t, do("GET "+t0+"/blueprints/{id}", "/v1/tenants/acme/blueprints/service", nil), http.StatusOK)
	want(t, do("GET "+t0+"/blueprints/{id}/entities", "/v1/tenants/acme/blueprints/service/entities?filter=lang=go", nil), http.StatusOK)
	want(t, do("GET "+t0+"/blueprints/{id}/entities/{identifier...}", "/v1/tenants/acme/blueprints/service/entities/api", nil), http.StatusOK)
	want(t, do("PUT "+t0+"/blueprints/{id}", "/v1/tenants/acme/blueprints/spare", `{"schema": {"properties": {}}}`), http.StatusCreated)
	want(t, do("DELETE "+t0+"/blueprints/{id}", "/v1/tenants/acme/blueprints/spare", nil), http.StatusNoContent)

	want(t, do("GET /v1/integration-types", "/v1/integration-types", nil), http.StatusOK)
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
		want(t, do("GET "+p, p, nil), http.StatusOK)
	}
	// Redis as it is with every integration in place, and again after the deletes.
	vals := e.redisValues()
	want(t, do("DELETE "+in0, ints+"/basic", nil), http.StatusOK)
	want(t, do("DELETE "+in0, ints+"/web?deleteEntities=true", nil), http.StatusOK)

	for _, rt := range (&server{}).routes() {
		if !called[rt.pattern()] {
			t.Errorf("route %s not called", rt.pattern())
		}
	}

	// Now look everywhere.
	needles := []string{planted, base64.StdEncoding.EncodeToString([]byte(planted)), hex.EncodeToString([]byte(planted))}
	look := func(where, text string) {
		for _, n := range needles {
			if strings.Contains(text, n) {
				t.Errorf("the planted secret is in %s: %s", where, text)
			}
		}
	}
	e.mu.Lock()
	for i, b := range e.bodies {
		look("response body #"+strconv.Itoa(i), string(b))
	}
	n := len(e.bodies)
	e.mu.Unlock()
	lines := e.logLines()
	for _, l := range lines {
		look("a log line", l)
	}
	msgs := 0
	for _, stream := range []string{"CONFIGSYNC_COMMANDS", "CONFIGSYNC_CHANGES", "CONFIGSYNC_DLQ"} {
		for _, m := range e.streamMessages(stream) {
			msgs++
			look(stream+" "+m.Subject, string(m.Data))
			for k, vs := range m.Header {
				look(stream+" header "+k, strings.Join(vs, ","))
			}
		}
	}
	for k, v := range e.redisValues() {
		vals[k+" (after the deletes)"] = v
	}
	for k, v := range vals {
		look("Redis "+k, k+" "+v)
	}
	if n < 35 || len(lines) < 35 || msgs < 4 || len(vals) < 20 {
		t.Fatalf("the scan saw too little: %d bodies, %d log lines, %d messages, %d keys", n, len(lines), msgs, len(vals))
	}
}

// TestSecretParameterRedacted: a parameter its type marks secret is shown redacted.
func TestSecretParameterRedacted(t *testing.T) {
	e := newEnv(t)
	s, err := newServer(e.cfg, Deps{Integrations: e.ints, Catalog: e.cat, Runs: e.runs, Queue: e.q, Sources: e.sources})
	if err != nil {
		t.Fatal(err)
	}
	// The vault test type cannot build a source, so the integration is stored
	// directly rather than through the API.
	in := &integration.Integration{Tenant: "acme", ID: "v", DisplayName: "Vault", Type: "vault",
		Parameters: map[string]any{"address": "https://vault.example", "roleSecret": "role-secret-value"}}
	stored, err := e.ints.Put(t.Context(), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.view(t.Context(), stored, true)
	if err != nil {
		t.Fatal(err)
	}
	if v.Parameters["roleSecret"] != "[redacted]" || v.Parameters["address"] != "https://vault.example" {
		t.Fatalf("parameters: %v", v.Parameters)
	}
	r := e.req("GET", "/v1/tenants/acme/integrations/v", e.token(false, "acme"), nil)
	if strings.Contains(string(r.body), "role-secret-value") {
		t.Fatalf("secret parameter in the answer: %s", r.body)
	}
}
