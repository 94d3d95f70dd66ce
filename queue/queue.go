// Package queue is configsync's event transport on NATS JetStream: the subjects and
// streams, the command event envelope, publishing, the shared work-queue consumer
// that all workers pull from, the entity change stream and the dead-letter queue.
//
// The wire contract (subjects, streams, fields, guarantees) is documented for
// producers and consumers in other languages in docs/events.md; this package is its
// Go implementation and the two must change together.
package queue

import (
	"context"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/configsync/configsync/rawjson"
)

// The JetStream names this package owns. They are fixed, not options, because every
// worker, producer and operator must agree on them.
const (
	// CommandsStream holds config.patched, resync.requested and resources events
	// until a worker acks them (work-queue retention: an acked event is deleted).
	CommandsStream = "CONFIGSYNC_COMMANDS"
	// ChangesStream holds entity change events for ChangesMaxAge, for any number of
	// readers to replay (limits retention).
	ChangesStream = "CONFIGSYNC_CHANGES"
	// DLQStream holds events that could not or should not be processed.
	DLQStream = "CONFIGSYNC_DLQ"
	// WorkersConsumer is the one durable pull consumer of CommandsStream that every
	// worker replica shares, so each event goes to exactly one worker at a time.
	WorkersConsumer = "workers"
)

// Headers set on dead letters. The original payload is the message body, unchanged
// (or cut, see HeaderDLQTruncated).
const (
	HeaderDLQReason    = "Configsync-Dlq-Reason"     // why it was dead-lettered
	HeaderDLQSubject   = "Configsync-Dlq-Subject"    // the subject it was published on
	HeaderDLQStreamSeq = "Configsync-Dlq-Stream-Seq" // its sequence in CONFIGSYNC_COMMANDS
	HeaderDLQDelivered = "Configsync-Dlq-Delivered"  // how many times it was delivered
	HeaderDLQTime      = "Configsync-Dlq-Time"       // when it was dead-lettered (RFC 3339)
	// HeaderDLQTruncated is set, to the original size in bytes, when the payload was
	// too large to republish whole and only its first 64 KiB are kept.
	HeaderDLQTruncated = "Configsync-Dlq-Truncated"
)

// Limits and defaults of Options; the reasons are on the fields.
const (
	DefaultAckWait       = 30 * time.Second       // Options.AckWait when zero
	MaxAckWait           = 30 * time.Second       // the longest AckWait allowed
	MinAckWait           = 100 * time.Millisecond // the shortest AckWait allowed
	DefaultMaxDeliver    = 20                     // Options.MaxDeliver when zero
	DefaultMaxAckPending = 1000                   // Options.MaxAckPending when zero
	MaxMaxAckPending     = 100_000                // the largest MaxAckPending allowed
	DefaultConcurrency   = 4                      // Options.Concurrency when zero
	DefaultChangesMaxAge = 7 * 24 * time.Hour     // Options.ChangesMaxAge when zero
	DefaultDLQMaxAge     = 30 * 24 * time.Hour    // Options.DLQMaxAge when zero
	DefaultShutdownGrace = 10 * time.Second       // Options.ShutdownGrace when zero
	// DuplicateWindow is how long the streams remember a Nats-Msg-Id: a republish of
	// the same event id or change id within it is acknowledged but not stored again.
	DuplicateWindow = 2 * time.Minute
	// ChangesDuplicateWindow is DuplicateWindow for entity changes. It covers two
	// workers draining one outbox at once, and the publisher's republish of what was
	// in flight when a batch failed (what NATS confirmed leaves the outbox first),
	// which follows with the next pass; a change republished later (by the sweeper,
	// 30 s on, after a crash) may be stored twice, which consumers drop by changeId
	// as they must anyway (events.md). It is short because the stream keeps an index
	// entry per id, about 230 bytes, for the whole window: at a full resync's 20,000
	// changes a second, a 1,000,000-item resync peaked at 374 MiB with 20 s of them
	// and at 177 MiB with 5 s, and the index grew with the length of the resync up to
	// the window.
	ChangesDuplicateWindow = 5 * time.Second
)

// Options configures a Queue. The zero value is valid: every zero field takes its
// default. AckWait and MaxAckPending are properties of the shared consumer, so every
// worker should use the same values: the last Open wins.
type Options struct {
	// AckWait is how long a delivered event may go without Ack, Nak or InProgress
	// before JetStream redelivers it to another worker (default and maximum 30s):
	// short, so that the events of a crashed worker move on quickly; long handlers
	// call Delivery.InProgress to keep theirs.
	AckWait time.Duration
	// MaxDeliver is how many times an event is handed to a handler before it is
	// dead-lettered instead (default 20; negative: no limit, for a handler that
	// counts its own attempts). Naks count as deliveries, as they do for JetStream:
	// a handler that naks every 2s while a lease is held uses up 20 in 40s. The
	// consumer itself has no server-side limit: one that stopped redelivering would
	// leave the event stuck in the work-queue stream forever, where this limit moves
	// it to the DLQ where it can be seen and replayed.
	MaxDeliver int
	// MaxAckPending bounds the events delivered and not yet acked, across all
	// workers together (default 1000, at most 100000): it is the back-pressure that
	// keeps a burst in the stream rather than in worker memory.
	MaxAckPending int
	// Concurrency is how many handlers one Consume call runs at once (default 4).
	// A worker pulls only as many events as it has free handlers, so no event waits
	// in a local buffer while its AckWait runs.
	Concurrency int
	// ChangesMaxAge is how long entity change events stay replayable (default 7 days).
	ChangesMaxAge time.Duration
	// DLQMaxAge is how long dead letters are kept (default 30 days), so that a flood
	// of bad events cannot fill the disk for good.
	DLQMaxAge time.Duration
	// MaxPayload bounds one command event's encoded size (default DefaultMaxPayload).
	// A larger one is refused by Publish and dead-lettered by Consume.
	MaxPayload int
	// Replicas is the streams' replication factor on a NATS cluster (default 1; 3 for
	// production clusters).
	Replicas int
	// ShutdownGrace is how long in-flight handlers may go on after Consume's context
	// ends before their own context is cancelled (default 10s; negative: at once).
	ShutdownGrace time.Duration
	// OnError receives errors that Consume recovers from (a failed pull, a failed
	// dead-letter, a handler panic) and that no caller could otherwise see. The
	// default logs them with slog.Default().
	OnError func(error)
}

func (o Options) withDefaults() (Options, error) {
	if o.AckWait == 0 {
		o.AckWait = DefaultAckWait
	}
	if o.AckWait < MinAckWait || o.AckWait > MaxAckWait {
		return o, fmt.Errorf("queue: AckWait %s is outside [%s, %s]", o.AckWait, MinAckWait, MaxAckWait)
	}
	if o.MaxDeliver == 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	if o.MaxAckPending == 0 {
		o.MaxAckPending = DefaultMaxAckPending
	}
	if o.MaxAckPending < 1 || o.MaxAckPending > MaxMaxAckPending {
		return o, fmt.Errorf("queue: MaxAckPending %d is outside [1, %d]", o.MaxAckPending, MaxMaxAckPending)
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Concurrency < 1 {
		return o, fmt.Errorf("queue: Concurrency %d must be >= 1", o.Concurrency)
	}
	if o.ChangesMaxAge == 0 {
		o.ChangesMaxAge = DefaultChangesMaxAge
	}
	if o.DLQMaxAge == 0 {
		o.DLQMaxAge = DefaultDLQMaxAge
	}
	if o.ChangesMaxAge < time.Second || o.DLQMaxAge < time.Second {
		return o, fmt.Errorf("queue: ChangesMaxAge %s and DLQMaxAge %s must be at least 1s", o.ChangesMaxAge, o.DLQMaxAge)
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.MaxPayload < 1024 {
		return o, fmt.Errorf("queue: MaxPayload %d must be at least 1024 bytes", o.MaxPayload)
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Replicas < 1 || o.Replicas > 5 {
		return o, fmt.Errorf("queue: Replicas %d is outside [1, 5]", o.Replicas)
	}
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.ShutdownGrace < 0 {
		o.ShutdownGrace = 0
	}
	if o.OnError == nil {
		o.OnError = func(err error) { slog.Default().Error("queue", "err", err) }
	}
	return o, nil
}

// Queue publishes and consumes configsync's events on one JetStream context. It is
// safe for concurrent use; a process needs one.
type Queue struct {
	js   jetstream.JetStream
	opts Options

	mu       sync.Mutex         // guards consumer
	consumer jetstream.Consumer // replaced when Consume has to recreate it
}

func (q *Queue) workers() jetstream.Consumer {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.consumer
}

// Open makes sure the three streams and the shared consumer exist with the
// configuration that Options asks for, creating or updating them, and returns a
// Queue on them. It is idempotent and safe to call from many workers at once: every
// worker calls it at start, so no separate set-up step can be forgotten.
func Open(ctx context.Context, js jetstream.JetStream, o Options) (*Queue, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	q := &Queue{js: js, opts: o}
	for _, cfg := range q.streamConfigs() {
		if err := ensureStream(ctx, js, cfg); err != nil {
			return nil, err
		}
	}
	c, err := q.ensureConsumer(ctx)
	if err != nil {
		return nil, err
	}
	q.consumer = c
	return q, nil
}

func (q *Queue) streamConfigs() []jetstream.StreamConfig {
	o := q.opts
	return []jetstream.StreamConfig{{
		Name:        CommandsStream,
		Description: "configsync command events (config.patched, resync.requested, resources), consumed once by the workers",
		Subjects: []string{
			CommandSubject(TypeConfigPatched, "*", "*"),
			CommandSubject(TypeResyncRequested, "*", "*"),
			CommandSubject(TypeResources, "*", "*"),
		},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   o.Replicas,
		Duplicates: DuplicateWindow,
	}, {
		Name:        ChangesStream,
		Description: "configsync entity change events, replayable",
		Subjects:    []string{ChangesSubject("*")},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		MaxAge:      o.ChangesMaxAge,
		Duplicates:  min(ChangesDuplicateWindow, o.ChangesMaxAge),
	}, {
		Name:        DLQStream,
		Description: "configsync dead letters: command events that were malformed or failed too often",
		Subjects:    []string{DLQSubject("*", "*")},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		MaxAge:      o.DLQMaxAge,
		Duplicates:  min(DuplicateWindow, o.DLQMaxAge),
	}}
}

// ensureStream creates or updates a stream. Two workers racing to create the same
// stream both see "not found" on update; the loser's create then fails with "name in
// use" (when the configs differ in any server-filled detail), and one more update
// settles it.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	_, err := js.CreateOrUpdateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		_, err = js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		return fmt.Errorf("queue: creating or updating stream %s: %w", cfg.Name, err)
	}
	return nil
}

func (q *Queue) ensureConsumer(ctx context.Context) (jetstream.Consumer, error) {
	c, err := q.js.CreateOrUpdateConsumer(ctx, CommandsStream, jetstream.ConsumerConfig{
		Durable:       WorkersConsumer,
		Description:   "configsync workers: one consumer shared by every worker replica",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.opts.AckWait,
		// Unlimited on the server; Options.MaxDeliver is enforced by Consume, which
		// dead-letters instead of leaving the event stuck in the stream.
		MaxDeliver:    -1,
		MaxAckPending: q.opts.MaxAckPending,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("queue: creating or updating consumer %s on %s: %w", WorkersConsumer, CommandsStream, err)
	}
	return c, nil
}

// Publish sends a command event to its subject, with Nats-Msg-Id set to e.ID so
// that a republish within DuplicateWindow is stored once. The envelope is checked as
// Decode would check it first, so a bad event fails here, at its producer, rather
// than in the DLQ. It returns once the stream has stored the event.
func (q *Queue) Publish(ctx context.Context, e Envelope) error {
	subject, payload, err := encodeEnvelope(e, q.opts.MaxPayload)
	if err != nil {
		return fmt.Errorf("queue: publishing event %q: %w", e.ID, err)
	}
	_, err = q.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: payload},
		jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(CommandsStream))
	if err != nil {
		return fmt.Errorf("queue: publishing event %q to %s: %w", e.ID, subject, err)
	}
	return nil
}

// Change operations, the same as the catalog's.
const (
	OpCreated = "created" // the entity did not exist before
	OpUpdated = "updated" // the entity's content or owner changed
	OpDeleted = "deleted" // the entity is gone
)

// Change is one entity change event, published on ChangesSubject(tenant).
type Change struct {
	// ChangeID names the change; it is the Nats-Msg-Id, so republishing a batch
	// after a failure does not store its changes twice (within ChangesDuplicateWindow).
	ChangeID string `json:"changeId"`
	// Op is OpCreated, OpUpdated or OpDeleted.
	Op         string `json:"op"`
	Blueprint  string `json:"blueprint"`
	Identifier string `json:"identifier"`
	// Entity is the entity as written (created, updated) or as it was before
	// (deleted); a JSON object, or null when unknown or too large (EntityTooLarge).
	Entity stdjson.RawMessage `json:"entity"`
	// EntityTooLarge, when not zero, says Entity was left out: the change with it was
	// this many bytes, more than NATS takes in one message. Read the entity from the
	// catalog instead.
	EntityTooLarge int `json:"entityTooLarge,omitzero"`
}

// WithoutEntity returns c with its entity left out (null, EntityTooLarge set to the
// size of c.Data), for a change too large for one NATS message: consumers still
// learn that the entity changed, and read it from the catalog.
func WithoutEntity(c RawChange) (RawChange, error) {
	var ch Change
	if err := json.Unmarshal(c.Data, &ch); err != nil {
		return c, fmt.Errorf("queue: change %s: leaving its entity out: %w", c.ChangeID, err)
	}
	ch.Entity, ch.EntityTooLarge = stdjson.RawMessage("null"), len(c.Data)
	data, err := json.Marshal(ch, json.Deterministic(true))
	if err != nil {
		return c, fmt.Errorf("queue: change %s: leaving its entity out: %w", c.ChangeID, err)
	}
	return RawChange{ChangeID: c.ChangeID, Data: data}, nil
}

func (c Change) check() error {
	if err := checkEventID(c.ChangeID); err != nil {
		return fmt.Errorf("change id: %w", err)
	}
	switch {
	case c.Op != OpCreated && c.Op != OpUpdated && c.Op != OpDeleted:
		return fmt.Errorf("change %s: op %s is not %q, %q or %q", c.ChangeID, quoteShort(c.Op), OpCreated, OpUpdated, OpDeleted)
	case c.Blueprint == "" || c.Identifier == "":
		return fmt.Errorf("change %s: blueprint and identifier must be set", c.ChangeID)
	}
	if k := jsontext.Value(c.Entity).Kind(); len(c.Entity) > 0 && k != '{' && k != 'n' {
		return fmt.Errorf("change %s: entity must be a JSON object or null", c.ChangeID)
	}
	return nil
}

// changesWindow bounds the change events published and not yet acknowledged by one
// PublishChanges call: enough to keep the pipe full, few enough that a failure
// leaves little to republish.
const changesWindow = 256

// PublishChanges publishes a tenant's change events in order, pipelined (up to 256
// awaiting their acks at once), and returns when the stream has stored every one,
// or at the first failure. On an error the caller republishes the whole batch: the
// changes that were stored already are dropped as duplicates by their ids. Every
// change is checked and encoded before any is published, so an invalid one publishes
// nothing.
func (q *Queue) PublishChanges(ctx context.Context, tenant string, changes []Change) error {
	raw := make([]RawChange, len(changes))
	for i, c := range changes {
		if err := c.check(); err != nil {
			return fmt.Errorf("queue: tenant %q: publishing changes: %w", tenant, err)
		}
		if len(c.Entity) == 0 {
			c.Entity = stdjson.RawMessage("null")
		}
		data, err := json.Marshal(c, json.Deterministic(true))
		if err != nil {
			return fmt.Errorf("queue: tenant %q: encoding change %s: %w", tenant, c.ChangeID, err)
		}
		raw[i] = RawChange{ChangeID: c.ChangeID, Data: data}
	}
	_, err := q.PublishRawChanges(ctx, tenant, raw)
	return err
}

// RawChange is a change event already encoded, such as the catalog's outbox stores
// it: publishing it as it is spares a decode and an encode per change.
type RawChange struct {
	// ChangeID is the change's id, which becomes the Nats-Msg-Id; it must be the
	// changeId inside Data, which PublishRawChanges does not decode to compare.
	ChangeID string
	// Data is the change's JSON, an object in the layout of Change.
	Data []byte
}

// check is what can be checked of a raw change without decoding it: an id that works
// as a Nats-Msg-Id, and data that is one valid JSON object with no repeated member
// names (so a consumer never sees a message it cannot parse, however strict). The
// fields are not checked. Validity costs one scan of the data: rawjson's, which
// accepts only what jsontext accepts too, in 60% of jsontext's time (see
// BenchmarkRawChangeCheck; IsValid was 3% of a full resync's CPU); jsontext has the
// last word on whatever rawjson does not accept.
func (c RawChange) check() error {
	if err := checkEventID(c.ChangeID); err != nil {
		return fmt.Errorf("change id: %w", err)
	}
	if jsontext.Value(c.Data).Kind() != '{' { // Kind skips leading whitespace
		return fmt.Errorf("change %s: %w: not a JSON object", c.ChangeID, errInvalidChangeData)
	}
	start := rawjson.Space(c.Data, 0)
	if end, ok := rawjson.UniqueValue(c.Data, start); ok && rawjson.Space(c.Data, end) == len(c.Data) {
		return nil
	}
	if !jsontext.Value(c.Data).IsValid() {
		// Only now is the data decoded, for an error that says where it breaks.
		err := json.Unmarshal(c.Data, new(jsontext.Value))
		if err == nil {
			err = errors.New("not valid JSON") // should not happen: both use the same rules
		}
		return fmt.Errorf("change %s: %w: %w", c.ChangeID, errInvalidChangeData, err)
	}
	return nil
}

// errInvalidChangeData marks a raw change whose data is not one valid JSON object.
var errInvalidChangeData = errors.New("invalid change data")

// PublishRawChanges publishes a tenant's encoded change events as PublishChanges does
// (in order, pipelined, returning once all are stored or at the first failure), each
// message's body being its Data, byte for byte. Every change is checked (see
// RawChange) before any is published. It returns how many changes, from the first,
// the stream confirmed it stored: on an error the caller republishes only the rest,
// of which those still in flight when it failed may have been stored too (the
// duplicate window drops them when the republish follows soon).
func (q *Queue) PublishRawChanges(ctx context.Context, tenant string, changes []RawChange) (stored int, err error) {
	if err := CheckID("tenant", tenant); err != nil {
		return 0, fmt.Errorf("queue: publishing changes: %w", err)
	}
	for _, c := range changes {
		if err := c.check(); err != nil {
			return 0, fmt.Errorf("queue: tenant %q: publishing changes: %w", tenant, err)
		}
	}
	subject := ChangesSubject(tenant)
	type pending struct {
		id string
		f  jetstream.PubAckFuture
	}
	var inflight []pending
	wait := func() error {
		p := inflight[0]
		inflight = inflight[1:]
		select {
		case <-p.f.Ok():
			stored++
			return nil
		case err := <-p.f.Err():
			return fmt.Errorf("queue: publishing change %s to %s: %w", p.id, subject, err)
		case <-ctx.Done():
			return fmt.Errorf("queue: publishing change %s to %s: %w", p.id, subject, ctx.Err())
		}
	}
	for _, c := range changes {
		for {
			if len(inflight) >= changesWindow {
				if err := wait(); err != nil {
					return stored, err
				}
			}
			// The headers WithMsgID and WithExpectStream would set, set here: the
			// options cost a struct and a canonicalized key per header, per change.
			f, err := q.js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: c.Data, Header: nats.Header{
				jetstream.MsgIDHeader: {c.ChangeID}, jetstream.ExpectedStreamHeader: {ChangesStream}}})
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) && len(inflight) > 0 {
				// The JetStream context's own async limit is shared with other
				// publishers: make room by waiting for our oldest, then retry.
				if err := wait(); err != nil {
					return stored, err
				}
				continue
			}
			if err != nil {
				// The changes sent before it may all be stored: learn how many.
				for len(inflight) > 0 && wait() == nil {
				}
				return stored, fmt.Errorf("queue: publishing change %s to %s: %w", c.ChangeID, subject, err)
			}
			inflight = append(inflight, pending{c.ChangeID, f})
			break
		}
		if err := ctx.Err(); err != nil {
			return stored, fmt.Errorf("queue: publishing changes to %s: %w", subject, err)
		}
	}
	for len(inflight) > 0 {
		if err := wait(); err != nil {
			return stored, err
		}
	}
	return stored, nil
}

// DLQSize returns the number of dead letters kept, for health checks and alerts.
func (q *Queue) DLQSize(ctx context.Context) (uint64, error) {
	s, err := q.js.Stream(ctx, DLQStream)
	if err != nil {
		return 0, fmt.Errorf("queue: looking up stream %s: %w", DLQStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("queue: reading stream %s: %w", DLQStream, err)
	}
	return info.State.Msgs, nil
}
