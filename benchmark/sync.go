// Package benchmark runs configsync end to end against a local GitHub-like HTTP
// server, in this process, for `configsync bench sync` (issue 7): an embedded NATS,
// the Redis given by URL (under a key prefix of its own, removed at the end), a worker
// with the http source, and three resyncs (full from an empty catalog, unchanged, and
// with 1% of the items changed and 1% removed), plus the latency from a published
// config.patched to its run starting.
package benchmark

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/configsync/configsync/blueprint"
	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/fakegithub"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/lease"
	"github.com/configsync/configsync/mapping"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/secrets"
	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
	"github.com/configsync/configsync/worker"
)

// Options configure one benchmark run.
type Options struct {
	// Items is the number of repositories the server lists (default 100,000).
	Items int
	// RedisURL is the Redis the catalog is kept in.
	RedisURL string
	// ConfigPath is the compat corpus' GitHub port-app-config.yml; its repository
	// resource is used, and blueprints.json next to it is loaded.
	ConfigPath string
	// PageSize is the server's page size (default 100).
	PageSize int
	// LatencySamples is how many patch-to-run-start latencies are measured (default 9).
	LatencySamples int
	// Log, when set, is the worker's logger.
	Log *zap.Logger
	// Progress, when set, is called with a line per step.
	Progress func(string)
}

// Phase is one measured resync.
type Phase struct {
	Name          string
	Wall          time.Duration
	Counts        run.Counts // of kind repository
	Status        run.Status
	RedisCommands int64
	PeakRSS       int64 // bytes, VmHWM of this process (reset before the phase when the kernel allows)
	// CPU is the CPU time of this process (user and system) during the phase, and
	// RedisCPU that of the Redis server (0 when INFO does not tell): on a noisy
	// machine they move less than the wall time, since time waiting for a core is
	// not in them.
	CPU, RedisCPU time.Duration
}

// EntitiesPerSecond is the items handled per second of wall time.
func (p Phase) EntitiesPerSecond(items int) float64 { return float64(items) / p.Wall.Seconds() }

// Result is what Run measured.
type Result struct {
	Items        int
	Phases       []Phase
	Latencies    []time.Duration
	PeakRSSReset bool // whether VmHWM could be reset between phases
}

// MedianLatency is the median patch-to-run-start latency.
func (r *Result) MedianLatency() time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	l := slices.Clone(r.Latencies)
	slices.Sort(l)
	return l[len(l)/2]
}

const (
	tenant        = "bench"
	integrationID = "github"
	kind          = "repository"
)

// Config returns the benchmark's integration config: the corpus' repository resource,
// read from the http source at /repos with page pagination, with
// createMissingRelatedEntities (barebones organizations), as JSON. maxPages leaves room
// for items repositories (the http source's default stops at 10,000 pages).
func Config(configPath string, pageSize, items int) ([]byte, error) {
	if pageSize <= 0 {
		pageSize = 100
	}
	doc, err := os.ReadFile(configPath)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(doc, &cfg); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", configPath, err)
	}
	var repo map[string]any
	rs, _ := cfg["resources"].([]any)
	for _, r := range rs {
		if m, ok := r.(map[string]any); ok && m["kind"] == kind {
			repo = m
		}
	}
	if repo == nil {
		return nil, fmt.Errorf("%s has no resource of kind %q", configPath, kind)
	}
	sel, _ := repo["selector"].(map[string]any)
	q, _ := sel["query"].(string)
	if q == "" {
		q = "true"
	}
	// includedFiles is a GitHub-integration selector the http source does not know.
	repo["selector"] = map[string]any{"query": q, "path": "/repos",
		"pagination": map[string]any{"type": "page", "pageSize": pageSize, "maxPages": max(10_000, items/pageSize+2)}}
	out := map[string]any{
		"deleteDependentEntities":      true,
		"createMissingRelatedEntities": true,
		"resources":                    []any{repo},
	}
	return json.Marshal(out)
}

// server serves the repositories as GitHub lists them: GET /repos?page=P&per_page=S.
//
// Pages of the benchmark's page size are rendered into a file before a resync starts
// and sent from it with sendfile: the real tool runs on another machine, and rendering
// half a megabyte per page here took a core-tenth of a full resync from the process
// being measured (7% of its CPU profile). Other page sizes are rendered per request.
type server struct {
	dir      string // where page files are written
	perPage  int
	mu       sync.RWMutex
	present  []int // indexes of the listed repositories
	changed  map[int]bool
	file     string  // the rendered pages of present, perPage per page
	offsets  []int64 // page p is bytes offsets[p-1] to offsets[p] of file
	requests atomic.Int64
}

// appendPage appends page (from 1) of per repositories, as a JSON array.
func appendPage(buf []byte, present []int, changed map[int]bool, page, per int) []byte {
	revised := fakegithub.RepositoryOptions{Revision: 1, RevisionEvery: 1}
	lo := min((page-1)*per, len(present))
	hi := min(lo+per, len(present))
	buf = append(buf, '[')
	for j, i := range present[lo:hi] {
		if j > 0 {
			buf = append(buf, ',')
		}
		if changed[i] {
			buf = fakegithub.AppendRepository(buf, i, revised)
		} else {
			buf = fakegithub.AppendRepository(buf, i, fakegithub.RepositoryOptions{})
		}
	}
	return append(buf, ']')
}

// render writes every page of the listed repositories into a new file, which the
// server then serves from; the previous one is removed (requests still reading it
// keep it open).
func (s *server) render() error {
	s.mu.RLock()
	present, changed := s.present, s.changed
	s.mu.RUnlock()
	f, err := os.CreateTemp(s.dir, "pages-*.json")
	if err != nil {
		return fmt.Errorf("rendering the pages: %w", err)
	}
	pages := max(1, (len(present)+s.perPage-1)/s.perPage)
	offsets := make([]int64, 1, pages+1)
	var buf []byte
	for p := 1; p <= pages; p++ {
		buf = appendPage(buf[:0], present, changed, p, s.perPage)
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return fmt.Errorf("rendering the pages: %w", err)
		}
		offsets = append(offsets, offsets[p-1]+int64(len(buf)))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("rendering the pages: %w", err)
	}
	s.mu.Lock()
	old := s.file
	s.file, s.offsets = f.Name(), offsets
	s.mu.Unlock()
	if old != "" {
		_ = os.Remove(old)
	}
	return nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/repos" {
		http.NotFound(w, r)
		return
	}
	s.requests.Add(1)
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if page < 1 {
		page = 1
	}
	if per < 1 || per > 1000 {
		per = 30
	}
	s.mu.RLock()
	present, changed, file, offsets := s.present, s.changed, s.file, s.offsets
	s.mu.RUnlock()
	w.Header().Set("Content-Type", "application/json")
	if per == s.perPage && page < len(offsets) { // pages past the end are "[]", rendered below
		f, err := os.Open(file)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		if _, err := f.Seek(offsets[page-1], io.SeekStart); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		n := offsets[page] - offsets[page-1]
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.CopyN(w, f, n) // sendfile: the file and the connection are both the kernel's
		return
	}
	buf := appendPage(nil, present, changed, page, per)
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	_, _ = w.Write(buf)
}

// change changes one repository in each block of 100 and removes another: 1% each.
// The changed one is the block's first, or the next when the first's description is
// null (fakegithub gives every 7th repository none, and the revision is written in the
// description, so that one's entity would not change); the removed one is the 50th.
func (s *server) change() (changed, removed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := make([]int, 0, len(s.present))
	s.changed = map[int]bool{}
	for _, i := range s.present {
		if i%100 == 50 {
			removed++
			continue
		}
		if first := i - i%100; i == first && first%7 != 0 || i == first+1 && first%7 == 0 {
			s.changed[i] = true
			changed++
		}
		kept = append(kept, i)
	}
	s.present = kept
	return changed, removed
}

// counter counts the Redis commands a client sends (each command of a pipeline).
type counter struct{ n atomic.Int64 }

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// Run runs the benchmark.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Items <= 0 {
		o.Items = 100_000
	}
	if o.PageSize <= 0 {
		o.PageSize = 100
	}
	if o.LatencySamples <= 0 {
		o.LatencySamples = 9
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			o.Progress(fmt.Sprintf(format, args...))
		}
	}
	cfgDoc, err := Config(o.ConfigPath, o.PageSize, o.Items)
	if err != nil {
		return nil, err
	}
	bpDoc, err := os.ReadFile(filepath.Join(filepath.Dir(o.ConfigPath), "blueprints.json"))
	if err != nil {
		return nil, fmt.Errorf("reading the blueprints: %w", err)
	}
	bps, err := blueprint.Parse(bpDoc)
	if err != nil {
		return nil, fmt.Errorf("parsing the blueprints: %w", err)
	}

	// A temporary folder for the server's pages and NATS's streams.
	dir, err := os.MkdirTemp("", "configsync-bench-sync-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	// The GitHub-like server.
	srv := &server{dir: dir, perPage: o.PageSize, present: make([]int, o.Items)}
	for i := range srv.present {
		srv.present[i] = i
	}
	if err := srv.render(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	baseURL := "http://" + ln.Addr().String()

	// Embedded NATS with JetStream in a temporary folder.
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true, StoreDir: filepath.Join(dir, "nats"), NoSigs: true})
	if err != nil {
		return nil, fmt.Errorf("configuring the embedded NATS server: %w", err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("the embedded NATS server did not start within 10s")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	q, err := queue.Open(ctx, js, queue.Options{MaxDeliver: -1})
	if err != nil {
		return nil, fmt.Errorf("opening the queue: %w", err)
	}

	// Redis: the worker's client counts commands; the benchmark's own (setup,
	// polling, cleanup) does not.
	ropts, err := redis.ParseURL(o.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("parsing the Redis URL: %w", err)
	}
	own := redis.NewClient(ropts)
	defer own.Close()
	if err := own.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("connecting to Redis: %w", err)
	}
	wrdb := redis.NewClient(ropts)
	defer wrdb.Close()
	cnt := &counter{}
	wrdb.AddHook(cnt)
	prefix := "csbench-" + uuid.NewString()[:8]
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if derr := deleteKeys(cctx, own, prefix); derr != nil && err == nil {
			err = derr
		}
	}()

	key, err := secrets.GenerateKey()
	if err != nil {
		return nil, err
	}
	kr, err := secrets.ParseKeyring(key, "")
	if err != nil {
		return nil, err
	}
	ints := integration.NewStore(own, prefix, kr)
	runs := run.NewStore(own, prefix)
	cat := catalog.New(own, prefix, nil)
	for _, bp := range bps {
		if err := cat.PutBlueprint(ctx, tenant, bp); err != nil {
			return nil, err
		}
	}
	in := &integration.Integration{Tenant: tenant, ID: integrationID, DisplayName: "bench", Type: httpsource.TypeID,
		Parameters: map[string]any{"baseUrl": baseURL}}
	if _, err := ints.Put(ctx, in, nil); err != nil {
		return nil, err
	}
	version, err := ints.AddConfig(ctx, tenant, integrationID, cfgDoc)
	if err != nil {
		return nil, err
	}

	w := worker.New(worker.Config{ID: "bench", LeaseTTL: 30 * time.Second, Mapping: mapping.Options{ItemTimeout: mapping.DefaultItemTimeout}},
		worker.Deps{Redis: wrdb, Prefix: prefix, Queue: q, Integrations: integration.NewStore(wrdb, prefix, kr),
			Runs: run.NewStore(wrdb, prefix), Catalog: catalog.New(wrdb, prefix, nil), Leases: lease.New(wrdb, prefix, 30*time.Second),
			Sources: source.NewRegistry(httpsource.Type(httpsource.Options{AllowPrivate: true})), Log: o.Log})
	wctx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(wctx) }()
	defer func() { stopWorker(); <-workerDone }()

	res = &Result{Items: o.Items}
	prev := ""
	phase := func(name string, ev queue.Envelope) error {
		res.PeakRSSReset = resetPeakRSS() == nil
		before := cnt.n.Load()
		cpuBefore, redisBefore := processCPU(), redisCPU(ctx, own)
		start := time.Now()
		if err := q.Publish(ctx, ev); err != nil {
			return err
		}
		rec, err := waitDone(ctx, runs, prev, workerDone)
		if err != nil {
			return fmt.Errorf("%s resync: %w", name, err)
		}
		p := Phase{Name: name, Wall: time.Since(start), Status: rec.Status, RedisCommands: cnt.n.Load() - before, PeakRSS: peakRSS(),
			CPU: processCPU() - cpuBefore}
		if redisBefore > 0 {
			p.RedisCPU = redisCPU(ctx, own) - redisBefore
		}
		if c := rec.Counts[kind]; c != nil {
			p.Counts = *c
		}
		prev = rec.ID
		res.Phases = append(res.Phases, p)
		progress("%s resync: %s in %v (%+v)", name, rec.Status, p.Wall.Round(time.Millisecond), p.Counts)
		if rec.Status != run.Succeeded {
			return fmt.Errorf("%s resync ended %s: %s %v", name, rec.Status, rec.Message, rec.Errors)
		}
		return nil
	}
	patch := func() (queue.Envelope, error) {
		return queue.NewEnvelope(queue.TypeConfigPatched, tenant, integrationID, queue.ConfigPatched{ConfigVersion: version})
	}
	resync := func() (queue.Envelope, error) {
		return queue.NewEnvelope(queue.TypeResyncRequested, tenant, integrationID, queue.ResyncRequested{Reason: "bench"})
	}

	progress("full resync of %d repositories from %s", o.Items, baseURL)
	ev, err := patch()
	if err != nil {
		return res, err
	}
	if err := phase("full", ev); err != nil {
		return res, err
	}
	if ev, err = resync(); err != nil {
		return res, err
	}
	if err := phase("unchanged", ev); err != nil {
		return res, err
	}
	changed, removed := srv.change()
	if err := srv.render(); err != nil {
		return res, err
	}
	progress("changed %d and removed %d repositories", changed, removed)
	if ev, err = resync(); err != nil {
		return res, err
	}
	if err := phase("changed", ev); err != nil {
		return res, err
	}

	// Latency: config.patched naming the stored version, until its run is running.
	// Each of these runs is an unchanged resync; the next sample waits for it to end.
	for range o.LatencySamples {
		ev, err := patch()
		if err != nil {
			return res, err
		}
		start := time.Now()
		if err := q.Publish(ctx, ev); err != nil {
			return res, err
		}
		id, err := waitStarted(ctx, runs, prev, workerDone)
		if err != nil {
			return res, fmt.Errorf("latency: %w", err)
		}
		res.Latencies = append(res.Latencies, time.Since(start))
		rec, err := waitDone(ctx, runs, prev, workerDone)
		if err != nil {
			return res, fmt.Errorf("latency: %w", err)
		}
		_ = id
		prev = rec.ID
	}
	progress("patch-to-run-start latency: median %v of %d", res.MedianLatency(), len(res.Latencies))
	return res, nil
}

// waitStarted polls the newest run every millisecond until a run other than prev is
// running (or already done).
func waitStarted(ctx context.Context, runs *run.Store, prev string, workerDone <-chan error) (string, error) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		rec, err := runs.Latest(ctx, tenant, integrationID)
		if err == nil && rec.ID != prev && rec.Status != run.Queued {
			return rec.ID, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case err := <-workerDone:
			return "", fmt.Errorf("the worker stopped: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	return "", errors.New("no run started within a minute")
}

// waitDone waits for a run other than prev to finish.
func waitDone(ctx context.Context, runs *run.Store, prev string, workerDone <-chan error) (*run.Record, error) {
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		rec, err := runs.Latest(ctx, tenant, integrationID)
		if err == nil && rec.ID != prev && rec.Status.Done() {
			return rec, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-workerDone:
			return nil, fmt.Errorf("the worker stopped: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil, errors.New("the run did not finish within 30 minutes")
}

// deleteKeys removes every key under prefix (SCAN and UNLINK; never FLUSHALL).
func deleteKeys(ctx context.Context, rdb *redis.Client, prefix string) error {
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := rdb.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return rdb.Unlink(ctx, batch...).Err()
	}
	return nil
}

// peakRSS is this process's PeakRSS.
func peakRSS() int64 { return PeakRSS(os.Getpid()) }

// PeakRSS reads a process's peak resident memory (VmHWM) from /proc, in bytes; 0 when
// it cannot (the process has ended, or there is no /proc).
func PeakRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the CPU time the Redis server has used (INFO cpu), or 0.
func redisCPU(ctx context.Context, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// resetPeakRSS resets VmHWM to the current RSS (Linux: 5 > /proc/self/clear_refs).
func resetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
