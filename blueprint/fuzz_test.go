package blueprint

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics on any input, and that whatever it accepts
// it can write out and read back to the same value: the promise that configsync can
// hand a parsed blueprint back to Port without changing it.
func FuzzParse(f *testing.F) {
	seeds := []string{
		fullBlueprint,
		`[]`,
		`{"identifier":"a"}`,
		`[{"identifier":"a","relations":{"r":{"target":"b"}}},{"identifier":"b"}]`,
		`{"identifier":"a","schema":{"properties":{"p":{"type":"array","items":{"type":"array","items":{}}}},"required":[]}}`,
		`{"identifier":"a","x":"<&>\u2028","schema":{"properties":{"p":{"type":"string","enum":[1.0,"\u00e9"],"default":null}}}}`,
		`{"identifier":"a","identifier":"a","Title":1}`,
		"\xEF\xBB\xBF[{\"identifier\":\"\xff\"}]",
		`[null, 1, "x", {"identifier":"bad id"}]`,
		`{"identifier":"a","schema":{"properties":{"p":{"type":"strin"}},"required":["q"]}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	// Real files make the best starting points; they are optional here, as in the
	// corpus test.
	files, _ := findCorpus()
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		bps, err := Parse(data)
		if err != nil {
			if bps != nil {
				t.Fatalf("Parse returned blueprints with error %v", err)
			}
			return
		}
		for _, b := range bps {
			if err := b.Validate(); err != nil {
				t.Fatalf("Parse accepted a blueprint Validate refuses: %v", err)
			}
		}
		out, err := json.Marshal(bps)
		if err != nil {
			t.Fatalf("Marshal of parsed blueprints: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(bps)): %v\ninput:  %q\noutput: %s", err, data, out)
		}
		if !reflect.DeepEqual(again, bps) {
			t.Fatalf("round trip changed the value\ninput:  %q\noutput: %s\nfirst:  %#v\nsecond: %#v", data, out, bps, again)
		}
		// The set builds from anything Parse returns.
		s := NewSet(bps)
		if s.Len() != len(bps) {
			t.Fatalf("NewSet has %d blueprints, Parse returned %d with unique identifiers", s.Len(), len(bps))
		}
		_ = s.MissingTargets()
	})
}
