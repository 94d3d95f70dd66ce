// Package lease gives one worker at a time the right to sync an integration, across
// every worker of the deployment, with a fencing token: each acquisition gets a token
// larger than any before it, and writes check the token inside Redis, so a worker that
// lost its lease (paused, partitioned, slow) cannot write any more even if it does not
// know it yet.
package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrHeld is returned by Acquire when another holder has the lease.
var ErrHeld = errors.New("lease is held by another worker")

// ErrLost is returned by Renew and Release when the lease expired or was taken over.
var ErrLost = errors.New("lease was lost")

// Manager hands out leases kept in Redis.
type Manager struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// New returns a Manager whose leases expire after ttl unless renewed. Keys are
// "<prefix>:{<tenant>}:lease:<integration>" (and ":lease-seq:" for the token counter),
// in the tenant's hash slot.
func New(rdb redis.UniversalClient, prefix string, ttl time.Duration) *Manager {
	return &Manager{rdb: rdb, prefix: prefix, ttl: ttl}
}

// Lease is one acquisition.
type Lease struct {
	// Key is the Redis key holding the token; writes fence on it.
	Key string
	// Token increases with every acquisition of the same lease.
	Token int64
	m     *Manager
}

// Key returns the key of the lease for an integration.
func (m *Manager) Key(tenant, integration string) string {
	return fmt.Sprintf("%s:{%s}:lease:%s", m.prefix, tenant, integration)
}

// acquireScript takes the lease if it is free.
//
// KEYS[1] lease key (its value is the token alone, which is what fenced writes compare),
// KEYS[2] token counter. ARGV[1] ttl in milliseconds.
// Returns the new token, or 0 when the lease is held.
var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
`)

// renewScript extends the lease if the token still holds it.
//
// KEYS[1] lease key. ARGV[1] token, ARGV[2] ttl in milliseconds.
// Returns 1 when renewed, 0 when the lease is gone or another token holds it.
var renewScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// releaseScript deletes the lease if the token still holds it.
//
// KEYS[1] lease key. ARGV[1] token. Returns 1 when released, 0 otherwise.
var releaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// Acquire takes the lease of an integration, or returns ErrHeld.
func (m *Manager) Acquire(ctx context.Context, tenant, integration string) (*Lease, error) {
	key := m.Key(tenant, integration)
	seq := fmt.Sprintf("%s:{%s}:lease-seq:%s", m.prefix, tenant, integration)
	token, err := acquireScript.Run(ctx, m.rdb, []string{key, seq}, m.ttl.Milliseconds()).Int64()
	if err != nil {
		return nil, fmt.Errorf("acquiring the lease of %s/%s: %w", tenant, integration, err)
	}
	if token == 0 {
		return nil, ErrHeld
	}
	return &Lease{Key: key, Token: token, m: m}, nil
}

// Renew extends the lease by the manager's TTL, or returns ErrLost.
func (l *Lease) Renew(ctx context.Context) error {
	ok, err := renewScript.Run(ctx, l.m.rdb, []string{l.Key}, l.Token, l.m.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("renewing lease %s: %w", l.Key, err)
	}
	if ok == 0 {
		return ErrLost
	}
	return nil
}

// Release gives the lease up, or returns ErrLost when it was no longer held.
func (l *Lease) Release(ctx context.Context) error {
	ok, err := releaseScript.Run(ctx, l.m.rdb, []string{l.Key}, l.Token).Int()
	if err != nil {
		return fmt.Errorf("releasing lease %s: %w", l.Key, err)
	}
	if ok == 0 {
		return ErrLost
	}
	return nil
}

// Token returns the token holding an integration's lease, or ok=false when it is free.
func (m *Manager) Token(ctx context.Context, tenant, integration string) (token int64, ok bool, err error) {
	token, err = m.rdb.Get(ctx, m.Key(tenant, integration)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading lease of %s/%s: %w", tenant, integration, err)
	}
	return token, true, nil
}

// KeepAlive renews the lease every ttl/3 until ctx ends, and calls lost (once) when a
// renewal finds the lease gone, so that the run can stop.
func (l *Lease) KeepAlive(ctx context.Context, lost func(error)) {
	t := time.NewTicker(l.m.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.Renew(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrLost) {
				lost(err)
				return
			}
			// A transient Redis error: try again next tick; the TTL gives two more.
		}
	}
}
