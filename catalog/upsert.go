package catalog

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/configsync/configsync/blueprint"
)

// maxBlueprintRetries bounds how often a batch is re-validated because blueprints
// changed under it; more means someone is changing them in a loop.
const maxBlueprintRetries = 3

// Upsert writes a batch of entities of one tenant and reports each write's outcome at
// its index. The batch is one pipeline of upsertScript calls, so it costs one round
// trip whatever its size, and each entity's write is atomic.
//
// Go validates each write against the blueprint (cached per tenant, see blueprints);
// the script then applies, against the stored entity: the fence, the blueprint
// generation (a change since the cache was read sends the write back to be validated
// again), fetch-time ordering (SkippedOlder), required fields after a merge, relation
// targets (barebones creation or MissingTargets), change detection by content hash
// (Unchanged), the ownership index and the reverse relation index. Writes Go finds
// invalid are confirmed by a generation check in the same pipeline, so a stale cache
// never fails a write either.
//
// Each Created or Updated write, and each barebones target, appends its change to the
// tenant's outbox in the same script call (see Change). The tenant joins the outbox
// tenants set in the batch's pipeline, before the scripts (so a caller dying half-way
// leaves it listed, on a single Redis), and again after them when anything changed
// (so a concurrent AckChanges that found the outbox empty cannot forget it): one more
// round trip per batch that changed something.
//
// A zero Write.FetchedAt is Invalid: without it ordering cannot be decided. The error
// return is for Redis failures and bad arguments; a failed write is an Outcome.
func (c *Catalog) Upsert(ctx context.Context, tenant string, fence *Fence, writes []Write) (_ []Outcome, err error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	if err := checkFence(tenant, fence); err != nil {
		return nil, err
	}
	outcomes := make([]Outcome, len(writes))
	if len(writes) == 0 {
		return outcomes, nil
	}
	bc, err := c.blueprints(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	t := c.tkey(tenant)
	fenceKey, token := fenceArgs(fence)
	// sent: scripts may have run, and on an error their changes are unknown; changed:
	// some did change something.
	var sent, changed bool
	defer func() {
		if changed || (sent && err != nil) {
			if lerr := c.listOutboxTenant(ctx, tenant); lerr != nil && err == nil {
				err = lerr
			}
		}
	}()
	pending := make([]int, len(writes))
	for i := range pending {
		pending[i] = i
	}
	for attempt := 0; ; attempt++ {
		now := c.clock()
		var calls []scriptCall
		var preps []*prepared
		for _, i := range pending {
			p := prepare(tenant, bc, &writes[i])
			p.index = i
			outcomes[i] = Outcome{Warnings: p.warnings}
			preps = append(preps, p)
		}
		if attempt == 0 {
			states, err := c.touch(ctx, t, fenceKey, token, now, bc.gen, preps)
			if err != nil {
				return nil, fmt.Errorf("catalog: tenant %q: settling unchanged writes: %w", tenant, err)
			}
			kept := preps[:0]
			for k, p := range preps {
				switch states[k] {
				case touchSettled:
					o := &outcomes[p.index]
					o.Status, o.Hash, o.Generation = Unchanged, p.hash(), bc.gen
					continue
				case touchStored:
					p.stored = true
				}
				kept = append(kept, p)
			}
			preps = kept
			sent = true // the create transaction may write before it fails
			var created bool
			if preps, created, err = c.createTx(ctx, tenant, t, fenceKey, token, now, bc, preps, outcomes); err != nil {
				return nil, fmt.Errorf("catalog: tenant %q: %w", tenant, err)
			}
			changed = changed || created
		}
		if len(preps) == 0 {
			return outcomes, nil
		}
		// upsertChunk writes per script call: the call itself (arguments into Lua,
		// the shared prelude, the reply) cost a quarter of a create.
		for chunk := range slices.Chunk(preps, upsertChunk) {
			var call scriptCall
			for _, p := range chunk {
				one := p.call(t, fenceKey, token, now, bc.gen, c.outboxMax)
				if call.keys == nil {
					call.keys = one.keys // the first entity's key routes the call
				}
				call.args = append(call.args, len(one.args))
				call.args = append(call.args, one.args...)
			}
			calls = append(calls, call)
		}
		sent = true
		replies, err := c.runPipeline(ctx, upsertScript, calls, tenant)
		if err != nil {
			return nil, fmt.Errorf("catalog: tenant %q: upserting %d entities: %w", tenant, len(preps), err)
		}
		results := make([]any, 0, len(preps))
		for _, r := range replies {
			each, _ := r.([]any)
			results = append(results, each...)
		}
		if len(results) != len(preps) {
			return nil, fmt.Errorf("catalog: tenant %q: %d script replies for %d writes", tenant, len(results), len(preps))
		}
		pending = pending[:0]
		for k, res := range results {
			p := preps[k]
			outcomes[p.index].Generation = bc.gen
			stale, err := p.outcome(&outcomes[p.index], res, now)
			if err != nil {
				return nil, fmt.Errorf("catalog: tenant %q: %s/%s: %w", tenant, p.w.Entity.Blueprint, p.w.Entity.Identifier, err)
			}
			if stale {
				pending = append(pending, p.index)
			}
			o := &outcomes[p.index]
			changed = changed || o.Change != nil || len(o.CreatedChanges) > 0
		}
		if len(pending) == 0 {
			if changed {
				// Listed after the scripts: see OutboxTenants.
				if err := c.listOutboxTenant(ctx, tenant); err != nil {
					return nil, err
				}
				changed = false
			}
			return outcomes, nil
		}
		if attempt+1 >= maxBlueprintRetries {
			return nil, fmt.Errorf("catalog: tenant %q: blueprints changed during %d attempts to write %d entities", tenant, maxBlueprintRetries, len(pending))
		}
		if bc, err = c.blueprints(ctx, tenant, true); err != nil {
			return nil, err
		}
	}
}

// upsertChunk is how many writes one upsertScript call makes: enough to make the
// per-call cost small, few enough that one call does not hold Redis for long (≈ 3 ms).
const upsertChunk = 50

// touchChunk is how many writes one touchScript call checks.
const touchChunk = 1000

// touchBackoff is how many Upsert calls skip touch after one in which it settled
// less than a quarter of the writes: a batch of new or changed entities would pay
// for the check and gain nothing, so a run of such batches is probed now and then.
const touchBackoff = 8

// touchState is what touch learnt of a write.
type touchState uint8

const (
	touchUnknown touchState = iota // not checked
	touchSettled                   // unchanged, and settled
	touchAbsent                    // its entity does not exist: a create
	touchStored                    // its entity exists: left to upsertScript
)

// touch settles the writes that change nothing with touchScript, a call per
// touchChunk writes instead of an upsertScript call each, and reports what it learnt
// of each write. Only writes upsertScript would answer on its fast unchanged path are
// sent. A fenced or stale-blueprint answer settles nothing: upsertScript then
// reports it properly.
func (c *Catalog) touch(ctx context.Context, t, fenceKey, token string, now time.Time, gen string, preps []*prepared) ([]touchState, error) {
	if c.touchSkip.Load() > 0 {
		c.touchSkip.Add(-1)
		return make([]touchState, len(preps)), nil
	}
	settled, err := c.touchAll(ctx, t, fenceKey, token, now, gen, preps)
	if err != nil {
		return nil, err
	}
	hits := 0
	for _, s := range settled {
		if s == touchSettled {
			hits++
		}
	}
	if hits*4 < len(preps) {
		c.touchSkip.Store(touchBackoff)
	}
	return settled, nil
}

// touchAll is touch without the backoff: it sends every write it may.
func (c *Catalog) touchAll(ctx context.Context, t, fenceKey, token string, now time.Time, gen string, preps []*prepared) ([]touchState, error) {
	settled := make([]touchState, len(preps))
	var idx []int
	for k, p := range preps {
		if p.err == nil && len(p.required) == 0 {
			idx = append(idx, k)
		}
	}
	if len(idx) == 0 {
		return settled, nil
	}
	keys := []string{t + ":bpgen"}
	if token != "" {
		keys = append(keys, fenceKey)
	}
	nowMS := strconv.FormatInt(now.UnixMilli(), 10)
	pipe := c.rdb.Pipeline()
	var cmds []*redis.Cmd
	for chunk := range slices.Chunk(idx, touchChunk) {
		args := make([]any, 0, 4+6*len(chunk))
		args = append(args, t, token, nowMS, gen)
		for _, k := range chunk {
			p := preps[k]
			args = append(args, p.w.Entity.Blueprint, p.w.Entity.Identifier, p.w.Integration, p.w.Kind,
				strconv.FormatInt(p.w.FetchedAt.UnixMicro(), 10), p.hash())
		}
		cmds = append(cmds, touchScript.EvalSha(ctx, pipe, keys, args...))
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	for n, cmd := range cmds {
		chunk := idx[n*touchChunk : min((n+1)*touchChunk, len(idx))]
		res, err := cmd.Result()
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			res, err = touchScript.Run(ctx, c.rdb, keys, cmd.Args()[3+len(keys):]...).Result()
		}
		if err != nil {
			return nil, err
		}
		reply, _ := res.([]any)
		if len(reply) == 0 {
			return nil, fmt.Errorf("unexpected touch reply %v", res)
		}
		if status, _ := reply[0].(string); status != "ok" {
			return settled, nil // fenced or bpstale: upsertScript answers each write
		}
		flags, _ := reply[1].([]any)
		if len(flags) != len(chunk) {
			return nil, fmt.Errorf("unexpected touch reply %v", res)
		}
		for j, f := range flags {
			switch v, _ := f.(int64); v {
			case 1:
				settled[chunk[j]] = touchSettled
			case 2:
				settled[chunk[j]] = touchAbsent
			default:
				settled[chunk[j]] = touchStored
			}
		}
	}
	return settled, nil
}

// prepared is one write validated and encoded for upsertScript.
type prepared struct {
	index    int
	w        *Write
	tenant   string
	warnings []string
	err      error

	fields      []string   // content field, value, ... this write sets
	rels        []string   // relation name, target blueprint, required, ...
	targets     [][]string // the target identifiers of each relation in rels
	required    []string   // content fields that must be set after a merge
	stored      bool       // touch found its entity stored: not a create
	contentHash string     // see hash
}

// prepare validates a write and encodes its content fields. Validation that needs the
// stored entity (required fields a merge leaves out) is left to the script.
func prepare(tenant string, bc *bpCache, w *Write) *prepared {
	e := &w.Entity
	p := &prepared{w: w, tenant: tenant}
	invalid := func(errs ...error) *prepared {
		p.err = fmt.Errorf("catalog: tenant %q: %s/%s: %w", tenant, e.Blueprint, e.Identifier, errors.Join(errs...))
		return p
	}
	var problems []error
	for _, chk := range []struct{ what, v string }{{"identifier", e.Identifier}, {"integration", w.Integration}} {
		if err := checkName(chk.what, chk.v); err != nil {
			problems = append(problems, err)
		}
	}
	if strings.Contains(w.Kind, US) {
		problems = append(problems, fmt.Errorf("kind %q contains the unit separator \\x1f", w.Kind))
	}
	if w.FetchedAt.IsZero() {
		problems = append(problems, errors.New("FetchedAt is not set, so the write cannot be ordered against newer ones"))
	}
	b, ok := bc.bps[e.Blueprint]
	if !ok {
		problems = append(problems, fmt.Errorf("blueprint %q does not exist", e.Blueprint))
		return invalid(problems...)
	}

	// Properties.
	var cleaned map[string]any
	var absent []string
	var err error
	if w.Merge {
		cleaned, p.warnings, absent, err = b.ValidatePatch(e.Properties)
	} else {
		cleaned, p.warnings, err = b.ValidateEntity(e.Properties)
	}
	if err != nil {
		problems = append(problems, err)
	}
	for _, name := range absent {
		p.required = append(p.required, "p:"+name)
	}
	layout := bc.layout[e.Blueprint]
	p.fields = make([]string, 0, 2*(3+len(cleaned)+len(e.Relations)))
	if e.Title != "" {
		p.fields = append(p.fields, "title", e.Title)
	}
	if e.Icon != "" {
		p.fields = append(p.fields, "icon", e.Icon)
	}
	if len(e.Team) > 0 {
		team, _ := json.Marshal(e.Team) // a []string always encodes
		p.fields = append(p.fields, "team", string(team))
	}
	// The values are encoded one after the other into one buffer, made one string,
	// and sliced: a string per value was the most frequent allocation of a write.
	// cleaned holds only properties of the schema, so the layout's sorted names
	// cover it.
	vals := make([]byte, 0, 256)
	ends := make([]int, 0, len(cleaned)) // of each value in vals, in field order
	first := len(p.fields)
	for i, name := range layout.props {
		v, ok := cleaned[name]
		if !ok {
			continue
		}
		if s, ok := v.(string); ok {
			vals = appendJSONString(vals, s)
		} else if data, err := json.Marshal(v); err != nil {
			problems = append(problems, fmt.Errorf("property %q: %w", name, err))
			continue
		} else {
			vals = append(vals, data...)
		}
		p.fields = append(p.fields, layout.propFields[i], "")
		ends = append(ends, len(vals))
	}
	if len(ends) > 0 {
		all, start := string(vals), 0
		for k, end := range ends {
			p.fields[first+2*k+1] = all[start:end]
			start = end
		}
	}

	// Relations.
	known := 0
	for i, name := range layout.rels {
		v, set := e.Relations[name]
		rel := b.Relations[name]
		if !set {
			if !rel.Required {
				continue
			}
			if w.Merge {
				p.required = append(p.required, layout.relFields[i])
			} else {
				problems = append(problems, fmt.Errorf("relation %q is required", name))
			}
			continue
		}
		known++
		enc, ids, err := encodeRelation(rel, v)
		if err != nil {
			problems = append(problems, fmt.Errorf("relation %q: %w", name, err))
			continue
		}
		if rel.Required && len(ids) == 0 {
			problems = append(problems, fmt.Errorf("relation %q is required, got no target", name))
			continue
		}
		if _, ok := bc.bps[rel.Target]; !ok && len(ids) > 0 {
			problems = append(problems, fmt.Errorf("relation %q targets blueprint %q, which does not exist", name, rel.Target))
			continue
		}
		p.fields = append(p.fields, layout.relFields[i], enc)
		p.rels = append(p.rels, name, rel.Target, flag(rel.Required))
		p.targets = append(p.targets, ids)
	}
	if known < len(e.Relations) {
		for _, name := range slices.Sorted(maps.Keys(e.Relations)) {
			if _, ok := b.Relations[name]; !ok {
				p.warnings = append(p.warnings, fmt.Sprintf("relation %q is not in blueprint %q; dropped", name, b.Identifier))
			}
		}
	}
	if len(problems) > 0 {
		return invalid(problems...)
	}
	return p
}

// encodeRelation checks a relation value and returns its stored form and its target
// identifiers. A lone string is accepted
// for a many relation as a list of one (mappings often yield one identifier where a
// list is expected); a list for a single relation is refused, since which element was
// meant cannot be known.
func encodeRelation(rel blueprint.Relation, v any) (enc string, ids []string, err error) {
	switch x := v.(type) {
	case nil:
		return "-", nil, nil
	case string:
		if err := checkName("target identifier", x); err != nil {
			return "", nil, err
		}
		if rel.Many {
			return "[" + x, []string{x}, nil
		}
		return "=" + x, []string{x}, nil
	case []string:
		ids = x
	case []any:
		ids = make([]string, len(x))
		for i, el := range x {
			s, ok := el.(string)
			if !ok {
				return "", nil, fmt.Errorf("element %d is %T, not an identifier", i, el)
			}
			ids[i] = s
		}
	default:
		return "", nil, fmt.Errorf("want an identifier or a list of them, got %T", v)
	}
	if !rel.Many {
		return "", nil, fmt.Errorf("takes one identifier (it is not many), got a list of %d", len(ids))
	}
	for _, id := range ids {
		if err := checkName("target identifier", id); err != nil {
			return "", nil, err
		}
	}
	ids = slices.Clone(ids)
	return "[" + strings.Join(ids, US), ids, nil
}

// call builds the script call of a prepared write. A write found invalid still gets
// a call, in check-only form (empty blueprint argument): it confirms the blueprints
// it was judged by are current, since a blueprint or property another process just
// added would otherwise make a valid write fail. It rides in the same pipeline, so
// it costs no round trip.
func (p *prepared) call(t, fenceKey, token string, now time.Time, gen string, outboxMax int64) scriptCall {
	e := &p.w.Entity
	keys := []string{entityKey(t, e.Blueprint, e.Identifier), outboxKey(t)}
	if token != "" {
		keys = append(keys, fenceKey)
	}
	if p.err != nil {
		return scriptCall{keys: keys, args: []any{t, token, "", "", "", "", "0", "0", "0", "0", gen}}
	}
	args := make([]any, 0, 20+len(p.fields)+len(p.rels)+len(p.required))
	args = append(args, t, token, e.Blueprint, e.Identifier, p.w.Integration, p.w.Kind,
		strconv.FormatInt(p.w.FetchedAt.UnixMicro(), 10), strconv.FormatInt(now.UnixMilli(), 10),
		flag(p.w.Merge), flag(p.w.CreateMissing), gen, p.hash(), flag(len(p.required) == 0),
		newChangeID(), outboxMax, p.changeHead(), jsonTimeOf(now), len(p.fields)/2)
	for i := range p.fields {
		args = append(args, &p.fields[i]) // as in planCreates: no allocation per field
	}
	args = append(args, len(p.rels)/3)
	for _, s := range p.rels {
		args = append(args, s)
	}
	args = append(args, len(p.required))
	for _, s := range p.required {
		args = append(args, s)
	}
	return scriptCall{keys: keys, args: args}
}

// changeHead encodes the entity as its outbox change will carry it once written,
// when the write is all of it (a replace, or a merge that keeps no stored field),
// without the closing createdAt and updatedAt, which only the script knows: what the
// script's entityJSON makes of the same fields (the tests compare them), done here
// because encoding in Lua cost half of a create.
func (p *prepared) changeHead() string {
	return string(p.appendChangeHead(make([]byte, 0, p.headSize())))
}

// headSize is room enough for most change heads: the fields' bytes and the names'.
func (p *prepared) headSize() int {
	n := 192 + len(p.w.Integration) + len(p.w.Kind) + 2*len(p.w.Entity.Identifier)
	for _, f := range p.fields {
		n += len(f) + 4
	}
	return n
}

// appendChangeHead appends changeHead to b.
func (p *prepared) appendChangeHead(b []byte) []byte {
	e := &p.w.Entity
	str := appendJSONString
	b = append(b, `{"identifier":`...)
	b = str(b, e.Identifier)
	b = append(b, `,"blueprint":`...)
	b = str(b, e.Blueprint)
	// Three passes over the fields, rather than gathering properties and relations
	// into slices, which allocated for every change.
	for i := 0; i+1 < len(p.fields); i += 2 {
		switch f, v := p.fields[i], p.fields[i+1]; {
		case f == "title" || f == "icon":
			b = append(b, `,"`...)
			b = append(b, f...)
			b = append(b, `":`...)
			b = str(b, v)
		case f == "team" && v != "[]":
			b = append(b, `,"team":`...)
			b = append(b, v...)
		}
	}
	b = append(b, `,"properties":{`...)
	first := true
	for i := 0; i+1 < len(p.fields); i += 2 {
		name, ok := strings.CutPrefix(p.fields[i], "p:")
		if !ok {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = str(b, name)
		b = append(b, ':')
		b = append(b, p.fields[i+1]...)
	}
	b = append(b, `},"relations":{`...)
	first = true
	for i := 0; i+1 < len(p.fields); i += 2 {
		name, ok := strings.CutPrefix(p.fields[i], "r:")
		if !ok {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = str(b, name)
		b = append(b, ':')
		switch v := p.fields[i+1]; {
		case strings.HasPrefix(v, "="):
			b = str(b, v[1:])
		case strings.HasPrefix(v, "["):
			b = append(b, '[')
			if len(v) > 1 {
				for j, id := range strings.Split(v[1:], US) {
					if j > 0 {
						b = append(b, ',')
					}
					b = str(b, id)
				}
			}
			b = append(b, ']')
		default:
			b = append(b, "null"...)
		}
	}
	b = append(b, '}')
	if p.w.Integration != "" {
		b = append(b, `,"integration":`...)
		b = str(b, p.w.Integration)
	}
	if p.w.Kind != "" {
		b = append(b, `,"kind":`...)
		b = str(b, p.w.Kind)
	}
	return b
}

// hash is contentHash of the fields the write sets, computed once.
func (p *prepared) hash() string {
	if p.contentHash == "" {
		p.contentHash = contentHash(p.fields)
	}
	return p.contentHash
}

// outcome fills o from the script's reply. It returns stale when the blueprints
// changed and the write must be validated again.
func (p *prepared) outcome(o *Outcome, res any, now time.Time) (stale bool, err error) {
	reply, ok := res.([]any)
	if !ok || len(reply) == 0 {
		return false, fmt.Errorf("unexpected script reply %v", res)
	}
	e := &p.w.Entity
	switch status, _ := reply[0].(string); status {
	case "fenced":
		o.Status = Fenced
	case "bpstale":
		return true, nil
	case "checked":
		o.Status, o.Err = Invalid, p.err
	case "older":
		o.Status = SkippedOlder
	case "unchanged":
		o.Status = Unchanged
		if len(reply) >= 4 {
			o.Hash = p.hash() // the stored hash is the write's own
		}
		if len(reply) >= 3 {
			created, cids := refs(strs(reply[1])), strs(reply[2])
			if len(cids) != len(created) {
				return false, fmt.Errorf("unexpected script reply %v", res)
			}
			o.addCreated(created, cids)
		}
	case "invalid":
		var errs []error
		for _, f := range strs(reply[1]) {
			what, name := "property", strings.TrimPrefix(f, "p:")
			if strings.HasPrefix(f, "r:") {
				what, name = "relation", f[2:]
			}
			errs = append(errs, fmt.Errorf("%s %q is required, and neither the merged write nor the stored entity sets it", what, name))
		}
		o.Status = Invalid
		o.Err = fmt.Errorf("catalog: tenant %q: %s/%s: %w", p.tenant, e.Blueprint, e.Identifier, errors.Join(errs...))
	case "missing":
		o.Status = MissingTargets
		o.Missing = refs(strs(reply[1]))
	case "created", "updated":
		if len(reply) < 5 {
			return false, fmt.Errorf("unexpected script reply %v", res)
		}
		o.Status = Created
		op := OpCreated
		if status == "updated" {
			o.Status, op = Updated, OpUpdated
		}
		created, cids := refs(strs(reply[1])), strs(reply[4])
		if len(cids) != len(created)+1 {
			return false, fmt.Errorf("unexpected script reply %v", res)
		}
		o.addCreated(created, cids[:len(created)])
		if len(strs(reply[2])) == 0 { // nothing kept from the stored entity
			o.Hash = p.hash()
		}
		o.Change = &Change{ChangeID: cids[len(created)], Op: op, Blueprint: e.Blueprint, Identifier: e.Identifier}
	default:
		return false, fmt.Errorf("unexpected script reply %v", res)
	}
	return false, nil
}

// addCreated records the barebones targets a write created, with the identifiers of
// their changes in the outbox.
func (o *Outcome) addCreated(created []Ref, cids []string) {
	o.Created = created
	for i, r := range created {
		o.CreatedChanges = append(o.CreatedChanges, Change{ChangeID: cids[i], Op: OpCreated, Blueprint: r.Blueprint, Identifier: r.Identifier})
	}
}

// contentHash is the Lua contentHash of a list of content field/value pairs: SHA-1
// in hex over the fields sorted by name, each written as "<len>:<name><len>:<value>".
// It must stay byte-for-byte the same as the script's.
func contentHash(fields []string) string {
	idx := make([]int, 0, len(fields)/2)
	size := 0
	for i := 0; i+1 < len(fields); i += 2 {
		idx = append(idx, i)
		size += len(fields[i]) + len(fields[i+1]) + 8
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(fields[a], fields[b]) })
	// One buffer and one Sum: a Write per string copied each into bytes of its own
	// (io.WriteString on a hash does), 22 allocations for a repository's fields
	// where this makes 3, at half the time.
	var scratch [1024]byte
	buf := scratch[:0]
	if size > len(scratch) {
		buf = make([]byte, 0, size)
	}
	for _, i := range idx {
		for _, s := range fields[i : i+2] {
			buf = strconv.AppendInt(buf, int64(len(s)), 10)
			buf = append(buf, ':')
			buf = append(buf, s...)
		}
	}
	sum := sha1.Sum(buf)
	return hex.EncodeToString(sum[:])
}

// scriptCall is one EVALSHA of a pipeline.
type scriptCall struct {
	keys []string
	args []any
}

// runPipeline sends the calls as one pipeline and returns their replies in order. A
// reply that is a Redis error fails the whole call: the scripts report outcomes as
// values, so an error means a bug or a broken server. When Redis lost the script
// (restart, SCRIPT FLUSH) it is loaded and the calls that did not run are sent again.
//
// The pipeline starts with adding tenant to the outbox tenants, so that on a single
// Redis (which runs a pipeline in order) no script can append to the outbox of a
// tenant that is not listed, even when the caller dies before its own
// listOutboxTenant. It is best effort: its error is ignored (the caller's
// listOutboxTenant reports one), and on a cluster it runs on another node,
// concurrently with the scripts.
func (c *Catalog) runPipeline(ctx context.Context, s *redis.Script, calls []scriptCall, tenant string) ([]any, error) {
	results := make([]any, len(calls))
	todo := make([]int, len(calls))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		pipe := c.rdb.Pipeline()
		pipe.SAdd(ctx, c.outboxTenantsKey(), tenant)
		cmds := make([]*redis.Cmd, len(todo))
		for k, i := range todo {
			cmds[k] = s.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
		}
		_, _ = pipe.Exec(ctx) // errors are read per command below
		var again []int
		for k, i := range todo {
			err := cmds[k].Err()
			switch {
			case err == nil:
				results[i] = cmds[k].Val()
			case redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0:
				again = append(again, i)
			default:
				return nil, err
			}
		}
		if len(again) > 0 {
			if err := s.Load(ctx, c.rdb).Err(); err != nil {
				return nil, fmt.Errorf("loading script: %w", err)
			}
		}
		todo = again
	}
	return results, nil
}

// strs reads a script reply array of strings.
func strs(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// refs reads a flat list bp, id, bp, id, ....
func refs(flat []string) []Ref {
	var out []Ref
	for i := 0; i+1 < len(flat); i += 2 {
		out = append(out, Ref{Blueprint: flat[i], Identifier: flat[i+1]})
	}
	return out
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// jsonTimeOf is now's millisecond as encoding/json writes msTime of it, which the
// scripts' jsonTime also writes (TestJSONTimeMatchesGo).
func jsonTimeOf(now time.Time) string {
	b, _ := json.Marshal(msTime(now.UnixMilli())) // a time in range always encodes
	return string(b)
}
