package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/configsync/configsync/mapping"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/worker"
)

// runWorker consumes events and runs syncs; several may run at once.
func runWorker(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("worker", env.stderr)
	var conn connFlags
	conn.register(fs, env, "nats://127.0.0.1:4222", "redis://127.0.0.1:6379/0")
	var roots listFlag
	fs.Var(&roots, "file-roots", "directories file sources may read under (comma-separated; CONFIGSYNC_FILE_ROOTS)")
	id := fs.String("id", env.envOr("CONFIGSYNC_WORKER_ID", ""), "worker id in run records and logs (CONFIGSYNC_WORKER_ID; default random)")
	ackWait := fs.Duration("ack-wait", 30*time.Second, "JetStream AckWait: how long an event waits for a heartbeat before redelivery (at most 30s)")
	leaseTTL := fs.Duration("lease-ttl", 30*time.Second, "how long a run's lease lasts without renewal (at most 30s)")
	itemTimeout := fs.Duration("item-timeout", mapping.DefaultItemTimeout, "time limit for mapping one item")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if v, ok := env.lookup("CONFIGSYNC_FILE_ROOTS"); ok && len(roots) == 0 {
		_ = roots.Set(v)
	}
	if *ackWait > 30*time.Second || *leaseTTL > 30*time.Second {
		return &usageError{"--ack-wait and --lease-ttl are at most 30s, so that a killed worker's run is taken over within a minute"}
	}
	log, err := newLogger(env, false)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	kr, err := keyringFromEnv(env)
	if err != nil {
		return err
	}
	st, err := openStack(ctx, stackOptions{conn: conn, keyring: kr, fileRoots: roots, leaseTTL: *leaseTTL, log: log,
		queue: queue.Options{AckWait: *ackWait, MaxDeliver: -1}})
	if err != nil {
		return err
	}
	defer st.close()
	w := newWorker(st, *id, *leaseTTL, *itemTimeout, env, log)
	err = w.Run(ctx)
	if errors.Is(err, context.Canceled) {
		log.Info("worker stopped")
		return nil
	}
	return err
}

func newWorker(st *stack, id string, leaseTTL, itemTimeout time.Duration, env *environment, log *zap.Logger) *worker.Worker {
	return worker.New(worker.Config{ID: id, LeaseTTL: leaseTTL, Mapping: mapping.Options{ItemTimeout: itemTimeout, Environ: env.environ}},
		worker.Deps{Redis: st.rdb, Prefix: st.prefix, Queue: st.q, Integrations: st.integrations, Runs: st.runs,
			Catalog: st.catalog, Leases: st.leases, Sources: st.sources, Log: log})
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
