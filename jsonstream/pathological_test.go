package jsonstream

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestPathological runs large hostile inputs (deep nesting, long backslash
// runs, an error on every line, truncated records) through the Reader in two
// chunkings and checks the counts of items and errors. Besides correctness,
// it guards against quadratic behaviour: before line numbers were counted
// lazily, "garbage-lines" alone took seconds.
func TestPathological(t *testing.T) {
	if testing.Short() {
		t.Skip("large inputs")
	}
	type counts struct{ items, errs int }
	cases := []struct {
		name     string
		in       string
		want     counts // with the default MaxItemBytes
		wantMax9 counts // with MaxItemBytes: 9
	}{
		{"open-lines", strings.Repeat("{\"a\":[1,\n", 100000), counts{0, 1}, counts{0, 1}},
		{"truncated-every-other", strings.Repeat("{\"a\":1\n{\"b\":2}\n", 50000), counts{50000, 50000}, counts{50000, 50000}},
		{"deep", strings.Repeat("[", 500000) + strings.Repeat("]", 500000), counts{1, 0}, counts{0, 1}},
		{"backslashes", "\"" + strings.Repeat("\\", 1000001) + "\"", counts{0, 1}, counts{0, 1}},
		{"escaped-quotes", "\"" + strings.Repeat("\\\"", 500000) + "\"", counts{1, 0}, counts{0, 1}},
		{"stray-closers", strings.Repeat("]", 1000000), counts{0, 1}, counts{0, 1}},
		{"garbage-lines", strings.Repeat("xx\n", 300000), counts{0, 300000}, counts{0, 300000}},
		{"newline-in-strings", strings.Repeat("{\"a\":\"\n", 200000), counts{0, 200000}, counts{0, 200000}},
		{"pretty-mismatched", strings.Repeat("{\n  \"a\": [1,\n  \"b\": 2\n}\n", 50000), counts{0, 50000}, counts{0, 50000}},
		{"scalars", strings.Repeat("1 ", 500000), counts{500000, 0}, counts{500000, 0}},
	}
	for _, tc := range cases {
		for _, maxItem := range []int{0, 9} {
			for _, small := range []bool{false, true} {
				var rd io.Reader = strings.NewReader(tc.in)
				opts := Options{MaxItemBytes: maxItem}
				if small {
					rd, opts.BufferSize = iotest.HalfReader(rd), 7
				}
				r := NewReader(rd, opts)
				var got counts
				for {
					_, err := r.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						if _, ok := err.(*SyntaxError); !ok {
							t.Fatal(err)
						}
						got.errs++
						if r.Format() == Array {
							break
						}
						continue
					}
					got.items++
				}
				want := tc.want
				if maxItem != 0 {
					want = tc.wantMax9
				}
				if got != want {
					t.Errorf("%s (max %d, small %v): got %+v, want %+v", tc.name, maxItem, small, got, want)
				}
			}
		}
	}
}
