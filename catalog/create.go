package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// createBackoff is how many Upsert calls skip the create transaction after one in
// which less than a quarter of its candidates were creates: a batch of updates pays
// for its reads and gains nothing, so a run of them only probes now and then.
const createBackoff = 8

// createChunk is how many writes one create transaction holds, and createParallel
// how many such transactions run at once.
const (
	createChunk    = 100
	createParallel = 4
)

// tombKey is the tombstone a live delete leaves for an integration's item (see
// deleteScript).
func tombKey(t, integration, bp, id string) string {
	return t + ":tomb:" + integration + US + bp + US + id
}

// createTx writes, in one optimistic transaction, the writes of preps that create
// an entity, and returns the others for upsertScript. A create is the whole of a full
// resync from an empty catalog, and everything it stores Go knows in advance: so
// instead of running the script's logic in Redis for each (≈ 400,000 instructions a
// create under callgrind), it reads what the script would check, decides in Go, and
// sends plain commands: one HSET and one XADD per entity, and one ZADD or SADD per
// index key for the whole batch.
//
// Atomicity comes from WATCH: the fence key, the blueprint generation, the tombstone
// generation (T:tombgen, see deleteScript), each candidate's entity key, and each
// relation target read are watched before they are read, and the writes go in MULTI/EXEC, which Redis refuses when any
// of them changed in between. Then every write of the batch falls back to
// upsertScript, which decides each one itself, so a lost race costs time, not
// correctness. All keys are in the tenant's hash slot, as Redis Cluster needs for a
// transaction.
//
// The writes are decided in batch order with the script's rules for a create: a
// relation target must exist, or be created barebones first when the write allows
// it, or the write is MissingTargets and writes nothing; a second write of the same
// entity in the batch, and any write whose entity or tombstone exists, is left to the
// script, which runs after this transaction and so sees the created entity. A fenced
// or stale-blueprint batch is left to the script whole, which reports it.
func (c *Catalog) createTx(ctx context.Context, tenant, t, fenceKey, token string, now time.Time, bc *bpCache, preps []*prepared, outcomes []Outcome) (rest []*prepared, changed bool, err error) {
	if c.createSkip.Load() > 0 {
		c.createSkip.Add(-1)
		return preps, false, nil
	}
	var cands []*prepared
	for _, p := range preps {
		if p.err == nil && len(p.required) == 0 && !p.stored {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return preps, false, nil
	}
	// Listed before the writes, as runPipeline does; see OutboxTenants.
	if err := c.listOutboxTenant(ctx, tenant); err != nil {
		return nil, false, err
	}
	// Chunks, since Redis looks a key up among a connection's watched keys one by
	// one (WATCH of n keys costs n²), each its own transaction on its own connection,
	// a few at a time so that their round trips overlap.
	chunks := slices.Collect(slices.Chunk(cands, createChunk))
	results := make([]map[*prepared]*Outcome, len(chunks))
	errs := make([]error, len(chunks))
	sem := make(chan struct{}, createParallel)
	var wg sync.WaitGroup
	for i, chunk := range chunks {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i], errs[i] = c.createChunk(ctx, t, fenceKey, token, now, bc, chunk)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, false, fmt.Errorf("creating %d entities: %w", len(cands), err)
	}
	created := map[*prepared]*Outcome{}
	for _, r := range results {
		maps.Copy(created, r)
	}
	if len(created)*4 < len(cands) {
		c.createSkip.Store(createBackoff)
	}
	for _, p := range preps {
		if o, ok := created[p]; ok {
			o.Warnings, o.Generation = outcomes[p.index].Warnings, bc.gen
			outcomes[p.index] = *o
			changed = changed || o.Change != nil || len(o.CreatedChanges) > 0
		} else {
			rest = append(rest, p)
		}
	}
	return rest, changed, nil
}

// createChunk is one transaction of createTx. It returns the outcomes of the
// candidates it decided, none when the transaction lost a race.
func (c *Catalog) createChunk(ctx context.Context, t, fenceKey, token string, now time.Time, bc *bpCache, cands []*prepared) (map[*prepared]*Outcome, error) {
	bpgenKey := t + ":bpgen"
	// Tombstones are watched through T:tombgen, which every call that writes one
	// increments: one key instead of one per write, since Redis's WATCH costs
	// grow with the square of the keys a connection watches.
	watch := []string{bpgenKey, t + ":tombgen"}
	if token != "" {
		watch = append(watch, fenceKey)
	}
	// The relation targets the candidates name, each once.
	var targets []string
	seenTarget := map[string]bool{}
	for _, p := range cands {
		e := &p.w.Entity
		watch = append(watch, entityKey(t, e.Blueprint, e.Identifier))
		for r := 0; r < len(p.rels); r += 3 {
			for _, id := range p.targets[r/3] {
				k := entityKey(t, p.rels[r+1], id)
				if !seenTarget[k] {
					seenTarget[k] = true
					targets = append(targets, k)
				}
			}
		}
	}
	watch = append(watch, targets...)

	// A cluster (or any client but a single Redis's) picks the node of a transaction by
	// the keys Watch is given, so it gets one, the slot's, watched in a round trip of
	// its own; a single Redis takes them all with the reads.
	var routing []string
	if _, single := c.rdb.(*redis.Client); !single {
		routing = watch[:1]
	}
	var created map[*prepared]*Outcome
	err := c.rdb.Watch(ctx, func(tx *redis.Tx) error {
		var fenceCmd, genCmd *redis.StringCmd
		found := make([]*redis.IntCmd, len(cands))
		exists := make([]*redis.IntCmd, len(targets))
		// WATCH goes in the same round trip as the reads (Watch's own keys would
		// cost one more). go-redis does not know of it, so every way out that does
		// not reach EXEC (which ends the watch) must UNWATCH: see unwatch.
		args := make([]any, 1+len(watch))
		args[0] = "watch"
		for i, k := range watch {
			args[1+i] = k
		}
		unwatch := func() { _ = tx.Unwatch(ctx).Err() }
		_, err := tx.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Do(ctx, args...)
			genCmd = pipe.Get(ctx, bpgenKey)
			if token != "" {
				fenceCmd = pipe.Get(ctx, fenceKey)
			}
			for i, p := range cands {
				e := &p.w.Entity
				found[i] = pipe.Exists(ctx, entityKey(t, e.Blueprint, e.Identifier), tombKey(t, p.w.Integration, e.Blueprint, e.Identifier))
			}
			for i, k := range targets {
				exists[i] = pipe.Exists(ctx, k)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			unwatch()
			return err
		}
		gen, err := genCmd.Result()
		if errors.Is(err, redis.Nil) {
			gen = "0"
		}
		if gen != bc.gen || (fenceCmd != nil && fenceCmd.Val() != token) {
			unwatch()
			return nil // stale blueprints or a lost lease: the script reports it
		}
		present := make(map[string]bool, len(targets))
		for i, k := range targets {
			present[k] = exists[i].Val() > 0
		}
		plan := planCreates(t, now, cands, found, present)
		if len(plan.outcomes) == 0 {
			unwatch()
			return nil
		}
		if _, err := tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			plan.send(ctx, pipe, t, c.outboxMax)
			return nil
		}); err != nil {
			return err
		}
		created = plan.outcomes
		return nil
	}, routing...)
	if errors.Is(err, redis.TxFailedErr) {
		return nil, nil // something changed under the reads: the script decides
	}
	return created, err
}

// createValues are the strings of one create's commands that are not in its
// prepared write, kept together so that the commands can point at them.
type createValues struct {
	ek, bp, id, owner, kind, hash, fetched, member string
}

// indexKeys remembers the index keys planCreates made last: a batch's writes are
// nearly always of one blueprint, integration and kind, and making the keys again for
// each write was an allocation each.
type indexKeys struct {
	idsBP, idsKey             string
	ownInteg, ownKind, ownKey string
	kindsInteg, kindsKey      string
}

func (k *indexKeys) ids(t, bp string) string {
	if k.idsKey == "" || k.idsBP != bp {
		k.idsBP, k.idsKey = bp, idsKey(t, bp)
	}
	return k.idsKey
}

func (k *indexKeys) own(t, integ, kind string) string {
	if k.ownKey == "" || k.ownInteg != integ || k.ownKind != kind {
		k.ownInteg, k.ownKind, k.ownKey = integ, kind, ownKey(t, integ, kind)
	}
	return k.ownKey
}

func (k *indexKeys) kinds(t, integ string) string {
	if k.kindsKey == "" || k.kindsInteg != integ {
		k.kindsInteg, k.kindsKey = integ, kindsKey(t, integ)
	}
	return k.kindsKey
}

// createPlan is what a create transaction sends, decided by planCreates.
type createPlan struct {
	hsets    [][]any              // "hset", key, field, value, ... per entity, barebones first
	changes  [][]byte             // outbox entries, in order
	zadds    map[string][]redis.Z // ids and ownership indexes
	sadds    map[string][]any     // kinds and reverse relation indexes
	keyOrder []string             // zadds and sadds keys in first-use order
	outcomes map[*prepared]*Outcome
}

// planCreates decides, in batch order, which candidates are creates and what they
// write; see createTx. found[i] counts how many of candidate i's entity and tombstone
// keys exist; present tells whether each relation target existed when read.
func planCreates(t string, now time.Time, cands []*prepared, found []*redis.IntCmd, present map[string]bool) *createPlan {
	plan := &createPlan{zadds: map[string][]redis.Z{}, sadds: map[string][]any{}, outcomes: map[*prepared]*Outcome{}}
	nowMS := strconv.FormatInt(now.UnixMilli(), 10)
	nowJSON := jsonTimeOf(now)
	mine := map[string]bool{} // entity keys this plan writes
	var keys indexKeys
	for i, p := range cands {
		e := &p.w.Entity
		ek := entityKey(t, e.Blueprint, e.Identifier)
		if found[i].Val() != 0 || mine[ek] || present[ek] {
			continue // exists, tombstoned, or written earlier in the batch: the script's
		}
		var missing []Ref
		for r := 0; r < len(p.rels); r += 3 {
			for _, id := range p.targets[r/3] {
				tk := entityKey(t, p.rels[r+1], id)
				if tk == ek || present[tk] || mine[tk] || slices.Contains(missing, Ref{Blueprint: p.rels[r+1], Identifier: id}) {
					continue
				}
				missing = append(missing, Ref{Blueprint: p.rels[r+1], Identifier: id})
			}
		}
		o := &Outcome{}
		if len(missing) > 0 && !p.w.CreateMissing {
			o.Status, o.Missing = MissingTargets, missing
			plan.outcomes[p] = o
			continue
		}
		var cids []string
		for _, m := range missing {
			tk := entityKey(t, m.Blueprint, m.Identifier)
			mine[tk] = true
			plan.hsets = append(plan.hsets, []any{"hset", tk, "_bp", m.Blueprint, "_id", m.Identifier,
				"_created", nowMS, "_updated", nowMS, "_fetched", "0", "_hash", emptyHash})
			plan.zadd(idsKey(t, m.Blueprint), redis.Z{Member: m.Identifier})
			cid := newChangeID()
			cids = append(cids, cid)
			plan.changes = append(plan.changes, changeJSON(cid, OpCreated, m.Blueprint, m.Identifier, 64,
				func(b []byte) []byte { return appendBarebonesHead(b, m.Blueprint, m.Identifier) }, nowJSON))
		}
		o.addCreated(missing, cids)

		mine[ek] = true
		// Pointers: go-redis writes a *string as the string, and a pointer goes into
		// an interface without the allocation a string costs. p.fields does not
		// change until the transaction is sent, and sv holds the entity's other
		// values: one allocation instead of one per value. With indexKeys, a create
		// makes 14 fewer allocations (BenchmarkUpsert/create: 92 to 78 per entity).
		sv := &createValues{ek: ek, bp: e.Blueprint, id: e.Identifier, owner: p.w.Integration, kind: p.w.Kind,
			hash: p.hash(), fetched: strconv.FormatInt(p.w.FetchedAt.UnixMicro(), 10),
			member: e.Blueprint + US + e.Identifier}
		h := make([]any, 0, 2+len(p.fields)+16+2*len(p.rels)/3)
		h = append(h, "hset", &sv.ek)
		for i := range p.fields {
			h = append(h, &p.fields[i])
		}
		h = append(h, "_bp", &sv.bp, "_id", &sv.id, "_owner", &sv.owner, "_kind", &sv.kind,
			"_hash", &sv.hash, "_created", &nowMS, "_updated", &nowMS, "_fetched", &sv.fetched)
		for r := 0; r < len(p.rels); r += 3 {
			h = append(h, "_r:"+p.rels[r], p.rels[r+1]+US+p.rels[r+2])
		}
		plan.hsets = append(plan.hsets, h)
		plan.zadd(keys.ids(t, e.Blueprint), redis.Z{Member: &sv.id})
		plan.zadd(keys.own(t, p.w.Integration, p.w.Kind), redis.Z{Score: float64(now.UnixMilli()), Member: &sv.member})
		if kk := keys.kinds(t, p.w.Integration); !slices.ContainsFunc(plan.sadds[kk], func(m any) bool { k, ok := m.(*string); return ok && *k == p.w.Kind }) {
			plan.sadd(kk, &sv.kind) // once per kind: a batch is nearly always of one
		}
		for r := 0; r < len(p.rels); r += 3 {
			src := sv.member + US + p.rels[r] + US + p.rels[r+2]
			for _, id := range p.targets[r/3] {
				plan.sadd(revKey(t, p.rels[r+1], id), src)
			}
		}
		cid := newChangeID()
		plan.changes = append(plan.changes, changeJSON(cid, OpCreated, e.Blueprint, e.Identifier, p.headSize(), p.appendChangeHead, nowJSON))
		o.Status, o.Hash = Created, p.hash()
		o.Change = &Change{ChangeID: cid, Op: OpCreated, Blueprint: e.Blueprint, Identifier: e.Identifier}
		plan.outcomes[p] = o
	}
	return plan
}

func (pl *createPlan) zadd(key string, z redis.Z) {
	if _, ok := pl.zadds[key]; !ok {
		pl.keyOrder = append(pl.keyOrder, key)
	}
	pl.zadds[key] = append(pl.zadds[key], z)
}

func (pl *createPlan) sadd(key string, member any) {
	if _, ok := pl.sadds[key]; !ok {
		pl.keyOrder = append(pl.keyOrder, key)
	}
	pl.sadds[key] = append(pl.sadds[key], member)
}

// send queues the plan's commands on a MULTI pipeline.
func (pl *createPlan) send(ctx context.Context, pipe redis.Pipeliner, t string, outboxMax int64) {
	// HSET and XADD go as Do, which sends the arguments it is given: HSet and XAdd
	// copy them into slices of their own, a tenth of a create's allocations.
	for _, h := range pl.hsets {
		pipe.Do(ctx, h...)
	}
	for _, k := range pl.keyOrder {
		if zs, ok := pl.zadds[k]; ok {
			pipe.ZAdd(ctx, k, zs...)
		} else {
			pipe.SAdd(ctx, k, pl.sadds[k]...)
		}
	}
	stream, maxLen := outboxKey(t), strconv.FormatInt(outboxMax, 10)
	for _, ch := range pl.changes {
		pipe.Do(ctx, "xadd", stream, "maxlen", "~", maxLen, "*", outboxField, ch)
	}
}

// emptyHash is the Lua EMPTY_HASH, contentHash of no fields (a barebones entity's):
// SHA-1 of the empty string.
const emptyHash = "da39a3ee5e6b4b0d3255bfef95601890afd80709"

// changeJSON is an outbox entry as the scripts' outboxAdd writes it, for an entity
// whose createdAt and updatedAt are both now; appendHead writes the entity's
// changeHead, headSize bytes or so, in place. One buffer per change, handed to XADD
// as bytes: the head used to be a string of its own, copied into the change, which
// was copied again into a string.
func changeJSON(cid, op, bp, id string, headSize int, appendHead func([]byte) []byte, nowJSON string) []byte {
	b := make([]byte, 0, headSize+2*len(bp)+2*len(id)+2*len(nowJSON)+112)
	b = append(b, `{"changeId":"`...)
	b = append(b, cid...)
	b = append(b, `","op":"`...)
	b = append(b, op...)
	b = append(b, `","blueprint":`...)
	b = appendJSONString(b, bp)
	b = append(b, `,"identifier":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"entity":`...)
	b = appendHead(b)
	b = append(b, `,"createdAt":`...)
	b = append(b, nowJSON...)
	b = append(b, `,"updatedAt":`...)
	b = append(b, nowJSON...)
	return append(b, "}}"...)
}

// appendBarebonesHead appends the changeHead of a barebones entity: no title,
// properties or relations, and no owner.
func appendBarebonesHead(b []byte, bp, id string) []byte {
	b = append(b, `{"identifier":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"blueprint":`...)
	b = appendJSONString(b, bp)
	return append(b, `,"properties":{},"relations":{}`...)
}

// appendJSONString appends s as encoding/json encodes it, byte for byte (stored
// values are hashed, so they must not change). Most strings are printable ASCII
// that json.Marshal writes as they are: those skip it and its allocation.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s) // a string always encodes
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
