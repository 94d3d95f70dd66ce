package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/configsync/configsync/api"
	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/demo"
	"github.com/configsync/configsync/manifest"
	"github.com/configsync/configsync/mapping"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/scheduler"
	"github.com/configsync/configsync/secrets"
)

// runDev runs configsync in one process on embedded defaults: an in-process NATS
// server with JetStream stored under --data, Redis from --redis-url or an in-process
// Redis-compatible server, a worker, and the HTTP health endpoints.
func runDev(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("dev", env.stderr)
	httpAddr := fs.String("http-addr", env.envOr("CONFIGSYNC_HTTP_ADDR", "127.0.0.1:8080"), "address of the HTTP server (CONFIGSYNC_HTTP_ADDR)")
	dataDir := fs.String("data", env.envOr("CONFIGSYNC_DATA", ".configsync"), "folder for JetStream's store, the generated encryption key and the demo (CONFIGSYNC_DATA)")
	natsURL := fs.String("nats-url", env.envOr("CONFIGSYNC_NATS_URL", ""), "use this NATS (2.10+, JetStream) instead of the embedded one")
	redisURL := fs.String("redis-url", env.envOr("CONFIGSYNC_REDIS_URL", ""), "Redis to keep the catalog in (default: an in-process Redis-compatible server whose state is not kept)")
	prefix := fs.String("prefix", env.envOr("CONFIGSYNC_PREFIX", "cs"), "prefix of every Redis key (CONFIGSYNC_PREFIX)")
	load := fs.String("load", "", "apply the blueprints and integrations declared in the YAML files of this folder")
	withDemo := fs.Bool("demo", false, "load the bundled example (blueprints and an integration over example files), sync it and print what it did")
	allowPrivate := fs.Bool("http-allow-private", env.envOr("CONFIGSYNC_HTTP_ALLOW_PRIVATE", "") == "true",
		"let http sources reach loopback and private addresses, e.g. a REST API on this machine (CONFIGSYNC_HTTP_ALLOW_PRIVATE=true)")
	var gc gcSettings
	gc.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	undoGC, err := gc.apply(env)
	if err != nil {
		return err
	}
	defer undoGC()
	log, err := newLogger(env, true)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	data, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return fmt.Errorf("making the data folder: %w", err)
	}
	kr, err := devKeyring(env, data, log)
	if err != nil {
		return err
	}

	conn := connFlags{natsURL: *natsURL, redisURL: *redisURL, prefix: *prefix}
	if conn.natsURL == "" {
		ns, err := startEmbeddedNATS(filepath.Join(data, "jetstream"))
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		conn.natsURL = ns.ClientURL()
		log.Info("embedded NATS with JetStream", zap.String("url", conn.natsURL), zap.String("store", filepath.Join(data, "jetstream")))
	}
	if conn.redisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			return fmt.Errorf("starting the in-process Redis: %w", err)
		}
		defer mr.Close()
		conn.redisURL = "redis://" + mr.Addr()
		log.Warn("in-process Redis-compatible server: the catalog is NOT kept when configsync stops; give --redis-url to keep it", zap.String("url", conn.redisURL))
	}
	cwd, _ := os.Getwd()
	st, err := openStack(ctx, stackOptions{conn: conn, keyring: kr, fileRoots: []string{cwd, data}, log: log, httpAllowPrivate: *allowPrivate,
		queue: queue.Options{MaxDeliver: -1}})
	if err != nil {
		return err
	}
	defer st.close()

	w := newWorker(st, "dev", 30*time.Second, mapping.DefaultItemTimeout, env, log)
	// The worker's metrics (runs, source requests, consumer lag) on a port of their
	// own, as `configsync worker --health-addr` serves them.
	reg := prometheus.NewRegistry()
	instrumentWorker(reg, w, st, *allowPrivate)
	msrv, maddr, err := serveWorkerHealth("127.0.0.1:0", reg)
	if err != nil {
		return err
	}
	defer func() { _ = msrv.Close() }()
	log.Info("worker metrics", zap.String("url", "http://"+maddr+"/metrics"))
	workerDone := make(chan error, 1)
	wctx, stopWorker := context.WithCancel(ctx)
	defer func() { stopWorker(); <-workerDone }()
	go func() { workerDone <- w.Run(wctx) }()
	schedulerDone := make(chan struct{})
	defer func() { stopWorker(); <-schedulerDone }()
	go func() {
		defer close(schedulerDone)
		_ = scheduler.New(st.rdb, st.prefix, st.integrations, st.q, log, nil).Run(wctx, 15*time.Second)
	}()

	secret, err := devJWTSecret(env, data)
	if err != nil {
		return err
	}
	srv, addr, err := serveAPI(st, api.Config{JWTSecret: secret}, *httpAddr, *allowPrivate, log)
	if err != nil {
		return err
	}
	token, err := api.MintToken(secret, []string{"default", "demo"}, true, 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	base := "http://" + addr
	fmt.Fprintf(env.stdout, "configsync dev: API on %s (OpenAPI: %s/openapi.json)\n", base, base)
	fmt.Fprintf(env.stdout, "configsync dev: token for tenants default and demo (24h):\n  export TOKEN=%s\n", token)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("configsync dev is up", zap.String("http", "http://"+addr), zap.String("nats", redactURLs(conn.natsURL)), zap.String("redis", redactURLs(conn.redisURL)))

	deps := manifest.Deps{Catalog: st.catalog, Integrations: st.integrations, Sources: st.sources, Queue: st.q}
	if *load != "" {
		docs, err := manifest.ReadDir(*load)
		if err != nil {
			return err
		}
		if _, err := applyAndReport(ctx, env, st, deps, docs); err != nil {
			return err
		}
	}
	if *withDemo {
		dir := filepath.Join(data, "demo")
		if err := extractDemo(dir); err != nil {
			return err
		}
		docs, err := manifest.ReadDir(dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "demo: loading %s\n", dir)
		if _, err := applyAndReport(ctx, env, st, deps, docs); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "demo: try  configsync catalog list --redis-url %s --tenant demo --blueprint service\n", redactURLs(conn.redisURL))
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-workerDone:
		workerDone <- err
		return fmt.Errorf("the worker stopped: %w", err)
	}
}

// devKeyring uses CONFIGSYNC_ENCRYPTION_KEY(S) when set, else a key generated once
// and kept (0600) under the data folder.
func devKeyring(env *environment, data string, log *zap.Logger) (*secrets.Keyring, error) {
	single, _ := env.lookup("CONFIGSYNC_ENCRYPTION_KEY")
	list, _ := env.lookup("CONFIGSYNC_ENCRYPTION_KEYS")
	if single != "" || list != "" {
		// A key that is set but wrong must not be replaced by a generated one: what
		// it encrypts would never decrypt under the real key.
		return keyringFromEnv(env)
	}
	path := filepath.Join(data, "encryption.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err := secrets.GenerateKey()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("keeping the generated encryption key: %w", err)
		}
		log.Info("generated an encryption key for credentials", zap.String("file", path))
		b = []byte(key)
	} else if err != nil {
		return nil, fmt.Errorf("reading the encryption key: %w", err)
	}
	return secrets.ParseKeyring(strings.TrimSpace(string(b)), "")
}

// startEmbeddedNATS runs nats-server in-process on a free port, so that it never
// takes the port of a NATS already running on the machine.
func startEmbeddedNATS(store string) (*natsserver.Server, error) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true, StoreDir: store, NoSigs: true})
	if err != nil {
		return nil, fmt.Errorf("configuring the embedded NATS server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("the embedded NATS server did not start within 10s")
	}
	return ns, nil
}

// extractDemo writes the bundled demo files into dir.
func extractDemo(dir string) error {
	return fs.WalkDir(demo.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := demo.Files.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// applyAndReport applies declarations, waits for the runs they start, and prints what
// happened.
func applyAndReport(ctx context.Context, env *environment, st *stack, deps manifest.Deps, docs []manifest.Document) ([]manifest.Applied, error) {
	applied, err := manifest.Apply(ctx, deps, docs)
	if err != nil {
		return applied, err
	}
	blueprints := map[string][]string{}
	for _, a := range applied {
		switch a.Kind {
		case "blueprint":
			fmt.Fprintf(env.stdout, "  blueprint %s/%s stored\n", a.Tenant, a.ID)
			blueprints[a.Tenant] = append(blueprints[a.Tenant], a.ID)
		case "integration":
			fmt.Fprintf(env.stdout, "  integration %s/%s stored with config version %d\n", a.Tenant, a.ID, a.ConfigVersion)
		}
	}
	for _, a := range applied {
		if a.Kind != "integration" || a.ConfigVersion == 0 {
			continue
		}
		rec, err := waitForRun(ctx, st.runs, a.Tenant, a.ID, 2*time.Minute)
		if err != nil {
			return applied, err
		}
		fmt.Fprintf(env.stdout, "  run %s of %s/%s: %s", rec.ID, a.Tenant, a.ID, rec.Status)
		if rec.Message != "" {
			fmt.Fprintf(env.stdout, " (%s)", rec.Message)
		}
		fmt.Fprintln(env.stdout)
		for _, kind := range slices.Sorted(maps.Keys(rec.Counts)) {
			c := rec.Counts[kind]
			fmt.Fprintf(env.stdout, "    %-10s fetched %d, selected %d, upserted %d, unchanged %d, failed %d, deleted %d\n",
				kind, c.Fetched, c.Selected, c.Upserted, c.Unchanged, c.Failed, c.Deleted)
		}
		for _, e := range rec.Errors {
			fmt.Fprintf(env.stdout, "    ! %s\n", e)
		}
	}
	for tenant, bps := range blueprints {
		for _, bp := range bps {
			if err := printEntities(ctx, env, st.catalog, tenant, bp); err != nil {
				return applied, err
			}
		}
	}
	return applied, nil
}

func printEntities(ctx context.Context, env *environment, cat *catalog.Catalog, tenant, bp string) error {
	list, _, err := cat.List(ctx, tenant, bp, "", 20)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "  %s/%s: %d entities\n", tenant, bp, len(list))
	for _, e := range list {
		rels := []string{}
		for _, name := range slices.Sorted(maps.Keys(e.Relations)) {
			if v := e.Relations[name]; v != nil {
				rels = append(rels, fmt.Sprintf("%s→%v", name, v))
			}
		}
		owner := e.Integration
		if owner == "" {
			owner = "barebones"
		}
		fmt.Fprintf(env.stdout, "    %-12s %-24q %s %s\n", e.Identifier, e.Title, owner, strings.Join(rels, " "))
	}
	return nil
}

// waitForRun waits for the newest run of an integration to finish.
func waitForRun(ctx context.Context, runs *run.Store, tenant, id string, timeout time.Duration) (*run.Record, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		rec, err := runs.Latest(ctx, tenant, id)
		if err == nil && rec.Status.Done() {
			return rec, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("the run of %s/%s did not finish within %v", tenant, id, timeout)
}
