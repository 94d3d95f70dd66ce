package mapping

import (
	"strings"
	"testing"

	"github.com/itchyny/gojq"
)

func TestRewriteSingleQuotes(t *testing.T) {
	tests := []struct{ in, want string }{
		{`.x // ''`, `.x // ""`},
		{`'githubRepository'`, `"githubRepository"`},
		{`"it's" + 'x'`, `"it's" + "x"`},
		{`'say "hi"'`, `"say \"hi\""`},
		{`"a\"'b" + 'c'`, `"a\"'b" + "c"`},
		{`"\(.a + 'x')" + 'y'`, `"\(.a + "x")" + "y"`},
		{`"\("(" + 'x')"`, `"\("(" + "x")"`},
		{".a # it's a comment\n| 'x'", ".a # it's a comment\n| \"x\""},
		{`'a\'b'`, `"a\'b"`},
		{`.a`, `.a`},
	}
	for _, tt := range tests {
		if got := rewriteSingleQuotes(tt.in); got != tt.want {
			t.Errorf("rewriteSingleQuotes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseJQSingleQuotesOnlyWhenNeeded(t *testing.T) {
	// Valid jq is never rewritten: the quote inside the string stays.
	q, err := parseJQ(`"it's"`)
	if err != nil || q.Term.Str.Str != "it's" {
		t.Fatalf("%v %v", q, err)
	}
	if _, err := parseJQ(`.x // ''`); err != nil {
		t.Fatal(err)
	}
	// A query that fails either way reports the error of the original text.
	_, err = parseJQ(`.x // '' |`)
	if err == nil || !strings.Contains(err.Error(), "column 11") {
		t.Fatalf("want the original position, got %v", err)
	}
}

func TestMulGuardKeepsJQOrder(t *testing.T) {
	env := newJQEnv(Options{}.withDefaults())
	for _, src := range []string{`[(1,2) * (3,4)]`, `[("a","b") * (2,3)]`, `[{"a":{"b":1}} * {"a":{"c":2}}]`, `[4 * .5, "ab" * 0]`, `[.[] * 2]`} {
		q, err := gojq.Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := gojq.Compile(q)
		if err != nil {
			t.Fatal(err)
		}
		q2, _ := gojq.Parse(src)
		guarded, err := env.compileJQ(q2)
		if err != nil {
			t.Fatal(err)
		}
		input := []any{1, 2.5}
		want, _ := plain.Run(input).Next()
		got, _ := guarded.Run(input).Next()
		if !sameJSON(got, want) {
			t.Errorf("%s: guarded %s, plain %s", src, show(got), show(want))
		}
	}
}

func FuzzRewriteSingleQuotes(f *testing.F) {
	for _, s := range []string{`.x // ''`, `"\(.a + 'x')"`, `'a"b'`, `# '` + "\n'x'", `"\\"`, `"\(`, `)'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		out := rewriteSingleQuotes(src)
		if !strings.ContainsRune(src, '\'') && out != src {
			t.Fatalf("rewrote a query without single quotes: %q -> %q", src, out)
		}
		// Whatever the input, parsing never panics and valid jq stays valid.
		if _, err := gojq.Parse(src); err == nil {
			if _, err := parseJQ(src); err != nil {
				t.Fatalf("valid jq %q refused: %v", src, err)
			}
		}
	})
}
