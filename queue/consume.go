package queue

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pullWait is how long one pull request waits on the server for events. It bounds
// how long Consume takes to notice that its context ended while idle (it never
// abandons a pull request, see Consume), and costs an idle worker one small request
// per period.
const pullWait = 2 * time.Second

// settleTimeout bounds the acknowledgements Consume sends on its own (dead letters,
// naks) so that a lost server cannot hold a handler slot for ever.
const settleTimeout = 10 * time.Second

// ackTimeout bounds how long Ack waits for the server's confirmation.
const ackTimeout = 5 * time.Second

// Delivery is one command event handed to a handler. The handler settles it once,
// with Ack, NakWithDelay or DeadLetter; InProgress may come any number of times
// before. A delivery the handler returns without settling is nakked (see Consume).
type Delivery struct {
	// Envelope is the decoded, checked event.
	Envelope Envelope
	// Subject is the subject the event was published on.
	Subject string
	// NumDelivered counts deliveries of this event, this one included (1 the first
	// time), so a handler can tell a retry from a first attempt.
	NumDelivered uint64
	// StreamSeq is the event's sequence in CommandsStream.
	StreamSeq uint64

	q   *Queue
	msg jetstream.Msg

	mu      sync.Mutex
	settled bool
}

func (d *Delivery) markSettled() {
	d.mu.Lock()
	d.settled = true
	d.mu.Unlock()
}

func (d *Delivery) isSettled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.settled
}

// Ack tells JetStream the event is done, and the work-queue stream deletes it. Call it
// only once the event's effects are stored (invariant 2: at least once, never lost).
// It waits (up to 5s) for the server to confirm, so that an error means the ack may
// really be lost: the event may then be redelivered, which idempotent handlers
// tolerate, and the caller can log it.
func (d *Delivery) Ack() error {
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	if err := d.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("queue: acking event %q (stream seq %d): %w", d.Envelope.ID, d.StreamSeq, err)
	}
	d.markSettled()
	return nil
}

// NakWithDelay hands the event back to be redelivered, to any worker, after delay
// (0: at once). Use it for a temporary failure (the integration's lease is taken, a
// source is down). The redelivery counts towards MaxDeliver.
func (d *Delivery) NakWithDelay(delay time.Duration) error {
	if err := d.msg.NakWithDelay(delay); err != nil {
		return fmt.Errorf("queue: nakking event %q (stream seq %d): %w", d.Envelope.ID, d.StreamSeq, err)
	}
	d.markSettled()
	return nil
}

// InProgress resets the event's AckWait timer: a handler that may run longer than
// AckWait calls it at intervals shorter than AckWait, or the event is redelivered to
// another worker while this one still works on it.
func (d *Delivery) InProgress() error {
	if err := d.msg.InProgress(); err != nil {
		return fmt.Errorf("queue: extending event %q (stream seq %d): %w", d.Envelope.ID, d.StreamSeq, err)
	}
	return nil
}

// DeadLetter moves the event to the DLQ: it republishes the original payload to
// DLQSubject(tenant, integration) with the reason and the original subject in
// headers, waits until the DLQ stream has stored it, and only then terminates the
// event so that it is never redelivered. Use it for an event that can never succeed
// (a config that does not parse); reason must not contain secrets. If the republish
// fails the event is left unsettled and will come back.
func (d *Delivery) DeadLetter(ctx context.Context, reason string) error {
	if err := d.q.deadLetter(ctx, d.msg, d.Subject, d.StreamSeq, d.NumDelivered, reason); err != nil {
		return err
	}
	d.markSettled()
	return nil
}

// dlqTruncateTo is what is kept of a payload too large to republish whole.
const dlqTruncateTo = 64 << 10

func (q *Queue) deadLetter(ctx context.Context, msg jetstream.Msg, subject string, seq, delivered uint64, reason string) error {
	reason = headerSafe(reason, 1024)
	dl := &nats.Msg{Subject: dlqSubjectFor(subject), Data: msg.Data(), Header: nats.Header{}}
	// Keep the producer's own headers (trace ids) but none of NATS's: an original
	// Nats-Msg-Id would deduplicate against unrelated DLQ entries, and publish
	// expectations (Nats-Expected-*) would fail on the DLQ stream.
	for k, vs := range msg.Headers() {
		if !strings.HasPrefix(strings.ToLower(k), "nats-") {
			dl.Header[k] = vs
		}
	}
	dl.Header.Set(HeaderDLQReason, reason)
	dl.Header.Set(HeaderDLQSubject, subject)
	dl.Header.Set(HeaderDLQStreamSeq, strconv.FormatUint(seq, 10))
	dl.Header.Set(HeaderDLQDelivered, strconv.FormatUint(delivered, 10))
	dl.Header.Set(HeaderDLQTime, time.Now().UTC().Format(time.RFC3339Nano))
	// The id is the event's stream sequence: if Term below is lost and the event
	// comes back, its second dead letter is dropped as a duplicate.
	opts := []jetstream.PublishOpt{
		jetstream.WithMsgID("dlq-" + strconv.FormatUint(seq, 10)),
		jetstream.WithExpectStream(DLQStream),
	}
	_, err := q.js.PublishMsg(ctx, dl, opts...)
	if errors.Is(err, nats.ErrMaxPayload) && len(dl.Data) > dlqTruncateTo {
		// The event plus the DLQ headers is over the server's max_payload (an
		// oversized event): keep its head, which is what a person needs to look at.
		dl.Header.Set(HeaderDLQTruncated, strconv.Itoa(len(dl.Data)))
		dl.Data = dl.Data[:dlqTruncateTo]
		_, err = q.js.PublishMsg(ctx, dl, opts...)
	}
	if err != nil {
		return fmt.Errorf("queue: dead-lettering stream seq %d to %s: %w", seq, dl.Subject, err)
	}
	// Plain Term, not TermWithReason: a server before 2.10.4 ignores a term that
	// carries a reason and would redeliver the event; the reason is in the DLQ.
	if err := msg.Term(); err != nil {
		return fmt.Errorf("queue: terminating dead-lettered stream seq %d: %w", seq, err)
	}
	return nil
}

// headerSafe makes s usable as a NATS header value: no control characters (a CR or
// LF would end the header), at most limit bytes, cut on a rune boundary.
func headerSafe(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	if strings.TrimSpace(s) == "" {
		return "no reason given"
	}
	return s
}

// Consume pulls events from the shared consumer and runs handle on each, up to
// Options.Concurrency at once, until ctx ends. It returns nil after a clean stop, or
// an error when it cannot go on (the connection was closed for good).
//
// What handle sees: only well-formed events. A malformed one (bad JSON, unknown type,
// bad ids, subject mismatch, over MaxPayload) is dead-lettered at once with the
// Decode error as its reason and never redelivered; an event delivered more than
// MaxDeliver times is dead-lettered instead of handled. A handler that returns
// without settling its delivery (or panics) gets it nakked with a backoff of
// 1s·2^(n-1) up to 1m, or at once while Consume stops, so another worker takes it
// (after at most what is left of the open pull request, see below).
//
// Stopping, who waits for what: when ctx ends, Consume sends no new pull request;
// the one in flight (at most pullWait, 2s) is let run out rather than abandoned (an
// abandoned request can still be sent events, which would then wait out AckWait),
// and what it still brings is nakked for another worker, delayed only until that
// request has expired so that it cannot bounce back into it. Handlers already running
// keep a context that is not cancelled for ShutdownGrace, then is; Consume returns
// only when every handler has returned and its delivery was settled. So the caller
// that cancels ctx and waits for Consume waits at most pullWait + ShutdownGrace +
// the time its handlers take to honour their context.
func (q *Queue) Consume(ctx context.Context, handle func(context.Context, *Delivery)) error {
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopGrace := context.AfterFunc(ctx, func() {
		if q.opts.ShutdownGrace == 0 {
			hcancel()
			return
		}
		t := time.AfterFunc(q.opts.ShutdownGrace, hcancel)
		context.AfterFunc(hctx, func() { t.Stop() })
	})
	defer stopGrace()

	slots := make(chan struct{}, q.opts.Concurrency)
	release := func(n int) {
		for range n {
			<-slots
		}
	}
	var handlers sync.WaitGroup
	defer handlers.Wait()

	// While ctx has ended but this loop's last pull request is still open on the
	// server, an event nakked at once would come straight back to that request (and
	// be nakked again, each bounce counting as a delivery). So the naks of a stopping
	// Consume are delayed until the open request has expired: pullEnds is when it
	// does (UnixNano, 0 when none is open).
	var pullEnds atomic.Int64
	stopDelay := func() time.Duration {
		if end := pullEnds.Load(); end != 0 {
			return max(0, time.Until(time.Unix(0, end)))
		}
		return 0
	}
	backoff := time.Duration(0)
	for {
		if ctx.Err() != nil {
			return nil
		}
		// Reserve one free handler, then any others that are free: the pull asks
		// for exactly as many events as can start at once.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		n := 1
	more:
		for n < cap(slots) {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		pullEnds.Store(time.Now().Add(pullWait + 250*time.Millisecond).UnixNano())
		batch, err := q.workers().Fetch(n, jetstream.FetchMaxWait(pullWait))
		if err != nil {
			pullEnds.Store(0)
			release(n)
			if fatal := q.pullFailed(ctx, err, &backoff); fatal != nil {
				return fatal
			}
			continue
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			if ctx.Err() != nil {
				// Stopping: give it back for another worker rather than let it
				// wait out AckWait.
				_ = msg.NakWithDelay(stopDelay())
				release(1)
				continue
			}
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				defer release(1)
				q.process(ctx, hctx, msg, handle, stopDelay)
			}()
		}
		pullEnds.Store(0)
		release(n - got)
		if err := batch.Error(); err != nil {
			if fatal := q.pullFailed(ctx, err, &backoff); fatal != nil {
				return fatal
			}
			continue
		}
		backoff = 0
	}
}

// pullFailed reports a failed pull and sleeps a growing backoff (100ms doubling to
// 5s) so a server outage does not become a busy loop. It returns an error only when
// consuming cannot resume: the connection is closed for good.
func (q *Queue) pullFailed(ctx context.Context, err error, backoff *time.Duration) error {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("queue: consuming %s/%s: %w", CommandsStream, WorkersConsumer, err)
	}
	q.opts.OnError(fmt.Errorf("queue: pulling from %s/%s: %w", CommandsStream, WorkersConsumer, err))
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, nats.ErrNoResponders) {
		// The consumer is gone (deleted, or lost by the server; a pull to a missing
		// consumer finds no responder): put it back, since the stream still holds
		// the events. When JetStream itself is down this fails and is retried.
		cctx, cancel := context.WithTimeout(ctx, settleTimeout)
		if c, cerr := q.ensureConsumer(cctx); cerr == nil {
			q.mu.Lock()
			q.consumer = c
			q.mu.Unlock()
		} else {
			q.opts.OnError(cerr)
		}
		cancel()
	}
	*backoff = min(max(2**backoff, 100*time.Millisecond), 5*time.Second)
	t := time.NewTimer(*backoff)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// process decodes one message and runs the handler on it, settling what the handler
// leaves unsettled.
func (q *Queue) process(ctx, hctx context.Context, msg jetstream.Msg, handle func(context.Context, *Delivery), stopDelay func() time.Duration) {
	md, err := msg.Metadata()
	if err != nil {
		q.opts.OnError(fmt.Errorf("queue: reading delivery metadata on %s: %w", msg.Subject(), err))
		_ = msg.Nak()
		return
	}
	d := &Delivery{
		Subject: msg.Subject(), NumDelivered: md.NumDelivered, StreamSeq: md.Sequence.Stream,
		q: q, msg: msg,
	}
	env, derr := decode(msg.Subject(), msg.Data(), q.opts.MaxPayload)
	switch {
	case derr != nil:
		q.settleDeadLetter(hctx, d, derr.Error())
		return
	case q.opts.MaxDeliver > 0 && md.NumDelivered > uint64(q.opts.MaxDeliver):
		q.settleDeadLetter(hctx, d, fmt.Sprintf("not completed after %d deliveries (MaxDeliver %d)", md.NumDelivered-1, q.opts.MaxDeliver))
		return
	}
	d.Envelope = env
	q.runHandler(hctx, d, handle)
	if d.isSettled() {
		return
	}
	delay := min(time.Second<<min(md.NumDelivered-1, 6), time.Minute)
	if ctx.Err() != nil {
		delay = stopDelay()
	}
	if err := d.msg.NakWithDelay(delay); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		q.opts.OnError(fmt.Errorf("queue: nakking unsettled event %q (stream seq %d): %w", env.ID, d.StreamSeq, err))
	}
}

func (q *Queue) runHandler(hctx context.Context, d *Delivery, handle func(context.Context, *Delivery)) {
	defer func() {
		if r := recover(); r != nil {
			q.opts.OnError(fmt.Errorf("queue: handler panicked on event %q (stream seq %d): %v\n%s", d.Envelope.ID, d.StreamSeq, r, debug.Stack()))
		}
	}()
	handle(hctx, d)
}

// settleDeadLetter dead-letters a delivery that never reaches a handler. When the
// DLQ cannot take it, the event is nakked with a delay to be tried again later.
func (q *Queue) settleDeadLetter(hctx context.Context, d *Delivery, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(hctx), settleTimeout)
	defer cancel()
	if err := d.DeadLetter(ctx, reason); err != nil {
		q.opts.OnError(err)
		_ = d.msg.NakWithDelay(5 * time.Second)
	}
}
