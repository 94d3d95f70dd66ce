package catalog

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// TestUnchangedWritesSettleInOneCall: a batch that changes nothing is settled by one
// touchScript call per touchChunk writes, with upsertScript's bookkeeping (ownership
// index refreshed to now, _fetched moved forward); the writes that do change something,
// are older, or are fenced still get upsertScript's answer.
func TestUnchangedWritesSettleInOneCall(t *testing.T) {
	e := setup(t)
	const n = 50
	ws := make([]Write, n)
	for i := range ws {
		ws[i] = e.w("githubRepository", fmt.Sprintf("r%02d", i), repo(fmt.Sprintf("r%02d", i)), nil)
	}
	for i, o := range e.upsert(nil, ws...) {
		if o.Status != Created {
			t.Fatalf("write %d: %s %v", i, o.Status, o.Err)
		}
	}

	// The creates made the next calls skip the pre-check (see TestTouchBacksOffOnNewEntities).
	e.cat.touchSkip.Store(0)
	counter := &commandCounter{}
	e.rdb.AddHook(counter)
	e.clock.Add(time.Minute)
	for i := range ws {
		ws[i].FetchedAt = e.clock.Now()
	}
	// One changed, one older than what is stored: both left to upsertScript.
	ws[3].Entity.Properties = map[string]any{"url": "https://example.com/changed"}
	older := e.w("githubRepository", "r04", repo("r04"), nil)
	older.FetchedAt = e.clock.Now().Add(-time.Hour)
	ws[4] = older
	counter.commands.Store(0)
	outs := e.upsert(nil, ws...)
	for i, o := range outs {
		want := Unchanged
		switch i {
		case 3:
			want = Updated
		case 4:
			want = SkippedOlder
		}
		if o.Status != want {
			t.Fatalf("write %d: %s %v, want %s", i, o.Status, o.Err, want)
		}
	}
	// touch (1) + a pipeline of SADD and two upsertScript calls + SADD after the change.
	if got := counter.commands.Load(); got > 6 {
		t.Errorf("%d commands for %d writes of which 48 change nothing; want a handful", got, n)
	}
	own, err := e.rdb.ZScore(e.ctx, ownKey(e.T(), "gh", "repository"), "githubRepository"+US+"r10").Result()
	if err != nil || int64(own) != e.clock.Now().UnixMilli() {
		t.Errorf("ownership score %v (%v), want now %d", int64(own), err, e.clock.Now().UnixMilli())
	}
	if got := e.raw("githubRepository", "r10")["_fetched"]; got != strconv.FormatInt(e.clock.Now().UnixMicro(), 10) {
		t.Errorf("_fetched %s, want the newer fetch time", got)
	}

	// A lost lease settles nothing: every write is Fenced.
	lease := e.T() + ":lease:gh"
	e.rdb.Set(e.ctx, lease, 8, 0)
	for i, o := range e.upsert(&Fence{Key: lease, Token: 7}, ws[10:20]...) {
		if o.Status != Fenced {
			t.Errorf("write %d with a lost lease: %s", i, o.Status)
		}
	}
}

// TestTouchBacksOffOnNewEntities: a batch of new entities makes the next Upsert calls
// skip the pre-check, so that creating costs no extra round trip per batch.
func TestTouchBacksOffOnNewEntities(t *testing.T) {
	e := setup(t)
	ws := make([]Write, 20)
	for i := range ws {
		ws[i] = e.w("githubRepository", fmt.Sprintf("n%02d", i), repo(fmt.Sprintf("n%02d", i)), nil)
	}
	e.upsert(nil, ws...)
	if got := e.cat.touchSkip.Load(); got != touchBackoff {
		t.Fatalf("touchSkip %d after a batch of creates, want %d", got, touchBackoff)
	}
	e.upsert(nil, ws...) // unchanged, but the pre-check is skipped: still correct
	if got := e.cat.touchSkip.Load(); got != touchBackoff-1 {
		t.Fatalf("touchSkip %d, want %d", got, touchBackoff-1)
	}
}
