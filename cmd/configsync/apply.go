package main

import (
	"context"

	"github.com/configsync/configsync/manifest"
	"github.com/configsync/configsync/queue"
)

// runApply applies the blueprints and integrations declared in a folder of YAML files
// to a running deployment, and waits for the runs they start.
func runApply(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("apply", env.stderr)
	var conn connFlags
	conn.register(fs, env, "nats://127.0.0.1:4222", "redis://127.0.0.1:6379/0")
	dir := fs.String("dir", "", "folder of YAML declarations (kind: blueprint|integration, tenant, spec) (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return &usageError{"--dir is required"}
	}
	docs, err := manifest.ReadDir(*dir)
	if err != nil {
		return err
	}
	kr, err := keyringFromEnv(env)
	if err != nil {
		return err
	}
	st, err := openStack(ctx, stackOptions{conn: conn, keyring: kr, queue: queue.Options{}})
	if err != nil {
		return err
	}
	defer st.close()
	_, err = applyAndReport(ctx, env, st, manifest.Deps{Catalog: st.catalog, Integrations: st.integrations, Sources: st.sources, Queue: st.q}, docs)
	return err
}
