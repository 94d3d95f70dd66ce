package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
)

func TestOperationalRoutes(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json", "/metrics"} {
		r := e.req("GET", path, "", nil)
		want(t, r, http.StatusOK)
	}
	if r := e.req("GET", "/healthz", "", nil); !strings.Contains(string(r.body), `"ok"`) {
		t.Fatalf("healthz: %s", r)
	}
	// Requests are counted by route pattern and status, never by raw path.
	e.req("GET", "/v1/tenants/acme/integrations/nope", e.token(false, "acme"), nil)
	r := e.req("GET", "/metrics", "", nil)
	for _, s := range []string{
		`configsync_api_requests_total{code="200",method="GET",route="/healthz"} 2`,
		`configsync_api_requests_total{code="404",method="GET",route="/v1/tenants/{tenant}/integrations/{id}"} 1`,
		`configsync_api_request_duration_seconds_bucket{code="200",method="GET",route="/readyz"`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(r.body), s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}
	// An unknown route and a wrong method are problems too.
	wantProblem(t, e.req("GET", "/v2/nothing", "", nil), http.StatusNotFound, "not-found")
	p := wantProblem(t, e.req("DELETE", "/healthz", "", nil), http.StatusMethodNotAllowed, "method-not-allowed")
	if p["instance"] != "/healthz" {
		t.Errorf("instance: %v", p["instance"])
	}
}

func TestReadyzNotReady(t *testing.T) {
	e := newEnv(t)
	h, err := New(e.cfg, Deps{Integrations: e.ints, Catalog: e.cat, Runs: e.runs, Queue: e.q, Sources: e.sources,
		Ready: func(context.Context) error { return context.DeadlineExceeded }})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), ProblemTypePrefix+"unavailable") {
		t.Fatalf("readyz: %d %s", rec.Code, rec.Body)
	}
}

func TestIntegrationTypes(t *testing.T) {
	e := newEnv(t)
	r := e.req("GET", "/v1/integration-types", e.token(false, "acme"), nil)
	want(t, r, http.StatusOK)
	var got struct {
		Types []struct {
			ID             string `json:"id"`
			DisplayName    string `json:"displayName"`
			ConfigMetadata struct {
				ParametersMetadata []map[string]any `json:"parametersMetadata"`
			} `json:"configMetadata"`
			AuthMetadata []map[string]any `json:"authMetadata"`
		} `json:"types"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	byID := map[string]int{}
	for i, ty := range got.Types {
		byID[ty.ID] = i
	}
	if len(got.Types) != 3 || got.Types[0].ID != "file" || got.Types[1].ID != "http" || got.Types[2].ID != "vault" {
		t.Fatalf("types: %s", r.body)
	}
	h := got.Types[byID["http"]]
	params := map[string]map[string]any{}
	for _, p := range h.ConfigMetadata.ParametersMetadata {
		for _, k := range []string{"name", "index", "type", "displayName", "description", "required", "secret", "defaultValue", "options", "integerRange", "floatRange", "jsonSchema"} {
			if _, ok := p[k]; !ok {
				t.Fatalf("parameter %v lacks %s", p["name"], k)
			}
		}
		params[p["name"].(string)] = p
	}
	if b := params["baseUrl"]; b["index"] != 0.0 || b["required"] != true || b["type"] != "string" {
		t.Errorf("baseUrl: %v", b)
	}
	if r := params["maxConcurrentRequests"]["integerRange"].(map[string]any); r["min"] != 1.0 || r["max"] != 64.0 {
		t.Errorf("integerRange: %v", r)
	}
	if r := params["timeout"]["floatRange"].(map[string]any); r["min"] != 0.1 || r["max"] != 3600.0 {
		t.Errorf("floatRange: %v", r)
	}
	if s := params["authType"]["jsonSchema"].(map[string]any); s["default"] != "none" || len(s["enum"].([]any)) != 6 {
		t.Errorf("authType schema: %v", s)
	}
	auth := map[string]map[string]any{}
	for _, a := range h.AuthMetadata {
		auth[a["id"].(string)] = a
	}
	if auth["custom"]["configTestSupported"] != false || auth["bearer"]["configTestSupported"] != true || auth["bearer"]["type"] != "bearer" {
		t.Errorf("auth: %v", h.AuthMetadata)
	}
	tok := auth["bearer"]["parameters"].([]any)[0].(map[string]any)
	if tok["name"] != "token" || tok["secret"] != true || tok["jsonSchema"].(map[string]any)["writeOnly"] != true {
		t.Errorf("bearer token parameter: %v", tok)
	}
	v := got.Types[byID["vault"]].ConfigMetadata.ParametersMetadata
	if v[1]["secret"] != true || v[2]["defaultValue"] != 10.0 {
		t.Errorf("vault: %v", v)
	}
}

func TestIntegrationLifecycle(t *testing.T) {
	e := newEnv(t)
	tok := e.token(true, "acme")
	ctx := context.Background()

	// Create with a config: 201, config stored byte for byte as version 1 (extra keys
	// kept), config.patched naming it.
	body := `{"id": "svc", "displayName": "Services", "type": "file", "parameters": {"root": ` + jsonString(e.dir) + `},
	  "tags": ["a", "b"], "resyncInterval": 60,
	  "config": ` + fileConfig + `}`
	r := e.req("POST", "/v1/tenants/acme/integrations", tok, body)
	want(t, r, http.StatusCreated)
	if r.header.Get("Location") != "/v1/tenants/acme/integrations/svc" {
		t.Errorf("Location: %q", r.header.Get("Location"))
	}
	m := r.json(t)
	if m["configVersion"] != 1.0 || m["tenant"] != "acme" || m["resyncInterval"] != "60" || len(m["credentials"].(map[string]any)) != 0 {
		t.Fatalf("created: %s", r.body)
	}
	if cfg := m["config"].(map[string]any); cfg["portAppConfigExtra"] == nil {
		t.Fatalf("config extra key dropped: %s", r.body)
	}
	doc, err := e.ints.Config(ctx, "acme", "svc", 1)
	if err != nil || string(doc) != fileConfig {
		t.Fatalf("stored config differs from the one given:\n%s\n%v", doc, err)
	}
	evs := e.commandsOf(queue.TypeConfigPatched)
	if len(evs) != 1 || evs[0].Tenant != "acme" || evs[0].Integration != "svc" {
		t.Fatalf("config.patched: %+v", evs)
	}
	if cp, _ := evs[0].ConfigPatched(); cp.ConfigVersion != 1 {
		t.Fatalf("config.patched names version %d", cp.ConfigVersion)
	}

	// Create again: 409. Create without an id: one is made from the display name.
	wantProblem(t, e.req("POST", "/v1/tenants/acme/integrations", tok, body), http.StatusConflict, "conflict")
	r = e.req("POST", "/v1/tenants/acme/integrations", tok, map[string]any{"displayName": "My Files!", "type": "file", "parameters": map[string]any{"root": e.dir}})
	want(t, r, http.StatusCreated)
	gen := r.json(t)["id"].(string)
	if !strings.HasPrefix(gen, "my-files-") || !integration.ValidID(gen) {
		t.Fatalf("generated id %q", gen)
	}
	if r.json(t)["configVersion"] != 0.0 || len(e.commandsOf(queue.TypeConfigPatched)) != 1 {
		t.Fatalf("an integration without a config announced one: %s", r.body)
	}

	// PUT creates (201) and replaces (200); credentials left out are kept.
	api := httpAPI(t, "secret-token-1")
	httpBody := map[string]any{"displayName": "API", "type": "http",
		"parameters":  map[string]any{"baseUrl": api.URL, "authType": "bearer"},
		"credentials": map[string]string{"token": "secret-token-1", WebhookSecretCredential: "0123456789abcdef0123"}}
	r = e.req("PUT", "/v1/tenants/acme/integrations/web", tok, httpBody)
	want(t, r, http.StatusCreated)
	if c := r.json(t)["credentials"].(map[string]any); len(c) != 2 || c["token"] != "set" || c[WebhookSecretCredential] != "set" {
		t.Fatalf("credentials shown: %s", r.body)
	}
	delete(httpBody, "credentials")
	httpBody["displayName"] = "API renamed"
	httpBody["id"] = "web"
	r = e.req("PUT", "/v1/tenants/acme/integrations/web", tok, httpBody)
	want(t, r, http.StatusOK)
	if r.json(t)["displayName"] != "API renamed" || r.json(t)["credentials"].(map[string]any)["token"] != "set" {
		t.Fatalf("after PUT without credentials: %s", r.body)
	}
	if creds, _ := e.ints.Credentials(ctx, "acme", "web"); creds["token"] != "secret-token-1" {
		t.Fatal("PUT without credentials lost them")
	}
	httpBody["credentials"] = map[string]string{"token": "secret-token-2"}
	want(t, e.req("PUT", "/v1/tenants/acme/integrations/web", tok, httpBody), http.StatusOK)
	if creds, _ := e.ints.Credentials(ctx, "acme", "web"); creds["token"] != "secret-token-2" || len(creds) != 1 {
		t.Fatal("PUT with credentials did not replace them")
	}

	// GET one (with its config) and pages of the list.
	r = e.req("GET", "/v1/tenants/acme/integrations/svc", tok, nil)
	want(t, r, http.StatusOK)
	if r.json(t)["config"] == nil || r.json(t)["displayName"] != "Services" {
		t.Fatalf("get: %s", r.body)
	}
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		path := "/v1/tenants/acme/integrations?limit=2"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		r = e.req("GET", path, e.token(false, "acme"), nil)
		want(t, r, http.StatusOK)
		m := r.json(t)
		for _, x := range m["integrations"].([]any) {
			in := x.(map[string]any)
			if _, has := in["config"]; has {
				t.Fatal("a list carries configs")
			}
			ids = append(ids, in["id"].(string))
		}
		if m["nextCursor"] == nil {
			break
		}
		cursor = m["nextCursor"].(string)
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if strings.Join(ids, ",") != gen+",svc,web" {
		t.Fatalf("listed %v", ids)
	}

	// DELETE: gone, with its credentials and configs.
	r = e.req("DELETE", "/v1/tenants/acme/integrations/"+gen, tok, nil)
	want(t, r, http.StatusOK)
	wantProblem(t, e.req("GET", "/v1/tenants/acme/integrations/"+gen, tok, nil), http.StatusNotFound, "not-found")
}

func TestPatchConfig(t *testing.T) {
	e := newEnv(t)
	tok := e.token(true, "acme")
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, e.fileIntegration("svc")), http.StatusCreated)
	// Every accepted PATCH stores the next version, the same config again included,
	// and announces it; Port's own route acts on the token's one tenant.
	patch := `{"config": ` + fileConfig + `}`
	for i, path := range []string{
		"/v1/tenants/acme/integrations/svc/config",
		"/v1/tenants/acme/integrations/svc/config",
		"/v1/integration/svc/config",
	} {
		r := e.req("PATCH", path, tok, patch)
		want(t, r, http.StatusOK)
		m := r.json(t)
		in := m["integration"].(map[string]any)
		if m["ok"] != true || in["configVersion"] != float64(i+2) || in["config"] == nil {
			t.Fatalf("PATCH %d: %s", i, r.body)
		}
	}
	var versions []int64
	for _, ev := range e.commandsOf(queue.TypeConfigPatched) {
		cp, err := ev.ConfigPatched()
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, cp.ConfigVersion)
	}
	if len(versions) != 4 || versions[3] != 4 {
		t.Fatalf("announced versions %v", versions)
	}
	if doc, _ := e.ints.Config(context.Background(), "acme", "svc", 4); string(doc) != fileConfig {
		t.Fatalf("version 4: %s", doc)
	}
	// A warning does not refuse a config: it comes back with it.
	warn := `{"config": {"resources": [{"kind": "k", "selector": {"query": "true"}, "port": {"entity": {"mappings":
	  {"identifier": "file://x", "blueprint": "\"service\""}}}}]}}`
	r := e.req("PATCH", "/v1/tenants/acme/integrations/svc/config", tok, warn)
	want(t, r, http.StatusOK)
	if ws, _ := r.json(t)["warnings"].([]any); len(ws) != 1 {
		t.Fatalf("warnings: %s", r.body)
	}
}

// httpAPI is a remote API that wants "Authorization: Bearer <token>"; it records the
// paths asked for.
type remote struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func httpAPI(t *testing.T, token string) *remote {
	rm := &remote{}
	rm.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rm.mu.Lock()
		rm.paths = append(rm.paths, r.URL.Path)
		rm.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"error": "unauthorized"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`[{"id": 1}]`))
	}))
	t.Cleanup(rm.Close)
	return rm
}

func (rm *remote) lastPath() string {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if len(rm.paths) == 0 {
		return ""
	}
	return rm.paths[len(rm.paths)-1]
}

func TestConnectionTest(t *testing.T) {
	e := newEnv(t)
	tok := e.token(true, "acme")
	api := httpAPI(t, "right")
	cfg := `{"resources": [{"kind": "things", "selector": {"query": "true", "path": "/v2/things"},
	  "port": {"entity": {"mappings": {"identifier": ".id | tostring", "blueprint": "\"service\""}}}}]}`
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, `{"id": "web", "displayName": "API", "type": "http",
	  "parameters": {"baseUrl": "`+api.URL+`", "authType": "bearer"}, "credentials": {"token": "right"}, "config": `+cfg+`}`), http.StatusCreated)

	// The stored credentials, and testPath from the config's first resource.
	r := e.req("POST", "/v1/tenants/acme/integrations/web/test", tok, nil)
	want(t, r, http.StatusOK)
	m := r.json(t)
	if m["ok"] != true || m["status"] != 200.0 || m["latencyMs"] == nil || m["message"] == "" {
		t.Fatalf("test: %s", r.body)
	}
	if p := api.lastPath(); p != "/v2/things" {
		t.Fatalf("tested path %q", p)
	}
	// Given credentials are used (not stored); the remote's refusal is ok: false.
	r = e.req("POST", "/v1/tenants/acme/integrations/web/test", tok, `{"credentials": {"token": "wrong"}, "testPath": "/ping"}`)
	want(t, r, http.StatusOK)
	if m := r.json(t); m["ok"] != false || m["status"] != 401.0 || api.lastPath() != "/ping" {
		t.Fatalf("refused test: %s", r.body)
	}
	if creds, _ := e.ints.Credentials(context.Background(), "acme", "web"); creds["token"] != "right" {
		t.Fatal("a test stored its credentials")
	}
}

func TestResyncAndRuns(t *testing.T) {
	e := newEnv(t)
	tok := e.token(true, "acme")
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, e.fileIntegration("svc")), http.StatusCreated)
	r := e.req("POST", "/v1/tenants/acme/integrations/svc/resync", tok, `{"reason": "a person asked"}`)
	want(t, r, http.StatusAccepted)
	m := r.json(t)
	runID := m["runId"].(string)
	if m["status"] != "queued" || !strings.HasPrefix(runID, "run-") {
		t.Fatalf("resync: %s", r.body)
	}
	rec, err := e.runs.Get(context.Background(), "acme", runID)
	if err != nil || rec.Status != run.Queued || rec.ConfigVersion != 1 || rec.Integration != "svc" {
		t.Fatalf("run record: %+v %v", rec, err)
	}
	evs := e.commandsOf(queue.TypeResyncRequested)
	if len(evs) != 1 {
		t.Fatalf("resync.requested: %d", len(evs))
	}
	if rr, _ := evs[0].ResyncRequested(); rr.RunID != runID || rr.Reason != "a person asked" {
		t.Fatalf("resync.requested data: %+v", rr)
	}
	// A second resync; runs list newest first, in pages.
	r = e.req("POST", "/v1/tenants/acme/integrations/svc/resync", tok, nil)
	want(t, r, http.StatusAccepted)
	second := r.json(t)["runId"].(string)
	r = e.req("GET", "/v1/tenants/acme/integrations/svc/runs?limit=1", tok, nil)
	want(t, r, http.StatusOK)
	m = r.json(t)
	if runs := m["runs"].([]any); len(runs) != 1 || runs[0].(map[string]any)["id"] != second || m["nextCursor"] == nil {
		t.Fatalf("runs page 1: %s", r.body)
	}
	r = e.req("GET", "/v1/tenants/acme/integrations/svc/runs?limit=1&cursor="+url.QueryEscape(m["nextCursor"].(string)), tok, nil)
	if runs := r.json(t)["runs"].([]any); len(runs) != 1 || runs[0].(map[string]any)["id"] != runID || r.json(t)["nextCursor"] != nil {
		t.Fatalf("runs page 2: %s", r.body)
	}
	r = e.req("GET", "/v1/tenants/acme/integrations/svc/runs/"+runID, tok, nil)
	want(t, r, http.StatusOK)
	if r.json(t)["status"] != "queued" {
		t.Fatalf("run: %s", r.body)
	}
	r = e.req("POST", "/v1/tenants/acme/integrations/svc/runs/"+runID+"/cancel", tok, nil)
	want(t, r, http.StatusAccepted)
	if ok, _ := e.runs.CancelRequested(context.Background(), "acme", runID); !ok {
		t.Fatal("cancel not requested")
	}
	// A finished run cannot be cancelled; a run of another integration is not found.
	rec.Status = run.Succeeded
	if err := e.runs.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, e.req("POST", "/v1/tenants/acme/integrations/svc/runs/"+runID+"/cancel", tok, nil), http.StatusConflict, "conflict")
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, e.fileIntegration("other")), http.StatusCreated)
	wantProblem(t, e.req("GET", "/v1/tenants/acme/integrations/other/runs/"+runID, tok, nil), http.StatusNotFound, "not-found")
	// No config yet: nothing to resync.
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, map[string]any{"id": "bare", "displayName": "x", "type": "file", "parameters": map[string]any{"root": e.dir}}), http.StatusCreated)
	wantProblem(t, e.req("POST", "/v1/tenants/acme/integrations/bare/resync", tok, nil), http.StatusConflict, "conflict")
}

func TestEventsWithBearer(t *testing.T) {
	e := newEnv(t)
	tok := e.token(true, "acme")
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, e.fileIntegration("svc")), http.StatusCreated)
	body := `{"kind": "service", "upsert": [{"name": "api", "lang": "go"}], "delete": [{"name": "old"}]}`
	r := e.req("POST", "/v1/tenants/acme/integrations/svc/events", tok, body)
	want(t, r, http.StatusAccepted)
	evs := e.commandsOf(queue.TypeResources)
	if len(evs) != 1 || evs[0].ID != r.json(t)["eventId"] {
		t.Fatalf("resources events: %+v", evs)
	}
	data, err := evs[0].Resources()
	if err != nil || data.Kind != "service" || len(data.Upsert) != 1 || len(data.Delete) != 1 {
		t.Fatalf("event data: %+v %v", data, err)
	}
	// Not a resources body, or a kind the config lacks: 422, nothing published.
	for _, bad := range []string{`{"kind": "service", "upsert": [1]}`, `{"kind": "service", "extra": 1}`, `{"kind": "nope"}`, `[1]`} {
		wantProblem(t, e.req("POST", "/v1/tenants/acme/integrations/svc/events", tok, bad), http.StatusUnprocessableEntity, "validation")
	}
	if n := len(e.commandsOf(queue.TypeResources)); n != 1 {
		t.Fatalf("%d resources events after refusals", n)
	}
}

func TestBlueprintsAndEntities(t *testing.T) {
	e := newEnv(t)
	tok := e.token(true, "acme")
	e.seedCatalog("acme", "svc")

	// Port's whole blueprint shape is kept, keys configsync does not use included.
	port := `{"identifier": "repo", "title": "Repository", "icon": "Github",
	  "schema": {"properties": {"url": {"type": "string", "format": "url", "title": "URL"},
	    "stage": {"type": "string", "enum": ["dev", "prod"], "enumColors": {"dev": "green", "prod": "red"}}},
	    "required": ["url"]},
	  "mirrorProperties": {"teamName": {"path": "team.$title"}},
	  "calculationProperties": {"slug": {"calculation": ".identifier", "type": "string"}},
	  "aggregationProperties": {"count": {"target": "service", "calculationSpec": {"calculationBy": "entities", "func": "count"}}},
	  "teamInheritance": {"path": "team"}, "changelogDestination": {"type": "WEBHOOK", "url": "https://example.com"},
	  "relations": {"team": {"title": "Team", "target": "team", "required": false, "many": false}},
	  "futurePortField": {"x": 1}}`
	r := e.req("PUT", "/v1/tenants/acme/blueprints/repo", tok, port)
	want(t, r, http.StatusCreated)
	var sent, got map[string]any
	_ = json.Unmarshal([]byte(port), &sent)
	r = e.req("GET", "/v1/tenants/acme/blueprints/repo", tok, nil)
	want(t, r, http.StatusOK)
	_ = json.Unmarshal(r.body, &got)
	if a, b := canonical(t, sent), canonical(t, got); a != b {
		t.Fatalf("blueprint did not round-trip:\nsent %s\n got %s", a, b)
	}
	// The identifier may be left out of the body.
	want(t, e.req("PUT", "/v1/tenants/acme/blueprints/empty", tok, `{"title": "Empty", "schema": {"properties": {}}}`), http.StatusCreated)
	want(t, e.req("PUT", "/v1/tenants/acme/blueprints/empty", tok, `{"identifier": "empty", "title": "Still empty", "schema": {"properties": {}}}`), http.StatusOK)

	r = e.req("GET", "/v1/tenants/acme/blueprints?limit=2", tok, nil)
	m := r.json(t)
	if bps := m["blueprints"].([]any); len(bps) != 2 || bps[0].(map[string]any)["identifier"] != "empty" || m["nextCursor"] == nil {
		t.Fatalf("blueprints page: %s", r.body)
	}
	r = e.req("GET", "/v1/tenants/acme/blueprints?limit=2&cursor="+url.QueryEscape(m["nextCursor"].(string)), tok, nil)
	if bps := r.json(t)["blueprints"].([]any); len(bps) != 2 || bps[1].(map[string]any)["identifier"] != "team" {
		t.Fatalf("blueprints page 2: %s", r.body)
	}

	// Entities: pages, filters, one by identifier (slashes included).
	ids := func(r *resp) string {
		var out []string
		for _, x := range r.json(t)["entities"].([]any) {
			out = append(out, x.(map[string]any)["identifier"].(string))
		}
		return strings.Join(out, ",")
	}
	r = e.req("GET", "/v1/tenants/acme/blueprints/service/entities?limit=2", tok, nil)
	if ids(r) != "api,org/repo" || r.json(t)["nextCursor"] == nil {
		t.Fatalf("entities page 1: %s", r.body)
	}
	r = e.req("GET", "/v1/tenants/acme/blueprints/service/entities?limit=2&cursor="+url.QueryEscape(r.json(t)["nextCursor"].(string)), tok, nil)
	if ids(r) != "web" || r.json(t)["nextCursor"] != nil {
		t.Fatalf("entities page 2: %s", r.body)
	}
	for filter, want := range map[string]string{
		"filter=lang=go":                     "api,org/repo",
		"filter=lang=go&filter=tier=3":       "org/repo",
		"filter=tier=2":                      "web",
		"filter=lang=%22ts%22":               "web",
		"filter=%24identifier=api":           "api",
		"filter=lang=go&limit=1":             "api",
		"filter=lang=go&limit=1&cursor=YXBp": "org/repo",
	} {
		if got := ids(e.req("GET", "/v1/tenants/acme/blueprints/service/entities?"+filter, tok, nil)); got != want {
			t.Errorf("%s: got %s, want %s", filter, got, want)
		}
	}
	r = e.req("GET", "/v1/tenants/acme/blueprints/service/entities/org/repo", tok, nil)
	want(t, r, http.StatusOK)
	if m := r.json(t); m["identifier"] != "org/repo" || m["integration"] != "svc" || m["properties"].(map[string]any)["tier"] != 3.0 {
		t.Fatalf("entity: %s", r.body)
	}
	wantProblem(t, e.req("GET", "/v1/tenants/acme/blueprints/service/entities/nope", tok, nil), http.StatusNotFound, "not-found")
	wantProblem(t, e.req("GET", "/v1/tenants/acme/blueprints/nope/entities", tok, nil), http.StatusNotFound, "not-found")

	// A blueprint with entities is not deleted; one without is.
	wantProblem(t, e.req("DELETE", "/v1/tenants/acme/blueprints/service", tok, nil), http.StatusConflict, "conflict")
	want(t, e.req("DELETE", "/v1/tenants/acme/blueprints/empty", tok, nil), http.StatusNoContent)
	wantProblem(t, e.req("GET", "/v1/tenants/acme/blueprints/empty", tok, nil), http.StatusNotFound, "not-found")
	// Changing a relation's target while entities exist: 409.
	retarget := `{"identifier": "service", "schema": {"properties": {}}, "relations": {"team": {"target": "repo", "required": true, "many": false}}}`
	wantProblem(t, e.req("PUT", "/v1/tenants/acme/blueprints/service", tok, retarget), http.StatusConflict, "conflict")
}

func TestDeleteIntegrationWithEntities(t *testing.T) {
	e := newEnv(t)
	tok := e.token(true, "acme")
	// The config says deleteDependents: true, so deleting the team the services
	// require deletes them too.
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, e.fileIntegration("svc")), http.StatusCreated)
	e.seedCatalog("acme", "svc")
	r := e.req("DELETE", "/v1/tenants/acme/integrations/svc?deleteEntities=true", tok, nil)
	want(t, r, http.StatusOK)
	ents := r.json(t)["entities"].(map[string]any)
	if ents["owned"] != 4.0 || ents["deleted"] != 4.0 || ents["deleteDependents"] != true {
		t.Fatalf("delete: %s", r.body)
	}
	for _, bp := range []string{"team", "service"} {
		if list, _, _ := e.cat.List(context.Background(), "acme", bp, "", 10); len(list) != 0 {
			t.Fatalf("%s entities left: %v", bp, list)
		}
	}
	if _, err := e.ints.Get(context.Background(), "acme", "svc"); err == nil {
		t.Fatal("integration not deleted")
	}
	// Without the flag, entities stay.
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, e.fileIntegration("keep")), http.StatusCreated)
	e.seedCatalog("acme", "keep")
	want(t, e.req("DELETE", "/v1/tenants/acme/integrations/keep", tok, nil), http.StatusOK)
	if list, _, _ := e.cat.List(context.Background(), "acme", "service", "", 10); len(list) != 3 {
		t.Fatalf("entities deleted without deleteEntities: %d", len(list))
	}
	wantProblem(t, e.req("DELETE", "/v1/tenants/acme/integrations/keep?deleteEntities=maybe", tok, nil), http.StatusBadRequest, "bad-request")
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// canonical re-encodes v with sorted keys.
func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
