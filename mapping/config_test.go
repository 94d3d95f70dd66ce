package mapping

import (
	"strings"
	"testing"
)

func TestParseTopLevel(t *testing.T) {
	const res = "resources: [{kind: k, selector: {query: 'true'}, port: {entity: {mappings: {identifier: .id, blueprint: '\"b\"'}}}}]\n"
	tests := []struct {
		name    string
		doc     string
		check   func(t *testing.T, c *Config)
		wantErr string
	}{
		{name: "defaults", doc: res, check: func(t *testing.T, c *Config) {
			if c.DeleteDependents || !c.CreateMissingRelatedEntities || !c.EnableMergeEntity || c.EntityDeletionThreshold != 0.9 {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "deleteDependents", doc: "deleteDependents: true\n" + res, check: func(t *testing.T, c *Config) {
			if !c.DeleteDependents {
				t.Error("deleteDependents not set")
			}
		}},
		{name: "ocean spelling", doc: "deleteDependentEntities: true\n" + res, check: func(t *testing.T, c *Config) {
			if !c.DeleteDependents {
				t.Error("deleteDependentEntities not honoured")
			}
		}},
		{name: "both spellings agree", doc: "deleteDependentEntities: true\ndeleteDependents: true\n" + res, check: func(t *testing.T, c *Config) {
			if !c.DeleteDependents {
				t.Error("not set")
			}
		}},
		{name: "both spellings differ", doc: "deleteDependentEntities: true\ndeleteDependents: false\n" + res, wantErr: "deleteDependentEntities: contradicts deleteDependents"},
		{name: "flags off", doc: "createMissingRelatedEntities: false\nenableMergeEntity: False\nentityDeletionThreshold: 0\n" + res, check: func(t *testing.T, c *Config) {
			if c.CreateMissingRelatedEntities || c.EnableMergeEntity || c.EntityDeletionThreshold != 0 {
				t.Errorf("flags: %+v", c)
			}
		}},
		{name: "threshold range", doc: "entityDeletionThreshold: 1.5\n" + res, wantErr: "entityDeletionThreshold: must be between 0 and 1, got 1.5"},
		{name: "flag type", doc: "createMissingRelatedEntities: 'yes'\n" + res, wantErr: "createMissingRelatedEntities: must be a boolean, not a string"},
		{name: "unknown top-level kept", doc: "repositoryType: all\nextra: {a: [1, 2]}\n" + res, check: func(t *testing.T, c *Config) {
			if c.Extra["repositoryType"] != "all" {
				t.Errorf("extra: %#v", c.Extra)
			}
			if l, ok := c.Extra["extra"].(map[string]any)["a"].([]any); !ok || len(l) != 2 || l[1] != int64(2) {
				t.Errorf("extra: %#v", c.Extra)
			}
		}},
		{name: "json", doc: `{"resources": [{"kind": "k", "selector": {"query": "true"}, "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": "\"b\""}}}}]}`, check: func(t *testing.T, c *Config) {
			if len(c.Resources) != 1 || c.Resources[0].Kind != "k" {
				t.Errorf("resources: %+v", c.Resources)
			}
		}},
		{name: "missing resources", doc: "deleteDependents: true\n", wantErr: "resources: is required"},
		{name: "not an object", doc: "[1, 2]", wantErr: "config must be an object, not an array"},
		{name: "not yaml", doc: "a: [", wantErr: "config is neither JSON nor YAML"},
		{name: "empty", doc: "", wantErr: "config is empty"},
		{name: "duplicate key", doc: "deleteDependents: true\ndeleteDependents: false\n" + res, wantErr: "deleteDependents: is given twice"},
		{name: "alias bomb", doc: aliasBomb(), wantErr: "nodes (aliases included)"},
		// An alias inside its own anchor nests without end (found by FuzzParse: it
		// took the fuzzing process's memory).
		{name: "alias in its own sequence", doc: "a: &a [*a, *a]\nresources: []", wantErr: "nests more than 100 levels deep"},
		{name: "alias in its own mapping", doc: "a: &a {b: *a}\nresources: []", wantErr: "nests more than 100 levels deep"},
		{name: "deep but finite", doc: "a: " + strings.Repeat("[", 101) + strings.Repeat("]", 101) + "\nresources: []", wantErr: "a" + strings.Repeat("[0]", 100) + ": nests more than 100 levels deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ps := Parse([]byte(tt.doc))
			if tt.wantErr != "" {
				if !strings.Contains(problemText(ps), tt.wantErr) {
					t.Fatalf("want problem containing %q, got:\n%s", tt.wantErr, problemText(ps))
				}
				if !ps.HasErrors() {
					t.Fatalf("problem is not an error: %s", problemText(ps))
				}
				return
			}
			if ps.HasErrors() {
				t.Fatalf("unexpected problems:\n%s", problemText(ps))
			}
			tt.check(t, c)
		})
	}
}

func aliasBomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		prev := "*a" + string(rune('0'+i-1))
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" + strings.Repeat(prev+", ", 9) + prev + "]\n")
	}
	b.WriteString("resources: []\n")
	return b.String()
}

func problemText(ps Problems) string {
	var lines []string
	for _, p := range ps {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

func TestParseResource(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		check   func(t *testing.T, r Resource)
		wantErr string
		warn    string
	}{
		{name: "full", doc: `
resources:
  - kind: repository
    selector:
      query: .archived | not
      includedFiles: [README.md]
    port:
      itemsToParse: .files
      itemsToParseName: file
      itemsToParseTopLevelTransform: false
      entity:
        mappings:
          identifier: .name
          title: .name
          blueprint: '"repo"'
          icon: '"Github"'
          team: .team
          properties:
            b: .b
            a: .a
          relations:
            org: .owner.login
            tags:
              combinator: '"and"'
              rules:
                - property: '"x"'
                  operator: '"="'
                  value: .x
                - combinator: '"or"'
                  rules:
                    - {property: '"y"', operator: '"isNotEmpty"'}
`, check: func(t *testing.T, r Resource) {
			if r.Kind != "repository" || r.Selector.Query.Src != ".archived | not" {
				t.Errorf("resource: %+v", r)
			}
			if files, _ := r.Selector.Extra["includedFiles"].([]any); len(files) != 1 {
				t.Errorf("selector extra: %#v", r.Selector.Extra)
			}
			p := r.Port
			if p.ItemsToParse.Src != ".files" || p.ItemsToParseName != "file" || p.ItemsToParseTopLevelTransform {
				t.Errorf("port: %+v", p)
			}
			m := p.Mappings[0]
			if m.Properties[0].Name != "b" || m.Properties[1].Name != "a" {
				t.Errorf("property order lost: %+v", m.Properties)
			}
			if m.Relations[1].Value.Search == nil || len(m.Relations[1].Value.Search.Rules) != 2 || m.Relations[1].Value.Search.Rules[1].Nested == nil {
				t.Errorf("search query: %+v", m.Relations[1].Value)
			}
			if m.Team.Expr.Src != ".team" || m.Icon.Src != `"Github"` {
				t.Errorf("team/icon: %+v %+v", m.Team, m.Icon)
			}
		}},
		{name: "mappings array", doc: `
resources:
  - kind: k
    selector: {query: 'true'}
    port: {entity: {mappings: [{identifier: .a, blueprint: '"x"'}, {identifier: .b, blueprint: '"y"'}]}}
`, check: func(t *testing.T, r Resource) {
			if len(r.Port.Mappings) != 2 || r.Port.Mappings[1].Identifier.Expr.Src != ".b" {
				t.Errorf("mappings: %+v", r.Port.Mappings)
			}
			if r.Port.ItemsToParseName != "item" || !r.Port.ItemsToParseTopLevelTransform {
				t.Errorf("itemsToParse defaults: %+v", r.Port)
			}
		}},
		{name: "unquoted true query", doc: `
resources:
  - kind: k
    selector: {query: true}
    port: {entity: {mappings: {identifier: .a, blueprint: '"x"'}}}
`, check: func(t *testing.T, r Resource) {
			if r.Selector.Query.Src != "true" {
				t.Errorf("query: %q", r.Selector.Query.Src)
			}
		}},
		{name: "missing kind", doc: "resources: [{selector: {query: 'true'}, port: {entity: {mappings: {identifier: .a, blueprint: .b}}}}]", wantErr: "resources[0].kind: is required"},
		{name: "missing query", doc: "resources: [{kind: k, selector: {}, port: {entity: {mappings: {identifier: .a, blueprint: .b}}}}]", wantErr: `resource 0 (kind "k"): resources[0].selector.query: is required`},
		{name: "missing identifier", doc: "resources: [{kind: k, selector: {query: 'true'}, port: {entity: {mappings: {blueprint: .b}}}}]", wantErr: "resources[0].port.entity.mappings.identifier: is required"},
		{name: "missing blueprint", doc: "resources: [{kind: k, selector: {query: 'true'}, port: {entity: {mappings: [{identifier: .a}]}}}]", wantErr: "resources[0].port.entity.mappings[0].blueprint: is required"},
		{name: "mappings wrong type", doc: "resources: [{kind: k, selector: {query: 'true'}, port: {entity: {mappings: 3}}}]", wantErr: "mappings: must be an object or an array of objects, not a number"},
		{name: "property not jq", doc: "resources: [{kind: k, selector: {query: 'true'}, port: {entity: {mappings: {identifier: .a, blueprint: .b, properties: {p: [1]}}}}}]", wantErr: "properties.p: must be a jq expression (a string), not an array"},
		{name: "empty jq", doc: "resources: [{kind: k, selector: {query: ' '}, port: {entity: {mappings: {identifier: .a, blueprint: .b}}}}]", wantErr: "selector.query: jq expression is empty"},
		{name: "bad combinator", doc: "resources: [{kind: k, selector: {query: 'true'}, port: {entity: {mappings: {identifier: {combinator: '\"xor\"', rules: [{property: '\"a\"', operator: '\"=\"', value: .a}]}, blueprint: .b}}}}]", wantErr: `combinator must be "and" or "or", got "xor"`},
		{name: "search without rules", doc: "resources: [{kind: k, selector: {query: 'true'}, port: {entity: {mappings: {identifier: {combinator: '\"and\"'}, blueprint: .b}}}}]", wantErr: "identifier.rules: is required in a search query"},
		{name: "rule without operator", doc: "resources: [{kind: k, selector: {query: 'true'}, port: {entity: {mappings: {identifier: .a, team: {combinator: '\"and\"', rules: [{property: '\"a\"'}]}, blueprint: .b}}}}]", wantErr: "team.rules[0].operator: is required in a search rule"},
		{name: "unknown mapping field warns", doc: "resources: [{kind: k, selector: {query: 'true'}, port: {entity: {mappings: {identifier: .a, blueprint: .b, propertie: {}}}}}]", warn: "mappings.propertie: unknown field, ignored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ps := Parse([]byte(tt.doc))
			switch {
			case tt.wantErr != "":
				if !ps.HasErrors() || !strings.Contains(problemText(ps), tt.wantErr) {
					t.Fatalf("want error containing %q, got:\n%s", tt.wantErr, problemText(ps))
				}
			case tt.warn != "":
				if ps.HasErrors() || !strings.Contains(problemText(ps), "warning: ") || !strings.Contains(problemText(ps), tt.warn) {
					t.Fatalf("want only a warning containing %q, got:\n%s", tt.warn, problemText(ps))
				}
			default:
				if len(ps) > 0 {
					t.Fatalf("unexpected problems:\n%s", problemText(ps))
				}
				tt.check(t, c.Resources[0])
			}
		})
	}
}

func TestProblemLocation(t *testing.T) {
	doc := "resources:\n  - kind: k\n    selector:\n      query: 'true'\n    port:\n      entity:\n        mappings:\n          identifier: .a\n          blueprint: '\"b\"'\n          properties:\n            x: .a | foo(\n"
	c, ps := Parse([]byte(doc))
	if ps.HasErrors() {
		t.Fatal(problemText(ps))
	}
	_, ps = Compile(c, Options{})
	want := `error: line 11:16: resource 0 (kind "k"): resources[0].port.entity.mappings.properties.x: jq: unexpected EOF at line 1, column 10 of the expression`
	if len(ps) != 1 || !strings.HasPrefix(ps[0].String(), want) {
		t.Fatalf("want %q, got:\n%s", want, problemText(ps))
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"resources: []",
		"deleteDependentEntities: true\nresources: [{kind: k, selector: {query: 'true'}, port: {entity: {mappings: {identifier: .a, blueprint: '\"b\"'}}}}]",
		`{"resources": [{"kind": "k", "selector": {"query": ".a | test(\"x\")"}, "port": {"itemsToParse": ".xs", "entity": {"mappings": [{"identifier": {"combinator": "\"and\"", "rules": [{"property": "\"p\"", "operator": "\"=\"", "value": ".v"}]}, "blueprint": "'b'"}]}}}]}`,
		"a: &a [1]\nb: [*a, *a]\nresources: [{kind: k}]",
		"a: &a [*a, *a]\nresources: []",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, ps := Parse(doc)
		if c == nil {
			if !ps.HasErrors() {
				t.Fatal("nil config without an error")
			}
			return
		}
		for _, p := range ps {
			_ = p.String()
		}
		prog, cps := Compile(c, Options{})
		if (prog == nil) != cps.HasErrors() {
			t.Fatalf("program %v but problems %v", prog != nil, problemText(cps))
		}
	})
}
