package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
)

// The load tests' shape (issue #6): loadIntegrations integrations, each patched
// loadPatches times with a distinct config, the patches interleaved (round r patches
// every integration before round r+1 patches any), consumed by two workers.
const (
	loadIntegrations = 500
	loadPatches      = 10
	loadItems        = 3
	// loadPublishers publish each round in parallel; rounds stay in order, so each
	// integration's patches reach the stream in sequence.
	loadPublishers = 8
	// loadTimeout bounds the wait for the stream to drain.
	loadTimeout = 5 * time.Minute
)

// TestLoadPatchBurst: 5,000 config.patched events as the API publishes them (the
// config stored as the next version first, the event naming the version) for 500
// integrations, consumed by two workers. Every integration ends on its newest config,
// in its run records and its entities; bursts coalesce, so each integration is synced
// only a few times; the stream drains and nothing is dead-lettered.
func TestLoadPatchBurst(t *testing.T) {
	// Coalescing is not guaranteed an exact count (it depends on how far publishing
	// is ahead of the workers), but a burst of 10 must not become 10 runs.
	runLoad(t, false, 4)
}

// loadConfig is integration i's config number seq (1-based): the entities' title and
// size property encode seq, so the catalog shows which config wrote it.
func loadConfig(i, seq int) string {
	return fmt.Sprintf(`{"resources": [{"kind": "team", "selector": {"query": "true", "path": %q},
  "port": {"entity": {"mappings": {"identifier": ".id", "title": ".name + \" c%d\"", "blueprint": "\"team\"",
    "properties": {"size": "%d"}}}}}]}`, loadFile(i), seq, seq)
}

func loadID(i int) string   { return fmt.Sprintf("int%03d", i) }
func loadFile(i int) string { return loadID(i) + ".json" }

// startQuietWorker is startWorker logging only warnings and errors: at info level
// 5,000 events make tens of thousands of lines of test output.
func (e *env) startQuietWorker(id string) {
	e.t.Helper()
	deps := e.deps()
	deps.Log = zaptest.NewLogger(e.t, zaptest.Level(zap.WarnLevel)).With(zap.String("worker", id))
	w := New(Config{ID: id, LeaseTTL: 2 * time.Second, RetryInitial: 100 * time.Millisecond, RetryMax: time.Second, Heartbeat: 500 * time.Millisecond, BatchSize: 40}, deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			e.t.Errorf("worker %s: %v", id, err)
		}
	}()
	e.t.Cleanup(func() { cancel(); <-done })
}

// publishPatch publishes integration i's patch number seq: inline carries the config
// in the event; otherwise it is stored first and the event names its version, as the
// API does.
func (e *env) publishPatch(ctx context.Context, i, seq int, inline bool) error {
	var data queue.ConfigPatched
	if inline {
		data.Config = []byte(`{"config": ` + loadConfig(i, seq) + `}`)
	} else {
		v, err := e.ints.AddConfig(ctx, e.tenant, loadID(i), []byte(loadConfig(i, seq)))
		if err != nil {
			return fmt.Errorf("storing config %d of %s: %w", seq, loadID(i), err)
		}
		if v != int64(seq) {
			return fmt.Errorf("config %d of %s was stored as version %d", seq, loadID(i), v)
		}
		data.ConfigVersion = v
	}
	ev, err := queue.NewEnvelope(queue.TypeConfigPatched, e.tenant, loadID(i), data)
	if err != nil {
		return fmt.Errorf("building patch %d of %s: %w", seq, loadID(i), err)
	}
	if err := e.q.Publish(ctx, ev); err != nil {
		return fmt.Errorf("publishing patch %d of %s: %w", seq, loadID(i), err)
	}
	return nil
}

// streamState is what is left of the burst: events in the commands stream, the
// consumer's pending and unacknowledged ones, and dead letters.
func (e *env) streamState(ctx context.Context) (msgs, pending, ackPending, redelivered, dead uint64, err error) {
	cmds, err := e.js.Stream(ctx, queue.CommandsStream)
	if err != nil {
		return 0, 0, 0, 0, 0, err
	}
	ci, err := cmds.Info(ctx)
	if err != nil {
		return 0, 0, 0, 0, 0, err
	}
	cons, err := e.js.Consumer(ctx, queue.CommandsStream, queue.WorkersConsumer)
	if err != nil {
		return 0, 0, 0, 0, 0, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, 0, 0, 0, 0, err
	}
	dlq, err := e.js.Stream(ctx, queue.DLQStream)
	if err != nil {
		return 0, 0, 0, 0, 0, err
	}
	di, err := dlq.Info(ctx)
	if err != nil {
		return 0, 0, 0, 0, 0, err
	}
	return ci.State.Msgs, info.NumPending, uint64(info.NumAckPending), uint64(info.NumRedelivered), di.State.Msgs, nil
}

func runLoad(t *testing.T, inline bool, maxRuns int) {
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	ctx := context.Background()
	e := newEnv(t)
	e.putBlueprints()
	for i := range loadIntegrations {
		items := make([]obj, loadItems)
		for k := range items {
			items[k] = obj{"id": fmt.Sprintf("%s-%d", loadID(i), k), "name": fmt.Sprintf("Team %d of %s", k, loadID(i))}
		}
		e.writeJSON(loadFile(i), items)
		e.createIntegration(loadID(i))
	}
	e.startQuietWorker("w1")
	e.startQuietWorker("w2")

	// The burst: round by round, each round's patches published in parallel.
	start := time.Now()
	for seq := 1; seq <= loadPatches; seq++ {
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			firstErr error
			next     = make(chan int)
		)
		for range loadPublishers {
			wg.Go(func() {
				for i := range next {
					if err := e.publishPatch(ctx, i, seq, inline); err != nil {
						mu.Lock()
						firstErr = firstOf(firstErr, err)
						mu.Unlock()
					}
				}
			})
		}
		for i := range loadIntegrations {
			next <- i
		}
		close(next)
		wg.Wait()
		if firstErr != nil {
			t.Fatal(firstErr)
		}
	}
	published := time.Since(start)

	// Drained: every event acked (a work-queue stream deletes acked events), none
	// delivered or waiting for redelivery.
	deadline := time.Now().Add(loadTimeout)
	for {
		msgs, pending, ackPending, _, _, err := e.streamState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if msgs == 0 && pending == 0 && ackPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d events in the stream, %d pending, %d unacknowledged", loadTimeout, msgs, pending, ackPending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wall := time.Since(start)
	events := loadIntegrations * loadPatches
	_, _, _, redelivered, dead, err := e.streamState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if dead != 0 {
		t.Errorf("%d events dead-lettered: %q", dead, e.dlqReasons())
	}

	// Every integration on its newest config, in its runs.
	var (
		totalRuns, maxRunsSeen int
		hist                   = map[int]int{}
		statuses               = map[run.Status]int{}
	)
	for i := range loadIntegrations {
		id := loadID(i)
		in, err := e.ints.Get(ctx, e.tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		if in.ConfigVersion != loadPatches {
			t.Errorf("%s: config version %d, want %d", id, in.ConfigVersion, loadPatches)
			continue
		}
		doc, err := e.ints.Config(ctx, e.tenant, id, in.ConfigVersion)
		if err != nil {
			t.Fatal(err)
		}
		// Inline configs are stored re-encoded: compare without white space.
		if !strings.Contains(strings.Join(strings.Fields(string(doc)), ""), fmt.Sprintf(`"size":"%d"`, loadPatches)) {
			t.Errorf("%s: newest version %d holds an older config: %s", id, in.ConfigVersion, doc)
		}
		recs, _, err := e.runs.List(ctx, e.tenant, id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			t.Errorf("%s: no run", id)
			continue
		}
		if last := recs[0]; last.Status != run.Succeeded || last.ConfigVersion != loadPatches {
			t.Errorf("%s: last run %s is %s (%s) with config version %d, want succeeded with %d", id, last.ID, last.Status, last.Message, last.ConfigVersion, loadPatches)
		}
		syncs := 0
		for _, r := range recs {
			statuses[r.Status]++
			switch {
			case r.Status == run.Succeeded, r.Status == run.Superseded:
				// Superseded: a newer version arrived mid-run (nothing deleted), the
				// expected end of a run overtaken by the burst.
				syncs++
			case r.Status == run.Failed && strings.Contains(r.Message, "lease"):
				// The harness's 2s lease can lapse on a starved machine: the fence
				// stops the run, and its event is retried. Not a sync of the burst.
				t.Logf("%s: run %s failed and was retried: %s", id, r.ID, r.Message)
			default:
				t.Errorf("%s: run %s %s: %s", id, r.ID, r.Status, r.Message)
			}
		}
		totalRuns += syncs
		maxRunsSeen = max(maxRunsSeen, syncs)
		hist[syncs]++
	}
	mean := float64(totalRuns) / loadIntegrations
	if maxRunsSeen > maxRuns {
		t.Errorf("an integration was synced %d times for %d patches, want at most %d", maxRunsSeen, loadPatches, maxRuns)
	}

	// And in the catalog: every entity written by the newest config.
	var ents []string
	cursor := ""
	for {
		page, next, err := e.cat.List(ctx, e.tenant, "team", cursor, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range page {
			owner := strings.SplitN(ent.Identifier, "-", 2)[0]
			if ent.Integration != owner || fmt.Sprint(ent.Properties["size"]) != fmt.Sprint(loadPatches) || !strings.HasSuffix(ent.Title, fmt.Sprintf(" c%d", loadPatches)) {
				t.Errorf("entity %s (owner %s, title %q, size %v) is not the newest config's", ent.Identifier, ent.Integration, ent.Title, ent.Properties["size"])
			}
			ents = append(ents, ent.Identifier)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(ents) != loadIntegrations*loadItems {
		t.Errorf("%d team entities, want %d", len(ents), loadIntegrations*loadItems)
	}

	sizes := make([]int, 0, len(hist))
	for n := range hist {
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	var dist []string
	for _, n := range sizes {
		dist = append(dist, fmt.Sprintf("%d runs: %d", n, hist[n]))
	}
	t.Logf("inline=%v: %d events published in %s, drained in %s: %.0f events/s; runs (succeeded or superseded) per integration: max %d, mean %.2f (%s); all runs by status %v; %d redeliveries",
		inline, events, published.Round(time.Millisecond), wall.Round(time.Millisecond), float64(events)/wall.Seconds(),
		maxRunsSeen, mean, strings.Join(dist, ", "), statuses, redelivered)
}

// firstOf keeps the first error.
func firstOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
