package blueprint

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

// validateBP is a blueprint with one property of each kind the validator checks.
func validateBP(t *testing.T) *Blueprint {
	t.Helper()
	bps, err := Parse([]byte(`{
	  "identifier": "service",
	  "schema": {
	    "properties": {
	      "name":     {"type": "string"},
	      "stars":    {"type": "number"},
	      "archived": {"type": "boolean"},
	      "meta":     {"type": "object"},
	      "langs":    {"type": "array", "items": {"type": "string", "enum": ["go", "python"]}},
	      "anything": {"type": "array"},
	      "tier":     {"type": "string", "enum": ["gold", "silver"]},
	      "level":    {"type": "number", "enum": [1, 2.5]},
	      "status":   {"type": "enum", "enum": ["ok", "down"]},
	      "created":  {"type": "string", "format": "date-time"},
	      "link":     {"type": "string", "format": "url"},
	      "mail":     {"type": "string", "format": "email"},
	      "v4":       {"type": "string", "format": "ipv4"},
	      "v6":       {"type": "string", "format": "ipv6"},
	      "owner":    {"type": "string", "format": "user"},
	      "readme":   {"type": "string", "format": "markdown"},
	      "ttl":      {"type": "string", "format": "timer"}
	    },
	    "required": ["name"]
	  }
	}`))
	if err != nil {
		t.Fatal(err)
	}
	return &bps[0]
}

func TestValidateEntity(t *testing.T) {
	b := validateBP(t)
	cases := []struct {
		name     string
		props    map[string]any
		wantErr  []string // substrings, each naming a property and why
		warnings []string
		cleaned  []string // keys of cleaned, when valid
	}{
		{name: "minimal", props: map[string]any{"name": "x"}, cleaned: []string{"name"}},
		{name: "every type", props: map[string]any{
			"name": "x", "stars": 3, "archived": false, "meta": map[string]any{"a": 1},
			"langs": []any{"go"}, "anything": []int{1, 2}, "tier": "gold", "level": 2.5, "status": "ok",
			"created": "2024-05-01T10:00:00.123Z", "link": "https://github.com/o/r", "mail": "a@b.io",
			"v4": "10.0.0.1", "v6": "2001:db8::1", "owner": "not checked", "readme": "# hi", "ttl": "whatever",
		}},
		{name: "int64", props: map[string]any{"name": "x", "stars": int64(1) << 60}},
		{name: "int8", props: map[string]any{"name": "x", "stars": int8(-3)}},
		{name: "int16", props: map[string]any{"name": "x", "stars": int16(3)}},
		{name: "int32", props: map[string]any{"name": "x", "stars": int32(3)}},
		{name: "uint", props: map[string]any{"name": "x", "stars": uint(3)}},
		{name: "uint8", props: map[string]any{"name": "x", "stars": uint8(3)}},
		{name: "uint16", props: map[string]any{"name": "x", "stars": uint16(3)}},
		{name: "uint32", props: map[string]any{"name": "x", "stars": uint32(3)}},
		{name: "uint64", props: map[string]any{"name": "x", "stars": uint64(1) << 63}},
		{name: "float32", props: map[string]any{"name": "x", "stars": float32(2.5)}},
		{name: "big.Float", props: map[string]any{"name": "x", "stars": big.NewFloat(2.5)}},
		{name: "enum matches a float32", props: map[string]any{"name": "x", "level": float32(2.5)}},
		{name: "big.Int", props: map[string]any{"name": "x", "stars": new(big.Int).Lsh(big.NewInt(1), 100)}},
		{name: "json.Number", props: map[string]any{"name": "x", "stars": json.Number("1e3")}},
		{name: "enum number matches by value", props: map[string]any{"name": "x", "level": json.Number("1.0")}},
		{name: "enum int matches", props: map[string]any{"name": "x", "level": 1}},
		{name: "null is fine when not required", props: map[string]any{"name": "x", "stars": nil, "tier": nil}, cleaned: []string{"name", "stars", "tier"}},
		{name: "map of strings is an object", props: map[string]any{"name": "x", "meta": map[string]string{"a": "b"}}},
		{name: "date-time with offset", props: map[string]any{"name": "x", "created": "2024-05-01T10:00:00+02:00"}},

		{name: "required missing", props: map[string]any{"stars": 1}, wantErr: []string{"name: is required"}},
		{name: "required null", props: map[string]any{"name": nil}, wantErr: []string{"name: is required, got null"}},
		{name: "wrong types all reported", props: map[string]any{
			"name": 3, "stars": "3", "archived": "true", "meta": []any{}, "langs": "go",
		}, wantErr: []string{
			"name: want a string, got number 3", `stars: want a number, got string "3"`,
			`archived: want a boolean, got string "true"`, "meta: want an object, got array", `langs: want an array, got string "go"`,
		}},
		{name: "enum", props: map[string]any{"name": "x", "tier": "bronze", "level": 3, "status": "meh"}, wantErr: []string{
			`tier: string "bronze" is not one of the enum values ["gold", "silver"]`,
			`level: number 3 is not one of the enum values [1, 2.5]`, `status: string "meh"`,
		}},
		{name: "items", props: map[string]any{"name": "x", "langs": []any{"go", 1, "rust", nil}}, wantErr: []string{
			"langs[1]: want a string, got number 1", `langs[2]: string "rust" is not one of the enum values`, "langs[3]: want a string, got null",
		}},
		{name: "formats", props: map[string]any{
			"name": "x", "created": "2024-05-01 10:00", "link": "github.com/o/r", "mail": "Bob <bob@x.io>",
			"v4": "::1", "v6": "10.0.0.1",
		}, wantErr: []string{
			`created: "2024-05-01 10:00" is not an RFC 3339 date-time`, `link: "github.com/o/r" is not an absolute URL`,
			"mail: ", "v4: ", "v6: ",
		}},
		{name: "non-finite", props: map[string]any{"name": "x", "stars": math.Inf(1)}, wantErr: []string{"stars: want a number, got non-finite number"}},
		{name: "nil *big.Int", props: map[string]any{"name": "x", "stars": (*big.Int)(nil)}, wantErr: []string{"stars: want a number"}},
		{name: "NaN", props: map[string]any{"name": "x", "stars": math.NaN()}, wantErr: []string{"stars: want a number, got non-finite number"}},
		{name: "struct is not an object", props: map[string]any{"name": "x", "meta": struct{}{}}, wantErr: []string{"meta: want an object, got object"}},
		{name: "array items typed object", props: map[string]any{"name": "x", "langs": []any{map[string]any{}}}, wantErr: []string{"langs[0]: want a string, got object"}},
		{name: "bad json.Number", props: map[string]any{"name": "x", "stars": json.Number("true")}, wantErr: []string{"stars: want a number"}},

		{name: "undeclared dropped", props: map[string]any{"name": "x", "zeta": 1, "alpha": "y"}, cleaned: []string{"name"}, warnings: []string{
			`property "alpha" is not in blueprint "service"'s schema; dropped`,
			`property "zeta" is not in blueprint "service"'s schema; dropped`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cleaned, warnings, err := b.ValidateEntity(tc.props)
			if len(tc.wantErr) > 0 {
				var ee *EntityError
				if !errors.As(err, &ee) {
					t.Fatalf("err = %v, want an *EntityError", err)
				}
				if cleaned != nil {
					t.Errorf("cleaned = %v, want nil on error", cleaned)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				if len(ee.Fields) != len(tc.wantErr) {
					t.Errorf("%d field errors, want %d: %v", len(ee.Fields), len(tc.wantErr), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(warnings, tc.warnings) {
				t.Errorf("warnings = %q, want %q", warnings, tc.warnings)
			}
			want := tc.cleaned
			if want == nil {
				for k := range tc.props {
					want = append(want, k)
				}
			}
			if len(cleaned) != len(want) {
				t.Errorf("cleaned = %v, want keys %v", cleaned, want)
			}
			for _, k := range want {
				if _, ok := cleaned[k]; !ok {
					t.Errorf("cleaned lacks %q", k)
				}
			}
		})
	}
}

func TestValidatePatch(t *testing.T) {
	b := validateBP(t)
	cases := []struct {
		name    string
		props   map[string]any
		absent  []string
		wantErr string
	}{
		{name: "required left out is reported back", props: map[string]any{"stars": 1}, absent: []string{"name"}},
		{name: "required set", props: map[string]any{"name": "x"}},
		{name: "required nulled is an error", props: map[string]any{"name": nil}, wantErr: "name: is required, got null"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, absent, err := b.ValidatePatch(tc.props)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(absent, tc.absent) {
				t.Errorf("absent = %v, want %v", absent, tc.absent)
			}
		})
	}
}

func TestEntityErrorNamesBlueprint(t *testing.T) {
	b := validateBP(t)
	_, _, err := b.ValidateEntity(map[string]any{"stars": "many"})
	want := `blueprint "service": properties: name: is required; stars: want a number, got string "many"`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant  %s", err, want)
	}
}

func BenchmarkValidateEntity(b *testing.B) {
	bps, err := Parse([]byte(`{"identifier":"githubRepository","schema":{"properties":{
	  "readme":{"type":"string","format":"markdown"},"url":{"type":"string","format":"url"},
	  "defaultBranch":{"type":"string"},"stars":{"type":"number"},"archived":{"type":"boolean"},
	  "visibility":{"type":"string","enum":["public","private","internal"]},
	  "topics":{"type":"array","items":{"type":"string"}},"pushedAt":{"type":"string","format":"date-time"}}}}`))
	if err != nil {
		b.Fatal(err)
	}
	bp := &bps[0]
	props := map[string]any{
		"readme": "# repo", "url": "https://github.com/acme/repo-1", "defaultBranch": "main", "stars": 42.0,
		"archived": false, "visibility": "public", "topics": []any{"go", "redis"}, "pushedAt": "2024-05-01T10:00:00Z",
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := bp.ValidateEntity(props); err != nil {
			b.Fatal(err)
		}
	}
}
