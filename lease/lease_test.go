package lease

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/configsync/configsync/redistest"
)

func TestLeaseExclusiveAndFenced(t *testing.T) {
	rdb, prefix := redistest.Client(t)
	ctx := context.Background()
	m := New(rdb, prefix, time.Second)

	a, err := m.Acquire(ctx, "t1", "i1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Acquire(ctx, "t1", "i1"); !errors.Is(err, ErrHeld) {
		t.Fatalf("second acquire: %v, want ErrHeld", err)
	}
	// Another integration is independent.
	if _, err := m.Acquire(ctx, "t1", "i2"); err != nil {
		t.Fatal(err)
	}
	if v, _ := rdb.Get(ctx, a.Key).Int64(); v != a.Token {
		t.Fatalf("lease key holds %d, want token %d: fenced writes compare it", v, a.Token)
	}
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := m.Acquire(ctx, "t1", "i1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Token <= a.Token {
		t.Fatalf("token %d after %d: tokens must grow", b.Token, a.Token)
	}
	// The old holder can neither renew nor release the new holder's lease.
	if err := a.Renew(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("stale renew: %v", err)
	}
	if err := a.Release(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("stale release: %v", err)
	}
	if tok, ok, err := m.Token(ctx, "t1", "i1"); err != nil || !ok || tok != b.Token {
		t.Fatalf("Token() = %d %v %v", tok, ok, err)
	}
}

func TestLeaseExpiresAndKeepAliveReportsLoss(t *testing.T) {
	rdb, prefix := redistest.Client(t)
	ctx := context.Background()
	m := New(rdb, prefix, 300*time.Millisecond)
	a, err := m.Acquire(ctx, "t", "i")
	if err != nil {
		t.Fatal(err)
	}
	// KeepAlive holds it past its TTL.
	kctx, stop := context.WithCancel(ctx)
	lost := make(chan error, 1)
	go a.KeepAlive(kctx, func(err error) { lost <- err })
	time.Sleep(700 * time.Millisecond)
	if _, err := m.Acquire(ctx, "t", "i"); !errors.Is(err, ErrHeld) {
		t.Fatalf("kept-alive lease was taken: %v", err)
	}
	// Someone deletes it (as an expiry would): KeepAlive reports the loss.
	rdb.Del(ctx, a.Key)
	select {
	case err := <-lost:
		if !errors.Is(err, ErrLost) {
			t.Fatalf("lost with %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("KeepAlive did not report the lost lease")
	}
	stop()
	// Without renewal it expires.
	b, err := m.Acquire(ctx, "t", "i")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := m.Acquire(ctx, "t", "i"); err != nil {
		t.Fatalf("expired lease not free: %v (token %d)", err, b.Token)
	}
}

func TestLeaseOneHolderUnderContention(t *testing.T) {
	rdb, prefix := redistest.Client(t)
	ctx := context.Background()
	m := New(rdb, prefix, 5*time.Second)
	var holders, max atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				l, err := m.Acquire(ctx, "t", "hot")
				if errors.Is(err, ErrHeld) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				n := holders.Add(1)
				if n > max.Load() {
					max.Store(n)
				}
				time.Sleep(time.Millisecond)
				holders.Add(-1)
				if err := l.Release(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if max.Load() != 1 {
		t.Fatalf("%d holders at once", max.Load())
	}
}
