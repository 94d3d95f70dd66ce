// Package catalog keeps blueprints and their entities in Redis and owns what an entity
// write means: validation against the blueprint, fetch-time ordering, change
// detection, ownership by integration and kind, relation targets (barebones creation),
// the reverse relation index, and stale deletion with its threshold and dependents.
//
// Every rule that compares stored state with a write runs inside a Lua script, so that
// it holds under any number of concurrent workers and live events, and a worker that
// lost its lease (see Fence) cannot write. Upsert sends a batch as one pipeline of
// EVALSHA calls: one round trip per batch, one script call per entity.
//
// # Outbox
//
// The script that makes an entity change also appends it, atomically, to the tenant's
// outbox stream, so a change is stored if and only if its event is: a worker that
// dies after the write and before publishing loses nothing, since the changes wait in
// the outbox (PendingChanges, AckChanges, and OutboxTenants for a sweeper) until they
// are published. The Change values the write methods return are the same changes, for
// logging and counting; publish from the outbox.
//
// # Keys
//
// T is "<prefix>:{<tenant>}"; the braces make every key of a tenant share one Redis
// Cluster hash slot, so each script may touch any of them atomically. US is "\x1f",
// which identifiers, relation names, integrations and kinds may not contain.
//
//	T:bp                    HASH  blueprint identifier → blueprint JSON
//	T:bpgen                 STRING counter bumped by every blueprint change (see Upsert)
//	T:e:<bp>US<id>          HASH  one entity (fields below)
//	T:ids:<bp>              ZSET  identifiers of a blueprint's entities, all scored 0 (lex order)
//	T:own:<integration>US<kind>  ZSET "<bp>US<id>" scored by last write, ms
//	T:kinds:<integration>   SET   kinds the integration has written
//	T:rev:<bp>US<id>        SET   "<srcbp>US<srcid>US<relation>US<0|1>": relations pointing here
//	T:outbox                STREAM changes not yet published, field "change" = Change JSON
//
// and one key outside the tenants' slots, written only from Go, never by a script:
//
//	<prefix>:outbox-tenants SET   tenants whose outbox may hold changes (see OutboxTenants)
//
// Entity hash fields: content fields title, icon, team (JSON array), p:<property>
// (canonical JSON) and r:<relation> ("-" null, "=<id>" one target, "[<id>US<id>..."
// a list); meta fields start with "_": _bp, _id, _owner, _kind, _fetched (µs),
// _created and _updated (ms), _hash (SHA-1 of the content fields, see contentHash in
// scripts.go) and _r:<relation> ("<target blueprint>US<required 0|1>", the relation's
// definition when it was written, which keeps the reverse index exact even after the
// blueprint changes).
package catalog

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/configsync/configsync/blueprint"
)

// TombstoneTTL is how long a live delete keeps refusing older writes of the item it
// deleted (see DeleteLive): longer than any run holds a fetched item before writing
// it, including entities that wait for relation targets until the end of a run.
const TombstoneTTL = 24 * time.Hour

// US separates the parts of set members and keys. Identifiers cannot contain it, so
// members split back into their parts without escaping.
const US = "\x1f"

// ErrNotFound is returned (wrapped) when an entity or blueprint does not exist.
var ErrNotFound = errors.New("not found")

// Catalog is a tenant-partitioned catalog of blueprints and entities in Redis. It is
// safe for concurrent use; all its state is in Redis except a cache of blueprints,
// which every write re-validates inside its script (see Upsert).
type Catalog struct {
	rdb    redis.UniversalClient
	prefix string
	clock  func() time.Time
	// outboxMax caps each tenant's outbox (OutboxLimit; tests lower it).
	outboxMax int64
	// tombstoneTTL is how long a live delete's tombstone lasts (TombstoneTTL; tests
	// lower it).
	tombstoneTTL time.Duration
	// touchSkip counts down the Upsert calls that skip the unchanged pre-check
	// (see touch) after one where it did not pay.
	touchSkip atomic.Int32
	// createSkip counts down the Upsert calls that skip the create transaction
	// (see createTx) after one where it did not pay.
	createSkip atomic.Int32

	mu  sync.Mutex
	bps map[string]*bpCache // by tenant
}

// New returns a catalog whose keys start with prefix (such as "cs"). clock gives the
// time used for ownership scores and CreatedAt/UpdatedAt, so tests can control which
// entities are stale; nil means time.Now.
func New(rdb redis.UniversalClient, prefix string, clock func() time.Time) *Catalog {
	if clock == nil {
		clock = time.Now
	}
	return &Catalog{rdb: rdb, prefix: prefix, clock: clock, outboxMax: OutboxLimit, tombstoneTTL: TombstoneTTL, bps: map[string]*bpCache{}}
}

// Entity is a blueprint entity as stored and returned.
type Entity struct {
	// Identifier is unique within the blueprint.
	Identifier string `json:"identifier"`
	// Blueprint is the identifier of the entity's blueprint.
	Blueprint string `json:"blueprint"`
	// Title is the entity's display name.
	Title string `json:"title,omitempty"`
	// Icon is the name of one of Port's icons.
	Icon string `json:"icon,omitempty"`
	// Team lists the owning teams.
	Team []string `json:"team,omitempty"`
	// Properties hold the schema's properties. Values read back from Redis are as
	// encoding/json decodes them, except numbers, which are json.Number so that large
	// integers stay exact.
	Properties map[string]any `json:"properties"`
	// Relations hold, per relation name, a string (one target), a []string (many), or
	// nil.
	Relations map[string]any `json:"relations"`
	// Integration is the owner: the integration that last wrote the entity. "" means a
	// barebones entity, created as a relation target and owned by no one.
	Integration string `json:"integration,omitempty"`
	// Kind is the owner's resource kind that wrote the entity.
	Kind string `json:"kind,omitempty"`
	// CreatedAt is the catalog clock's time, to the millisecond, of the first write.
	CreatedAt time.Time `json:"createdAt"`
	// UpdatedAt is the catalog clock's time of the last write that changed the entity
	// (an Unchanged write does not move it).
	UpdatedAt time.Time `json:"updatedAt"`
}

// Write is one entity to upsert.
type Write struct {
	// Entity is the entity to write: identifier and relation targets already resolved
	// to strings. Its Integration, Kind and time fields are ignored.
	Entity Entity
	// Integration is the writer, which becomes the owner.
	Integration string
	// Kind is the writer's resource kind; ownership is indexed per (integration, kind).
	Kind string
	// FetchedAt is when the item was fetched from its tool: a write older than the
	// stored entity's is skipped, so a run never overwrites a newer live update.
	FetchedAt time.Time
	// Merge (Port's enableMergeEntity) merges properties and relations key by key into
	// the stored entity, and keeps a stored title, icon or team the write leaves empty;
	// false replaces them all.
	Merge bool
	// CreateMissing (createMissingRelatedEntities) creates missing relation targets as
	// barebones entities; false leaves the entity unwritten with MissingTargets.
	CreateMissing bool
}

// Fence is a lease a write is conditional on: it applies only if GET Key == Token,
// checked inside the script, so a worker that lost its lease cannot write. Key must
// carry the tenant's hash tag ("...{tenant}..."), as the lease package's keys do.
type Fence struct {
	// Key is the Redis key holding the current token.
	Key string
	// Token is the token this writer was given when it took the lease.
	Token int64
}

// Status is what Upsert did with one write.
type Status string

// The statuses of an Outcome.
const (
	// Created: the entity did not exist and was written.
	Created Status = "created"
	// Updated: the entity existed and its content or owner changed.
	Updated Status = "updated"
	// Unchanged: same content and owner; only the ownership index was refreshed.
	Unchanged Status = "unchanged"
	// SkippedOlder: the stored entity was fetched later than the write's item.
	SkippedOlder Status = "skipped_older"
	// MissingTargets: relation targets do not exist and CreateMissing is false.
	MissingTargets Status = "missing_targets"
	// Invalid: the write does not fit its blueprint; Outcome.Err says why.
	Invalid Status = "invalid"
	// Fenced: the fence's token no longer holds the lease; nothing was written.
	Fenced Status = "fenced"
)

// Outcome reports one write of Upsert, at the same index as the write.
type Outcome struct {
	// Status is what happened.
	Status Status
	// Missing lists the relation targets that do not exist (MissingTargets).
	Missing []Ref
	// Created lists the barebones relation targets this write created.
	Created []Ref
	// Warnings name what was dropped: undeclared properties and relations.
	Warnings []string
	// Err says why the write is Invalid.
	Err error
	// Change names the entity's change, nil when nothing changed. Its Entity is nil:
	// the change is in the outbox already, with the entity as written, and that is
	// what is published (see PendingChanges). Building the entity again for the
	// outcome cost a tenth of a create's planning, for a value nobody read.
	Change *Change
	// CreatedChanges name the changes of the barebones entities in Created, also in
	// the outbox (before Change), likewise without their Entity.
	CreatedChanges []Change
	// Hash is the stored entity's content hash after a Created, Updated or Unchanged
	// write when it is the write's own (nothing kept from the stored entity by a
	// merge), else empty; with Generation, what Settle needs to settle the same
	// write again without it (see PageEntry).
	Hash string
	// Generation is the blueprint generation the write was validated against.
	Generation string
}

// Ref names one entity.
type Ref struct {
	// Blueprint is the entity's blueprint identifier.
	Blueprint string
	// Identifier is the entity's identifier within the blueprint.
	Identifier string
}

// String reads like "githubRepository/configsync".
func (r Ref) String() string { return r.Blueprint + "/" + r.Identifier }

// Change is one entity change. The catalog does no messaging: the script that stores
// a change appends it to the tenant's outbox in the same atomic step, and the caller
// publishes it from there (PendingChanges, then AckChanges), so that a change is
// published only after it is stored, and at least once even if the caller dies in
// between. The write methods return the same changes (same ChangeID) for logging and
// counting; their values are Go's (a property is what the write gave, not
// json.Number), otherwise equal to the outbox's.
type Change struct {
	// ChangeID is unique per change (random, 128 bits), for consumers to deduplicate
	// redelivered events.
	ChangeID string `json:"changeId"`
	// Op is "created", "updated" or "deleted".
	Op string `json:"op"`
	// Blueprint is the entity's blueprint identifier.
	Blueprint string `json:"blueprint"`
	// Identifier is the entity's identifier.
	Identifier string `json:"identifier"`
	// Entity is the entity after the change, or as it was before a delete.
	Entity *Entity `json:"entity,omitempty"`
}

// The operations of a Change.
const (
	// OpCreated: the entity did not exist before.
	OpCreated = "created"
	// OpUpdated: the entity's content or owner changed.
	OpUpdated = "updated"
	// OpDeleted: the entity is gone; Change.Entity is what it was.
	OpDeleted = "deleted"
)

// DeletionReport says what a deletion did.
type DeletionReport struct {
	// Owned is how many entities the integration owns in the kinds considered.
	Owned int
	// Stale is how many of those were last written before the cut-off.
	Stale int
	// ThresholdExceeded is set when Stale/Owned was above the threshold, in which
	// case nothing was deleted.
	ThresholdExceeded bool
	// Deleted lists every entity deleted, dependents included.
	Deleted []Ref
	// KeptForDependents lists entities not deleted because entities whose required
	// relation points at them remain (deleteDependents false).
	KeptForDependents []Ref
	// Cleared lists entities whose optional relation pointed at a deleted entity and
	// was cleared.
	Cleared []Ref
	// Changes are the deleted and updated changes, in the order they went into the
	// outbox, which is what to publish from.
	Changes []Change
}

// tkey is the prefix of all keys of one tenant.
func (c *Catalog) tkey(tenant string) string { return c.prefix + ":{" + tenant + "}" }

func entityKey(t, bp, id string) string { return t + ":e:" + bp + US + id }
func idsKey(t, bp string) string        { return t + ":ids:" + bp }
func revKey(t, bp, id string) string    { return t + ":rev:" + bp + US + id }
func ownKey(t, integration, kind string) string {
	return t + ":own:" + integration + US + kind
}
func kindsKey(t, integration string) string { return t + ":kinds:" + integration }
func outboxKey(t string) string             { return t + ":outbox" }

// checkTenant refuses tenants that would break the hash tag or key parsing.
func checkTenant(tenant string) error {
	if tenant == "" {
		return errors.New("catalog: tenant is empty")
	}
	if strings.ContainsAny(tenant, "{}") || hasControl(tenant) {
		return fmt.Errorf("catalog: tenant %q may not contain braces or control characters", tenant)
	}
	return nil
}

// checkName refuses an identifier-like value the key layout cannot hold.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if strings.Contains(s, US) {
		return fmt.Errorf("%s %q contains the unit separator \\x1f", what, s)
	}
	return nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// checkFence makes sure the fence key lives in the tenant's hash slot: a script may
// only touch keys of one slot on Redis Cluster.
func checkFence(tenant string, f *Fence) error {
	if f == nil {
		return nil
	}
	if hashTag(f.Key) != tenant {
		return fmt.Errorf("catalog: fence key %q must carry the hash tag {%s} of tenant %q", f.Key, tenant, tenant)
	}
	return nil
}

// hashTag is the part of key Redis Cluster hashes: the first non-empty {...}.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

// fenceArgs returns the fence's key (or "") and token ("" for none), as the scripts
// take them.
func fenceArgs(f *Fence) (string, string) {
	if f == nil {
		return "", ""
	}
	return f.Key, fmt.Sprint(f.Token)
}

// newChangeID returns 128 random bits in hex.
func newChangeID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// bpCache is a tenant's blueprints as of generation gen.
type bpCache struct {
	gen    string
	bps    map[string]*blueprint.Blueprint
	layout map[string]*fieldLayout // by blueprint, for prepare
}

// newBPCache returns the cache of bps as of gen.
func newBPCache(gen string, bps map[string]*blueprint.Blueprint) *bpCache {
	bc := &bpCache{gen: gen, bps: bps, layout: make(map[string]*fieldLayout, len(bps))}
	for id, b := range bps {
		bc.layout[id] = newFieldLayout(b)
	}
	return bc
}

// fieldLayout is a blueprint's property and relation names in the order prepare
// writes them (sorted), with their stored field names ("p:name", "r:name"): made
// once per blueprint, since sorting each entity's names and building its field
// names allocated for every write. With the values' one string (see prepare),
// preparing a GitHub repository went from 47 allocations to 12.
type fieldLayout struct {
	props, propFields []string
	rels, relFields   []string
}

func newFieldLayout(b *blueprint.Blueprint) *fieldLayout {
	l := &fieldLayout{props: slices.Sorted(maps.Keys(b.Schema.Properties)), rels: slices.Sorted(maps.Keys(b.Relations))}
	for _, name := range l.props {
		l.propFields = append(l.propFields, "p:"+name)
	}
	for _, name := range l.rels {
		l.relFields = append(l.relFields, "r:"+name)
	}
	return l
}
