package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/jsonstream"
	"github.com/configsync/configsync/mapping"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
)

// runPublish publishes events from the shell: patch, resync, resources.
func runPublish(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 {
		return &usageError{"usage: configsync publish patch|resync|resources --tenant T --integration I [flags]"}
	}
	what, args := args[0], args[1:]
	fs := newFlags("publish "+what, env.stderr)
	natsURL := fs.String("nats-url", env.envOr("CONFIGSYNC_NATS_URL", "nats://127.0.0.1:4222"), "NATS server URLs (CONFIGSYNC_NATS_URL)")
	tenant := fs.String("tenant", "", "tenant id (required)")
	integ := fs.String("integration", "", "integration id (required)")
	configPath := fs.String("config", "", "patch: the new config, JSON or YAML (validated before it is sent)")
	version := fs.Int64("version", 0, "patch: a stored config version to run instead of a new config")
	reason := fs.String("reason", "requested from the CLI", "resync: why")
	kind := fs.String("kind", "", "resources: the kind of the items")
	upsert := fs.String("upsert", "", "resources: items to upsert (JSON array, object or NDJSON; - for stdin)")
	del := fs.String("delete", "", "resources: items to delete (same formats)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *tenant == "" || *integ == "" {
		return &usageError{"--tenant and --integration are required"}
	}
	var typ string
	var data any
	switch what {
	case "patch":
		typ = queue.TypeConfigPatched
		switch {
		case (*configPath == "") == (*version == 0):
			return &usageError{"patch needs exactly one of --config and --version"}
		case *version > 0:
			data = queue.ConfigPatched{ConfigVersion: *version}
		default:
			doc, err := configJSON(*configPath)
			if err != nil {
				return err
			}
			data = queue.ConfigPatched{Config: doc}
		}
	case "resync":
		typ, data = queue.TypeResyncRequested, queue.ResyncRequested{Reason: *reason}
	case "resources":
		if *kind == "" || (*upsert == "" && *del == "") {
			return &usageError{"resources needs --kind and --upsert and/or --delete"}
		}
		rd := queue.ResourcesData{Kind: *kind}
		var err error
		if rd.Upsert, err = readItems(env, *upsert); err != nil {
			return err
		}
		if rd.Delete, err = readItems(env, *del); err != nil {
			return err
		}
		typ, data = queue.TypeResources, rd
	default:
		return &usageError{fmt.Sprintf("unknown event %q: patch, resync or resources", what)}
	}
	ev, err := queue.NewEnvelope(typ, *tenant, *integ, data)
	if err != nil {
		return err
	}
	nc, err := openNATS(*natsURL, zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("opening JetStream: %w", err)
	}
	q, err := queue.Open(ctx, js, queue.Options{})
	if err != nil {
		return fmt.Errorf("opening the queue: %w", err)
	}
	if err := q.Publish(ctx, ev); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "published %s %s for %s/%s\n", ev.Type, ev.ID, ev.Tenant, ev.Integration)
	return nil
}

// configJSON reads a config file, refuses an invalid one with every problem, and
// returns it as JSON (events carry JSON).
func configJSON(path string) (json.RawMessage, error) {
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, problems := mapping.Parse(doc)
	if cfg != nil {
		_, cps := mapping.Compile(cfg, mapping.Options{})
		problems = append(problems, cps...)
	}
	if err := problems.Err(); err != nil {
		return nil, err
	}
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("converting config to JSON: %w", err)
	}
	return b, nil
}

// readItems reads raw items from a file (or stdin for "-"); "" reads none.
func readItems(env *environment, path string) ([]json.RawMessage, error) {
	if path == "" {
		return nil, nil
	}
	var r io.Reader = env.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("opening items: %w", err)
		}
		defer f.Close()
		r = f
	}
	jr := jsonstream.NewReader(r, jsonstream.Options{})
	var out []json.RawMessage
	for {
		item, err := jr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading items from %s: %w", path, err)
		}
		out = append(out, append(json.RawMessage(nil), item...))
	}
}

// runCatalog reads the catalog: `catalog list --tenant T --blueprint B` prints NDJSON.
func runCatalog(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || args[0] != "list" {
		return &usageError{"usage: configsync catalog list --tenant T --blueprint B"}
	}
	fs := newFlags("catalog list", env.stderr)
	redisURL := fs.String("redis-url", env.envOr("CONFIGSYNC_REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL (CONFIGSYNC_REDIS_URL)")
	prefix := fs.String("prefix", env.envOr("CONFIGSYNC_PREFIX", "cs"), "Redis key prefix (CONFIGSYNC_PREFIX)")
	tenant := fs.String("tenant", "", "tenant id (required)")
	bp := fs.String("blueprint", "", "blueprint identifier (required)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *tenant == "" || *bp == "" {
		return &usageError{"--tenant and --blueprint are required"}
	}
	rdb, err := openRedis(ctx, *redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	cat := catalog.New(rdb, *prefix, nil)
	out := bufio.NewWriter(env.stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	cursor := ""
	for {
		page, next, err := cat.List(ctx, *tenant, *bp, cursor, 500)
		if err != nil {
			return err
		}
		for i := range page {
			if err := enc.Encode(&page[i]); err != nil {
				return fmt.Errorf("writing entities: %w", err)
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// runRuns prints an integration's runs, newest first, as JSON.
func runRuns(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("runs", env.stderr)
	redisURL := fs.String("redis-url", env.envOr("CONFIGSYNC_REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL (CONFIGSYNC_REDIS_URL)")
	prefix := fs.String("prefix", env.envOr("CONFIGSYNC_PREFIX", "cs"), "Redis key prefix (CONFIGSYNC_PREFIX)")
	tenant := fs.String("tenant", "", "tenant id (required)")
	integ := fs.String("integration", "", "integration id (required)")
	limit := fs.Int("limit", 20, "how many runs (at most 100 are kept)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *tenant == "" || *integ == "" {
		return &usageError{"--tenant and --integration are required"}
	}
	rdb, err := openRedis(ctx, *redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	recs, _, err := run.NewStore(rdb, *prefix).List(ctx, *tenant, *integ, 0, *limit)
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []*run.Record{}
	}
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"runs": recs})
}
