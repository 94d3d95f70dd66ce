package mapping

import (
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
)

// decodeCase is an item for the differential tests. fast says whether decodeFast
// should take it with a whole need: the differential check alone would pass if it
// took nothing.
type decodeCase struct {
	in   string
	fast bool
}

func nest(open, close string, n int, inner string) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

var decodeCases = []decodeCase{
	// Plain items, and whitespace around and inside them.
	{`{}`, true},
	{`[]`, true},
	{` {"name":"x","owner":{"login":"o","id":1}} `, true},
	{"\t\r\n{ \"name\" : \"x\" ,\n\"owner\" :\t{ } }\n", true},
	{`{"a":[],"b":{},"c":[{}],"name":[]}`, true},
	{`{"name":{},"owner":[]}`, true},
	{`{"owner":{"login":{"deep":[1,{"x":2}]},"other":3}}`, true},
	{`{"owner":"not an object","name":null}`, true},
	{`["not", "an", {"object":1}]`, true},
	{`"a string"`, true},
	{`12`, true},
	{`true`, true},
	{`false`, true},
	{`null`, true},
	// Names and strings with escapes, unicode and duplicates.
	{`{"na\u006de":"x","\"q\"":1,"a\"b":2,"\\":3,"é":4,"\u00e9":5}`, true},
	{`{"name":"esc \" \\ \/ \b \f \n \r \t \u00e9 \u20AC \u0000","owner":{"log\u0069n":"\u00fc"}}`, true},
	{`{"name":"unicode é € 😀 中文","owner":{"login":"ü"}}`, true},
	{`{"name":"first","name":"second","owner":{"login":"a"},"owner":{"id":2}}`, true},
	{`{"owner":{"login":"a","login":"b"},"na\u006de":"x","name":"y"}`, true},
	{`{"name":"surrogate \ud83d\ude00"}`, false},
	{`{"skipped":"surrogate \ud83d\ude00","name":"x"}`, false},
	{`{"name":"lone \ud800"}`, false},
	{"{\"name\":\"invalid utf-8 \xff\"}", false},
	{"{\"skipped\":\"invalid utf-8 \xff\",\"name\":1}", false},
	{"{\"na\xffme\":1}", false},
	// Numbers.
	{`{"name":[0,-0,1,-1,9223372036854775807,-9223372036854775808,9223372036854775808,-9223372036854775809,123456789012345678901234567890]}`, true},
	{`{"name":[0.0,-0.0,-0.5,1.5,1e3,1E3,1e+3,1e-3,-1.25E-2,2.5e10,1e400,-1e400,1e-400,5e-324,1.7976931348623157e308]}`, true},
	{`[1.0000000000000000000000001, 100000000000000000000000000000e-10, 0e0, -0e-0]`, true},
	{`-0`, true},
	{`123456789012345678901234567890`, true},
	// Deep nesting: maxDecodeDepth containers decode, one more is an error, and
	// skipped members are not counted.
	{nest("[", "]", maxDecodeDepth, ""), true},
	{nest("[", "]", maxDecodeDepth+1, ""), false},
	{nest(`{"name":`, "}", maxDecodeDepth, "1"), true},
	{nest(`{"name":`, "}", maxDecodeDepth+1, "1"), false},
	{nest(`{"owner":`, "}", maxDecodeDepth-1, `[]`), true},
	{nest(`{"owner":`, "}", maxDecodeDepth-1, `[[]]`), false},
	{`{"skipped":` + nest("[", "]", maxDecodeDepth+10, "") + `,"name":"x"}`, false},
	{`{"name":"x","skipped":` + nest("[", "]", 20000, "") + `}`, false},
	{nest("[", "]", 20000, ""), false},
	// More than one value, and what follows a value.
	{`{}{}`, false},
	{`{} {}`, false},
	{`1 2`, false},
	{`"a""b"`, false},
	{`{} x`, false},
	{`{} }`, false},
	{`{} ]`, false},
	{`{} ,`, false},
	{`truex`, false},
	{`01`, false},
	{`1x`, false},
	{`[] [`, false},
	{`{"name":1}"`, false},
	// Invalid JSON.
	{``, false},
	{`   `, false},
	{`{`, false},
	{`[`, false},
	{`}`, false},
	{`{"name"}`, false},
	{`{"name":}`, false},
	{`{"name":1,}`, false},
	{`{"skipped":1,}`, false},
	{`{"skipped":[1,],"name":1}`, false},
	{`[1,]`, false},
	{`[1 2]`, false},
	{`{1:2}`, false},
	{`{name:1}`, false},
	{`{'name':1}`, false},
	{`{"name":1 "owner":2}`, false},
	{`{"name":tru}`, false},
	{`{"name":nul}`, false},
	{`{"name":-}`, false},
	{`{"name":1.}`, false},
	{`{"name":1e}`, false},
	{`{"name":.5}`, false},
	{`{"name":+1}`, false},
	{`{"name":01}`, false},
	{`{"name":NaN}`, false},
	{`{"name":"unterminated}`, false},
	{`{"skipped":"unterminated}`, false},
	{"{\"name\":\"control \x01 char\"}", false},
	{"{\"name\":\"tab \t inside\"}", false},
	{`{"name":"bad escape \x"}`, false},
	{`{"name":"short \u12"}`, false},
	{`{"name":"not hex \u12G4"}`, false},
	{`{"owner":{"login":"x"}`, false},
	{`{"owner":{"login":"x"]}`, false},
	{`[}`, false},
	{"\ufeff{}", false},
	{"{}\x00", false},
}

// decodeNeeds are the needs the differential tests decode with: whole (nil and all),
// partial with a nested member, with escaped and non-ASCII names, and empty.
func decodeNeeds() map[string]*need {
	partial := &need{}
	partial.child("name").merge(&need{all: true})
	partial.child("owner").child("login").merge(&need{all: true})
	escaped := &need{}
	for _, k := range []string{`a"b`, `\`, "é", `"q"`, "name", "\x00"} {
		escaped.child(k).merge(&need{all: true})
	}
	escaped.child("owner").child("login")
	return map[string]*need{
		"nil":     nil,
		"all":     {all: true},
		"partial": partial,
		"escaped": escaped,
		"empty":   {},
	}
}

// checkDecode decodes in with decode and decodeSlow and fails t if they differ in
// value, in error-ness or in error message.
func checkDecode(t *testing.T, fast, slow *decoder, in []byte, name string, n *need) {
	t.Helper()
	got, gotErr := fast.decode(in, n)
	want, wantErr := slow.decodeSlow(in, n)
	switch {
	case (gotErr != nil) != (wantErr != nil):
		t.Fatalf("need %s (%s), item %.200q: decode err %v, decodeSlow err %v", name, n, in, gotErr, wantErr)
	case gotErr != nil && gotErr.Error() != wantErr.Error():
		t.Fatalf("need %s (%s), item %.200q: decode err %q, decodeSlow err %q", name, n, in, gotErr, wantErr)
	case !sameValue(got, want):
		t.Fatalf("need %s (%s), item %.200q:\n decode     %s\n decodeSlow %s", name, n, in, showValue(got), showValue(want))
	}
}

func TestDecodeMatchesSlow(t *testing.T) {
	fast, slow := newDecoder(), newDecoder()
	for name, n := range decodeNeeds() {
		for _, tc := range decodeCases {
			checkDecode(t, fast, slow, []byte(tc.in), name, n)
			// A partial need reads less, so decodeFast may take more items with it
			// (what it does not read is not counted for depth), but never fewer.
			_, ok := decodeFast([]byte(tc.in), n)
			if n.whole() && ok != tc.fast || tc.fast && !ok {
				t.Errorf("need %s, item %.80q: decodeFast ok = %v, want %v", name, tc.in, ok, tc.fast)
			}
		}
	}
}

// TestDecodeGitHubRepositories checks that realistic items take the fast path and
// decode as jsontext decodes them.
func TestDecodeGitHubRepositories(t *testing.T) {
	items, n := githubRepositoryItems(t)
	fast, slow := newDecoder(), newDecoder()
	for _, item := range items[:100] {
		if _, ok := decodeFast(item, n); !ok {
			t.Fatalf("decodeFast turned down %.200s", item)
		}
		checkDecode(t, fast, slow, item, "repository", n)
		checkDecode(t, fast, slow, item, "nil", nil)
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.in))
	}
	needs := decodeNeeds()
	fast, slow := newDecoder(), newDecoder()
	f.Fuzz(func(t *testing.T, in []byte) {
		for name, n := range needs {
			checkDecode(t, fast, slow, in, name, n)
		}
	})
}

// sameValue reports whether a and b are the same gojq value, of the same Go types:
// *big.Int compares by value, float64 by bits (so -0 differs from 0), and a nil slice
// or map differs from an empty one.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || (x == nil) != (y == nil) || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || (x == nil) != (y == nil) || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case *big.Int:
		y, ok := b.(*big.Int)
		return ok && x.Cmp(y) == 0
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case string, int, bool, nil:
		return a == b
	}
	panic(fmt.Sprintf("unexpected value type %T", a))
}

// showValue prints a value with its types, for failure messages.
func showValue(v any) string {
	return fmt.Sprintf("%#v", v)
}
