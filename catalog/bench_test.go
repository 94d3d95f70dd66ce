package catalog

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// commandCounter is a go-redis hook counting the commands the client sends, pipelined
// ones included, to show what a write costs in Redis round trips and commands.
type commandCounter struct {
	commands, roundTrips atomic.Int64
}

func (h *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.commands.Add(1)
		h.roundTrips.Add(1)
		return next(ctx, cmd)
	}
}

func (h *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.commands.Add(int64(len(cmds)))
		h.roundTrips.Add(1)
		return next(ctx, cmds)
	}
}

// benchRepos returns n GitHub-repository-like writes: eight properties including a
// README of about 1 KiB, a team, and a relation to one of ten organizations.
func benchRepos(e *env, n, gen int, fetched time.Time) []Write {
	readme := "# Repository\n\n" + strings.Repeat("Some documentation about the service and how to run it. ", 18)
	ws := make([]Write, n)
	for i := range ws {
		id := fmt.Sprintf("repo-%06d", i)
		ws[i] = Write{
			Entity: Entity{
				Identifier: id, Blueprint: "githubRepository", Title: id, Team: []string{"team-" + fmt.Sprint(i%7)},
				Properties: map[string]any{
					"url": "https://github.com/acme/" + id, "stars": float64(i%1000 + gen), "visibility": "public",
					"language": []string{"Go", "Python", "TypeScript"}[i%3], "topics": []any{"service", "tier-" + fmt.Sprint(i%3)},
					"archived": false, "pushedAt": "2025-02-28T10:00:00Z", "readme": readme,
				},
				Relations: map[string]any{"organization": fmt.Sprintf("org-%d", i%10)},
			},
			Integration: "gh", Kind: "repository", FetchedAt: fetched, Merge: true, CreateMissing: true,
		}
	}
	return ws
}

// BenchmarkUpsert writes 10,000 repositories in batches of 500 per iteration:
// "create" into an empty catalog, "update" changing one property of each, and
// "unchanged" writing the same data again (the common case of a periodic resync).
//
// Every change also goes into the outbox, in the same script. Between iterations,
// untimed, the outbox is checked (one change per entity written, plus the ten
// barebones organizations of a create) and drained the way a publisher would,
// PendingChanges and AckChanges by 1,000; "drained/s" is that drain's rate.
func BenchmarkUpsert(b *testing.B) {
	const total, batch = 10_000, 500
	for _, mode := range []string{"create", "update", "unchanged"} {
		b.Run(mode, func(b *testing.B) {
			e := setup(b)
			counter := &commandCounter{}
			e.rdb.AddHook(counter)
			gen := 0
			if mode != "create" {
				e.upsertAll(b, benchRepos(e, total, gen, e.clock.Now()), batch)
			}
			e.drainOutbox()
			var elapsed, drainTime time.Duration
			var entities, drained, cmds, trips int64
			for b.Loop() {
				b.StopTimer()
				if mode == "create" {
					e.clearEntities(b)
				}
				if mode == "update" {
					gen++
				}
				ws := benchRepos(e, total, gen, e.clock.Add(time.Second))
				counter.commands.Store(0)
				counter.roundTrips.Store(0)
				b.StartTimer()
				start := time.Now()
				want := map[string]Status{"create": Created, "update": Updated, "unchanged": Unchanged}[mode]
				for _, o := range e.upsertAll(b, ws, batch) {
					if o.Status != want {
						b.Fatalf("status %s (%v), want %s", o.Status, o.Err, want)
					}
				}
				elapsed += time.Since(start)
				entities += total
				b.StopTimer()
				cmds, trips = counter.commands.Load(), counter.roundTrips.Load() // of the last iteration
				wantChanges := map[string]int{"create": total + 10, "update": total, "unchanged": 0}[mode]
				start = time.Now()
				if n := e.drainOutboxBy(1000); n != wantChanges {
					b.Fatalf("the outbox had %d changes, want %d", n, wantChanges)
				}
				drainTime += time.Since(start)
				drained += int64(wantChanges)
				b.StartTimer()
			}
			b.ReportMetric(float64(entities)/elapsed.Seconds(), "entities/s")
			if drained > 0 {
				b.ReportMetric(float64(drained)/drainTime.Seconds(), "drained/s")
			}
			b.ReportMetric(float64(cmds)/float64(total), "cmds/entity")
			b.ReportMetric(float64(trips)/float64(total/batch), "roundtrips/batch")
			b.ReportMetric(0, "ns/op") // per-iteration time is misleading here; entities/s says it
		})
	}
}

// drainOutboxBy reads and acks the tenant's outbox in pages of n, and returns how many
// changes it held.
func (e *env) drainOutboxBy(n int) int {
	total := 0
	for {
		entries, err := e.cat.PendingChanges(e.ctx, e.tenant, n)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(entries) == 0 {
			return total
		}
		ids := make([]string, len(entries))
		for i, en := range entries {
			ids[i] = en.ID
		}
		if err := e.cat.AckChanges(e.ctx, e.tenant, ids); err != nil {
			e.t.Fatal(err)
		}
		total += len(entries)
	}
}

func (e *env) upsertAll(tb testing.TB, ws []Write, batch int) []Outcome {
	var out []Outcome
	for start := 0; start < len(ws); start += batch {
		o, err := e.cat.Upsert(e.ctx, e.tenant, nil, ws[start:min(start+batch, len(ws))])
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, o...)
	}
	return out
}

// clearEntities deletes every key of the test's tenant except the blueprints, so the
// next "create" iteration starts from an empty catalog.
func (e *env) clearEntities(tb testing.TB) {
	iter := e.rdb.Scan(e.ctx, 0, e.prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(e.ctx) {
		if k := iter.Val(); !strings.HasSuffix(k, ":bp") && !strings.HasSuffix(k, ":bpgen") {
			keys = append(keys, k)
		}
	}
	if err := iter.Err(); err != nil {
		tb.Fatal(err)
	}
	for start := 0; start < len(keys); start += 1000 {
		if err := e.rdb.Unlink(e.ctx, keys[start:min(start+1000, len(keys))]...).Err(); err != nil {
			tb.Fatal(err)
		}
	}
}
