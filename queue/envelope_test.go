package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const validTime = "2025-03-01T12:00:00Z"

func TestDecodeValid(t *testing.T) {
	cases := []struct {
		name, subject, payload string
		check                  func(t *testing.T, e Envelope)
	}{{
		name:    "config.patched with a version",
		subject: "configsync.acme.github-main.config.patched",
		payload: `{"id":"0195e1c2-7b1a-7c3e-9d4f-0a1b2c3d4e5f","type":"config.patched","tenant":"acme","integration":"github-main","time":"2025-03-01T12:00:00.123+01:00","data":{"configVersion":7}}`,
		check: func(t *testing.T, e Envelope) {
			c, err := e.ConfigPatched()
			if err != nil || c.ConfigVersion != 7 || c.Config != nil || c.PortConfig() != nil {
				t.Fatalf("ConfigPatched() = %+v, %v", c, err)
			}
			if _, off := e.Time.Zone(); off != 3600 {
				t.Errorf("time offset %d, want 3600", off)
			}
		},
	}, {
		name:    "config.patched with a PATCH body",
		subject: "configsync.acme.gh.config.patched",
		payload: `{"id":"e1","type":"config.patched","tenant":"acme","integration":"gh","time":"` + validTime + `","data":{"config":{"config":{"resources":[]},"title":"x"}}}`,
		check: func(t *testing.T, e Envelope) {
			c, err := e.ConfigPatched()
			if err != nil {
				t.Fatal(err)
			}
			if got := string(c.PortConfig()); got != `{"resources":[]}` {
				t.Errorf("PortConfig() = %s", got)
			}
		},
	}, {
		name:    "config.patched with the config itself",
		subject: "configsync.acme.gh.config.patched",
		payload: `{"id":"e1","type":"config.patched","tenant":"acme","integration":"gh","time":"` + validTime + `","data":{"config":{"deleteDependents":true,"resources":[{"kind":"repo"}]}}}`,
		check: func(t *testing.T, e Envelope) {
			c, _ := e.ConfigPatched()
			if got := string(c.PortConfig()); got != `{"deleteDependents":true,"resources":[{"kind":"repo"}]}` {
				t.Errorf("PortConfig() = %s", got)
			}
		},
	}, {
		name:    "resync.requested, whitespace compacted",
		subject: "configsync.t0.i_1.resync.requested",
		payload: "{ \"id\": \"r-1\", \"type\": \"resync.requested\", \"tenant\": \"t0\", \"integration\": \"i_1\", \"time\": \"" + validTime + "\",\n \"data\": { \"reason\": \"schedule\", \"runId\": \"run-9\" } }",
		check: func(t *testing.T, e Envelope) {
			r, err := e.ResyncRequested()
			if err != nil || r.Reason != "schedule" || r.RunID != "run-9" {
				t.Fatalf("ResyncRequested() = %+v, %v", r, err)
			}
			if string(e.Data) != `{"reason":"schedule","runId":"run-9"}` {
				t.Errorf("data not compacted: %s", e.Data)
			}
		},
	}, {
		name:    "resources",
		subject: "configsync.acme.k8s.resources",
		payload: `{"id":"x","type":"resources","tenant":"acme","integration":"k8s","time":"` + validTime + `","data":{"kind":"deployment","upsert":[{"name":"a"}],"delete":[{"name":"b"},{"name":"c"}]}}`,
		check: func(t *testing.T, e Envelope) {
			r, err := e.Resources()
			if err != nil || r.Kind != "deployment" || len(r.Upsert) != 1 || len(r.Delete) != 2 {
				t.Fatalf("Resources() = %+v, %v", r, err)
			}
			if _, err := e.ConfigPatched(); !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("ConfigPatched() on a resources event: %v", err)
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := Decode(c.subject, []byte(c.payload))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			c.check(t, e)
			roundTrip(t, c.subject, e)
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	const subj = "configsync.acme.gh.resync.requested"
	env := func(mod func(m map[string]any)) string {
		m := map[string]any{
			"id": "e1", "type": "resync.requested", "tenant": "acme", "integration": "gh",
			"time": validTime, "data": map[string]any{"reason": "r"},
		}
		mod(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cases := []struct {
		name, subject, payload, want string
	}{
		{"empty", subj, ``, "empty"},
		{"not JSON", subj, `{"id":`, "envelope is not valid"},
		{"not an object", subj, `[1]`, "envelope is not valid"},
		{"invalid UTF-8", subj, "{\"id\":\"\xff\"}", "UTF-8"},
		{"duplicate member", subj, `{"id":"a","id":"b"}`, "duplicate"},
		{"unknown member", subj, env(func(m map[string]any) { m["tennant"] = "acme" }), "tennant"},
		{"wrong case", subj, strings.Replace(env(func(map[string]any) {}), `"tenant"`, `"Tenant"`, 1), "Tenant"},
		{"no id", subj, env(func(m map[string]any) { delete(m, "id") }), `no "id"`},
		{"bad id", subj, env(func(m map[string]any) { m["id"] = "a b" }), "event id"},
		{"unknown type", "configsync.acme.gh.deleted", env(func(m map[string]any) { m["type"] = "deleted" }), `type "deleted" is not one of`},
		{"bad tenant", "configsync.Acme.gh.resync.requested", env(func(m map[string]any) { m["tenant"] = "Acme" }), `tenant id "Acme"`},
		{"tenant starts with -", "configsync.-a.gh.resync.requested", env(func(m map[string]any) { m["tenant"] = "-a" }), `tenant id "-a"`},
		{"long integration", subj, env(func(m map[string]any) { m["integration"] = strings.Repeat("a", 64) }), "integration id"},
		{"subject tenant differs", "configsync.other.gh.resync.requested", env(func(map[string]any) {}), "does not match"},
		{"subject type differs", "configsync.acme.gh.resources", env(func(map[string]any) {}), "does not match"},
		{"no time", subj, env(func(m map[string]any) { delete(m, "time") }), `no "time"`},
		{"time not RFC 3339", subj, env(func(m map[string]any) { m["time"] = "2025-03-01 12:00" }), "not RFC 3339"},
		{"time a number", subj, env(func(m map[string]any) { m["time"] = 12 }), "RFC 3339 string"},
		{"zero time", subj, env(func(m map[string]any) { m["time"] = "0001-01-01T00:00:00Z" }), "zero time"},
		{"no data", subj, env(func(m map[string]any) { delete(m, "data") }), `no "data"`},
		{"data not an object", subj, env(func(m map[string]any) { m["data"] = []int{1} }), "must be a JSON object"},
		{"empty reason", subj, env(func(m map[string]any) { m["data"] = map[string]any{"reason": " "} }), "reason is empty"},
		{"unknown data member", subj, env(func(m map[string]any) { m["data"] = map[string]any{"reason": "r", "kinds": 1} }), "kinds"},
		{"neither version nor config", "configsync.acme.gh.config.patched",
			env(func(m map[string]any) { m["type"] = "config.patched"; m["data"] = map[string]any{} }), "neither configVersion"},
		{"both version and config", "configsync.acme.gh.config.patched",
			env(func(m map[string]any) {
				m["type"] = "config.patched"
				m["data"] = map[string]any{"configVersion": 2, "config": map[string]any{}}
			}), "both configVersion and config"},
		{"fractional version", "configsync.acme.gh.config.patched",
			env(func(m map[string]any) { m["type"] = "config.patched"; m["data"] = map[string]any{"configVersion": 1.5} }), "configVersion"},
		{"config not an object", "configsync.acme.gh.config.patched",
			env(func(m map[string]any) { m["type"] = "config.patched"; m["data"] = map[string]any{"config": "x"} }), "config must be a JSON object"},
		{"resources without kind", "configsync.acme.gh.resources",
			env(func(m map[string]any) { m["type"] = "resources"; m["data"] = map[string]any{"upsert": []any{}} }), "kind is empty"},
		{"resources item not an object", "configsync.acme.gh.resources",
			env(func(m map[string]any) {
				m["type"] = "resources"
				m["data"] = map[string]any{"kind": "k", "delete": []any{map[string]any{}, 3}}
			}), "delete[1]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.subject, []byte(c.payload))
			if err == nil {
				t.Fatalf("Decode accepted %s", c.payload)
			}
			if !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("error does not wrap ErrInvalidEvent: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestDecodeOversized(t *testing.T) {
	e, err := NewEnvelope(TypeResyncRequested, "a", "b", ResyncRequested{Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := e.MarshalJSON()
	padded := append(bytes.Repeat([]byte(" "), DefaultMaxPayload), payload...)
	if _, err := Decode(e.Subject(), padded); err == nil || !strings.Contains(err.Error(), "over the 8388608-byte limit") {
		t.Fatalf("oversized payload: %v", err)
	}
	if _, err := decode(e.Subject(), payload, len(payload)-1); err == nil {
		t.Fatal("a payload one byte over a custom limit was accepted")
	}
}

func TestNewEnvelope(t *testing.T) {
	e, err := NewEnvelope(TypeResources, "acme", "gh", ResourcesData{Kind: "repo", Upsert: []json.RawMessage{json.RawMessage(`{"a":"<b>"}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID == "" || e.Time.IsZero() || time.Since(e.Time) > time.Minute {
		t.Fatalf("id %q time %v", e.ID, e.Time)
	}
	payload, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(payload, []byte(`"<b>"`)) {
		t.Errorf("payload HTML-escaped: %s", payload)
	}
	roundTrip(t, e.Subject(), e)

	e2, _ := NewEnvelope(TypeResources, "acme", "gh", ResourcesData{Kind: "repo"})
	if e2.ID <= e.ID {
		t.Errorf("ids not time ordered: %s then %s", e.ID, e2.ID)
	}
	if _, err := NewEnvelope(TypeConfigPatched, "acme", "gh", ConfigPatched{}); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("NewEnvelope with empty data: %v", err)
	}
	if _, err := NewEnvelope(TypeResyncRequested, "ACME", "gh", ResyncRequested{Reason: "r"}); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("NewEnvelope with a bad tenant: %v", err)
	}
	if _, err := NewEnvelope("nope", "acme", "gh", ResyncRequested{Reason: "r"}); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("NewEnvelope with a bad type: %v", err)
	}
}

func TestDLQSubjectFor(t *testing.T) {
	for subject, want := range map[string]string{
		"configsync.acme.gh.resources":        "configsync-dlq.acme.gh",
		"configsync.ACME.gh.resources":        "configsync-dlq._invalid.gh",
		"configsync.acme.g!h.config.patched":  "configsync-dlq.acme._invalid",
		"configsync.acme":                     "configsync-dlq._invalid._invalid",
		"configsync.acme.gh.resync.requested": "configsync-dlq.acme.gh",
	} {
		if got := dlqSubjectFor(subject); got != want {
			t.Errorf("dlqSubjectFor(%q) = %q, want %q", subject, got, want)
		}
	}
}

func TestHeaderSafe(t *testing.T) {
	if got := headerSafe("a\r\nb\x00c", 100); got != "a  b c" {
		t.Errorf("control characters kept: %q", got)
	}
	if got := headerSafe(strings.Repeat("é", 10), 5); got != "éé" {
		t.Errorf("cut inside a rune: %q", got)
	}
	if got := headerSafe("\n", 5); got != "no reason given" {
		t.Errorf("blank reason: %q", got)
	}
}

// roundTrip checks that e re-encodes and decodes to an equal envelope.
func roundTrip(t testing.TB, subject string, e Envelope) {
	t.Helper()
	payload, err := e.MarshalJSON()
	if err != nil {
		t.Fatalf("re-encoding: %v", err)
	}
	e2, err := Decode(subject, payload)
	if err != nil {
		t.Fatalf("decoding the re-encoded envelope %s: %v", payload, err)
	}
	if !sameEnvelope(e, e2) {
		t.Fatalf("round trip changed the envelope:\n%+v\n%+v", e, e2)
	}
}

func sameEnvelope(a, b Envelope) bool {
	_, oa := a.Time.Zone()
	_, ob := b.Time.Zone()
	return a.ID == b.ID && a.Type == b.Type && a.Tenant == b.Tenant && a.Integration == b.Integration &&
		a.Time.Equal(b.Time) && oa == ob && bytes.Equal(a.Data, b.Data)
}

func FuzzDecode(f *testing.F) {
	seeds := []struct{ subject, payload string }{
		{"configsync.acme.gh.config.patched", `{"id":"e1","type":"config.patched","tenant":"acme","integration":"gh","time":"2025-03-01T12:00:00Z","data":{"configVersion":3}}`},
		{"configsync.acme.gh.config.patched", `{"id":"e1","type":"config.patched","tenant":"acme","integration":"gh","time":"2025-03-01T12:00:00.5-07:00","data":{"config":{"config":{"resources":[{"kind":"r","selector":{"query":"true"}}]}}}}`},
		{"configsync.acme.gh.resync.requested", `{"id":"e1","type":"resync.requested","tenant":"acme","integration":"gh","time":"2025-03-01T12:00:00Z","data":{"reason":"cron \u003c\u0026","runId":"r1"}}`},
		{"configsync.a.b.resources", `{"id":"0:1.a-B_c","type":"resources","tenant":"a","integration":"b","time":"2025-03-01T12:00:00Z","data":{"kind":"k","upsert":[{"x":"\ud83d\ude00"}],"delete":[{}]}}`},
		{"configsync.a.b.resources", `{"id":"1","type":"resources","tenant":"a","integration":"b","time":"2025-03-01T12:00:00Z","data":{"kind":"k","upsert":[{"n": 1e400}]}}`},
		{"configsync.a.b.resources", `{"id":"1","type":"resources","tenant":"a","integration":"b","time":"2025-03-01T12:00:00Z","data":{"kind":"k","upsert":[1]}}`},
		{"configsync.a.b.resources", `{"id":"1","id":"2"}`},
		{"x", `{`},
		{"configsync.a.b.resources", "\xff"},
	}
	for _, s := range seeds {
		f.Add(s.subject, []byte(s.payload))
	}
	f.Fuzz(func(t *testing.T, subject string, payload []byte) {
		e, err := Decode(subject, payload)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("error does not wrap ErrInvalidEvent: %v", err)
			}
			return
		}
		if e.Subject() != subject {
			t.Fatalf("decoded %q from subject %q", e.Subject(), subject)
		}
		roundTrip(t, subject, e)
	})
}
