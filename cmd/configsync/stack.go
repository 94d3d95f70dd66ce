package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	neturl "net/url"
	"strconv"
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
	// replicas is --nats-replicas as given; every role must give the same, since
	// each opening of the queue sets the streams' replication (see queue.Options).
	replicas string
}

// natsReplicas reads --nats-replicas.
func (c *connFlags) natsReplicas() (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(c.replicas))
	if err != nil || n < 1 || n > 5 {
		return 0, &usageError{fmt.Sprintf("--nats-replicas (CONFIGSYNC_NATS_REPLICAS) is %q; want 1 to 5 (3 on a NATS cluster)", c.replicas)}
	}
	return n, nil
}

// registerService declares the connection flags with the defaults of a service role:
// NATS and Redis on this machine's standard ports.
func (c *connFlags) registerService(fs *flag.FlagSet, env *environment) {
	c.register(fs, env, "nats://127.0.0.1:4222", "redis://127.0.0.1:6379/0")
}

func (c *connFlags) register(fs *flag.FlagSet, env *environment, natsDefault, redisDefault string) {
	fs.StringVar(&c.natsURL, "nats-url", env.envOr("CONFIGSYNC_NATS_URL", natsDefault), "NATS server URLs, comma-separated (CONFIGSYNC_NATS_URL)")
	fs.StringVar(&c.redisURL, "redis-url", env.envOr("CONFIGSYNC_REDIS_URL", redisDefault), "Redis URL (CONFIGSYNC_REDIS_URL): redis[s]://[[user]:password@]host:port[/db] for one node, redis[s]+cluster://[[user]:password@]host:port[,host:port...] for a Redis Cluster, redis[s]+sentinel://[[user]:password@]host:26379[,host:26379...]/master[/db] for a Sentinel-managed master")
	fs.StringVar(&c.prefix, "prefix", env.envOr("CONFIGSYNC_PREFIX", "cs"), "prefix of every Redis key (CONFIGSYNC_PREFIX)")
	fs.StringVar(&c.replicas, "nats-replicas", env.envOr("CONFIGSYNC_NATS_REPLICAS", "1"),
		"replicas of each JetStream stream, 1 to 5: 3 on a NATS cluster, the same for every role (CONFIGSYNC_NATS_REPLICAS)")
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

// openRedis connects to the Redis that url names (one node, a Redis Cluster or a
// Sentinel-managed master, see parseRedisURL) and checks it answers.
func openRedis(ctx context.Context, url string) (redis.UniversalClient, error) {
	target, err := parseRedisURL(url)
	if err != nil {
		return nil, err
	}
	rdb := target.client()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("connecting to Redis at %s: %w", target.describe(), err)
	}
	return rdb, nil
}

// redisTarget is what a Redis URL names; exactly one of its options is set.
type redisTarget struct {
	single   *redis.Options         // redis://, rediss://, unix://: one node
	cluster  *redis.ClusterOptions  // redis+cluster://, rediss+cluster://
	failover *redis.FailoverOptions // redis+sentinel://, rediss+sentinel://
}

// client returns a client of the target's kind: every store takes a
// redis.UniversalClient, so the roles work alike on all three.
func (t redisTarget) client() redis.UniversalClient {
	switch {
	case t.cluster != nil:
		return redis.NewClusterClient(t.cluster)
	case t.failover != nil:
		return redis.NewFailoverClient(t.failover)
	default:
		return redis.NewClient(t.single)
	}
}

// describe names the target for errors and logs, without credentials.
func (t redisTarget) describe() string {
	switch {
	case t.cluster != nil:
		return "cluster nodes " + strings.Join(t.cluster.Addrs, ",")
	case t.failover != nil:
		return fmt.Sprintf("master %q of the Sentinels %s", t.failover.MasterName, strings.Join(t.failover.SentinelAddrs, ","))
	default:
		return t.single.Addr
	}
}

// Default ports of the host lists of the cluster and Sentinel URL forms.
const (
	redisDefaultPort    = "6379"
	sentinelDefaultPort = "26379"
)

// redisURLForms is said in every error about a URL's form, so the fix is at hand.
const redisURLForms = "redis[s]://[[user]:password@]host:port[/db], " +
	"redis[s]+cluster://[[user]:password@]host:port[,host:port...] or " +
	"redis[s]+sentinel://[[user]:password@]host:26379[,host:26379...]/master[/db]"

// parseRedisURL reads the one Redis setting (--redis-url, CONFIGSYNC_REDIS_URL), so
// that scaling Redis out is a change of URL, not of deployment:
//
//   - redis://, rediss:// (TLS) or unix://: one node, as redis.ParseURL reads it.
//   - redis+cluster:// or rediss+cluster://[[user]:password@]host:port[,host:port...]:
//     a Redis Cluster, from any of its nodes (the client discovers the others); the
//     database can only be 0, so a path other than /0 is refused.
//   - redis+sentinel:// or rediss+sentinel://[[user]:password@]host[:26379][,host...]/master[/db]:
//     the master named master, found through the Sentinels; the user and password
//     are those of the master and its replicas (the Sentinels are reached without).
//
// Options of go-redis (dial_timeout=3s, pool_size=20, ...) may follow as a query. A
// password belongs in the user info only (where every log redacts it), so the query
// may not carry one. Errors never contain the password, nor the URL.
func parseRedisURL(raw string) (redisTarget, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || scheme == "" {
		return redisTarget{}, fmt.Errorf("parsing the Redis URL: it does not start with a scheme; want %s", redisURLForms)
	}
	base, kind, _ := strings.Cut(strings.ToLower(scheme), "+")
	if base != "redis" && base != "rediss" && !(base == "unix" && kind == "") {
		return redisTarget{}, fmt.Errorf("parsing the Redis URL: scheme %q is not redis, rediss, unix, redis+cluster, rediss+cluster, redis+sentinel or rediss+sentinel; want %s", scheme, redisURLForms)
	}
	switch kind {
	case "":
		u, err := parseURLQuietly(raw)
		if err != nil {
			return redisTarget{}, err
		}
		if err := refuseQueryCredentials(u.Query()); err != nil {
			return redisTarget{}, err
		}
		opts, err := redis.ParseURL(raw)
		if err != nil {
			return redisTarget{}, redactedError(fmt.Errorf("parsing the Redis URL: %w", err), u)
		}
		return redisTarget{single: opts}, nil
	case "cluster", "sentinel":
		return parseMultiHostRedisURL(base, kind, rest)
	default:
		return redisTarget{}, fmt.Errorf("parsing the Redis URL: scheme %q: %q is neither +cluster nor +sentinel; want %s", scheme, kind, redisURLForms)
	}
}

// parseMultiHostRedisURL reads the cluster and Sentinel forms: their comma-separated
// host lists are not URL syntax, so it takes them out, parses the rest as a URL with
// the first host, and hands go-redis its own URL form (addr= for the other hosts).
func parseMultiHostRedisURL(base, kind, rest string) (redisTarget, error) {
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if strings.Contains(tail, "@") {
		// A user or password with an unencoded / ? or #: its rest would be taken for
		// hosts or path and echoed in the errors below.
		return redisTarget{}, errors.New("parsing the Redis URL: it is not a valid URL (characters such as @ / : # ? in a user or password must be percent-encoded)")
	}
	userinfo, hostList := "", authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, hostList = authority[:at+1], authority[at+1:]
	}
	defaultPort := redisDefaultPort
	if kind == "sentinel" {
		defaultPort = sentinelDefaultPort
	}
	var hosts []string
	for i, h := range strings.Split(hostList, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			return redisTarget{}, fmt.Errorf("parsing the Redis URL: host %d of the %s host list is empty; want %s", i+1, kind, redisURLForms)
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), defaultPort)
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" {
			return redisTarget{}, fmt.Errorf("parsing the Redis URL: %s host %q is not host or host:port", kind, h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return redisTarget{}, fmt.Errorf("parsing the Redis URL: %s host %q has no valid port", kind, h)
		}
		hosts = append(hosts, h)
	}
	u, err := parseURLQuietly(base + "://" + userinfo + hosts[0] + tail)
	if err != nil {
		return redisTarget{}, err
	}
	query := u.Query()
	if err := refuseQueryCredentials(query); err != nil {
		return redisTarget{}, err
	}
	for _, k := range []string{"addr", "master_name", "db"} {
		if query.Has(k) {
			return redisTarget{}, fmt.Errorf("parsing the Redis URL: option %q is not taken in the query: hosts are listed comma-separated, the master name and database are the path; want %s", k, redisURLForms)
		}
	}
	for _, h := range hosts[1:] {
		query.Add("addr", h)
	}
	path := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(path) == 1 && path[0] == "" {
		path = nil
	}
	user, password := "", ""
	if u.User != nil {
		user = u.User.Username()
		password, _ = u.User.Password()
	}
	gr := neturl.URL{Scheme: base, Host: hosts[0]}
	if kind == "cluster" {
		if len(path) > 1 || len(path) == 1 && path[0] != "0" {
			return redisTarget{}, fmt.Errorf("parsing the Redis URL: a Redis Cluster has only database 0, the path %q names another; want %s", u.Path, redisURLForms)
		}
		gr.RawQuery = query.Encode()
		opts, err := redis.ParseClusterURL(gr.String())
		if err != nil {
			return redisTarget{}, redactedError(fmt.Errorf("parsing the Redis cluster URL: %w", err), u)
		}
		opts.Username, opts.Password = user, password
		return redisTarget{cluster: opts}, nil
	}
	if len(path) == 0 || len(path) > 2 || path[0] == "" {
		return redisTarget{}, fmt.Errorf("parsing the Redis URL: a Sentinel URL's path is /master or /master/db, not %q; want %s", u.Path, redisURLForms)
	}
	master, err := neturl.PathUnescape(path[0])
	if err != nil {
		return redisTarget{}, fmt.Errorf("parsing the Redis URL: the master name %q: %w", path[0], err)
	}
	if len(path) == 2 {
		if db, err := strconv.Atoi(path[1]); err != nil || db < 0 {
			return redisTarget{}, fmt.Errorf("parsing the Redis URL: the database %q of the Sentinel URL is not a number >= 0", path[1])
		}
		gr.Path = "/" + path[1]
	}
	query.Set("master_name", master)
	gr.RawQuery = query.Encode()
	opts, err := redis.ParseFailoverURL(gr.String())
	if err != nil {
		return redisTarget{}, redactedError(fmt.Errorf("parsing the Redis Sentinel URL: %w", err), u)
	}
	opts.Username, opts.Password = user, password
	return redisTarget{failover: opts}, nil
}

// parseURLQuietly parses a Redis URL without ever putting it in the error, as
// url.Parse does (with the password); the cause is wrapped, its text left out when
// the URL holds user info, since a malformed one can spill into the host part.
func parseURLQuietly(raw string) (*neturl.URL, error) {
	u, err := neturl.Parse(raw)
	if err == nil {
		return u, nil
	}
	detail := ""
	var ue *neturl.Error
	if errors.As(err, &ue) && !strings.Contains(raw, "@") {
		detail = ": " + ue.Err.Error()
	}
	return nil, &quietError{
		msg: "parsing the Redis URL: it is not a valid URL" + detail +
			" (characters such as @ / : # ? in a user or password must be percent-encoded)",
		err: err,
	}
}

// refuseQueryCredentials keeps passwords out of the query, where the log redaction
// of URLs (redactURLs, url.URL.Redacted) does not look.
func refuseQueryCredentials(q neturl.Values) error {
	for _, k := range []string{"password", "username", "sentinel_password", "sentinel_username"} {
		if q.Has(k) {
			return fmt.Errorf("parsing the Redis URL: option %q is not taken in the query: put the user and password in the URL's user info ([user]:password@)", k)
		}
	}
	return nil
}

// redactedError hides u's password in err's text, in case a parser echoed it.
func redactedError(err error, u *neturl.URL) error {
	if u == nil || u.User == nil {
		return err
	}
	p, ok := u.User.Password()
	if !ok || p == "" || !strings.Contains(err.Error(), p) {
		return err
	}
	return &quietError{msg: strings.ReplaceAll(err.Error(), p, "xxxxx"), err: err}
}

// quietError is an error whose text is chosen (to leave a secret out) while its
// cause stays reachable by errors.Is and errors.As.
type quietError struct {
	msg string
	err error
}

func (e *quietError) Error() string { return e.msg }
func (e *quietError) Unwrap() error { return e.err }

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
	if o.conn.replicas != "" {
		n, err := o.conn.natsReplicas()
		if err != nil {
			return nil, err
		}
		o.queue.Replicas = n
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
