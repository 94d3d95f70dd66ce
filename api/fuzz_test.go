package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/natstest"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/redistest"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/secrets"
	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// fuzzRoutes are the routes that decode a JSON body, each on an integration and a
// blueprint that exist, so that decoding, not a missing target, decides the answer.
var fuzzRoutes = []struct{ method, path string }{
	{"PUT", "/v1/tenants/acme/integrations/svc"},
	{"PATCH", "/v1/tenants/acme/integrations/svc/config"},
	{"PUT", "/v1/tenants/acme/blueprints/team"},
	{"POST", "/v1/tenants/acme/integrations/svc/events"},
	{"POST", "/v1/tenants/acme/integrations/svc/resync"},
	{"POST", "/v1/tenants/acme/integrations"},
	{"PATCH", "/v1/integration/svc/config"},
}

// FuzzRequestBodies sends arbitrary bodies to the JSON-accepting routes through the
// real handler on real Redis and NATS. Whatever the body: no 5xx (a handler's panic
// is answered 500, so that covers panics too), every refusal is a problem document,
// and a refused request leaves Redis exactly as it was. An accepted request's writes
// are undone after it, so every input starts from the same catalog.
func FuzzRequestBodies(f *testing.F) {
	dir := f.TempDir()
	seeds := map[int][]string{
		0: {
			fmt.Sprintf(`{"displayName": "Files", "type": "file", "parameters": {"root": %q}, "config": %s, "resyncInterval": "15m", "tags": ["a"]}`, dir, fileConfig),
			fmt.Sprintf(`{"id": "svc", "displayName": "Files", "type": "file", "parameters": {"root": %q}, "credentials": {"webhookSecret": "0123456789abcdef0123"}}`, dir),
			`{"displayName": "API", "type": "http", "parameters": {"baseUrl": "http://127.0.0.1:1", "authType": "bearer"}, "credentials": {"token": "t"}}`,
			`{"id": "other", "displayName": "x", "type": "file"}`,
			`{"displayName": 1e999, "type": "file", "parameters": {"root": null}}`,
			`{"displayName": "x", "type": "vault", "parameters": {"address": "a", "pageSize": 1e3}}`,
		},
		1: {
			`{"config": ` + fileConfig + `}`,
			`{"config": {"resources": []}}`,
			`{"config": {"resources": [{"kind": "k", "selector": {"query": "(("}, "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": "\"team\""}}}}]}}`,
			`{"config": "resources: []"}`,
			`{"config": {"resources": [{"kind": "service", "port": {"entity": {"mappings": [{"identifier": ".a", "blueprint": "\"service\""}]}}}]}}`,
		},
		2: {
			`{"identifier": "team", "title": "Team", "schema": {"properties": {"size": {"type": "number"}}}, "relations": {}}`,
			`{"identifier": "other", "title": "Other", "schema": {"properties": {}}}`,
			`{"identifier": "team", "title": "Team", "schema": {"properties": {"x": {"type": "string", "format": "nope"}}}, "relations": {"r": {"target": "missing", "many": "yes"}}}`,
			`{"identifier": "team", "schema": {"properties": {"n": {"type": "number", "enum": [1, 1e400]}}}}`,
		},
		3: {
			`{"kind": "service", "upsert": [{"name": "api", "lang": "Go"}]}`,
			`{"kind": "service", "delete": [{"name": "api"}]}`,
			`{"kind": "service", "upsert": ["x", 1, null]}`,
			`{"kind": "nope", "upsert": [{}]}`,
		},
		4: {``, `{}`, `{"reason": "manual"}`, `{"unknown": true}`, `[]`},
		5: {
			fmt.Sprintf(`{"id": "new1", "displayName": "Files", "type": "file", "parameters": {"root": %q}}`, dir),
			`{"id": "svc", "displayName": "dup", "type": "file"}`,
			`{"id": "Bad Id!", "displayName": "x", "type": "file"}`,
		},
		6: {`{"config": {"resources": []}}`, `{"config": null}`, `{"config": {"deleteDependents": "yes"}}`},
	}
	for route, bodies := range seeds {
		for _, b := range bodies {
			f.Add(uint8(route), []byte(b))
		}
	}
	for route := range fuzzRoutes {
		for _, b := range []string{`{`, `null`, `"x"`, `{"a": 1, "a": 2}`, "{\"x\": \"\xff\"}", `{"config": {"resources": [` + strings.Repeat("[", 200) + `]}}`} {
			f.Add(uint8(route), []byte(b))
		}
	}

	fz := newFuzzEnv(f, dir)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest(rt.method, rt.path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+fz.token)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		fz.h.ServeHTTP(rec, req)
		res := rec.Result()
		what := fmt.Sprintf("%s %s %q: %d %s", rt.method, rt.path, body, res.StatusCode, rec.Body.Bytes())

		if panics := fz.logs.FilterMessage("handler panicked").TakeAll(); len(panics) > 0 {
			t.Fatalf("%s: the handler panicked: %v", what, panics[0].ContextMap())
		}
		if res.StatusCode >= 500 {
			causes := fz.logs.TakeAll()
			t.Fatalf("%s: a server error for a client's body; logged: %v", what, causes)
		}
		fz.logs.TakeAll()
		if res.StatusCode >= 200 && res.StatusCode < 300 {
			if err := fz.restore(); err != nil {
				t.Fatal(err)
			}
			return
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Fatalf("%s: refusal with Content-Type %q, want application/problem+json", what, ct)
		}
		var p struct {
			Status int    `json:"status"`
			Title  string `json:"title"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != res.StatusCode || p.Title == "" {
			t.Fatalf("%s: not a problem document for its status (%v)", what, err)
		}
		now, err := fz.snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if diff := diffSnapshots(fz.base, now); diff != "" {
			// Undo it, so the inputs after this one start from the baseline again.
			_ = fz.restore()
			t.Fatalf("%s: a refused request changed Redis: %s", what, diff)
		}
	})
}

// fuzzEnv is the world of one fuzz target, built once for all its inputs: building
// a nats-server and stores per input would leave little time for inputs.
type fuzzEnv struct {
	h      http.Handler
	rdb    redis.UniversalClient
	prefix string
	token  string
	logs   *observer.ObservedLogs
	// base is every key of the prefix after set-up, as DUMP gives it.
	base map[string]keyDump
}

type keyDump struct {
	dump string
	ttl  time.Duration
}

func newFuzzEnv(f *testing.F, dir string) *fuzzEnv {
	f.Helper()
	ctx := context.Background()
	ns := natstest.Server(f)
	js := natstest.JetStream(f, ns)
	rdb, prefix := redistest.Client(f)
	q, err := queue.Open(ctx, js, queue.Options{})
	if err != nil {
		f.Fatal(err)
	}
	key, err := secrets.GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	kr, err := secrets.ParseKeyring(key, "")
	if err != nil {
		f.Fatal(err)
	}
	ints := integration.NewStore(rdb, prefix, kr)
	cat := catalog.New(rdb, prefix, nil)
	hopts := httpsource.Options{AllowPrivate: true, MaxRetries: -1}
	secret := bytes.Repeat([]byte("k"), MinSecretBytes)
	core, logs := observer.New(zapcore.WarnLevel)
	h, err := New(Config{JWTSecret: secret, HTTPSourceOptions: hopts, Log: zap.New(core)}, Deps{
		Integrations: ints, Catalog: cat, Runs: run.NewStore(rdb, prefix), Queue: q,
		Sources: source.NewRegistry(source.FileType([]string{dir}), httpsource.Type(hopts), secretParamType()),
	})
	if err != nil {
		f.Fatal(err)
	}
	// A token for acme alone: Port's config route takes one naming one tenant.
	tok, err := MintToken(secret, []string{"acme"}, true, 24*time.Hour, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	fz := &fuzzEnv{h: h, rdb: rdb, prefix: prefix, token: tok, logs: logs}

	// The baseline: the blueprints, and integration svc with a config version.
	var bps []json.RawMessage
	if err := json.Unmarshal([]byte(blueprintsJSON), &bps); err != nil {
		f.Fatal(err)
	}
	for _, raw := range bps {
		var m struct{ Identifier string }
		_ = json.Unmarshal(raw, &m)
		fz.mustServe(f, "PUT", "/v1/tenants/acme/blueprints/"+m.Identifier, string(raw))
	}
	fz.mustServe(f, "POST", "/v1/tenants/acme/integrations", fmt.Sprintf(
		`{"id": "svc", "displayName": "Files", "type": "file", "parameters": {"root": %q}, "config": %s, "credentials": {%q: "0123456789abcdef0123"}}`,
		dir, fileConfig, WebhookSecretCredential))
	if fz.base, err = fz.snapshot(); err != nil {
		f.Fatal(err)
	}
	if len(fz.base) == 0 {
		f.Fatal("the set-up wrote no keys under the prefix")
	}
	// The check must be able to fail: an accepted patch shows in a snapshot, and
	// restore undoes it.
	fz.mustServe(f, "PATCH", "/v1/tenants/acme/integrations/svc/config", `{"config": {"resources": []}}`)
	for i, want := range []bool{true, false} {
		now, err := fz.snapshot()
		if err != nil {
			f.Fatal(err)
		}
		if diff := diffSnapshots(fz.base, now); (diff != "") != want {
			f.Fatalf("snapshot check %d: the difference after an accepted patch is %q", i, diff)
		}
		if err := fz.restore(); err != nil {
			f.Fatal(err)
		}
	}
	return fz
}

func (fz *fuzzEnv) mustServe(f *testing.F, method, path, body string) {
	f.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+fz.token)
	rec := httptest.NewRecorder()
	fz.h.ServeHTTP(rec, req)
	if rec.Code/100 != 2 {
		f.Fatalf("setting up: %s %s: %d %s", method, path, rec.Code, rec.Body)
	}
}

// keys lists the keys of the prefix (redistest's pattern: the keys containing it).
func (fz *fuzzEnv) keys(ctx context.Context) ([]string, error) {
	var out []string
	iter := fz.rdb.Scan(ctx, 0, "*"+fz.prefix+"*", 10_000).Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("scanning the keys of %s: %w", fz.prefix, err)
	}
	return out, nil
}

// snapshot dumps every key of the prefix.
func (fz *fuzzEnv) snapshot() (map[string]keyDump, error) {
	ctx := context.Background()
	keys, err := fz.keys(ctx)
	if err != nil {
		return nil, err
	}
	pipe := fz.rdb.Pipeline()
	dumps := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		dumps[i], ttls[i] = pipe.Dump(ctx, k), pipe.PTTL(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("dumping the keys of %s: %w", fz.prefix, err)
	}
	out := make(map[string]keyDump, len(keys))
	for i, k := range keys {
		if d, err := dumps[i].Result(); err == nil {
			out[k] = keyDump{dump: d, ttl: max(0, ttls[i].Val())}
		}
	}
	return out, nil
}

// restore puts the prefix's keys back as they were after set-up.
func (fz *fuzzEnv) restore() error {
	ctx := context.Background()
	keys, err := fz.keys(ctx)
	if err != nil {
		return err
	}
	pipe := fz.rdb.TxPipeline()
	if len(keys) > 0 {
		pipe.Del(ctx, keys...)
	}
	for k, d := range fz.base {
		pipe.RestoreReplace(ctx, k, d.ttl, d.dump)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("restoring the keys of %s: %w", fz.prefix, err)
	}
	return nil
}

// diffSnapshots names the keys added, removed or changed between a and b.
func diffSnapshots(a, b map[string]keyDump) string {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(b)) {
		old, ok := a[k]
		switch {
		case !ok:
			diffs = append(diffs, "added "+k)
		case old.dump != b[k].dump:
			diffs = append(diffs, "changed "+k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if _, ok := b[k]; !ok {
			diffs = append(diffs, "removed "+k)
		}
	}
	return strings.Join(diffs, ", ")
}
