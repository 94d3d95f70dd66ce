package queue

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
)

// The event types, as they appear in an envelope's "type" and in the last tokens of
// its subject. They are the only values Decode accepts.
const (
	TypeConfigPatched   = "config.patched"
	TypeResyncRequested = "resync.requested"
	TypeResources       = "resources"
)

// DefaultMaxPayload bounds the size of one encoded event (8 MiB): a full integration
// config or a page of live resources fits, while a runaway producer cannot make every
// worker allocate without bound. Note that the NATS server's own max_payload (1 MiB
// by default) must be raised to match for events this large to be accepted at all.
const DefaultMaxPayload = 8 << 20

// ErrInvalidEvent is wrapped by every error that Decode and NewEnvelope return for a
// bad event, so callers can tell bad input (dead-letter it) from a failing system
// (retry) with errors.Is.
var ErrInvalidEvent = errors.New("invalid event")

// Envelope is the JSON frame around every command event. The routing fields are
// repeated in the subject and must agree with it, so a consumer that trusts the
// envelope and a NATS permission that trusts the subject see the same tenant.
type Envelope struct {
	// ID names the event; it is also the Nats-Msg-Id, so the stream drops a
	// republish of the same event within its duplicate window.
	ID string `json:"id"`
	// Type is one of TypeConfigPatched, TypeResyncRequested, TypeResources.
	Type string `json:"type"`
	// Tenant and Integration match ^[a-z0-9][a-z0-9_-]{0,62}$ so that they are
	// always safe as single subject tokens (no dots, no wildcards).
	Tenant      string `json:"tenant"`
	Integration string `json:"integration"`
	// Time is when the producer created the event (RFC 3339 on the wire).
	Time time.Time `json:"time"`
	// Data is the type's payload, kept raw and compact; use ConfigPatched,
	// ResyncRequested or Resources to read it typed.
	Data stdjson.RawMessage `json:"data"`
}

// ConfigPatched says that an integration's config changed and the integration must be
// synced against it. Exactly one of ConfigVersion and Config is set: a version names a
// config already stored, while Config carries it inline for producers without access to
// the store.
type ConfigPatched struct {
	// ConfigVersion names a stored config version (>= 1).
	ConfigVersion int64 `json:"configVersion,omitzero"`
	// Config is either Port's PATCH body ({"config": {...}}) or the config object
	// itself; PortConfig returns the config in both cases.
	Config stdjson.RawMessage `json:"config,omitzero"`
}

// PortConfig returns the integration config itself: Config unwrapped when it is a
// PATCH body, that is an object with a "config" object member and no "resources".
// It returns nil when the event names a version instead.
func (c ConfigPatched) PortConfig() stdjson.RawMessage {
	if len(c.Config) == 0 {
		return nil
	}
	var probe struct {
		Config    jsontext.Value `json:"config"`
		Resources jsontext.Value `json:"resources"`
	}
	if err := json.Unmarshal(c.Config, &probe); err != nil {
		return c.Config
	}
	if len(probe.Resources) == 0 && probe.Config.Kind() == '{' {
		return stdjson.RawMessage(probe.Config)
	}
	return c.Config
}

// ResyncRequested asks for a full sync of an integration with its newest config, from
// the scheduler or a person.
type ResyncRequested struct {
	// Reason says who asked and why; it is shown in the run record (at most 1024 bytes).
	Reason string `json:"reason"`
	// RunID, when set, names the run the requester will look for (optional).
	RunID string `json:"runId,omitzero"`
}

// ResourcesData is the data of a resources event: items of one kind that changed at
// the source, to be mapped and written (Upsert) or removed (Delete) without a full
// sync. (Named ...Data, unlike ConfigPatched, because "Resources" alone reads as a
// config's resources.)
type ResourcesData struct {
	// Kind is the config's resource kind the items belong to.
	Kind string `json:"kind"`
	// Upsert and Delete are raw source items (JSON objects), as the source's API
	// returns them; the config's mappings turn them into entities.
	Upsert []stdjson.RawMessage `json:"upsert,omitzero"`
	Delete []stdjson.RawMessage `json:"delete,omitzero"`
}

// NewEnvelope builds a valid envelope: a fresh UUIDv7 id (time ordered, so ids sort
// by creation), the current time, and data encoded as JSON. data is usually a
// ConfigPatched, ResyncRequested or ResourcesData value, or raw JSON. The result is
// checked exactly as Decode would check it, so what NewEnvelope returns is never
// dead-lettered for its shape.
func NewEnvelope(typ, tenant, integration string, data any) (Envelope, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Envelope{}, fmt.Errorf("generating an event id: %w", err)
	}
	raw, err := json.Marshal(data, json.Deterministic(true))
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: encoding %s data: %w", ErrInvalidEvent, typ, err)
	}
	e := Envelope{
		ID: id.String(), Type: typ, Tenant: tenant, Integration: integration,
		Time: time.Now().UTC(), Data: raw,
	}
	if _, _, err := encodeEnvelope(e, DefaultMaxPayload); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// Subject returns the command subject the envelope travels on.
func (e Envelope) Subject() string { return CommandSubject(e.Type, e.Tenant, e.Integration) }

// ConfigPatched returns the data of a config.patched event.
func (e Envelope) ConfigPatched() (ConfigPatched, error) {
	var c ConfigPatched
	err := e.typedData(TypeConfigPatched, &c)
	return c, err
}

// ResyncRequested returns the data of a resync.requested event.
func (e Envelope) ResyncRequested() (ResyncRequested, error) {
	var r ResyncRequested
	err := e.typedData(TypeResyncRequested, &r)
	return r, err
}

// Resources returns the data of a resources event.
func (e Envelope) Resources() (ResourcesData, error) {
	var r ResourcesData
	err := e.typedData(TypeResources, &r)
	return r, err
}

func (e Envelope) typedData(typ string, v any) error {
	if e.Type != typ {
		return fmt.Errorf("%w: event %s is of type %q, not %q", ErrInvalidEvent, e.ID, e.Type, typ)
	}
	if err := decodeData(typ, e.Data, v); err != nil {
		return fmt.Errorf("%w: event %s: %w", ErrInvalidEvent, e.ID, err)
	}
	return nil
}

// MarshalJSON encodes the envelope as it goes on the wire: fields in a fixed order,
// no HTML escaping (events are not HTML), and data compacted but otherwise verbatim,
// so that an event's payload is never rewritten on its way through.
func (e Envelope) MarshalJSON() ([]byte, error) {
	head, err := json.Marshal(wireHead{
		ID: e.ID, Type: e.Type, Tenant: e.Tenant, Integration: e.Integration, Time: e.Time,
	}, json.Deterministic(true))
	if err != nil {
		return nil, err
	}
	data := jsontext.Value(bytes.Clone(e.Data))
	if len(data) == 0 {
		data = jsontext.Value("null")
	}
	if err := data.Compact(); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	out := append(head[:len(head)-1], `,"data":`...)
	out = append(out, data...)
	return append(out, '}'), nil
}

// wireHead is the envelope without its data, which MarshalJSON appends itself.
type wireHead struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Tenant      string    `json:"tenant"`
	Integration string    `json:"integration"`
	Time        time.Time `json:"time"`
}

// Decode parses and checks one command event as it arrived on subject, with the
// default payload bound (DefaultMaxPayload). It is strict, because a worker acts on
// what it accepts: the payload must be valid UTF-8 JSON with no duplicate or unknown
// members, the type known, the ids valid, the subject's tokens equal to the
// envelope's tenant, integration and type, the time present, and the data of the
// type's shape. Errors wrap ErrInvalidEvent and say what is wrong without echoing the
// payload.
func Decode(subject string, payload []byte) (Envelope, error) {
	return decode(subject, payload, DefaultMaxPayload)
}

func decode(subject string, payload []byte, maxPayload int) (Envelope, error) {
	e, err := decodeUnchecked(subject, payload, maxPayload)
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return e, nil
}

// strict are the decoding options for events: JSON v2 already rejects duplicate
// member names and invalid UTF-8 and matches names case-sensitively; unknown members
// are refused too so that a misspelt field is an error, not a silent default.
var strict = json.JoinOptions(json.RejectUnknownMembers(true))

func decodeUnchecked(subject string, payload []byte, maxPayload int) (Envelope, error) {
	if len(payload) > maxPayload {
		return Envelope{}, fmt.Errorf("payload is %d bytes, over the %d-byte limit", len(payload), maxPayload)
	}
	if len(payload) == 0 {
		return Envelope{}, errors.New("payload is empty")
	}
	if !utf8.Valid(payload) {
		return Envelope{}, errors.New("payload is not valid UTF-8")
	}
	var w struct {
		ID          *string         `json:"id"`
		Type        *string         `json:"type"`
		Tenant      *string         `json:"tenant"`
		Integration *string         `json:"integration"`
		Time        *jsontext.Value `json:"time"`
		Data        jsontext.Value  `json:"data"`
	}
	if err := json.Unmarshal(payload, &w, strict); err != nil {
		return Envelope{}, fmt.Errorf("envelope is not valid: %w", err)
	}
	switch {
	case w.ID == nil:
		return Envelope{}, errors.New(`envelope has no "id"`)
	case w.Type == nil:
		return Envelope{}, errors.New(`envelope has no "type"`)
	case w.Tenant == nil:
		return Envelope{}, errors.New(`envelope has no "tenant"`)
	case w.Integration == nil:
		return Envelope{}, errors.New(`envelope has no "integration"`)
	case w.Time == nil:
		return Envelope{}, errors.New(`envelope has no "time"`)
	case len(w.Data) == 0:
		return Envelope{}, errors.New(`envelope has no "data"`)
	}
	e := Envelope{ID: *w.ID, Type: *w.Type, Tenant: *w.Tenant, Integration: *w.Integration}
	if err := checkEventID(e.ID); err != nil {
		return Envelope{}, err
	}
	if !knownType(e.Type) {
		return Envelope{}, fmt.Errorf("type %s is not one of %q, %q, %q", quoteShort(e.Type), TypeConfigPatched, TypeResyncRequested, TypeResources)
	}
	if err := CheckID("tenant", e.Tenant); err != nil {
		return Envelope{}, err
	}
	if err := CheckID("integration", e.Integration); err != nil {
		return Envelope{}, err
	}
	if want := e.Subject(); subject != want {
		return Envelope{}, fmt.Errorf("subject %s does not match the envelope (tenant %q, integration %q, type %q want %q)",
			quoteShort(subject), e.Tenant, e.Integration, e.Type, want)
	}
	t, err := parseTime(*w.Time)
	if err != nil {
		return Envelope{}, err
	}
	e.Time = t
	var v any
	switch e.Type {
	case TypeConfigPatched:
		v = new(ConfigPatched)
	case TypeResyncRequested:
		v = new(ResyncRequested)
	default:
		v = new(ResourcesData)
	}
	if err := decodeData(e.Type, w.Data, v); err != nil {
		return Envelope{}, err
	}
	// Compact once here so that a decoded envelope re-encodes byte for byte.
	if err := w.Data.Compact(); err != nil {
		return Envelope{}, fmt.Errorf("data: %w", err)
	}
	e.Data = stdjson.RawMessage(w.Data)
	return e, nil
}

func parseTime(v jsontext.Value) (time.Time, error) {
	if v.Kind() != '"' {
		return time.Time{}, errors.New(`"time" must be an RFC 3339 string`)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return time.Time{}, fmt.Errorf(`"time": %w`, err)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf(`"time" %s is not RFC 3339`, quoteShort(s))
	}
	if t.IsZero() {
		return time.Time{}, errors.New(`"time" is the zero time`)
	}
	return t, nil
}

// decodeData decodes and checks the data of an event of type typ into v, a pointer
// to the type's struct.
func decodeData(typ string, data []byte, v any) error {
	if jsontext.Value(data).Kind() != '{' {
		return fmt.Errorf("data of a %s event must be a JSON object", typ)
	}
	if err := json.Unmarshal(data, v, strict); err != nil {
		return fmt.Errorf("data of a %s event is not valid: %w", typ, err)
	}
	switch d := v.(type) {
	case *ConfigPatched:
		hasConfig := len(d.Config) > 0 && jsontext.Value(d.Config).Kind() != 'n'
		switch {
		case d.ConfigVersion < 0:
			return fmt.Errorf("data.configVersion is %d, must be >= 1", d.ConfigVersion)
		case d.ConfigVersion > 0 && hasConfig:
			return errors.New("data has both configVersion and config, exactly one is allowed")
		case d.ConfigVersion == 0 && !hasConfig:
			return errors.New("data has neither configVersion (>= 1) nor config, exactly one is required")
		case hasConfig && jsontext.Value(d.Config).Kind() != '{':
			return errors.New("data.config must be a JSON object (the config or a PATCH body)")
		}
		if !hasConfig {
			d.Config = nil
		}
	case *ResyncRequested:
		switch {
		case strings.TrimSpace(d.Reason) == "":
			return errors.New("data.reason is empty")
		case len(d.Reason) > 1024:
			return fmt.Errorf("data.reason is %d bytes, over 1024", len(d.Reason))
		case len(d.RunID) > 128:
			return fmt.Errorf("data.runId is %d bytes, over 128", len(d.RunID))
		}
	case *ResourcesData:
		switch {
		case d.Kind == "":
			return errors.New("data.kind is empty")
		case len(d.Kind) > 256:
			return fmt.Errorf("data.kind is %d bytes, over 256", len(d.Kind))
		}
		for i, it := range d.Upsert {
			if jsontext.Value(it).Kind() != '{' {
				return fmt.Errorf("data.upsert[%d] must be a JSON object (a source item)", i)
			}
		}
		for i, it := range d.Delete {
			if jsontext.Value(it).Kind() != '{' {
				return fmt.Errorf("data.delete[%d] must be a JSON object (a source item)", i)
			}
		}
	}
	return nil
}

// encodeEnvelope encodes e and checks the result with decode, so that a producer
// finds out at once, not through the dead-letter queue, that an event is bad.
func encodeEnvelope(e Envelope, maxPayload int) (subject string, payload []byte, err error) {
	if e.Time.IsZero() {
		return "", nil, fmt.Errorf("%w: envelope %q has no time", ErrInvalidEvent, e.ID)
	}
	payload, err = e.MarshalJSON()
	if err != nil {
		return "", nil, fmt.Errorf("%w: encoding envelope %q: %w", ErrInvalidEvent, e.ID, err)
	}
	subject = e.Subject()
	if _, err := decode(subject, payload, maxPayload); err != nil {
		return "", nil, err
	}
	return subject, payload, nil
}

func knownType(t string) bool {
	return t == TypeConfigPatched || t == TypeResyncRequested || t == TypeResources
}

// CheckID reports whether id is a valid tenant or integration id:
// ^[a-z0-9][a-z0-9_-]{0,62}$. what names the field in the error.
func CheckID(what, id string) error {
	if len(id) == 0 || len(id) > 63 {
		return fmt.Errorf("%s id %s must be 1 to 63 characters of [a-z0-9_-] starting with [a-z0-9]", what, quoteShort(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("%s id %s must be 1 to 63 characters of [a-z0-9_-] starting with [a-z0-9]", what, quoteShort(id))
		}
	}
	return nil
}

// checkEventID accepts ids that are safe as a Nats-Msg-Id header value and short
// enough for the duplicate window's index: [A-Za-z0-9._:-], 1 to 128 bytes. UUIDs and
// NUIDs fit.
func checkEventID(id string) error {
	if len(id) == 0 || len(id) > 128 {
		return fmt.Errorf("event id %s must be 1 to 128 characters of [A-Za-z0-9._:-]", quoteShort(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return fmt.Errorf("event id %s must be 1 to 128 characters of [A-Za-z0-9._:-]", quoteShort(id))
		}
	}
	return nil
}

// quoteShort quotes s for an error message, cut to 64 bytes so that a hostile value
// cannot make a reason (and a DLQ header) large.
func quoteShort(s string) string {
	if len(s) > 64 {
		cut := 64
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

// CommandSubject is the subject of a command event:
// configsync.<tenant>.<integration>.<type>.
func CommandSubject(typ, tenant, integration string) string {
	return "configsync." + tenant + "." + integration + "." + typ
}

// ChangesSubject is the subject of a tenant's entity change events:
// configsync.<tenant>.changes.
func ChangesSubject(tenant string) string { return "configsync." + tenant + ".changes" }

// DLQSubject is the subject dead letters of one integration go to:
// configsync-dlq.<tenant>.<integration>. Its own first token keeps the DLQ stream's
// subjects disjoint from the command and change streams.
func DLQSubject(tenant, integration string) string {
	return "configsync-dlq." + tenant + "." + integration
}

// invalidToken stands for a tenant or integration in a DLQ subject when the original
// subject's token is not a valid id; it cannot collide with a real id because ids
// never start with an underscore.
const invalidToken = "_invalid"

// dlqSubjectFor derives the DLQ subject from the subject a message arrived on, the
// only routing information a malformed message is sure to have.
func dlqSubjectFor(subject string) string {
	toks := strings.SplitN(subject, ".", 4)
	tenant, integration := invalidToken, invalidToken
	if len(toks) >= 3 {
		if CheckID("", toks[1]) == nil {
			tenant = toks[1]
		}
		if CheckID("", toks[2]) == nil {
			integration = toks[2]
		}
	}
	return DLQSubject(tenant, integration)
}
