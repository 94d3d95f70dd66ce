package blueprint

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fullBlueprint uses every modeled field and unknown keys at every level.
const fullBlueprint = `{
  "identifier": "service",
  "title": "Service",
  "icon": "Microservice",
  "description": "A <deployable> unit & its owners",
  "schema": {
    "properties": {
      "tier": {
        "type": "string",
        "title": "Tier",
        "enum": ["gold", "silver"],
        "enumColors": {"gold": "yellow", "silver": "lightGray"},
        "default": "silver"
      },
      "score": {"type": "number", "minimum": 0, "maximum": 100, "enum": [1, 2.50, 1e3]},
      "tags": {
        "type": "array",
        "items": {"type": "object", "properties": {"k": {"type": "string"}}}
      },
      "api": {"type": "object", "spec": "open-api", "specAuthentication": {"clientId": "x"}}
    },
    "required": ["tier"],
    "futureSchemaKey": true
  },
  "mirrorProperties": {"teamName": {"path": "owner.$title"}},
  "calculationProperties": {},
  "aggregationProperties": {"count": {"target": "incident", "calculationSpec": {"func": "count"}}},
  "relations": {
    "owner": {"title": "Owner", "target": "_team", "required": true, "many": false, "futureRelationKey": [1]},
    "deps": {"target": "service", "many": true}
  },
  "teamInheritance": {"path": "owner"},
  "changelogDestination": {"type": "WEBHOOK", "url": "https://example.com/hook"},
  "ownership": {"type": "Direct"},
  "futureBlueprintKey": {"nested": [null, "x"]}
}`

func TestRoundTripKeepsUnknownFields(t *testing.T) {
	bps, err := Parse([]byte(fullBlueprint))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	b := bps[0]

	// The modeled fields are read.
	if !b.HasProperty("tier") || b.HasProperty("teamName") {
		t.Errorf("HasProperty: tier %v, teamName %v; want true, false (mirror properties do not count)",
			b.HasProperty("tier"), b.HasProperty("teamName"))
	}
	if r, ok := b.Relation("owner"); !ok || r.Target != "_team" || !r.Required || r.Many {
		t.Errorf("Relation(owner) = %+v, %v", r, ok)
	}
	if _, ok := b.Relation("nope"); ok {
		t.Error("Relation(nope) found")
	}
	tags, _ := b.Property("tags")
	if tags.Items == nil || tags.Items.Type != TypeObject || string(tags.Items.Extra["properties"]) != `{"k":{"type":"string"}}` {
		t.Errorf("tags.items = %+v", tags.Items)
	}

	// Unknown keys land in Extra, compact.
	extras := map[string]string{
		"blueprint":          string(b.Extra["futureBlueprintKey"]),
		"schema":             string(b.Schema.Extra["futureSchemaKey"]),
		"property":           string(b.Schema.Properties["tier"].Extra["enumColors"]),
		"relation":           string(b.Relations["owner"].Extra["futureRelationKey"]),
		"specAuthentication": string(b.Schema.Properties["api"].Extra["specAuthentication"]),
	}
	wantExtras := map[string]string{
		"blueprint":          `{"nested":[null,"x"]}`,
		"schema":             `true`,
		"property":           `{"gold":"yellow","silver":"lightGray"}`,
		"relation":           `[1]`,
		"specAuthentication": `{"clientId":"x"}`,
	}
	if !reflect.DeepEqual(extras, wantExtras) {
		t.Errorf("Extra:\n%v\nwant:\n%v", extras, wantExtras)
	}
	if got := string(b.Schema.Properties["score"].Enum[1]); got != "2.50" {
		t.Errorf("enum number = %s, want 2.50 kept exactly", got)
	}

	// Writing it out loses nothing: the output is the input, plus the one default
	// MarshalJSON spells out (deps.required).
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var want, got any
	mustUnmarshal(t, fullBlueprint, &want)
	mustUnmarshal(t, string(out), &got)
	want.(map[string]any)["relations"].(map[string]any)["deps"].(map[string]any)["required"] = false
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip changed the blueprint:\ngot  %s", out)
	}

	// And reading the output gives the same value.
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal): %v", err)
	}
	if !reflect.DeepEqual(again[0], b) {
		t.Errorf("Parse(Marshal(b)) != b:\n%+v\n%+v", again[0], b)
	}
}

func TestMarshalShape(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			"absent and empty keys stay as they were",
			`{"identifier":"a","schema":{"properties":{},"required":[]},"relations":{}}`,
			`[{"identifier":"a","schema":{"properties":{},"required":[]},"relations":{}}]`,
		},
		{
			"missing schema is written, since Port requires it",
			`{"identifier":"a"}`,
			`[{"identifier":"a","schema":{"properties":{}}}]`,
		},
		{
			"Port's key order, then extra keys sorted",
			`{"zeta":1,"relations":{"r":{"many":true,"target":"b","x":0}},"identifier":"a","alpha":2,"title":"A"}`,
			`[{"identifier":"a","title":"A","schema":{"properties":{}},"relations":{"r":{"target":"b","required":false,"many":true,"x":0}},"alpha":2,"zeta":1}]`,
		},
		{
			"null kept where the value is kept raw",
			`{"identifier":"a","ownership":null,"schema":{"properties":{"p":{"type":"string","default":null}}}}`,
			`[{"identifier":"a","schema":{"properties":{"p":{"type":"string","default":null}}},"ownership":null}]`,
		},
		{
			"keys differing only in case are not confused",
			`{"identifier":"a","Identifier":"b"}`,
			`[{"identifier":"a","schema":{"properties":{}},"Identifier":"b"}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bps, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			out, err := json.Marshal(bps)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(out) != tt.want {
				t.Errorf("Marshal:\n%s\nwant:\n%s", out, tt.want)
			}
		})
	}
}

func TestMarshalRefusesExtraThatShadowsAField(t *testing.T) {
	b := Blueprint{Identifier: "a", Extra: map[string]json.RawMessage{"title": json.RawMessage(`"B"`)}}
	_, err := json.Marshal(b)
	if err == nil || !strings.Contains(err.Error(), `Extra key "title" is a modeled field`) {
		t.Errorf("Marshal = %v, want the collision reported", err)
	}
}

// TestModeledKeys keeps the key lists MarshalJSON checks Extra against in step with
// the decoders: a listed key never lands in Extra, an unlisted one always does.
func TestModeledKeys(t *testing.T) {
	wrap := map[string]func(string) string{
		"blueprint": func(kv string) string { return `{"identifier":"a",` + kv + `}` },
		"schema":    func(kv string) string { return `{"identifier":"a","schema":{` + kv + `}}` },
		"property": func(kv string) string {
			return `{"identifier":"a","schema":{"properties":{"p":{"type":"string",` + kv + `}}}}`
		},
		"relation": func(kv string) string { return `{"identifier":"a","relations":{"r":{"target":"a",` + kv + `}}}` },
	}
	extra := map[string]func(Blueprint) map[string]json.RawMessage{
		"blueprint": func(b Blueprint) map[string]json.RawMessage { return b.Extra },
		"schema":    func(b Blueprint) map[string]json.RawMessage { return b.Schema.Extra },
		"property":  func(b Blueprint) map[string]json.RawMessage { return b.Schema.Properties["p"].Extra },
		"relation":  func(b Blueprint) map[string]json.RawMessage { return b.Relations["r"].Extra },
	}
	lists := map[string][]string{"blueprint": blueprintKeys, "schema": schemaKeys, "property": propertyKeys, "relation": relationKeys}
	for typ, keys := range lists {
		for _, key := range append(slices.Clone(keys), "unmodeled") {
			if key == "identifier" || key == "type" || key == "target" {
				continue // set by the wrapper, which needs them to parse
			}
			bps, err := Parse([]byte(wrap[typ](`"` + key + `":null`)))
			if err != nil {
				t.Errorf("%s.%s: %v", typ, key, err)
				continue
			}
			_, inExtra := extra[typ](bps[0])[key]
			if want := key == "unmodeled"; inExtra != want {
				t.Errorf("%s.%s: in Extra = %v, want %v", typ, key, inExtra, want)
			}
		}
	}
}

func mustUnmarshal(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("Unmarshal %s: %v", s, err)
	}
}
