package httpsource

import "sync/atomic"

// Bounds of a source's bufferPool: how many buffers it keeps, and the largest it
// keeps.
const (
	pooledBuffers = 8
	maxPooledBody = 8 << 20
)

// bufferPool recycles the buffers response bodies are read into. A full resync
// reads its whole tool through them, page after page of about the same size: a new
// buffer per page was a fifth of the bytes a sync allocated, and zeroing it one of
// its larger costs. It is a bounded free list rather than a sync.Pool, whose
// per-processor slots mostly miss here (the fetch takes buffers on one goroutine and
// the run gives them back on another) and which the garbage collector empties.
type bufferPool struct{ free chan []byte }

func newBufferPool() bufferPool { return bufferPool{free: make(chan []byte, pooledBuffers)} }

// get returns a slice of length n, from the pool when a kept buffer is large
// enough. Its bytes are not zeroed: the caller overwrites all n.
func (bp *bufferPool) get(n int) []byte {
	select {
	case b := <-bp.free:
		if cap(b) >= n {
			return b[:n]
		}
		// Too small: dropped, so that the pool comes to hold buffers the size of
		// the pages it serves.
	default:
	}
	// A quarter more than asked for: the pages of one tool differ a little in size,
	// and a buffer a byte too small for the next is no use to it.
	return make([]byte, n, n+n/4)
}

// put gives b back for a later response. Nothing may read or write b after.
func (bp *bufferPool) put(b []byte) {
	if cap(b) == 0 || cap(b) > maxPooledBody {
		return
	}
	select {
	case bp.free <- b[:0]:
	default: // enough kept
	}
}

// sharedBuffer is a buffer that the pages of one response all point into: it
// goes back to the pool when the last of them is released (source.Page.Release).
type sharedBuffer struct {
	pool *bufferPool
	buf  []byte
	refs atomic.Int32
}

// shared returns the Release of the n pages cut from buf, which each calls once.
func (bp *bufferPool) shared(buf []byte, n int) func() {
	sb := &sharedBuffer{pool: bp, buf: buf}
	sb.refs.Store(int32(n))
	return sb.release
}

func (sb *sharedBuffer) release() {
	if sb.refs.Add(-1) == 0 {
		sb.pool.put(sb.buf)
		sb.buf = nil
	}
}
