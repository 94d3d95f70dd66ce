package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	neturl "net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/lease"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/secrets"
	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// lookupEnv returns a CONFIGSYNC_* variable from the environment main passed in.
func (e *environment) lookup(key string) (string, bool) {
	for _, kv := range e.environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// envOr is a flag default: the variable when set, else def.
func (e *environment) envOr(key, def string) string {
	if v, ok := e.lookup(key); ok {
		return v
	}
	return def
}

// connFlags are the settings every role that talks to NATS and Redis shares.
type connFlags struct {
	natsURL, redisURL, prefix string
}

// registerService declares the connection flags with the defaults of a service role:
// NATS and Redis on this machine's standard ports.
func (c *connFlags) registerService(fs *flag.FlagSet, env *environment) {
	c.register(fs, env, "nats://127.0.0.1:4222", "redis://127.0.0.1:6379/0")
}

func (c *connFlags) register(fs *flag.FlagSet, env *environment, natsDefault, redisDefault string) {
	fs.StringVar(&c.natsURL, "nats-url", env.envOr("CONFIGSYNC_NATS_URL", natsDefault), "NATS server URLs, comma-separated (CONFIGSYNC_NATS_URL)")
	fs.StringVar(&c.redisURL, "redis-url", env.envOr("CONFIGSYNC_REDIS_URL", redisDefault), "Redis URL (CONFIGSYNC_REDIS_URL)")
	fs.StringVar(&c.prefix, "prefix", env.envOr("CONFIGSYNC_PREFIX", "cs"), "prefix of every Redis key (CONFIGSYNC_PREFIX)")
}

// stack is what the service roles work with, connected.
type stack struct {
	log          *zap.Logger
	rdb          redis.UniversalClient
	nc           *nats.Conn
	js           jetstream.JetStream
	q            *queue.Queue
	prefix       string
	integrations *integration.Store
	runs         *run.Store
	catalog      *catalog.Catalog
	leases       *lease.Manager
	sources      *source.Registry
	// flushLog makes close flush the logger, which the stack then owns.
	flushLog bool
}

type stackOptions struct {
	conn      connFlags
	keyring   *secrets.Keyring
	fileRoots []string
	// httpAllowPrivate lets http sources reach loopback, link-local and private
	// addresses: off in production, so that a tenant cannot reach the cloud metadata
	// service or internal hosts.
	httpAllowPrivate bool
	leaseTTL         time.Duration
	queue            queue.Options
	log              *zap.Logger
}

// openRedis connects to Redis and checks it answers.
func openRedis(ctx context.Context, url string) (redis.UniversalClient, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parsing the Redis URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("connecting to Redis at %s: %w", opts.Addr, err)
	}
	return rdb, nil
}

// openNATS connects to NATS, reconnecting for ever: a NATS restart must not end a role.
func openNATS(url string, log *zap.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name("configsync"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("NATS disconnected", zap.Error(err)) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", zap.String("url", c.ConnectedUrlRedacted())) }))
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", redactURLs(url), err)
	}
	return nc, nil
}

func openStack(ctx context.Context, o stackOptions) (*stack, error) {
	if o.log == nil {
		o.log = zap.NewNop()
	}
	rdb, err := openRedis(ctx, o.conn.redisURL)
	if err != nil {
		return nil, err
	}
	nc, err := openNATS(o.conn.natsURL, o.log)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		rdb.Close()
		return nil, fmt.Errorf("opening JetStream: %w", err)
	}
	q, err := queue.Open(ctx, js, o.queue)
	if err != nil {
		nc.Close()
		rdb.Close()
		return nil, fmt.Errorf("opening the queue (NATS 2.10 or newer with JetStream is needed): %w", err)
	}
	if o.leaseTTL <= 0 {
		o.leaseTTL = 30 * time.Second
	}
	s := &stack{
		log: o.log, rdb: rdb, nc: nc, js: js, q: q, prefix: o.conn.prefix,
		runs:    run.NewStore(rdb, o.conn.prefix),
		catalog: catalog.New(rdb, o.conn.prefix, nil),
		leases:  lease.New(rdb, o.conn.prefix, o.leaseTTL),
		sources: source.NewRegistry(source.FileType(o.fileRoots), httpsource.Type(httpsource.Options{AllowPrivate: o.httpAllowPrivate})),
	}
	if o.keyring != nil {
		s.integrations = integration.NewStore(rdb, o.conn.prefix, o.keyring)
	}
	return s, nil
}

// close drains NATS (in-flight publishes and acks go out) and waits for it, within
// a bound, before closing Redis, which the draining handlers may still use.
func (s *stack) close() {
	if err := s.nc.Drain(); err == nil {
		deadline := time.Now().Add(10 * time.Second)
		for !s.nc.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	s.nc.Close()
	s.rdb.Close()
	if s.flushLog {
		_ = s.log.Sync()
	}
}

// openService is how a service role (api, worker, scheduler) starts: the production
// logger, the encryption keyring the roles refuse to start without, and the stack.
// close also flushes the logger.
func openService(ctx context.Context, env *environment, o stackOptions) (*stack, error) {
	log, err := newLogger(env, false)
	if err != nil {
		return nil, err
	}
	kr, err := keyringFromEnv(env)
	if err != nil {
		return nil, err
	}
	o.keyring, o.log = kr, log
	st, err := openStack(ctx, o)
	if err != nil {
		_ = log.Sync()
		return nil, err
	}
	st.flushLog = true
	return st, nil
}

// keyringFromEnv reads CONFIGSYNC_ENCRYPTION_KEY or CONFIGSYNC_ENCRYPTION_KEYS; the
// service roles refuse to start without one.
func keyringFromEnv(env *environment) (*secrets.Keyring, error) {
	single, _ := env.lookup("CONFIGSYNC_ENCRYPTION_KEY")
	list, _ := env.lookup("CONFIGSYNC_ENCRYPTION_KEYS")
	if single == "" && list == "" {
		return nil, errors.New("CONFIGSYNC_ENCRYPTION_KEY (base64 of 32 bytes) or CONFIGSYNC_ENCRYPTION_KEYS (id:key,...) must be set: credentials are encrypted at rest")
	}
	return secrets.ParseKeyring(single, list)
}

// redactURLs hides the passwords of a comma-separated URL list (nats://user:pass@h,
// redis://:pass@h), for logs and errors.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := neturl.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
