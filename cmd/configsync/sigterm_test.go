package main

// Fault tests (issue #6): the service roles as real processes (the test binary run
// again as `configsync <role>`, through main) stop gracefully on SIGTERM: exit status
// 0 within a bound, a request in flight answered, a run in the middle released for
// another worker.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/configsync/configsync/api"
	"github.com/configsync/configsync/blueprint"
	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/lease"
	"github.com/configsync/configsync/natstest"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/redistest"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/secrets"
)

// TestHelperConfigsyncProcess is not a test: the SIGTERM tests run the test binary
// again with it, and it runs main with the arguments in CS_HELPER_ARGS (JSON), so the
// child is `configsync <role>` with main's own signal handling and exit status.
func TestHelperConfigsyncProcess(t *testing.T) {
	if os.Getenv("CS_HELPER_MAIN") != "1" {
		t.Skip("runs only as the child of the SIGTERM tests")
	}
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv("CS_HELPER_ARGS")), &args); err != nil {
		t.Fatal(err)
	}
	os.Args = append([]string{"configsync"}, args...)
	main() // exits with the role's status
}

// roleWorld is what a role process needs: NATS, Redis under a test prefix, the keys.
type roleWorld struct {
	ns                        *server.Server
	natsURL, redisURL, prefix string
	encKey                    string
	jwtSecret                 []byte
	env                       []string
}

func newRoleWorld(t *testing.T) *roleWorld {
	t.Helper()
	ns := natstest.Server(t)
	_, prefix := redistest.Client(t)
	redisURL := os.Getenv(redistest.EnvURL)
	if redisURL == "" {
		redisURL = redistest.DefaultURL
	}
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	w := &roleWorld{ns: ns, natsURL: ns.ClientURL(), redisURL: redisURL, prefix: prefix, encKey: key, jwtSecret: []byte("sigterm-test-secret-of-at-least-32-bytes")}
	w.env = append(os.Environ(), "CS_HELPER_MAIN=1", "CONFIGSYNC_NATS_URL="+w.natsURL, "CONFIGSYNC_REDIS_URL="+w.redisURL,
		"CONFIGSYNC_PREFIX="+prefix, "CONFIGSYNC_ENCRYPTION_KEY="+key, "CONFIGSYNC_JWT_SECRET="+string(w.jwtSecret),
		"CONFIGSYNC_HTTP_ALLOW_PRIVATE=true", "CONFIGSYNC_LOG_LEVEL=info")
	return w
}

// role is a running child process.
type role struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan error
}

func (w *roleWorld) start(t *testing.T, args ...string) *role {
	t.Helper()
	b, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperConfigsyncProcess$")
	cmd.Env = append(w.env, "CS_HELPER_ARGS="+string(b))
	r := &role{cmd: cmd, out: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("configsync %s output:\n%s", strings.Join(args, " "), r.out.String())
		}
	})
	return r
}

// waitOutput waits for a line matching re in the output and returns its submatches.
func (r *role) waitOutput(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(r.out.String()); m != nil {
			return m
		}
		select {
		case err := <-r.exited:
			t.Fatalf("the process exited (%v) before printing %s", err, re)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 60s", re)
		}
	}
}

// term sends SIGTERM and waits for the exit; it fails unless the status is 0 within
// bound, and returns how long the exit took.
func (r *role) term(t *testing.T, bound time.Duration) time.Duration {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	select {
	case err := <-r.exited:
		took := time.Since(sent)
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v (want status 0)", err)
		}
		if took > bound {
			t.Errorf("exited %v after SIGTERM, more than %v", took, bound)
		}
		return took
	case <-time.After(bound + 60*time.Second):
		t.Fatalf("still running %v after SIGTERM", bound+60*time.Second)
		return 0
	}
}

// TestFaultSIGTERMRoles: `configsync api` (with a request in flight),
// `configsync scheduler` and an idle `configsync worker` exit 0 soon after SIGTERM.
func TestFaultSIGTERMRoles(t *testing.T) {
	t.Run("api", func(t *testing.T) {
		start := time.Now()
		w := newRoleWorld(t)
		// A slow tool: the connection test below is in flight when SIGTERM comes.
		var hits atomic.Int32
		slow := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			rw.Header().Set("Content-Type", "application/json")
			_, _ = rw.Write([]byte(`[]`))
		}))
		t.Cleanup(slow.Close)
		p := w.start(t, "api", "--http-addr", "127.0.0.1:0")
		addr := p.waitOutput(t, regexp.MustCompile(`"msg":"API listening","addr":"([^"]+)"`))[1]
		base := "http://" + addr
		tok, err := api.MintToken(w.jwtSecret, []string{"acme"}, true, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		do := func(method, path, body string) (int, string) {
			req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, err.Error()
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return res.StatusCode, string(b)
		}
		if code, body := do("GET", "/readyz", ""); code != 200 {
			t.Fatalf("readyz: %d %s", code, body)
		}
		if code, body := do("POST", "/v1/tenants/acme/integrations", `{"id": "tool", "displayName": "Tool", "type": "http", "parameters": {"baseUrl": "`+slow.URL+`"}}`); code != 201 {
			t.Fatalf("creating the integration: %d %s", code, body)
		}
		type answer struct {
			code int
			body string
		}
		inflight := make(chan answer, 1)
		go func() {
			code, body := do("POST", "/v1/tenants/acme/integrations/tool/test", `{"testPath": "/"}`)
			inflight <- answer{code, body}
		}()
		for hits.Load() == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		took := p.term(t, 20*time.Second)
		a := <-inflight
		if a.code != 200 {
			t.Errorf("the request in flight at SIGTERM: %d %s", a.code, a.body)
		}
		if code, _ := do("GET", "/healthz", ""); code != 0 {
			t.Errorf("the API still answers after exiting: %d", code)
		}
		t.Logf("api: exited 0 %v after SIGTERM, the request in flight answered %d; took %v", took.Round(time.Millisecond), a.code, time.Since(start).Round(time.Millisecond))
	})
	t.Run("scheduler", func(t *testing.T) {
		start := time.Now()
		w := newRoleWorld(t)
		p := w.start(t, "scheduler", "--tick", "1s")
		time.Sleep(2 * time.Second) // a few ticks
		if strings.Contains(p.out.String(), `"level":"error"`) {
			t.Fatalf("scheduler errors:\n%s", p.out.String())
		}
		took := p.term(t, 20*time.Second)
		t.Logf("scheduler: exited 0 %v after SIGTERM; took %v", took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	})
	t.Run("worker idle", func(t *testing.T) {
		start := time.Now()
		w := newRoleWorld(t)
		p := w.start(t, "worker", "--id", "idle")
		p.waitOutput(t, regexp.MustCompile(`"msg":"worker consuming"`))
		took := p.term(t, 20*time.Second)
		t.Logf("worker (idle): exited 0 %v after SIGTERM; took %v", took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	})
}

// TestFaultSIGTERMWorkerRole: `configsync worker` in the middle of a run over a slow
// http tool gets SIGTERM; it exits 0 within 35 s, leaving its run failed (not
// running) with nothing deleted and its lease released; a second worker process then
// completes the event, and the catalog holds exactly the tool's items.
func TestFaultSIGTERMWorkerRole(t *testing.T) {
	start := time.Now()
	w := newRoleWorld(t)
	ctx := context.Background()
	rdb, _ := redistest.Client(t) // a second client on the same Redis; keys are w.prefix's
	kr, err := secrets.ParseKeyring(w.encKey, "")
	if err != nil {
		t.Fatal(err)
	}
	ints := integration.NewStore(rdb, w.prefix, kr)
	runs := run.NewStore(rdb, w.prefix)
	cat := catalog.New(rdb, w.prefix, nil)
	bps, err := blueprint.Parse([]byte(`[{"identifier": "item", "title": "Item", "schema": {"properties": {"n": {"type": "number"}}}, "relations": {}}]`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.PutBlueprint(ctx, "acme", bps[0]); err != nil {
		t.Fatal(err)
	}
	// The tool: 40 pages of 10 items, each page 500 ms late until fast is set.
	const pages, perPage = 40, 10
	var fast atomic.Bool
	tool := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		p, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if !fast.Load() {
			select {
			case <-time.After(500 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		var items []map[string]any
		if p >= 1 && p <= pages {
			for i := range perPage {
				n := (p-1)*perPage + i
				items = append(items, map[string]any{"id": fmt.Sprintf("i%03d", n), "n": n})
			}
		}
		if items == nil {
			items = []map[string]any{}
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(items)
	}))
	t.Cleanup(tool.Close)
	in := &integration.Integration{Tenant: "acme", ID: "tool", DisplayName: "tool", Type: "http", Parameters: map[string]any{"baseUrl": tool.URL}}
	if _, err := ints.Put(ctx, in, nil); err != nil {
		t.Fatal(err)
	}
	v, err := ints.AddConfig(ctx, "acme", "tool", []byte(`{"resources": [{"kind": "item",
	  "selector": {"query": "true", "path": "/items", "pagination": {"type": "page", "pageSize": 10}},
	  "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": "\"item\"", "properties": {"n": ".n"}}}}}]}`))
	if err != nil {
		t.Fatal(err)
	}

	doomed := w.start(t, "worker", "--id", "terminated")
	doomed.waitOutput(t, regexp.MustCompile(`"msg":"worker consuming"`))
	js := natstest.JetStream(t, w.ns)
	q, err := queue.Open(ctx, js, queue.Options{MaxDeliver: -1})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := queue.NewEnvelope(queue.TypeConfigPatched, "acme", "tool", queue.ConfigPatched{ConfigVersion: v})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	var mid *run.Record
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := runs.Latest(ctx, "acme", "tool")
		if err == nil && r.Status == run.Running && r.Counts["item"] != nil && r.Counts["item"].Fetched >= 30 {
			mid = r
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run in the middle within 60s (%+v, %v)", r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := doomed.term(t, 35*time.Second)
	stopped, err := runs.Get(ctx, "acme", mid.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stopped.Status != run.Failed || stopped.Counts["item"].Deleted != 0 || !strings.Contains(stopped.Message, "shutting down") {
		t.Fatalf("the terminated worker's run: %s %q %+v", stopped.Status, stopped.Message, stopped.Counts["item"])
	}
	if _, held, err := lease.New(rdb, w.prefix, 30*time.Second).Token(ctx, "acme", "tool"); err != nil || held {
		t.Fatalf("the lease is still held after the worker exited (err %v)", err)
	}

	// Another worker process completes the event.
	fast.Store(true)
	survivor := w.start(t, "worker", "--id", "survivor")
	var final *run.Record
	deadline = time.Now().Add(2 * time.Minute)
	for {
		r, err := runs.Latest(ctx, "acme", "tool")
		if err == nil && r.ID != mid.ID && r.Status.Done() {
			final = r
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event was not completed by another worker within 2 min (%+v, %v)", r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if final.Status != run.Succeeded || final.Worker != "survivor" || final.Counts["item"].Upserted+final.Counts["item"].Unchanged != pages*perPage {
		t.Fatalf("the survivor's run: %s %q by %s %+v", final.Status, final.Message, final.Worker, final.Counts["item"])
	}
	list, _, err := cat.List(ctx, "acme", "item", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != pages*perPage {
		t.Fatalf("%d items in the catalog, want %d", len(list), pages*perPage)
	}
	for i, ent := range list {
		if want := fmt.Sprintf("i%03d", i); ent.Identifier != want || ent.Integration != "tool" || fmt.Sprint(ent.Properties["n"]) != strconv.Itoa(i) {
			t.Fatalf("item %d: %+v, want %s", i, ent, want)
		}
	}
	recs, _, _ := runs.List(ctx, "acme", "tool", 0, 100)
	for _, r := range recs {
		if r.Status == run.Running || r.Status == run.Queued {
			t.Errorf("run %s left %s", r.ID, r.Status)
		}
	}
	survivorTook := survivor.term(t, 35*time.Second)
	t.Logf("worker: SIGTERM at %d of %d items fetched, exited 0 after %v (run %s: %q); the survivor completed it and exited %v after its SIGTERM; took %v",
		mid.Counts["item"].Fetched, pages*perPage, took.Round(time.Millisecond), stopped.Status, stopped.Message, survivorTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
