// Package integration stores integrations: what tool they point at (source type and
// parameters), their credentials (encrypted, never returned in clear by anything but
// Credentials), and the versions of their Port config.
package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/configsync/configsync/secrets"
)

// IDPattern is what tenant and integration ids must match: they appear in NATS
// subjects and Redis keys.
var IDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidID reports whether s is a valid tenant or integration id.
func ValidID(s string) bool { return IDPattern.MatchString(s) }

// Integration is one integration of a tenant. Credentials are not part of it: they
// live apart, encrypted, and HasCredentials only says whether there are any.
type Integration struct {
	Tenant         string         `json:"tenant"`
	ID             string         `json:"id"`
	DisplayName    string         `json:"displayName"`
	Description    string         `json:"description,omitempty"`
	Type           string         `json:"type"`
	Parameters     map[string]any `json:"parameters"`
	ResyncInterval string         `json:"resyncInterval,omitempty"`
	Tags           []string       `json:"tags,omitempty"`
	// ConfigVersion is the newest stored config version (0: none yet); it is kept in
	// a counter of its own and filled in by Get.
	ConfigVersion  int64     `json:"configVersion"`
	HasCredentials bool      `json:"hasCredentials"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// ErrNotFound is returned for an integration or config version that does not exist.
var ErrNotFound = errors.New("not found")

// Store keeps integrations in Redis, every key in the tenant's hash slot.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	keyring *secrets.Keyring
	now     func() time.Time
}

// NewStore returns a Store; keyring encrypts and decrypts credentials.
func NewStore(rdb redis.UniversalClient, prefix string, keyring *secrets.Keyring) *Store {
	return &Store{rdb: rdb, prefix: prefix, keyring: keyring, now: time.Now}
}

func (s *Store) key(tenant, parts string) string {
	return fmt.Sprintf("%s:{%s}:%s", s.prefix, tenant, parts)
}

func (s *Store) recordKey(tenant, id string) string { return s.key(tenant, "integration:"+id) }
func (s *Store) credsKey(tenant, id string) string {
	return s.key(tenant, "integration:"+id+":credentials")
}
func (s *Store) configKey(tenant, id string) string {
	return s.key(tenant, "integration:"+id+":configs")
}
func (s *Store) indexKey(tenant string) string { return s.key(tenant, "integrations") }

// TenantsKey lists every tenant with an integration; it is the one key outside any
// tenant's slot, read only by the scheduler.
func (s *Store) TenantsKey() string { return s.prefix + ":tenants" }

// aad binds a ciphertext to its integration, so that it cannot be copied to another.
func aad(tenant, id string) string { return "integration/" + tenant + "/" + id }

// Put creates or replaces an integration. creds nil keeps the stored credentials;
// non-nil replaces them (an empty map removes them).
func (s *Store) Put(ctx context.Context, in *Integration, creds secrets.Credentials) (*Integration, error) {
	if !ValidID(in.Tenant) || !ValidID(in.ID) {
		return nil, fmt.Errorf("integration %q of tenant %q: ids must match %s", in.ID, in.Tenant, IDPattern)
	}
	now := s.now().UTC()
	old, err := s.Get(ctx, in.Tenant, in.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		in.CreatedAt = now
	case err != nil:
		return nil, err
	default:
		in.CreatedAt, in.ConfigVersion, in.HasCredentials = old.CreatedAt, old.ConfigVersion, old.HasCredentials
	}
	in.UpdatedAt = now
	var sealed string
	if creds != nil {
		in.HasCredentials = len(creds) > 0
		if in.HasCredentials {
			if sealed, err = s.keyring.SealCredentials(creds, aad(in.Tenant, in.ID)); err != nil {
				return nil, fmt.Errorf("encrypting credentials of %s/%s: %w", in.Tenant, in.ID, err)
			}
		}
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encoding integration %s/%s: %w", in.Tenant, in.ID, err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.recordKey(in.Tenant, in.ID), b, 0)
		p.ZAdd(ctx, s.indexKey(in.Tenant), redis.Z{Member: in.ID})
		switch {
		case creds == nil:
		case sealed == "":
			p.Del(ctx, s.credsKey(in.Tenant, in.ID))
		default:
			p.Set(ctx, s.credsKey(in.Tenant, in.ID), sealed, 0)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storing integration %s/%s: %w", in.Tenant, in.ID, err)
	}
	if err := s.rdb.SAdd(ctx, s.TenantsKey(), in.Tenant).Err(); err != nil {
		return nil, fmt.Errorf("indexing tenant %s: %w", in.Tenant, err)
	}
	return in, nil
}

// Get reads an integration.
func (s *Store) Get(ctx context.Context, tenant, id string) (*Integration, error) {
	b, err := s.rdb.Get(ctx, s.recordKey(tenant, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("integration %s/%s: %w", tenant, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading integration %s/%s: %w", tenant, id, err)
	}
	var in Integration
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("decoding integration %s/%s: %w", tenant, id, err)
	}
	v, err := s.rdb.Get(ctx, s.versionKey(tenant, id)).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading config version of %s/%s: %w", tenant, id, err)
	}
	in.ConfigVersion = v
	return &in, nil
}

// List returns a tenant's integrations ordered by id, starting after cursor ("" for
// the first page); next is "" at the end.
func (s *Store) List(ctx context.Context, tenant, cursor string, limit int) (out []*Integration, next string, err error) {
	min := "-"
	if cursor != "" {
		min = "(" + cursor
	}
	ids, err := s.rdb.ZRangeByLex(ctx, s.indexKey(tenant), &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit + 1)}).Result()
	if err != nil {
		return nil, "", fmt.Errorf("listing integrations of %s: %w", tenant, err)
	}
	if len(ids) > limit {
		ids, next = ids[:limit], ids[limit-1]
	}
	for _, id := range ids {
		in, err := s.Get(ctx, tenant, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, in)
	}
	return out, next, nil
}

// Delete removes an integration, its credentials and its config versions.
func (s *Store) Delete(ctx context.Context, tenant, id string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.recordKey(tenant, id), s.credsKey(tenant, id), s.configKey(tenant, id), s.versionKey(tenant, id))
		p.ZRem(ctx, s.indexKey(tenant), id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting integration %s/%s: %w", tenant, id, err)
	}
	return nil
}

// Credentials decrypts an integration's credentials (nil when it has none). Only
// sources should see the result.
func (s *Store) Credentials(ctx context.Context, tenant, id string) (secrets.Credentials, error) {
	sealed, err := s.rdb.Get(ctx, s.credsKey(tenant, id)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading credentials of %s/%s: %w", tenant, id, err)
	}
	creds, err := s.keyring.OpenCredentials(sealed, aad(tenant, id))
	if err != nil {
		return nil, fmt.Errorf("decrypting credentials of %s/%s: %w", tenant, id, err)
	}
	return creds, nil
}

// addConfigScript stores the next config version. The version counter is a key of
// its own, so the record (written by Go) is never rewritten by Lua.
//
// KEYS[1] versions hash (field = version, value = config document), KEYS[2] integration
// record, KEYS[3] version counter. ARGV[1] the document.
// Returns the new version, or 0 when the integration does not exist.
var addConfigScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local v = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], v, ARGV[1])
return v
`)

func (s *Store) versionKey(tenant, id string) string {
	return s.key(tenant, "integration:"+id+":config-version")
}

// AddConfig stores doc as the integration's next config version and returns it.
// Callers validate the document first; the store keeps what it is given.
func (s *Store) AddConfig(ctx context.Context, tenant, id string, doc []byte) (int64, error) {
	v, err := addConfigScript.Run(ctx, s.rdb, []string{s.configKey(tenant, id), s.recordKey(tenant, id), s.versionKey(tenant, id)},
		doc).Int64()
	if err != nil {
		return 0, fmt.Errorf("storing config of %s/%s: %w", tenant, id, err)
	}
	if v == 0 {
		return 0, fmt.Errorf("integration %s/%s: %w", tenant, id, ErrNotFound)
	}
	return v, nil
}

// addConfigOnceScript is addConfigScript for an event: the version it stored is
// recorded under the event's key in the same script, so a redelivered event finds
// it instead of storing the config again.
//
// KEYS[1] versions hash, KEYS[2] integration record, KEYS[3] version counter,
// KEYS[4] the event's key. ARGV[1] the document, ARGV[2] the event key's TTL (s).
// Returns the version (new or recorded), or 0 when the integration does not exist.
var addConfigOnceScript = redis.NewScript(`
local seen = redis.call('GET', KEYS[4])
if seen then return tonumber(seen) end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local v = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], v, ARGV[1])
redis.call('SET', KEYS[4], v, 'EX', ARGV[2])
return v
`)

// AddConfigOnce stores doc as the next version for the event eventID, once: a
// redelivery of the same event returns the version stored the first time.
func (s *Store) AddConfigOnce(ctx context.Context, tenant, id, eventID string, doc []byte) (int64, error) {
	keys := []string{s.configKey(tenant, id), s.recordKey(tenant, id), s.versionKey(tenant, id), s.key(tenant, "event-version:"+eventID)}
	v, err := addConfigOnceScript.Run(ctx, s.rdb, keys, doc, int((7 * 24 * time.Hour).Seconds())).Int64()
	if err != nil {
		return 0, fmt.Errorf("storing config of %s/%s for event %s: %w", tenant, id, eventID, err)
	}
	if v == 0 {
		return 0, fmt.Errorf("integration %s/%s: %w", tenant, id, ErrNotFound)
	}
	return v, nil
}

// Config returns a stored config version.
func (s *Store) Config(ctx context.Context, tenant, id string, version int64) ([]byte, error) {
	b, err := s.rdb.HGet(ctx, s.configKey(tenant, id), fmt.Sprint(version)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("config version %d of %s/%s: %w", version, tenant, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading config version %d of %s/%s: %w", version, tenant, id, err)
	}
	return b, nil
}
