package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/configsync/configsync/mapping"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/worker"
)

// workerSettings are the worker command's flags.
type workerSettings struct {
	conn                           connFlags
	roots                          listFlag
	id                             string
	ackWait, leaseTTL, itemTimeout time.Duration
	httpAllowPrivate               bool
	healthAddr                     string
	gc                             gcSettings
	// envChecks report environment variables that could not be read (envDuration).
	envChecks []func() error
}

// workerFlags declares the worker's flags; docker-compose.yml's test checks its
// arguments against this same set.
func workerFlags(env *environment) (*flag.FlagSet, *workerSettings) {
	fs := newFlags("worker", env.stderr)
	s := &workerSettings{}
	s.conn.registerService(fs, env)
	fs.Var(&s.roots, "file-roots", "directories file sources may read under (comma-separated; CONFIGSYNC_FILE_ROOTS)")
	fs.StringVar(&s.id, "id", env.envOr("CONFIGSYNC_WORKER_ID", ""), "worker id in run records and logs (CONFIGSYNC_WORKER_ID; default random)")
	s.envChecks = append(s.envChecks,
		envDuration(fs, env, &s.ackWait, "ack-wait", "CONFIGSYNC_ACK_WAIT", 30*time.Second, "JetStream AckWait: how long an event waits for a heartbeat before redelivery (at most 30s)"),
		envDuration(fs, env, &s.leaseTTL, "lease-ttl", "CONFIGSYNC_LEASE_TTL", 30*time.Second, "how long a run's lease lasts without renewal (at most 30s)"),
		envDuration(fs, env, &s.itemTimeout, "item-timeout", "CONFIGSYNC_ITEM_TIMEOUT", mapping.DefaultItemTimeout, "time limit for mapping one item"))
	fs.BoolVar(&s.httpAllowPrivate, "http-allow-private", env.envOr("CONFIGSYNC_HTTP_ALLOW_PRIVATE", "") == "true",
		"let http sources reach loopback, link-local and private addresses (CONFIGSYNC_HTTP_ALLOW_PRIVATE=true)")
	fs.StringVar(&s.healthAddr, "health-addr", env.envOr("CONFIGSYNC_HEALTH_ADDR", ""), "address serving /healthz and /metrics (Prometheus), e.g. :9090 (CONFIGSYNC_HEALTH_ADDR; default: none)")
	s.gc.register(fs, env)
	return fs, s
}

// runWorker consumes events and runs syncs; several may run at once.
func runWorker(ctx context.Context, env *environment, args []string) error {
	fs, ws := workerFlags(env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, check := range ws.envChecks {
		if err := check(); err != nil {
			return err
		}
	}
	if v, ok := env.lookup("CONFIGSYNC_FILE_ROOTS"); ok && len(ws.roots) == 0 {
		_ = ws.roots.Set(v)
	}
	if ws.ackWait > 30*time.Second || ws.leaseTTL > 30*time.Second {
		return &usageError{"--ack-wait and --lease-ttl are at most 30s, so that a killed worker's run is taken over within a minute"}
	}
	undoGC, err := ws.gc.apply(env)
	if err != nil {
		return err
	}
	defer undoGC()
	st, err := openService(ctx, env, stackOptions{conn: ws.conn, fileRoots: ws.roots, leaseTTL: ws.leaseTTL, httpAllowPrivate: ws.httpAllowPrivate,
		queue: queue.Options{AckWait: ws.ackWait, MaxDeliver: -1}})
	if err != nil {
		return err
	}
	defer st.close()
	log := st.log
	w := newWorker(st, ws.id, ws.leaseTTL, ws.itemTimeout, env, log)
	if ws.healthAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		instrumentWorker(reg, w, st, ws.httpAllowPrivate)
		srv, addr, err := serveWorkerHealth(ws.healthAddr, reg)
		if err != nil {
			return err
		}
		defer func() { _ = srv.Close() }()
		log.Info("worker health and metrics", zap.String("addr", addr))
	}
	// Run ends with nil or context.Canceled when the signal stopped it.
	if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("worker stopped")
	return nil
}

func newWorker(st *stack, id string, leaseTTL, itemTimeout time.Duration, env *environment, log *zap.Logger) *worker.Worker {
	return worker.New(worker.Config{ID: id, LeaseTTL: leaseTTL, Mapping: mapping.Options{ItemTimeout: itemTimeout, Environ: env.environ}},
		worker.Deps{Redis: st.rdb, Prefix: st.prefix, Queue: st.q, Integrations: st.integrations, Runs: st.runs,
			Catalog: st.catalog, Leases: st.leases, Sources: st.sources, Log: log})
}

// serveWorkerHealth serves /healthz (the process is up and serving) and /metrics
// (reg) on addr.
func serveWorkerHealth(addr string, reg *prometheus.Registry) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--health-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}

// newLogger returns zap's JSON logger for production, or the console one in dev.
func newLogger(env *environment, dev bool) (*zap.Logger, error) {
	var cfg zap.Config
	if dev {
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
		cfg.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
	} else {
		cfg = zap.NewProductionConfig()
	}
	if lvl, ok := env.lookup("CONFIGSYNC_LOG_LEVEL"); ok {
		if err := cfg.Level.UnmarshalText([]byte(lvl)); err != nil {
			return nil, fmt.Errorf("CONFIGSYNC_LOG_LEVEL: %w", err)
		}
	}
	return cfg.Build()
}
