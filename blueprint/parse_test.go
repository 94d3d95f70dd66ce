package blueprint

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		input string
		ids   []string
	}{
		{"lone object", `{"identifier":"svc"}`, []string{"svc"}},
		{"array", `[{"identifier":"a"},{"identifier":"b"}]`, []string{"a", "b"}},
		{"empty array", `[]`, []string{}},
		{"surrounding whitespace", " \n[{\"identifier\":\"a\"}]\n ", []string{"a"}},
		{"byte-order mark", "\xEF\xBB\xBF{\"identifier\":\"a\"}", []string{"a"}},
		{"every identifier character", `{"identifier":"Az09@_=-"}`, []string{"Az09@_=-"}},
		{"all types", `{"identifier":"a","schema":{"properties":{
			"s":{"type":"string"},"n":{"type":"number"},"b":{"type":"boolean"},
			"o":{"type":"object"},"l":{"type":"array","items":{"type":"string"}},
			"e":{"type":"enum","enum":["x","y"]}}}}`, []string{"a"}},
		{"items without type", `{"identifier":"a","schema":{"properties":{"l":{"type":"array","items":{"format":"url"}}}}}`, []string{"a"}},
		{"relation to a blueprint elsewhere", `{"identifier":"a","relations":{"owner":{"target":"_user"}}}`, []string{"a"}},
		{"required lists defined properties", `{"identifier":"a","schema":{"properties":{"x":{"type":"string"}},"required":["x"]}}`, []string{"a"}},
		{"nulls read as absent", `{"identifier":"a","title":null,"schema":{"properties":null,"required":null},"relations":null}`, []string{"a"}},
		{"unknown keys kept, not refused", `{"identifier":"a","futureField":{"x":1},"schema":{"properties":{"p":{"type":"string","enumColors":{}}}}}`, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bps, err := Parse([]byte(tt.input))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			ids := []string{}
			for _, b := range bps {
				ids = append(ids, b.Identifier)
				if b.Schema.Properties == nil {
					t.Errorf("%s: Schema.Properties is nil; Parse promises a map", b.Identifier)
				}
			}
			if strings.Join(ids, ",") != strings.Join(tt.ids, ",") {
				t.Errorf("identifiers = %q, want %q", ids, tt.ids)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string // the whole error text, problems separated by newlines
	}{
		{
			name: "unknown type names blueprint, index and field",
			input: `[{"identifier":"a"},{"identifier":"b"},{"identifier":"c"},
				{"identifier":"githubRepository","schema":{"properties":{"url":{"type":"strin"}}}}]`,
			want: `blueprint[3] "githubRepository": schema.properties.url.type: unknown type "strin"`,
		},
		{
			name:  "missing identifier",
			input: `[{"title":"No id"}]`,
			want:  `blueprint[0]: identifier: is required`,
		},
		{
			name:  "empty identifier",
			input: `{"identifier":""}`,
			want:  `blueprint[0]: identifier: is required`,
		},
		{
			name:  "identifier breaks the pattern",
			input: `{"identifier":"my service"}`,
			want:  `blueprint[0] "my service": identifier: "my service" does not match ^[A-Za-z0-9@_=\-]+$`,
		},
		{
			name:  "identifier not a string",
			input: `{"identifier":7}`,
			want:  `blueprint[0]: identifier: must be a string, not a number`,
		},
		{
			name:  "property without type",
			input: `{"identifier":"svc","schema":{"properties":{"url":{"title":"URL"}}}}`,
			want:  `blueprint[0] "svc": schema.properties.url.type: is required`,
		},
		{
			name:  "items with unknown type",
			input: `{"identifier":"svc","schema":{"properties":{"tags":{"type":"array","items":{"type":"str"}}}}}`,
			want:  `blueprint[0] "svc": schema.properties.tags.items.type: unknown type "str"`,
		},
		{
			name:  "odd property name is quoted in the path",
			input: `{"identifier":"svc","schema":{"properties":{"my url":{"type":"link"}}}}`,
			want:  `blueprint[0] "svc": schema.properties["my url"].type: unknown type "link"`,
		},
		{
			name:  "relation without target",
			input: `{"identifier":"svc","relations":{"owner":{"title":"Owner","many":false}}}`,
			want:  `blueprint[0] "svc": relations.owner.target: is required`,
		},
		{
			name:  "relation target breaks the pattern",
			input: `{"identifier":"svc","relations":{"owner":{"target":"a team"}}}`,
			want:  `blueprint[0] "svc": relations.owner.target: "a team" does not match ^[A-Za-z0-9@_=\-]+$`,
		},
		{
			name:  "required names an undefined property",
			input: `{"identifier":"svc","schema":{"properties":{"url":{"type":"string"}},"required":["url","lang"]}}`,
			want:  `blueprint[0] "svc": schema.required[1]: "lang" is not in schema.properties`,
		},
		{
			name:  "duplicate identifiers",
			input: `[{"identifier":"svc"},{"identifier":"other"},{"identifier":"svc"}]`,
			want:  `blueprint[2] "svc": identifier: is also the identifier of blueprint[0]`,
		},
		{
			name:  "duplicate key",
			input: `{"identifier":"svc","schema":{"properties":{"url":{"type":"string"},"url":{"type":"number"}}}}`,
			want:  `blueprint[0] "svc": schema.properties.url: is given 2 times`,
		},
		{
			name:  "duplicate identifier key still names the blueprint",
			input: `{"identifier":"a","identifier":"b"}`,
			want:  `blueprint[0] "b": identifier: is given 2 times`,
		},
		{
			name:  "wrong shapes, each reported once",
			input: `{"identifier":"svc","title":1,"schema":{"properties":{"url":"string"},"required":"url"},"relations":{"owner":{"target":"team","required":"yes"}}}`,
			want: `blueprint[0] "svc": title: must be a string, not a number` + "\n" +
				`blueprint[0] "svc": schema.properties.url: must be an object, not a string` + "\n" +
				`blueprint[0] "svc": schema.required: must be an array, not a string` + "\n" +
				`blueprint[0] "svc": relations.owner.required: must be a boolean, not a string`,
		},
		{
			name:  "null where an object is needed",
			input: `{"identifier":"svc","schema":{"properties":{"url":null}},"relations":{"owner":null}}`,
			want: `blueprint[0] "svc": schema.properties.url: must be an object, not null` + "\n" +
				`blueprint[0] "svc": relations.owner: must be an object, not null`,
		},
		{
			name:  "quoted names do not hide or cover each other",
			input: `{"identifier":"svc","schema":{"properties":{"a":1,"a.b":{"type":"x"},"c[\\\"].d":2,"c":{"type":"y"}}}}`,
			want: `blueprint[0] "svc": schema.properties.a: must be an object, not a number` + "\n" +
				`blueprint[0] "svc": schema.properties["c[\\\"].d"]: must be an object, not a number` + "\n" +
				`blueprint[0] "svc": schema.properties["a.b"].type: unknown type "x"` + "\n" +
				`blueprint[0] "svc": schema.properties.c.type: unknown type "y"`,
		},
		{
			name:  "required entry not a string",
			input: `{"identifier":"svc","schema":{"properties":{},"required":[null,3]}}`,
			want: `blueprint[0] "svc": schema.required[0]: must be a string, not null` + "\n" +
				`blueprint[0] "svc": schema.required[1]: must be a string, not a number`,
		},
		{
			name:  "array element not an object",
			input: `[{"identifier":"a"},42,null]`,
			want: `blueprint[1]: must be an object, not a number` + "\n" +
				`blueprint[2]: must be an object, not null`,
		},
		{
			name: "every problem in every blueprint, in order",
			input: `[{"identifier":"a","schema":{"properties":{"z":{"type":"x"},"b":{"type":"y"}}}},
				{"identifier":"ok"},
				{"schema":{"properties":{"p":{"type":"string"}},"required":["q"]},"relations":{"r":{}}}]`,
			want: `blueprint[0] "a": schema.properties.b.type: unknown type "y"` + "\n" +
				`blueprint[0] "a": schema.properties.z.type: unknown type "x"` + "\n" +
				`blueprint[2]: identifier: is required` + "\n" +
				`blueprint[2]: schema.required[0]: "q" is not in schema.properties` + "\n" +
				`blueprint[2]: relations.r.target: is required`,
		},
		{
			name:  "items nested too deep",
			input: `{"identifier":"svc","schema":{"properties":{"p":` + strings.Repeat(`{"type":"array","items":`, 34) + `{"type":"string"}` + strings.Repeat(`}`, 34) + `}}}`,
			want:  `blueprint[0] "svc": schema.properties.p` + strings.Repeat(".items", 33) + `: is nested more than 32 levels deep`,
		},
		{
			name:  "empty input",
			input: " \n",
			want:  `blueprint: input is empty; want an array of blueprints or one blueprint object`,
		},
		{
			name:  "not JSON",
			input: `[{"identifier":"a",}]`,
			want:  `blueprint: invalid JSON: invalid character '}' looking for beginning of object key string`,
		},
		{
			name:  "top level neither array nor object",
			input: `"svc"`,
			want:  `blueprint: want an array of blueprints or one blueprint object, not a string`,
		},
		{
			name:  "top level null",
			input: `null`,
			want:  `blueprint: want an array of blueprints or one blueprint object, not null`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bps, err := Parse([]byte(tt.input))
			if err == nil {
				t.Fatalf("Parse succeeded with %d blueprints, want error:\n%s", len(bps), tt.want)
			}
			if bps != nil {
				t.Errorf("Parse returned %d blueprints with its error, want nil", len(bps))
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestParseErrorsAreTyped checks that callers can take the problems apart instead of
// parsing the message.
func TestParseErrorsAreTyped(t *testing.T) {
	_, err := Parse([]byte(`[{"identifier":"ok"},{"identifier":"svc","schema":{"properties":{"u":{"type":"strin"}}}}]`))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(%v, *Error) = false", err)
	}
	want := Error{Index: 1, Identifier: "svc", Field: "schema.properties.u.type", Msg: `unknown type "strin"`}
	if *e != want {
		t.Errorf("error = %+v, want %+v", *e, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		bp   Blueprint
		want string
	}{
		{"valid", Blueprint{Identifier: "svc", Schema: Schema{Properties: map[string]Property{"u": {Type: TypeString}}}}, ""},
		{"zero", Blueprint{}, "blueprint: identifier: is required"},
		{
			"built in code",
			Blueprint{
				Identifier: "svc",
				Schema:     Schema{Properties: map[string]Property{"u": {Type: "url"}}, Required: []string{"v"}},
				Relations:  map[string]Relation{"team": {}},
			},
			`blueprint "svc": schema.properties.u.type: unknown type "url"` + "\n" +
				`blueprint "svc": schema.required[0]: "v" is not in schema.properties` + "\n" +
				`blueprint "svc": relations.team.target: is required`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.bp.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestUnmarshalJSON checks the types decode inside other documents, reporting shape
// problems but leaving rules to Validate.
func TestUnmarshalJSON(t *testing.T) {
	var doc struct {
		Blueprint *Blueprint `json:"blueprint"`
		Relation  Relation   `json:"relation"`
	}
	in := `{"blueprint":{"identifier":"bad id","schema":{"properties":{"u":{"type":"nope"}}}},"relation":{"target":"x","many":true}}`
	if err := json.Unmarshal([]byte(in), &doc); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if doc.Blueprint.Identifier != "bad id" || doc.Blueprint.Schema.Properties["u"].Type != "nope" {
		t.Errorf("blueprint = %+v", doc.Blueprint)
	}
	if !doc.Relation.Many || doc.Relation.Target != "x" {
		t.Errorf("relation = %+v", doc.Relation)
	}
	if doc.Blueprint.Validate() == nil {
		t.Error("Validate accepted an invalid identifier and type")
	}

	var p Property
	err := json.Unmarshal([]byte(`{"type":5}`), &p)
	if err == nil || err.Error() != "blueprint: type: must be a string, not a number" {
		t.Errorf("Unmarshal of a bad property: %v", err)
	}

	b := Blueprint{Identifier: "keep"}
	if err := json.Unmarshal([]byte(`null`), &b); err != nil || b.Identifier != "keep" {
		t.Errorf("Unmarshal(null) = %v, blueprint %q; want a no-op", err, b.Identifier)
	}
}
