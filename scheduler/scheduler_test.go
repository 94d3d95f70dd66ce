package scheduler

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/natstest"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/redistest"
	"github.com/configsync/configsync/secrets"
)

func TestParseInterval(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"", 0, false}, {"0", 0, false}, {"15", 15 * time.Minute, false}, {"1h30m", 90 * time.Minute, false},
		{"30s", 0, true}, {"soon", 0, true}, {"-5", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseInterval(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseInterval(%q) = %v, %v", tt.in, got, err)
		}
	}
}

// TestTwoSchedulersOneResyncPerInterval runs two schedulers side by side over five
// interval slots (on a shared fake clock) and counts the events on NATS: one per
// integration per slot, none for integrations without an interval or a config.
func TestTwoSchedulersOneResyncPerInterval(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Server(t)
	js := natstest.JetStream(t, ns)
	q, err := queue.Open(ctx, js, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rdb, prefix := redistest.Client(t)
	key, _ := secrets.GenerateKey()
	kr, _ := secrets.ParseKeyring(key, "")
	ints := integration.NewStore(rdb, prefix, kr)
	for _, in := range []*integration.Integration{
		{Tenant: "acme", ID: "hourly", Type: "file", ResyncInterval: "1h"},
		{Tenant: "acme", ID: "never", Type: "file"},
		{Tenant: "globex", ID: "minutes", Type: "file", ResyncInterval: "60"},
		{Tenant: "globex", ID: "noconfig", Type: "file", ResyncInterval: "1h"},
	} {
		if _, err := ints.Put(ctx, in, nil); err != nil {
			t.Fatal(err)
		}
		if in.ID != "noconfig" {
			if _, err := ints.AddConfig(ctx, in.Tenant, in.ID, []byte(`{"resources": []}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	a := New(rdb, prefix, ints, q, nil, now)
	b := New(rdb, prefix, ints, q, nil, now)
	for slot := range 5 {
		// Several ticks per slot from both schedulers, concurrently.
		var wg sync.WaitGroup
		for _, s := range []*Scheduler{a, b, a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Tick(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		clock.Add(int64(time.Hour))
		_ = slot
	}
	// The stream is a work queue: count what it holds per subject.
	stream, err := js.Stream(ctx, queue.CommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for subject, n := range info.State.Subjects {
		counts[subject] = int(n)
	}
	want := map[string]int{
		queue.CommandSubject(queue.TypeResyncRequested, "acme", "hourly"):    5,
		queue.CommandSubject(queue.TypeResyncRequested, "globex", "minutes"): 5,
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("resyncs per subject: %v, want %v", counts, want)
	}
}
