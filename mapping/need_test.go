package mapping

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/itchyny/gojq"
)

func TestAnalyzeNeed(t *testing.T) {
	tests := []struct {
		exprs []string
		want  string
	}{
		{[]string{".name", ".owner.login", `"lit"`}, "{name,owner{login}}"},
		{[]string{`if .description then .description else "" end`}, "{description}"},
		{[]string{`.x // ""`, `.a.b | tostring`}, "{a{b},x}"},
		{[]string{`.owner`, `.owner.login`}, "{owner}"},
		{[]string{`[.assignees[].login]`}, "{assignees}"},
		{[]string{`.head.repo.name + (.id|tostring)`}, "{head{repo{name}},id}"},
		// Truthiness needs no members: an object, even empty, is truthy.
		{[]string{`select(.a) | .b`}, "{a{},b}"},
		{[]string{`.`}, "*"},
		{[]string{`keys`}, "*"},
		{[]string{`. as $x | $x.a`}, "*"},
		{[]string{`def f: .a; f`}, "*"},
		{[]string{`.[$__loc__.file]`}, "*"},
		{[]string{`{a, b: .c}`}, "{a,c}"},
		{[]string{`"\(.a)-\(.b.c)"`}, "{a,b{c}}"},
		{[]string{`.a | not`, `.b and .c`}, "{a{},b{},c{}}"},
		{[]string{`.created_at as $c | $c`}, "{created_at}"},
		{[]string{`.a[0]`}, "{a}"},
		{[]string{`.a["b"]?`}, "{a{b}}"},
		{[]string{`if .a then . else .b end`}, "*"},
		{[]string{`try .a.b catch .`}, "{a{b}}"},
		{[]string{`now`, `env.HOME`, `$ENV.X`}, "{}"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.exprs, " ; "), func(t *testing.T) {
			n := &need{}
			for _, e := range tt.exprs {
				q, err := gojq.Parse(e)
				if err != nil {
					t.Fatal(err)
				}
				analyzeNeed(n, q)
			}
			if got := n.String(); got != tt.want {
				t.Errorf("need %s, want %s", got, tt.want)
			}
		})
	}
}

// diffExprs cover the fast paths (plain paths, literals), the partial decoder's
// boundaries (whole values, truthiness, indexing) and expressions the analysis must
// give up on.
var diffExprs = []string{
	".a", ".a.b", ".a.b.c", `.["a"].b`, ".a?", ".a.b?", `"lit"`, "1", "1.5", "null", "true", "false",
	`.a // "d"`, `if .a then .a.b else "no" end`, ".a | tostring", "[.a, .b]", "{x: .a.b}",
	".a.b | length", "select(.a) | .b", ".a as $x | $x.b", ".a | keys", `(.a | type) + "x"`,
	".a[0]", "[.a[]?]", "to_entries | length", `has("a")`, ".b | not", ".a and .b",
	`try .a.b catch "e"`, `"\(.a.b)-\(.b)"`, ".a.b == .b", "def g: .a; g", "reduce .c[]? as $x (0; . + 1)",
	".a | .b | .c", "first(.a, .b)", "[.. | numbers]", `getpath(["a","b"])`, "[paths] | length",
	"{a} | .a.b", ".a.b.c // .d", `if .c then .c else .a end | .b?`, ".a | .[\"b\"]", "tojson | length",
	".d * 2", `.b | if type == "string" then . * 2 else . end`,
	`if .a then "x" elif .b then .b else null end`, "(.a)", `.a // .b // "z"`, "if .a then .a end", "if .a.b then 1.0 else 1e3 end",
	`.a."b"`, ".", "(.a).b", `.a // error("x")`,
}

// TestPartialDecodeMatchesGojq runs every expression through the engine (analysis,
// partial decoding, fast paths) and through plain gojq on the fully decoded item, on
// random items, and requires the same value or the same failure.
func TestPartialDecodeMatchesGojq(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	items := make([]string, 400)
	for i := range items {
		b, _ := json.Marshal(randomObject(r, 0))
		items[i] = string(b)
	}
	items = append(items, `{"a": 12345678901234567890, "b": "x"}`, `{"a": "s"}`, `{"a": {"b": {"c": 1}}}`, `{}`, `{"a": null}`)
	for _, expr := range diffExprs {
		t.Run(expr, func(t *testing.T) {
			doc := oneMapping("'true'", "", "          identifier: '\"id\"'\n          blueprint: '\"b\"'\n          properties:\n            p: "+yamlQuote(expr)+"\n")
			prog := compileYAML(t, doc, Options{})
			ref, err := gojq.Parse(expr)
			if err != nil {
				t.Fatal(err)
			}
			refCode, err := gojq.Compile(ref)
			if err != nil {
				t.Fatal(err)
			}
			m := NewMapper()
			full := newDecoder()
			for _, item := range items {
				res := prog.Resources[0].Map(context.Background(), m, []byte(item))
				if len(res.Entities) != 1 {
					t.Fatalf("item %s: %s", item, issuesText(res))
				}
				got := res.Entities[0].Properties[0].Value
				gotFailed := len(res.Issues) > 0

				v, err := full.decode([]byte(item), nil)
				if err != nil {
					t.Fatal(err)
				}
				want, wantOK := refCode.Run(v).Next()
				_, isErr := want.(error)
				wantFailed := !wantOK || isErr
				if wantFailed {
					want = nil
				}
				if gotFailed != wantFailed || !sameJSON(got, want) {
					t.Fatalf("item %s:\n got %v (failed %v: %s)\nwant %v (failed %v)", item, show(got), gotFailed, issuesText(res), show(want), wantFailed)
				}
			}
		})
	}
}

func yamlQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func sameJSON(a, b any) bool {
	x, err1 := gojq.Marshal(a)
	y, err2 := gojq.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func show(v any) string {
	b, err := gojq.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

func randomObject(r *rand.Rand, depth int) map[string]any {
	m := map[string]any{}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if r.IntN(3) > 0 {
			m[k] = randomValue(r, depth+1)
		}
	}
	return m
}

func randomValue(r *rand.Rand, depth int) any {
	max := 8
	if depth > 3 {
		max = 6
	}
	switch r.IntN(max) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return json.Number(fmt.Sprint(r.IntN(2000) - 1000))
	case 3:
		return []string{"", "x", "hello", "ü", `q"uote`}[r.IntN(5)]
	case 4:
		return json.Number("123456789012345678901234567890")
	case 5:
		return r.Float64() * 100
	case 6:
		n := r.IntN(4)
		l := make([]any, n)
		for i := range l {
			l[i] = randomValue(r, depth+1)
		}
		return l
	default:
		return randomObject(r, depth)
	}
}

// TestNeedMember checks member's filters against the map they guard: every key is
// found, and a name that is not a key is not, whatever its length or first byte.
func TestNeedMember(t *testing.T) {
	long := strings.Repeat("k", 63)
	keys := []string{"", "a", "name", "owner", "__includedFiles", "é", "\xff", long, long + "x"}
	n := &need{}
	for _, k := range keys {
		n.child(k)
	}
	for _, k := range keys {
		if n.member([]byte(k)) != n.keys[k] || n.keys[k] == nil {
			t.Errorf("member(%q) is not the key's need", k)
		}
	}
	others := []string{"b", "nam", "names", "Name", "owners", "_includedFiles", "è", "\xfe", long[:62], long + "y", long + "xx", "language"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 { // random names, some of a key's length or first byte
		b := make([]byte, r.IntN(70))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		others = append(others, string(b))
	}
	for _, o := range others {
		if got := n.member([]byte(o)); got != n.keys[o] {
			t.Errorf("member(%q) = %v, the map has %v", o, got, n.keys[o])
		}
	}
}
