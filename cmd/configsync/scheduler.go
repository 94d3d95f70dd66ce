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
	conn.registerService(fs, env)
	var tick time.Duration
	checkTick := envDuration(fs, env, &tick, "tick", "CONFIGSYNC_SCHEDULER_TICK", 15*time.Second, "how often to look for due integrations")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkTick(); err != nil {
		return err
	}
	st, err := openService(ctx, env, stackOptions{conn: conn, queue: queue.Options{}})
	if err != nil {
		return err
	}
	defer st.close()
	err = scheduler.New(st.rdb, st.prefix, st.integrations, st.q, st.log, nil).Run(ctx, tick)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
