package main

import (
	"context"
	"errors"
	"time"

	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/scheduler"
)

// runScheduler publishes resync.requested for integrations whose resyncInterval is
// due; several may run at once.
func runScheduler(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("scheduler", env.stderr)
	var conn connFlags
	conn.register(fs, env, "nats://127.0.0.1:4222", "redis://127.0.0.1:6379/0")
	tick := fs.Duration("tick", 15*time.Second, "how often to look for due integrations")
	if err := parseFlags(fs, args); err != nil {
		return err
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
	st, err := openStack(ctx, stackOptions{conn: conn, keyring: kr, log: log, queue: queue.Options{}})
	if err != nil {
		return err
	}
	defer st.close()
	err = scheduler.New(st.rdb, st.prefix, st.integrations, st.q, log, nil).Run(ctx, *tick)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
