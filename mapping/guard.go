package mapping

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

// ErrMemoryLimit stops an item whose evaluation grew the heap past Options.MaxItemMemory.
var ErrMemoryLimit = errors.New("evaluation exceeded the memory limit")

// memoryGuard bounds what evaluations may allocate. gojq has no allocation hooks, so
// the guard watches the process heap while items are being mapped. When it grows past
// the limit above what it was when mapping started, every evaluation in flight is
// stopped (they share an epoch context that the guard cancels), the heap is collected,
// and each stopped item is retried alone, holding the exclusive side of a lock, so
// that the one item that really is too big is the only one reported.
type memoryGuard struct {
	limit int64

	mu      sync.Mutex
	users   int
	stop    chan struct{}
	done    chan struct{}
	epoch   context.Context
	cancel  context.CancelCauseFunc
	ceiling uint64

	// solo is held shared by normal evaluations and exclusively by a retry.
	solo sync.RWMutex
}

func newMemoryGuard(limit int64) *memoryGuard {
	return &memoryGuard{limit: limit}
}

const guardInterval = 5 * time.Millisecond

// start begins watching (reference counted, so concurrent runs share one watcher).
func (g *memoryGuard) start() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.users++
	if g.users > 1 {
		return
	}
	g.epoch, g.cancel = context.WithCancelCause(context.Background())
	g.ceiling = 2*heapLive() + uint64(g.limit)
	g.stop, g.done = make(chan struct{}), make(chan struct{})
	go g.watch(g.stop, g.done)
}

// end stops watching when the last run ends.
func (g *memoryGuard) end() {
	g.mu.Lock()
	g.users--
	if g.users > 0 {
		g.mu.Unlock()
		return
	}
	stop, done := g.stop, g.done
	g.cancel(nil)
	g.mu.Unlock()
	close(stop)
	<-done
}

// current returns the context evaluations of this epoch derive from.
func (g *memoryGuard) current() context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.epoch == nil {
		return context.Background()
	}
	return g.epoch
}

func (g *memoryGuard) watch(stop, done chan struct{}) {
	defer close(done)
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	t := time.NewTicker(guardInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		metrics.Read(samples)
		g.mu.Lock()
		ceiling := g.ceiling
		g.mu.Unlock()
		if samples[0].Value.Kind() != metrics.KindUint64 || samples[0].Value.Uint64() <= ceiling {
			continue
		}
		g.mu.Lock()
		g.cancel(fmt.Errorf("heap grew past %d MiB: %w", ceiling>>20, ErrMemoryLimit))
		g.epoch, g.cancel = context.WithCancelCause(context.Background())
		g.mu.Unlock()
		runtime.GC()
		// The heap may have grown for good reasons (larger batches in flight): move the
		// ceiling with what is really live now.
		g.mu.Lock()
		g.ceiling = max(g.ceiling, 2*heapLive()+uint64(g.limit))
		g.mu.Unlock()
	}
}

func heapLive() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return max(s[0].Value.Uint64(), 16<<20)
}
