package mapping

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
)

// Source yields raw JSON items one at a time; io.EOF ends it. The returned bytes need
// only stay valid until the next call (jsonstream.Reader satisfies it).
type Source interface {
	Next() ([]byte, error)
}

// SizedSource is a Source that knows how many items it holds, such as a page of a
// REST API. Run then cuts it into a few batches per worker: a page of a hundred
// GitHub repositories is half a megabyte, one batch by size, and so was mapped on one
// core while the others waited.
type SizedSource interface {
	Source
	Len() int
}

// Slice is a Source over items held in memory, such as the items of a fetched page.
// Run maps them where they are: they stay valid as long as the caller keeps them, so
// they are not copied into its batches, as a Source's items must be.
type Slice struct {
	items [][]byte
	next  int
}

// NewSlice returns a Source over items, which must not change while Run maps them.
func NewSlice(items [][]byte) *Slice { return &Slice{items: items} }

// Next returns the next item, or io.EOF.
func (s *Slice) Next() ([]byte, error) {
	if s.next >= len(s.items) {
		return nil, io.EOF
	}
	s.next++
	return s.items[s.next-1], nil
}

// Len is the number of items, all of them, read or not.
func (s *Slice) Len() int { return len(s.items) }

// RunOptions say what Run maps and how.
type RunOptions struct {
	// Resources are applied to every item, in order (typically the config's resources
	// of one kind).
	Resources []*ResourceProgram
	// Transform, when set, runs on each item's result in the worker goroutine that
	// mapped it: the place for per-item CPU work such as encoding output.
	Transform func(*ItemResult)
	// Recoverable reports whether a read error skips one item (it is passed to emit
	// as ItemResult.ReadErr) rather than ending the run. Nil: every error ends it.
	Recoverable func(error) bool
}

// ItemResult is one input item's outcome.
type ItemResult struct {
	// Index is the item's 0-based position in the input.
	Index int
	Result
	// ReadErr is a recoverable read error in place of this item.
	ReadErr error
	// Output is free for Transform to fill.
	Output []byte
}

// Batching bounds memory: at most batchItems items, or a batch's worth of bytes,
// travel together, and only a few batches per worker are in flight, so memory depends
// on the batch size and the worker count, never on the length of the input.
const (
	batchItems      = 256
	batchBytes      = 1 << 20
	batchesInFlight = 2
	// minBatchItems keeps a SizedSource's batches from getting so small that
	// handing them around costs more than mapping them.
	minBatchItems = 8
)

type batch struct {
	first int
	data  []byte
	ends  []int
	// views, when the source is a Slice, are its items themselves, in place of
	// copies in data.
	views [][]byte
	errs  map[int]error
	out   []ItemResult
	done  chan struct{}
}

// Run maps every item of src with opts.Resources on all workers, and calls emit with
// each item's result in input order, from the calling goroutine. It returns the first
// error of src (other than io.EOF and recoverable ones), of emit, or of ctx.
func (p *Program) Run(ctx context.Context, src Source, opts RunOptions, emit func(*ItemResult) error) error {
	workers := p.opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.guard.start()
	defer p.guard.end()

	work := make(chan *batch, workers*batchesInFlight)
	order := make(chan *batch, workers*batchesInFlight)
	// Batches are recycled: their buffers are large, and allocating (and zeroing)
	// fresh ones per batch cost more than the mapping itself.
	free := make(chan *batch, 2*workers*batchesInFlight+2)
	var readErr error
	go func() {
		defer close(work)
		defer close(order)
		limit := batchItems
		if sized, ok := src.(SizedSource); ok {
			limit = min(batchItems, max(minBatchItems, (sized.Len()+2*workers-1)/(2*workers)))
		}
		readErr = p.read(ctx, src, opts.Recoverable, free, limit, func(b *batch) bool {
			select {
			case work <- b:
			case <-ctx.Done():
				return false
			}
			select {
			case order <- b:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _ := p.mappers.Get().(*Mapper)
			if m == nil {
				m = NewMapper()
			}
			defer p.mappers.Put(m)
			for b := range work {
				p.mapBatch(ctx, m, b, opts)
				close(b.done)
			}
		}()
	}
	var err error
	for b := range order {
		// Every batch in order was handed to a worker first, and a worker always
		// closes done (at once when ctx ended), so this wait is short; it is what
		// makes recycling the batch below safe.
		<-b.done
		if err == nil {
			err = ctx.Err()
		}
		for i := range b.out {
			if err != nil {
				break
			}
			err = emit(&b.out[i])
		}
		if err != nil {
			cancel()
		}
		if b.views != nil {
			continue // nothing worth recycling, and its views are the caller's
		}
		select {
		case free <- b:
		default:
			p.batches.Put(b)
		}
	}
	wg.Wait()
	for {
		select {
		case b := <-free:
			p.batches.Put(b)
			continue
		default:
		}
		break
	}
	if err != nil {
		return err
	}
	return readErr
}

// read fills batches from src and hands each to send.
func (p *Program) read(ctx context.Context, src Source, recoverable func(error) bool, free chan *batch, limit int, send func(*batch) bool) error {
	if sl, ok := src.(*Slice); ok {
		return p.readSlice(ctx, sl, limit, send)
	}
	next := 0
	// The batch is taken when an item arrives, not ahead of one: a Run per page of a
	// hundred items took a second batch after the first and dropped it, a megabyte
	// allocated and zeroed per page.
	var b *batch
	flush := func() bool {
		if b == nil || len(b.ends) == 0 {
			return true
		}
		ok := send(b)
		next += len(b.ends)
		b = nil
		return ok
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		raw, err := src.Next()
		if b == nil && !errors.Is(err, io.EOF) {
			b = p.newBatch(next, free)
		}
		if errors.Is(err, io.EOF) {
			flush()
			return nil
		}
		if err != nil {
			if recoverable == nil || !recoverable(err) {
				flush()
				return err
			}
			if b.errs == nil {
				b.errs = map[int]error{}
			}
			b.errs[len(b.ends)] = err
			raw = nil
		}
		b.data = append(b.data, raw...)
		b.ends = append(b.ends, len(b.data))
		if len(b.ends) >= limit || len(b.data) >= batchBytes {
			if !flush() {
				return ctx.Err()
			}
		}
	}
}

// readSlice hands out a Slice's items in batches of views, without copying them.
func (p *Program) readSlice(ctx context.Context, sl *Slice, limit int, send func(*batch) bool) error {
	for sl.next < len(sl.items) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n := min(limit, len(sl.items)-sl.next)
		b := &batch{first: sl.next, views: sl.items[sl.next : sl.next+n : sl.next+n], done: make(chan struct{})}
		sl.next += n
		if !send(b) {
			return ctx.Err()
		}
	}
	return nil
}

// newBatch takes a batch recycled by this Run or an earlier one, or makes one.
func (p *Program) newBatch(first int, free chan *batch) *batch {
	var b *batch
	select {
	case b = <-free:
	default:
		b, _ = p.batches.Get().(*batch)
	}
	if b == nil {
		return &batch{first: first, data: make([]byte, 0, batchBytes+batchBytes/4), ends: make([]int, 0, batchItems), done: make(chan struct{})}
	}
	b.first, b.data, b.ends, b.errs, b.done = first, b.data[:0], b.ends[:0], nil, make(chan struct{})
	return b
}

func (p *Program) mapBatch(ctx context.Context, m *Mapper, b *batch, opts RunOptions) {
	n := len(b.ends)
	if b.views != nil {
		n = len(b.views)
	}
	if cap(b.out) < n {
		b.out = make([]ItemResult, n)
	}
	b.out = b.out[:n]
	start := 0
	for i := range n {
		var raw []byte
		if b.views != nil {
			raw = b.views[i]
		} else {
			raw = b.data[start:b.ends[i]]
			start = b.ends[i]
		}
		r := &b.out[i]
		*r = ItemResult{Index: b.first + i, Output: r.Output[:0]}
		switch err := b.errs[i]; {
		case err != nil:
			r.ReadErr = err
		case ctx.Err() != nil:
			return
		default:
			p.mapItem(m, raw, opts.Resources, &r.Result)
		}
		if opts.Transform != nil {
			opts.Transform(r)
		}
	}
}

// mapItem applies every resource to one item, retrying alone an item stopped by the
// memory guard, since the guard cannot tell which of the items in flight grew the heap.
func (p *Program) mapItem(m *Mapper, raw []byte, resources []*ResourceProgram, out *Result) {
	p.guard.solo.RLock()
	res := p.mapAll(m, raw, resources)
	p.guard.solo.RUnlock()
	if res.memoryStopped() {
		p.guard.solo.Lock()
		res = p.mapAll(m, raw, resources)
		p.guard.solo.Unlock()
	}
	*out = res
}

func (p *Program) mapAll(m *Mapper, raw []byte, resources []*ResourceProgram) Result {
	// Items derive from the guard's epoch only: the run's own cancellation is checked
	// between items, and an item ends within its time limit anyway.
	epoch := p.guard.current()
	var res Result
	for _, rp := range resources {
		r := rp.Map(epoch, m, raw)
		res.Entities = append(res.Entities, r.Entities...)
		res.Filtered += r.Filtered
		res.Dropped += r.Dropped
		res.Issues = append(res.Issues, r.Issues...)
	}
	return res
}

func (r *Result) memoryStopped() bool {
	for _, i := range r.Issues {
		if errors.Is(i.Err, ErrMemoryLimit) {
			return true
		}
	}
	return false
}
