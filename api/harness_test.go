package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
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

// env is one test's world, wired as the worker tests wire theirs: an in-process
// nats-server with JetStream, the shared Redis under a key prefix of the test's own,
// the real stores on both, and the API served over HTTP by httptest. Every response
// body is kept, and every log line is observed at debug level, for the tests that
// look for leaked secrets.
type env struct {
	t       *testing.T
	ns      *natsserver.Server
	js      jetstream.JetStream
	rdb     redis.UniversalClient
	prefix  string
	q       *queue.Queue
	ints    *integration.Store
	runs    *run.Store
	cat     *catalog.Catalog
	sources *source.Registry
	dir     string
	secret  []byte
	cfg     Config
	srv     *httptest.Server
	logs    *observer.ObservedLogs

	mu     sync.Mutex
	bodies [][]byte // every response body, in order
}

// rsaKey is generated once: 2048-bit generation is slow under -race.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// newEnv starts the world. change, when given, adjusts the API's Config before New.
func newEnv(t *testing.T, change ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t}
	e.ns = natstest.Server(t)
	e.js = natstest.JetStream(t, e.ns)
	e.rdb, e.prefix = redistest.Client(t)
	q, err := queue.Open(context.Background(), e.js, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.q = q
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.ParseKeyring(key, "")
	if err != nil {
		t.Fatal(err)
	}
	e.ints = integration.NewStore(e.rdb, e.prefix, kr)
	e.runs = run.NewStore(e.rdb, e.prefix)
	e.cat = catalog.New(e.rdb, e.prefix, nil)
	e.dir = t.TempDir()
	hopts := httpsource.Options{AllowPrivate: true, MaxRetries: -1}
	e.sources = source.NewRegistry(source.FileType([]string{e.dir}), httpsource.Type(hopts), secretParamType())
	e.secret = make([]byte, 32)
	_, _ = rand.Read(e.secret)
	core, logs := observer.New(zapcore.DebugLevel)
	e.logs = logs
	e.cfg = Config{
		JWTSecret:         e.secret,
		JWTPublicKey:      &rsaKey().PublicKey,
		HTTPSourceOptions: hopts,
		Log:               zap.New(core),
	}
	for _, c := range change {
		c(&e.cfg)
	}
	h, err := New(e.cfg, Deps{
		Integrations: e.ints, Catalog: e.cat, Runs: e.runs, Queue: e.q, Sources: e.sources,
		Ready: func(ctx context.Context) error { return e.rdb.Ping(ctx).Err() },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// secretParamType is a source type with a secret parameter, to check that responses
// redact it.
func secretParamType() source.Type {
	return source.Type{
		ID: "vault", DisplayName: "Vault (test)",
		Parameters: []source.Parameter{
			{Name: "address", Type: source.TypeString, Required: true},
			{Name: "roleSecret", Type: source.TypeString, Secret: true},
			{Name: "pageSize", Type: source.TypeInteger, IntegerRange: &[2]int64{1, 100}, Default: int64(10)},
		},
		New: func(map[string]any, map[string]string) (source.Source, error) {
			return nil, errors.New("not for syncing")
		},
	}
}

// token mints an HS256 token with the env's secret.
func (e *env) token(write bool, tenants ...string) string {
	e.t.Helper()
	tok, err := MintToken(e.secret, tenants, write, time.Hour, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// resp is one answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r *resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v\n%s", r.status, err, r.body)
	}
	return m
}

func (r *resp) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// req sends a request. body is sent as is when it is a string or []byte, and as JSON
// otherwise (nil: no body). hdr are extra header name/value pairs.
func (e *env) req(method, path, token string, body any, hdr ...string) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	r, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.Client().Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.bodies = append(e.bodies, b)
	e.mu.Unlock()
	return &resp{status: res.StatusCode, header: res.Header, body: b}
}

// want fails unless r has the status.
func want(t *testing.T, r *resp, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %d, want %d: %s", r.status, status, r.body)
	}
}

// wantProblem fails unless r is a problem document with the status and type slug.
func wantProblem(t *testing.T, r *resp, status int, slug string) map[string]any {
	t.Helper()
	want(t, r, status)
	if ct := r.header.Get("Content-Type"); ct != problemContentType {
		t.Fatalf("Content-Type %q, want %q: %s", ct, problemContentType, r.body)
	}
	m := r.json(t)
	if m["type"] != ProblemTypePrefix+slug || m["status"] != float64(status) || m["title"] == "" || m["instance"] == "" {
		t.Fatalf("problem: want type %s status %d with title and instance, got %s", slug, status, r.body)
	}
	return m
}

// fieldErrors returns a problem's errors[] by field.
func fieldErrors(t *testing.T, m map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	list, _ := m["errors"].([]any)
	for _, x := range list {
		fe := x.(map[string]any)
		out[fe["field"].(string)] = fe
	}
	return out
}

// commands reads every message on the commands stream (work-queue retention keeps
// them: no worker runs here), decoded as events.
func (e *env) commands() []queue.Envelope {
	e.t.Helper()
	var out []queue.Envelope
	for _, m := range e.streamMessages(queue.CommandsStream) {
		ev, err := queue.Decode(m.Subject, m.Data)
		if err != nil {
			e.t.Fatalf("a published event does not decode: %v", err)
		}
		out = append(out, ev)
	}
	return out
}

// commandsOf returns the events of one type.
func (e *env) commandsOf(typ string) []queue.Envelope {
	var out []queue.Envelope
	for _, ev := range e.commands() {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// streamMessages reads a stream's stored messages by sequence, without a consumer
// (a work-queue stream allows only the workers' one).
func (e *env) streamMessages(name string) []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx := context.Background()
	st, err := e.js.Stream(ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// redisValues dumps every key under the test's prefix, and its value, as text.
func (e *env) redisValues() map[string]string {
	e.t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := e.rdb.Scan(ctx, 0, "*"+e.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ, err := e.rdb.Type(ctx, k).Result()
		if err != nil {
			e.t.Fatal(err)
		}
		var v any
		switch typ {
		case "string":
			v, err = e.rdb.Get(ctx, k).Result()
		case "hash":
			v, err = e.rdb.HGetAll(ctx, k).Result()
		case "set":
			v, err = e.rdb.SMembers(ctx, k).Result()
		case "zset":
			v, err = e.rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "list":
			v, err = e.rdb.LRange(ctx, k, 0, -1).Result()
		case "stream":
			v, err = e.rdb.XRange(ctx, k, "-", "+").Result()
		default:
			e.t.Fatalf("key %s of unexpected type %s", k, typ)
		}
		if err != nil {
			e.t.Fatal(err)
		}
		out[k] = fmt.Sprintf("%v", v)
	}
	if err := iter.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// logLines renders every observed log entry as the JSON encoder would print it.
func (e *env) logLines() []string {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	var out []string
	for _, le := range e.logs.All() {
		buf, err := enc.EncodeEntry(le.Entry, le.Context)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, buf.String())
		buf.Free()
	}
	return out
}

// Fixtures.

const blueprintsJSON = `[
 {"identifier": "team", "title": "Team", "schema": {"properties": {"size": {"type": "number"}}}, "relations": {}},
 {"identifier": "service", "title": "Service", "schema": {"properties": {"lang": {"type": "string"}, "tier": {"type": "number"}}},
  "relations": {"team": {"target": "team", "required": true, "many": false}}}
]`

// fileConfig maps services.json of the file source.
const fileConfig = `{"deleteDependents": true, "portAppConfigExtra": {"kept": [1, 2]},
  "resources": [{"kind": "service", "selector": {"query": "true", "path": "services.json"},
    "port": {"entity": {"mappings": {"identifier": ".name", "title": ".name", "blueprint": "\"service\"",
      "properties": {"lang": ".lang", "tier": ".tier"}, "relations": {"team": ".team"}}}}}]}`

// fileIntegration is a create body of a file integration with a config.
func (e *env) fileIntegration(id string) map[string]any {
	return map[string]any{
		"id": id, "displayName": "Files " + id, "description": "services from a folder", "type": "file",
		"parameters": map[string]any{"root": e.dir}, "config": json.RawMessage(fileConfig),
		"resyncInterval": "15m", "tags": []string{"test"},
	}
}

// seedCatalog writes the blueprints and a few entities owned by integration owner.
func (e *env) seedCatalog(tenant, owner string) {
	e.t.Helper()
	ctx := context.Background()
	var bps []json.RawMessage
	if err := json.Unmarshal([]byte(blueprintsJSON), &bps); err != nil {
		e.t.Fatal(err)
	}
	for _, raw := range bps {
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		r := e.req("PUT", "/v1/tenants/"+tenant+"/blueprints/"+m["identifier"].(string), e.token(true, tenant), []byte(raw))
		if r.status != http.StatusCreated && r.status != http.StatusOK {
			e.t.Fatalf("seeding blueprint: %s", r)
		}
	}
	now := time.Now()
	writes := []catalog.Write{
		{Entity: catalog.Entity{Identifier: "platform", Blueprint: "team", Properties: map[string]any{"size": 4}}, Integration: owner, Kind: "team", FetchedAt: now, CreateMissing: true},
		{Entity: catalog.Entity{Identifier: "api", Blueprint: "service", Properties: map[string]any{"lang": "go", "tier": 1}, Relations: map[string]any{"team": "platform"}}, Integration: owner, Kind: "service", FetchedAt: now, CreateMissing: true},
		{Entity: catalog.Entity{Identifier: "web", Blueprint: "service", Properties: map[string]any{"lang": "ts", "tier": 2}, Relations: map[string]any{"team": "platform"}}, Integration: owner, Kind: "service", FetchedAt: now, CreateMissing: true},
		{Entity: catalog.Entity{Identifier: "org/repo", Blueprint: "service", Properties: map[string]any{"lang": "go", "tier": 3}, Relations: map[string]any{"team": "platform"}}, Integration: owner, Kind: "service", FetchedAt: now, CreateMissing: true},
	}
	outs, err := e.cat.Upsert(ctx, tenant, nil, writes)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, o := range outs {
		if o.Status != catalog.Created && o.Status != catalog.Updated && o.Status != catalog.Unchanged {
			e.t.Fatalf("seeding entity %d: %s %v", i, o.Status, o.Err)
		}
	}
}
