package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/configsync/configsync/blueprint"
	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/natstest"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/redistest"
)

// rawBlueprintsJSON has every property and relation shape a change can carry.
const rawBlueprintsJSON = `[
 {"identifier": "org", "schema": {"properties": {"name": {"type": "string"}}}},
 {"identifier": "lang", "schema": {"properties": {}}},
 {"identifier": "repo", "schema": {"properties": {
    "stars": {"type": "number"}, "big": {"type": "number"}, "ratio": {"type": "number"},
    "desc": {"type": "string"}, "tags": {"type": "array"}, "meta": {"type": "object"},
    "gone": {"type": "string"}, "ok": {"type": "boolean"}}},
  "relations": {
    "org": {"target": "org", "required": false, "many": false},
    "langs": {"target": "lang", "required": false, "many": true},
    "mirror": {"target": "repo", "required": false, "many": false}}}
]`

func putRawBlueprints(t testing.TB, cat *catalog.Catalog, tenant string) {
	t.Helper()
	bps, err := blueprint.Parse([]byte(rawBlueprintsJSON))
	if err != nil {
		t.Fatal(err)
	}
	for _, bp := range bps {
		if err := cat.PutBlueprint(context.Background(), tenant, bp); err != nil {
			t.Fatal(err)
		}
	}
}

// oldWire is the message body the publisher sent before it published stored changes
// as they are: the change decoded by PendingChanges, its entity encoded with
// encoding/json, the event with go-json-experiment (what PublishChanges does).
func oldWire(t testing.TB, c catalog.Change) []byte {
	t.Helper()
	ent, err := json.Marshal(c.Entity)
	if err != nil {
		t.Fatal(err)
	}
	data, err := jsonv2.Marshal(queue.Change{ChangeID: c.ChangeID, Op: c.Op, Blueprint: c.Blueprint, Identifier: c.Identifier, Entity: ent},
		jsonv2.Deterministic(true))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// decodeAny decodes JSON generically, numbers as their text: equal results are the
// same event to any consumer.
func decodeAny(t testing.TB, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
	return v
}

// publishedMsg is a change event as it arrived on NATS.
type publishedMsg struct {
	msgID string
	data  []byte
}

// rawChanges reads every change event of the tenant published so far, body and
// Nats-Msg-Id.
func (e *env) rawChanges() []publishedMsg {
	e.t.Helper()
	ctx := context.Background()
	cons, err := e.js.OrderedConsumer(ctx, queue.ChangesStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{queue.ChangesSubject(e.tenant)}})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []publishedMsg
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			out = append(out, publishedMsg{msgID: m.Headers().Get(jetstream.MsgIDHeader), data: m.Data()})
		}
		if n == 0 {
			return out
		}
	}
}

// TestPublishOutboxOversizedChange: a change larger than NATS's max payload cannot be
// published as it is. The changes NATS stored before it leave the outbox at once; it
// goes out without its entity (entityTooLarge says how large it was), and the changes
// after it follow, in order, so that one huge entity does not hold up a tenant's
// changes for good.
func TestPublishOutboxOversizedChange(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	putRawBlueprints(t, e.cat, e.tenant)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, desc := range []string{"a", "b", "c", strings.Repeat("x", natstest.MaxPayload), "e"} {
		w := catalog.Write{Entity: catalog.Entity{Blueprint: "repo", Identifier: fmt.Sprint("r", i), Properties: map[string]any{"desc": desc}, Relations: map[string]any{}},
			Integration: "gh", Kind: "repository", FetchedAt: now}
		outs, err := e.cat.Upsert(ctx, e.tenant, nil, []catalog.Write{w})
		if err != nil || outs[0].Change == nil {
			t.Fatalf("writing r%d: %v, %+v", i, err, outs)
		}
	}
	w := New(Config{ID: "w"}, e.deps())
	if err := w.publishOutbox(ctx, e.tenant); err != nil {
		t.Fatalf("publishing an outbox with a change over the max payload: %v", err)
	}
	if left, err := e.cat.PendingChanges(ctx, e.tenant, 100); err != nil || len(left) != 0 {
		t.Fatalf("outbox holds %d changes (%v), want none", len(left), err)
	}
	got := e.rawChanges()
	if len(got) != 5 {
		t.Fatalf("%d changes published, want 5", len(got))
	}
	for i, m := range got {
		var c queue.Change
		if err := json.Unmarshal(m.data, &c); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		if c.Identifier != fmt.Sprint("r", i) || c.ChangeID != m.msgID {
			t.Errorf("change %d is of %s (id %s, message id %s), want r%d", i, c.Identifier, c.ChangeID, m.msgID, i)
		}
		switch big := i == 3; {
		case big && (string(c.Entity) != "null" || c.EntityTooLarge <= natstest.MaxPayload):
			t.Errorf("the oversized change has entity %.40s and entityTooLarge %d; want null and its size", c.Entity, c.EntityTooLarge)
		case !big && (c.EntityTooLarge != 0 || !bytes.Contains(c.Entity, []byte(`"desc"`))):
			t.Errorf("change %d lost its entity: %s, entityTooLarge %d", i, c.Entity, c.EntityTooLarge)
		}
	}
}

// TestPublishOutboxRawMatchesDecoded: publishing the outbox's stored bytes sends, for
// every kind of change (creates with every JSON shape, barebones targets, replaces,
// merges, deletes, relation clean-ups, and names with invalid UTF-8), an event that
// decodes to exactly what the old decode-and-encode path sent, with the same
// Nats-Msg-Id, and acks the outbox.
func TestPublishOutboxRawMatchesDecoded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	putRawBlueprints(t, e.cat, e.tenant)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	write := func(id string, props, rels map[string]any, merge bool, fetched time.Time) catalog.Write {
		if props == nil {
			props = map[string]any{}
		}
		if rels == nil {
			rels = map[string]any{}
		}
		return catalog.Write{Entity: catalog.Entity{Blueprint: "repo", Identifier: id, Properties: props, Relations: rels},
			Integration: "gh", Kind: "repository", FetchedAt: fetched, Merge: merge, CreateMissing: true}
	}
	upsert := func(ws ...catalog.Write) {
		t.Helper()
		outs, err := e.cat.Upsert(ctx, e.tenant, nil, ws)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range outs {
			if o.Change == nil {
				t.Fatalf("write %d (%s): %s, %v: no change", i, ws[i].Entity.Identifier, o.Status, o.Err)
			}
		}
	}
	const weird = "ü/\"q\" <&> \\ \x00\x1f\u2028\u2029 \U0001F600 \x7f"
	full := write("a/<&>ü", map[string]any{
		"stars": 3, "big": json.Number("123456789012345678901234567890"), "ratio": json.Number("-1.5e-300"),
		"desc": weird, "gone": nil, "ok": false,
		"tags": []any{"x", 1, nil, []any{}, map[string]any{"k": []any{true, json.Number("1e400")}}},
		"meta": map[string]any{"": "empty key", "z": map[string]any{"a": nil}, "url": "https://x.io/a?b=c&d=<e>"},
	}, map[string]any{"org": "acme/<x>", "langs": []any{"go", "c\"q", "ünï"}, "mirror": nil}, false, now)
	full.Entity.Title, full.Entity.Icon, full.Entity.Team = weird, "Git</Hub>", []string{"a\"b", "ü", "x/y"}
	plain := write("b", map[string]any{"stars": 0}, map[string]any{"langs": []any{}, "org": nil}, false, now)
	single := write("c", nil, map[string]any{"langs": "go", "mirror": "b"}, false, now)
	badUTF8 := write("bad\xff\xfe", map[string]any{"desc": "x\xffy"}, map[string]any{"org": "org\xfe"}, false, now)
	upsert(full, plain, single, badUTF8)

	// A replace (encoded in Go), then a merge (encoded by the script, cjson).
	later := now.Add(time.Minute)
	replace := write("b", map[string]any{"stars": 4, "desc": "</script>"}, map[string]any{"org": "acme/<x>"}, false, later)
	merge := write("a/<&>ü", map[string]any{"stars": 5}, nil, true, later)
	mergeBad := write("bad\xff\xfe", map[string]any{"stars": 1}, nil, true, later)
	upsert(replace, merge, mergeBad)
	// Deletes: one entity, and a target whose deletion clears relations (updates).
	for _, ref := range []catalog.Ref{{Blueprint: "repo", Identifier: "b"}, {Blueprint: "lang", Identifier: "go"}} {
		if _, err := e.cat.Delete(ctx, e.tenant, nil, ref, false); err != nil {
			t.Fatalf("deleting %v: %v", ref, err)
		}
	}

	pending, err := e.cat.PendingChanges(ctx, e.tenant, 1000)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.cat.PendingRawChanges(ctx, e.tenant, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != len(raw) {
		t.Fatalf("PendingChanges %d entries, PendingRawChanges %d", len(pending), len(raw))
	}
	ops := map[string]int{}
	barebones := 0
	for _, p := range pending {
		ops[p.Change.Op]++
		if p.Change.Entity != nil && p.Change.Entity.Integration == "" {
			barebones++
		}
	}
	// 4 creates + 5 barebones (org acme/<x>, langs go, c"q, ünï, org org\xfe); a replace
	// and 2 merges; 2 deletes, b's clearing c's mirror and go's clearing a's and c's langs.
	if ops[catalog.OpCreated] != 9 || ops[catalog.OpUpdated] != 6 || ops[catalog.OpDeleted] != 2 || barebones < 5 {
		t.Fatalf("outbox ops %v with %d barebones; the scenario did not run as planned", ops, barebones)
	}
	want := make([][]byte, len(pending))
	differ := 0
	for i, p := range pending {
		want[i] = oldWire(t, p.Change)
		if raw[i].ID != p.ID || raw[i].ChangeID != p.Change.ChangeID {
			t.Errorf("entry %d: raw %s/%s, decoded %s/%s", i, raw[i].ID, raw[i].ChangeID, p.ID, p.Change.ChangeID)
		}
		if !bytes.Equal(raw[i].Data, want[i]) {
			differ++
			if testing.Verbose() && differ <= 3 {
				t.Logf("entry %d (%s %s/%q) bytes differ (same value, checked below):\nstored %s\nold    %s",
					i, p.Change.Op, p.Change.Blueprint, p.Change.Identifier, raw[i].Data, want[i])
			}
		}
	}
	t.Logf("%d of %d stored changes differ in bytes from the old re-encoding", differ, len(pending))

	w := New(Config{ID: "w"}, e.deps())
	if err := w.publishOutbox(ctx, e.tenant); err != nil {
		t.Fatal(err)
	}
	got := e.rawChanges()
	if len(got) != len(want) {
		t.Fatalf("published %d changes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].msgID != pending[i].Change.ChangeID {
			t.Errorf("change %d: Nats-Msg-Id %q, want %q", i, got[i].msgID, pending[i].Change.ChangeID)
		}
		if g, w := decodeAny(t, got[i].data), decodeAny(t, want[i]); !reflect.DeepEqual(g, w) {
			t.Errorf("change %d differs from the old path:\ngot  %s\nwant %s", i, got[i].data, want[i])
		}
		// A consumer decoding into queue.Change sees the same too.
		var gc, wc queue.Change
		if err := json.Unmarshal(got[i].data, &gc); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		if err := json.Unmarshal(want[i], &wc); err != nil {
			t.Fatal(err)
		}
		if gc.ChangeID != wc.ChangeID || gc.Op != wc.Op || gc.Blueprint != wc.Blueprint || gc.Identifier != wc.Identifier ||
			!reflect.DeepEqual(decodeAny(t, gc.Entity), decodeAny(t, wc.Entity)) {
			t.Errorf("change %d as queue.Change:\ngot  %+v\nwant %+v", i, gc, wc)
		}
	}
	if left, err := e.cat.PendingRawChanges(ctx, e.tenant, 10); err != nil || len(left) != 0 {
		t.Errorf("after publishing: %d left in the outbox, %v", len(left), err)
	}
}

// BenchmarkPublishOutbox publishes an outbox of 10,000 entity changes (real Redis,
// in-process NATS) the old way (decode, re-encode twice) and the raw way. Each round
// refills the outbox with updates, untimed; the change ids are new each round, so
// NATS stores every change instead of deduplicating it.
func BenchmarkPublishOutbox(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	ns := natstest.Server(b)
	rdb, prefix := redistest.Client(b)
	q, err := queue.Open(ctx, natstest.JetStream(b, ns), queue.Options{})
	if err != nil {
		b.Fatal(err)
	}
	cat := catalog.New(rdb, prefix, nil)
	const tenant = "acme"
	putRawBlueprints(b, cat, tenant)
	w := New(Config{ID: "bench"}, Deps{Redis: rdb, Prefix: prefix, Queue: q, Catalog: cat})
	fetched := time.Now()
	round := 0
	refill := func() {
		round++
		fetched = fetched.Add(time.Second)
		ws := make([]catalog.Write, 0, 500)
		for i := range n {
			ws = append(ws, catalog.Write{Entity: catalog.Entity{Blueprint: "repo", Identifier: fmt.Sprintf("repo-%05d", i),
				Title: "Repository <" + fmt.Sprint(i) + ">", Team: []string{"platform", "payments"},
				Properties: map[string]any{"stars": round, "big": json.Number("123456789012345678901234567890"),
					"desc": "A service with a fairly long description, as real ones have: it does things & more things, </script> and \"quotes\".",
					"tags": []any{"go", "api", "tier-1", 3, 4.5}, "ok": true,
					"meta": map[string]any{"url": "https://github.com/acme/repo", "owners": []any{"a", "b"}, "depth": map[string]any{"x": 1}}},
				Relations: map[string]any{"org": "acme", "langs": []any{"go", "sql"}, "mirror": nil}},
				Integration: "gh", Kind: "repository", FetchedAt: fetched, CreateMissing: true})
			if len(ws) == cap(ws) || i == n-1 {
				if _, err := cat.Upsert(ctx, tenant, nil, ws); err != nil {
					b.Fatal(err)
				}
				ws = ws[:0]
			}
		}
	}
	for _, bc := range []struct {
		name    string
		publish func() error
	}{
		{"old", func() error { return publishOutboxDecoded(ctx, w, tenant) }},
		{"raw", func() error { return w.publishOutbox(ctx, tenant) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.StopTimer()
			for range b.N {
				refill()
				b.StartTimer()
				if err := bc.publish(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/change")
		})
	}
}

// publishOutboxDecoded is publishOutbox as it was before it published stored bytes,
// for the benchmark to compare with.
func publishOutboxDecoded(ctx context.Context, w *Worker, tenant string) error {
	for {
		entries, err := w.Catalog.PendingChanges(ctx, tenant, outboxBatch)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return nil
		}
		changes := make([]queue.Change, len(entries))
		ids := make([]string, len(entries))
		for i, e := range entries {
			ent, err := json.Marshal(e.Change.Entity)
			if err != nil {
				return err
			}
			c := e.Change
			changes[i] = queue.Change{ChangeID: c.ChangeID, Op: c.Op, Blueprint: c.Blueprint, Identifier: c.Identifier, Entity: ent}
			ids[i] = e.ID
		}
		if err := w.Queue.PublishChanges(ctx, tenant, changes); err != nil {
			return err
		}
		if err := w.Catalog.AckChanges(ctx, tenant, ids); err != nil {
			return err
		}
		if len(entries) < outboxBatch {
			return nil
		}
	}
}
