// Package redistest gives tests a connection to a real Redis and a key prefix of their
// own. The Redis is shared (by every package's tests, run in parallel, and by other
// people's runs on the same machine), so isolation is by prefix: a test writes only
// keys containing its prefix and the cleanup deletes exactly those. Nothing here ever
// flushes a database.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvURL names the variable that points tests at another Redis than the default.
const EnvURL = "CONFIGSYNC_TEST_REDIS_URL"

// DefaultURL is the Redis scripts/services starts for tests and development.
const DefaultURL = "redis://127.0.0.1:6379/0"

// Client connects to $CONFIGSYNC_TEST_REDIS_URL, or DefaultURL when unset, and returns
// the client with a fresh prefix ("cstest-" and 16 random hex digits). The test fails
// at once, saying how to start Redis, if it cannot be reached. Cleanup deletes every
// key containing the prefix, then closes the client, so tests must put the prefix in
// every key they write (the catalog and lease packages do so when given it as their
// prefix).
func Client(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	raw := os.Getenv(EnvURL)
	if raw == "" {
		raw = DefaultURL
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatalf("redistest: %s=%q is not a Redis URL: %v", EnvURL, redact(raw), err)
	}
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		t.Fatalf("redistest: Redis at %s is unreachable: %v (start it with scripts/services, or set %s)", redact(raw), err, EnvURL)
	}
	prefix := "cstest-" + randomHex(8)
	t.Cleanup(func() {
		// The test's context may be done by now; cleanup gets its own time limit.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := DeletePrefix(ctx, rdb, prefix); err != nil {
			t.Errorf("redistest: deleting the keys of %s: %v", prefix, err)
		}
		if err := rdb.Close(); err != nil {
			t.Errorf("redistest: closing the client: %v", err)
		}
	})
	return rdb, prefix
}

// DeletePrefix deletes every key that contains prefix, with SCAN and UNLINK in
// batches, so that it neither blocks a shared Redis (as KEYS would) nor touches keys of
// other tests. On a cluster it walks every master.
func DeletePrefix(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	pattern := "*" + escapeGlob(prefix) + "*"
	scan := func(ctx context.Context, c *redis.Client) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
			if err != nil {
				return fmt.Errorf("scanning %s: %w", pattern, err)
			}
			if len(keys) > 0 {
				if err := c.Unlink(ctx, keys...).Err(); err != nil {
					return fmt.Errorf("unlinking %d keys: %w", len(keys), err)
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		// UNLINK of keys from different slots would fail, so unlink one at a time.
		return c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			iter := m.Scan(ctx, 0, pattern, 1000).Iterator()
			for iter.Next(ctx) {
				if err := m.Unlink(ctx, iter.Val()).Err(); err != nil {
					return fmt.Errorf("unlinking %s: %w", iter.Val(), err)
				}
			}
			return iter.Err()
		})
	case *redis.Client:
		return scan(ctx, c)
	default:
		return fmt.Errorf("redistest: cannot scan a %T", rdb)
	}
}

// escapeGlob quotes the characters SCAN's MATCH treats specially, so a prefix always
// matches itself only.
func escapeGlob(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// redact hides a password in the URL: test output is logged and shared.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
