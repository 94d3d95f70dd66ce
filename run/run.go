// Package run keeps the record of every sync run: what started it, which config
// version it applied, how it ended and what it did per kind. Operators and the API read
// them; the worker writes them as the run goes.
package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Status is where a run is in its life.
type Status string

// Run statuses. Partial means the run wrote what it could but something failed (a kind
// not fetched whole, entities failed); superseded means a newer config arrived; a
// failed run deleted nothing.
const (
	Queued     Status = "queued"
	Running    Status = "running"
	Succeeded  Status = "succeeded"
	Failed     Status = "failed"
	Partial    Status = "partial"
	Superseded Status = "superseded"
	Cancelled  Status = "cancelled"
)

// CoveredBy starts the message of a queued run whose request another run covered (it
// started later, with the same or a newer config); the covering run's id follows.
const CoveredBy = "covered by run "

// Done reports whether the status is final.
func (s Status) Done() bool { return s != Queued && s != Running }

// Counts are what a run did for one kind.
type Counts struct {
	Fetched           int `json:"fetched"`
	Selected          int `json:"selected"`
	Upserted          int `json:"upserted"`
	Unchanged         int `json:"unchanged"`
	Failed            int `json:"failed"`
	Deleted           int `json:"deleted"`
	KeptForDependents int `json:"keptForDependents"`
	// Reused counts the entities of pages found the same as in an earlier sync,
	// settled without mapping or writing them (also counted in Unchanged).
	Reused int `json:"reused,omitempty"`
}

// MaxErrors is how many error messages a record keeps; the counts say how many there
// were in all.
const MaxErrors = 20

// Record is one run.
type Record struct {
	ID            string             `json:"id"`
	Tenant        string             `json:"tenant"`
	Integration   string             `json:"integration"`
	Trigger       string             `json:"trigger"`
	ConfigVersion int64              `json:"configVersion"`
	Status        Status             `json:"status"`
	Message       string             `json:"message,omitempty"`
	Counts        map[string]*Counts `json:"counts"`
	Errors        []string           `json:"errors"`
	// Worker and LeaseToken say who runs it, so that a worker taking over can tell a
	// run whose worker died ("worker lost").
	Worker     string     `json:"worker,omitempty"`
	LeaseToken int64      `json:"leaseToken,omitempty"`
	QueuedAt   time.Time  `json:"queuedAt"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// Kind returns the counts of a kind, creating them.
func (r *Record) Kind(kind string) *Counts {
	if r.Counts == nil {
		r.Counts = map[string]*Counts{}
	}
	c := r.Counts[kind]
	if c == nil {
		c = &Counts{}
		r.Counts[kind] = c
	}
	return c
}

// AddError keeps the first MaxErrors messages.
func (r *Record) AddError(msg string) {
	if len(r.Errors) < MaxErrors {
		r.Errors = append(r.Errors, msg)
	}
}

// Keep is how many runs are kept per integration; older records are deleted.
const Keep = 100

// ErrNotFound is returned for a run that does not exist (or was trimmed).
var ErrNotFound = errors.New("run not found")

// Store keeps run records in Redis: one key per record, and a per-integration index
// ordered by start time (queue time until started), all in the tenant's hash slot.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewStore returns a Store with keys under prefix.
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix}
}

func (s *Store) recordKey(tenant, id string) string {
	return fmt.Sprintf("%s:{%s}:run:%s", s.prefix, tenant, id)
}

func (s *Store) indexKey(tenant, integration string) string {
	return fmt.Sprintf("%s:{%s}:runs:%s", s.prefix, tenant, integration)
}

// putScript stores a record, indexes it and trims the index to the newest runs.
//
// KEYS[1] record key, KEYS[2] index key. ARGV[1] record JSON, ARGV[2] run id,
// ARGV[3] score (start or queue time, µs), ARGV[4] how many to keep, ARGV[5] record key prefix
// (the trimmed records' keys are ARGV[5] .. id).
var putScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
local n = redis.call('ZCARD', KEYS[2])
local keep = tonumber(ARGV[4])
if n > keep then
  local old = redis.call('ZRANGE', KEYS[2], 0, n - keep - 1)
  for _, id in ipairs(old) do redis.call('DEL', ARGV[5] .. id) end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - keep - 1)
end
return n
`)

// Put creates or replaces a record.
func (s *Store) Put(ctx context.Context, r *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding run %s: %w", r.ID, err)
	}
	// Ordered by start, or queue time until started: runs of one event (a takeover
	// after a lost worker) share their queue time.
	order := r.QueuedAt
	if r.StartedAt != nil {
		order = *r.StartedAt
	}
	keys := []string{s.recordKey(r.Tenant, r.ID), s.indexKey(r.Tenant, r.Integration)}
	err = putScript.Run(ctx, s.rdb, keys, b, r.ID, order.UnixMicro(), Keep, s.recordKey(r.Tenant, "")).Err()
	if err != nil {
		return fmt.Errorf("storing run %s of %s/%s: %w", r.ID, r.Tenant, r.Integration, err)
	}
	return nil
}

// Get reads one record.
func (s *Store) Get(ctx context.Context, tenant, id string) (*Record, error) {
	b, err := s.rdb.Get(ctx, s.recordKey(tenant, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading run %s: %w", id, err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding run %s: %w", id, err)
	}
	return &r, nil
}

// List returns an integration's runs, newest first, from offset (0 for the first
// page); next is the offset of the following page, or -1 at the end.
func (s *Store) List(ctx context.Context, tenant, integration string, offset, limit int) (recs []*Record, next int, err error) {
	ids, err := s.rdb.ZRevRange(ctx, s.indexKey(tenant, integration), int64(offset), int64(offset+limit)).Result()
	if err != nil {
		return nil, -1, fmt.Errorf("listing runs of %s/%s: %w", tenant, integration, err)
	}
	next = -1
	if len(ids) > limit {
		ids, next = ids[:limit], offset+limit
	}
	for _, id := range ids {
		r, err := s.Get(ctx, tenant, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, -1, err
		}
		recs = append(recs, r)
	}
	return recs, next, nil
}

// Latest returns an integration's newest run, or ErrNotFound.
func (s *Store) Latest(ctx context.Context, tenant, integration string) (*Record, error) {
	recs, _, err := s.List(ctx, tenant, integration, 0, 1)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, ErrNotFound
	}
	return recs[0], nil
}

// RequestCancel asks the worker running id to stop; it checks between pages.
func (s *Store) RequestCancel(ctx context.Context, tenant, id string) error {
	if err := s.rdb.Set(ctx, s.recordKey(tenant, id)+":cancel", "1", 24*time.Hour).Err(); err != nil {
		return fmt.Errorf("requesting cancellation of run %s: %w", id, err)
	}
	return nil
}

// CancelRequested reports whether RequestCancel was called for id.
func (s *Store) CancelRequested(ctx context.Context, tenant, id string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.recordKey(tenant, id)+":cancel").Result()
	if err != nil {
		return false, fmt.Errorf("checking cancellation of run %s: %w", id, err)
	}
	return n == 1, nil
}
