package rawjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

func TestValue(t *testing.T) {
	cases := []struct {
		in   string
		ok   bool
		rest string // what follows the value
	}{
		{`{}`, true, ``},
		{`[]`, true, ``},
		{`{"a":1,"b":[true,false,null],"c":{"d":"e"}} tail`, true, ` tail`},
		{`[1, -0, 0.5, -12.5e+3, 1E9, 2e-1]`, true, ``},
		{`"plain text that is longer than eight bytes, twice over"x`, true, `x`},
		{`"esc \" \\ \/ \b \f \n \r \t \u00e9 \u20AC"`, true, ``},
		{`"unicode é € 😀 and a long tail of ascii"`, true, ``},
		{`{ "a" : [ 1 , 2 ] , "b" : "c" }`, true, ``},
		{`truex`, true, `x`}, // the caller rejects what follows
		{`01`, true, `1`},    // likewise
		{``, false, ``},
		{`{`, false, ``},
		{`{"a"}`, false, ``},
		{`{"a":}`, false, ``},
		{`{"a":1,}`, false, ``},
		{`[1,]`, false, ``},
		{`[1 2]`, false, ``},
		{`{1:2}`, false, ``},
		{`tru`, false, ``},
		{`nul`, false, ``},
		{`-`, false, ``},
		{`1.`, false, ``},
		{`1e`, false, ``},
		{`.5`, false, ``},
		{`+1`, false, ``},
		{`"unterminated`, false, ``},
		{`"unterminated and longer than eight bytes`, false, ``},
		{"\"control \x01 char\"", false, ``},
		{"\"a tab \t inside, past the first eight\"", false, ``},
		{`"bad escape \x"`, false, ``},
		{`"short \u12"`, false, ``},
		{`"not hex \u12G4"`, false, ``},
		{`"surrogate \ud83d\ude00"`, false, ``}, // valid JSON, but decoders differ: not accepted
		{"\"invalid utf-8 \xff here\"", false, ``},
		{"\"truncated utf-8 \xe2\x82\"", false, ``},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), true, ``},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), false, ``},
	}
	for _, tc := range cases {
		end, ok := Value([]byte(tc.in), 0)
		if ok != tc.ok {
			t.Errorf("Value(%.60q) ok = %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if ok && tc.in[end:] != tc.rest {
			t.Errorf("Value(%.60q) left %q, want %q", tc.in, tc.in[end:], tc.rest)
		}
	}
}

// TestStringSpecialAtEachOffset puts each kind of special byte at every offset of the
// eight-byte steps String takes, before and after plain bytes.
func TestStringSpecialAtEachOffset(t *testing.T) {
	specials := []struct {
		s       string
		ok, esc bool
	}{{`\n`, true, true}, {`\u00e9`, true, true}, {"é", true, false}, {"😀", true, false}, {"\x01", false, false}, {"\xff", false, false}}
	for k := range 20 {
		for _, sp := range specials {
			in := `"` + strings.Repeat("a", k) + sp.s + strings.Repeat("b", 20-k) + `"tail`
			end, escaped, ok := String([]byte(in), 0)
			if ok != sp.ok || ok && (escaped != sp.esc || in[end:] != "tail") {
				t.Errorf("String(%q) = %d, escaped %v, ok %v", in, end, escaped, ok)
			}
		}
	}
}

func TestStringEscaped(t *testing.T) {
	for in, want := range map[string]bool{`"plain"`: false, `"with \n escape"`: true, `"long plain string without escapes"`: false, `"é"`: false} {
		_, escaped, ok := String([]byte(in), 0)
		if !ok || escaped != want {
			t.Errorf("String(%q) = escaped %v ok %v, want escaped %v", in, escaped, ok, want)
		}
	}
}

// FuzzValue: whatever Value accepts, encoding/json and jsontext accept as the same
// value, and it ends where jsontext says the value ends.
func FuzzValue(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x\n"],"b":null}`, `"é😀"`, `[true,false]`, `-0.1E+2`, `{"a":{"b":{}}}`, `"\u00e9\ud83d"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end, ok := Value(b, 0)
		if !ok {
			return
		}
		v := b[:end]
		if !json.Valid(v) {
			t.Fatalf("accepted %q, which encoding/json finds invalid", v)
		}
		dec := jsontext.NewDecoder(bytes.NewReader(v), jsontext.AllowDuplicateNames(true))
		got, err := dec.ReadValue()
		if err != nil {
			t.Fatalf("accepted %q, which jsontext refuses: %v", v, err)
		}
		if !bytes.Equal(got, v) {
			t.Fatalf("accepted %q as one value, jsontext reads %q", v, got)
		}
	})
}

func TestUniqueValue(t *testing.T) {
	many := func(n int, last string) string { // an object of n members a0..a(n-2) and last
		var sb strings.Builder
		sb.WriteString("{")
		for k := range n - 1 {
			fmt.Fprintf(&sb, `"a%d":%d,`, k, k)
		}
		return sb.String() + `"` + last + `":0}`
	}
	cases := []struct {
		in string
		ok bool
	}{
		{`{}`, true},
		{`{"a":1,"b":2}`, true},
		{`{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}`, true}, // the same name in different objects
		{`{"a":{"x":1},"b":{"x":1}}`, true},                 // siblings' names are their own
		{`{"a":{"b":1},"a2":1,"b":2}`, true},                // a nested object's names end with it
		{many(MaxUniqueNames, "last"), true},
		{`{"a":1,"a":2}`, false},
		{`{"a":1,"b":{"c":1,"c":2}}`, false},
		{`[{"a":1},{"b":1,"b":1}]`, false},
		{`{"a":1,"b":2,"c":3,"a":4}`, false},
		{`{"ab":1,"a":2}`, true}, // a prefix is another name
		{`{"\u0061":1}`, false},  // escaped: not compared, so not accepted
		{many(MaxUniqueNames+1, "last"), false},
		{`{"a":1,}`, false}, // and whatever Value refuses
	}
	for _, tc := range cases {
		end, ok := UniqueValue([]byte(tc.in), 0)
		if ok != tc.ok || ok && end != len(tc.in) {
			t.Errorf("UniqueValue(%.60q) = %d, %v; want ok %v", tc.in, end, ok, tc.ok)
		}
		if ok {
			if vend, vok := Value([]byte(tc.in), 0); !vok || vend != end {
				t.Errorf("Value(%.60q) = %d, %v; UniqueValue accepted it to %d", tc.in, vend, vok, end)
			}
		}
	}
}

// FuzzUniqueValue: whatever UniqueValue accepts, jsontext accepts with its default
// options (duplicate names refused) and ends at the same place; and what Value and
// jsontext both accept, with no escaped names and small objects, UniqueValue accepts.
func FuzzUniqueValue(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"a":2}],"b":null}`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":2}}`, `[{"x":1},{"x":1}]`, `{"\u0061":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end, ok := UniqueValue(b, 0)
		dec := jsontext.NewDecoder(bytes.NewReader(b))
		got, err := dec.ReadValue()
		if ok {
			if err != nil {
				t.Fatalf("accepted %q, which jsontext refuses: %v", b[:end], err)
			}
			if len(got) != end {
				t.Fatalf("accepted %q as one value, jsontext reads %q", b[:end], got)
			}
			return
		}
		vend, vok := Value(b, 0)
		if err == nil && vok && vend == len(got) && !bytes.Contains(got, []byte(`\`)) && !bigObject(got) {
			t.Fatalf("refused %q, which jsontext and Value accept", got)
		}
	})
}

// bigObject reports whether v may hold an object of more than MaxUniqueNames members
// (counted roughly: colons).
func bigObject(v []byte) bool { return bytes.Count(v, []byte(":")) > MaxUniqueNames }
