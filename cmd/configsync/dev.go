package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// runDev runs configsync in one process on embedded defaults: an in-process NATS
// server with JetStream (so no NATS install is needed), the Redis given by URL, and
// the HTTP health endpoints. The sync worker and the API join it as they are built.
func runDev(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("dev", env.stderr)
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "address of the HTTP server")
	redisURL := fs.String("redis-url", "redis://127.0.0.1:6379/0", "Redis to keep the catalog in")
	natsHost := fs.String("nats-host", "127.0.0.1", "host the embedded NATS server listens on")
	natsPort := fs.Int("nats-port", 4333, "port of the embedded NATS server (-1: any free port)")
	dataDir := fs.String("data-dir", "", "JetStream storage folder (default: a temporary folder, removed on exit)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := zap.NewDevelopment()
	if err != nil {
		return fmt.Errorf("starting the logger: %w", err)
	}
	defer func() { _ = log.Sync() }()

	store := *dataDir
	if store == "" {
		if store, err = os.MkdirTemp("", "configsync-dev-js-"); err != nil {
			return fmt.Errorf("making the JetStream folder: %w", err)
		}
		defer os.RemoveAll(store)
	}
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: *natsHost, Port: *natsPort, JetStream: true, StoreDir: store, NoSigs: true,
	})
	if err != nil {
		return fmt.Errorf("configuring the embedded NATS server: %w", err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("the embedded NATS server did not start within 10s")
	}
	log.Info("embedded NATS with JetStream ready", zap.String("url", ns.ClientURL()), zap.String("store", store))

	opts, err := redis.ParseURL(*redisURL)
	if err != nil {
		return fmt.Errorf("parsing --redis-url: %w", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rdb.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("connecting to Redis at %s (scripts/services starts one): %w", opts.Addr, err)
	}
	log.Info("Redis ready", zap.String("addr", opts.Addr), zap.Int("db", opts.DB))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := rdb.Ping(r.Context()).Err(); err != nil || !ns.Running() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"status":"unavailable"}`)
			return
		}
		fmt.Fprintln(w, `{"status":"ready"}`)
	})
	srv := &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("configsync dev is up", zap.String("http", "http://"+*httpAddr), zap.String("try", "curl http://"+*httpAddr+"/readyz"))
	select {
	case err := <-errc:
		return fmt.Errorf("HTTP server on %s: %w", *httpAddr, err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutCtx)
}
