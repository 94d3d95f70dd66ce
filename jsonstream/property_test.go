package jsonstream

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// genValue appends a random valid JSON value to b, with random whitespace
// inside composites (including newlines, so pretty-printed values are covered).
func genValue(rng *rand.Rand, b []byte, depth int) []byte {
	k := rng.IntN(10)
	if depth > 4 {
		k = rng.IntN(6)
	}
	switch k {
	case 0:
		return append(b, "null"...)
	case 1:
		if rng.IntN(2) == 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case 2, 3:
		return genNumber(rng, b)
	case 4, 5:
		return genString(rng, b)
	case 6, 7:
		b = append(b, '{')
		n := rng.IntN(5)
		for i := range n {
			if i > 0 {
				b = genSpace(rng, b)
				b = append(b, ',')
			}
			b = genSpace(rng, b)
			b = genString(rng, b)
			b = genSpace(rng, b)
			b = append(b, ':')
			b = genSpace(rng, b)
			b = genValue(rng, b, depth+1)
		}
		b = genSpace(rng, b)
		return append(b, '}')
	default:
		b = append(b, '[')
		n := rng.IntN(5)
		for i := range n {
			if i > 0 {
				b = genSpace(rng, b)
				b = append(b, ',')
			}
			b = genSpace(rng, b)
			b = genValue(rng, b, depth+1)
		}
		b = genSpace(rng, b)
		return append(b, ']')
	}
}

func genNumber(rng *rand.Rand, b []byte) []byte {
	if rng.IntN(3) == 0 {
		b = append(b, '-')
	}
	if rng.IntN(4) == 0 {
		b = append(b, '0')
	} else {
		b = append(b, byte('1'+rng.IntN(9)))
		for range rng.IntN(6) {
			b = append(b, byte('0'+rng.IntN(10)))
		}
	}
	if rng.IntN(3) == 0 {
		b = append(b, '.')
		for range 1 + rng.IntN(4) {
			b = append(b, byte('0'+rng.IntN(10)))
		}
	}
	if rng.IntN(4) == 0 {
		b = append(b, "eE"[rng.IntN(2)])
		if s := rng.IntN(3); s < 2 {
			b = append(b, "+-"[s])
		}
		for range 1 + rng.IntN(3) {
			b = append(b, byte('0'+rng.IntN(10)))
		}
	}
	return b
}

var stringPieces = []string{
	"a", "xyz", " ", "{", "}", "[", "]", ",", ":", `\"`, `\\`, `\/`, `\n`, `\t`, `\u00e9`, `\ud83d\ude00`,
	"é", "😀", "値", `\\\"`, `\\\\`, "'", "<>&",
}

func genString(rng *rand.Rand, b []byte) []byte {
	b = append(b, '"')
	for range rng.IntN(8) {
		b = append(b, stringPieces[rng.IntN(len(stringPieces))]...)
	}
	return append(b, '"')
}

func genSpace(rng *rand.Rand, b []byte) []byte {
	if rng.IntN(2) == 0 {
		return b
	}
	for range 1 + rng.IntN(3) {
		b = append(b, " \t\r\n"[rng.IntN(4)])
	}
	return b
}

// genInput returns a random input that encoding/json accepts: an array of
// values or a sequence of values, with random whitespace.
func genInput(rng *rand.Rand) []byte {
	var b []byte
	if rng.IntN(8) == 0 {
		b = append(b, "\xEF\xBB\xBF"...)
	}
	b = genSpace(rng, b)
	n := rng.IntN(6)
	if rng.IntN(2) == 0 {
		b = append(b, '[')
		for i := range n {
			b = genSpace(rng, b)
			if i > 0 {
				b = append(b, ',')
				b = genSpace(rng, b)
			}
			b = genValue(rng, b, 1)
		}
		b = genSpace(rng, b)
		b = append(b, ']')
	} else {
		for i := range n {
			if i > 0 {
				switch rng.IntN(3) {
				case 0:
					b = append(b, '\n')
				case 1:
					b = append(b, "\r\n\n"...)
				default:
					b = genSpace(rng, b) // possibly none: "1 2" vs "12" is for the decoder to say
				}
			}
			v := genValue(rng, nil, 0)
			for i == 0 && v[0] == '[' && n > 1 {
				// An input starting with '[' is one array by definition
				// (see Format), so a sequence must not start with one.
				v = genValue(rng, nil, 0)
			}
			b = append(b, v...)
		}
	}
	return genSpace(rng, b)
}

// readerKinds are the ways the property and fuzz tests feed a Reader.
var readerKinds = []func(io.Reader) io.Reader{
	func(r io.Reader) io.Reader { return r },
	iotest.OneByteReader,
	iotest.HalfReader,
	iotest.DataErrReader,
}

// TestMatchesDecoder compares the Reader with encoding/json.Decoder on random
// valid inputs, read in many chunkings.
func TestMatchesDecoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := range n {
		in := genInput(rng)
		want, format, ok := decodeAll(in)
		for tries := 0; !ok; tries++ {
			// Values run together ("1E5" "E+6") can make an invalid input.
			if tries > 100 {
				t.Fatalf("generator keeps producing input encoding/json rejects: %q", in)
			}
			in = genInput(rng)
			want, format, ok = decodeAll(in)
		}
		for k, wrap := range readerKinds {
			opts := Options{BufferSize: 1 + rng.IntN(32)}
			if k == 0 && i%2 == 0 {
				opts = Options{}
			}
			r := NewReader(wrap(bytes.NewReader(in)), opts)
			got := collect(t, r, len(in)+2)
			if err := compareValues(got, want); err != nil {
				t.Fatalf("input %q, reader %d, opts %+v: %v", in, k, opts, err)
			}
			if len(want) > 0 && r.Format() != format || format == Array && r.Format() != Array {
				t.Fatalf("input %q: Format = %v, want %v", in, r.Format(), format)
			}
		}
	}
}

// compareValues checks that events are exactly the values want (compared
// compacted, as the task states, and also byte for byte: both are raw slices
// of the same input).
func compareValues(got []event, want [][]byte) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d events %v, want %d values %q", len(got), got, len(want), want)
	}
	for i, e := range got {
		if e.err != nil {
			return fmt.Errorf("event %d: unexpected error %v", i, e.err)
		}
		if compact([]byte(e.item)) != compact(want[i]) || e.item != string(want[i]) {
			return fmt.Errorf("value %d: got %q, want %q", i, e.item, want[i])
		}
	}
	return nil
}

func FuzzReader(f *testing.F) {
	seeds := []string{
		``, ` `, `[]`, `[1,2,3]`, `{"a":1}`, "{\"a\":1}\n{\"b\":2}\n", "{\n \"a\": [1, {\"b\": null}]\n}\n{}",
		`"a\"b\\" "c"`, `truefalse 01 1-2`, `[1 2]`, `[1,]`, `[1] x`, "]\n{}", `{"a":[}`, "{\"a\":\"x\n{}\n",
		"{\"a\":[1\n{\"b\":2}\n{\"c\":3\n{\"d\":4}\n", "\xEF\xBB\xBF[{\"é\":\"😀\"}]", `[[[[[]]]]]`, `"\u00e9\ud83d\ude00"`,
		`{"x":"]}\"\\"}` + "\r\n" + `{"y":"\\\\"}`, `-0.5e+10 1E3`, `nul tru`, `{"a":1},{"b":2}`,
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i), uint16(0))
		f.Add([]byte(s), uint8(1), uint16(4+i))
	}
	f.Fuzz(func(t *testing.T, data []byte, bufSize uint8, maxItem uint16) {
		maxCalls := 3*len(data) + 10
		// The same input read all at once and one byte at a time through a
		// tiny buffer must give the same items and errors.
		base := Options{MaxItemBytes: int(maxItem)}
		whole := base
		whole.BufferSize = len(data) + 1 // one Read gets everything
		ra := NewReader(bytes.NewReader(data), whole)
		evA := collect(t, ra, maxCalls)
		small := base
		small.BufferSize = 1 + int(bufSize%32)
		rb := NewReader(iotest.OneByteReader(bytes.NewReader(data)), small)
		evB := collect(t, rb, maxCalls)
		if len(evA) != len(evB) {
			t.Fatalf("chunking changed the result:\n whole: %v\nbytes: %v", evA, evB)
		}
		for i := range evA {
			a, b := evA[i], evB[i]
			if a.item != b.item || (a.err == nil) != (b.err == nil) || a.err != nil && *a.err != *b.err {
				t.Fatalf("chunking changed event %d: %v vs %v", i, a, b)
			}
		}
		if ra.Format() != rb.Format() {
			t.Fatalf("chunking changed Format: %v vs %v", ra.Format(), rb.Format())
		}
		for _, e := range evA {
			if e.err == nil {
				if len(e.item) == 0 || !bytes.Contains(data, []byte(e.item)) {
					t.Fatalf("item %q is not part of the input", e.item)
				}
				if maxItem > 0 && len(e.item) > int(maxItem) {
					t.Fatalf("item of %d bytes exceeds MaxItemBytes %d", len(e.item), maxItem)
				}
				continue
			}
			if e.err.Offset < 0 || e.err.Offset > int64(len(data)) {
				t.Fatalf("error offset %d outside input of %d bytes", e.err.Offset, len(data))
			}
			if want := 1 + bytes.Count(data[:e.err.Offset], []byte("\n")); e.err.Line != want {
				t.Fatalf("error %v: line %d, want %d", e.err, e.err.Line, want)
			}
		}
		if maxItem != 0 && int(maxItem) < len(data) {
			return
		}
		want, format, ok := decodeAll(data)
		if !ok {
			return
		}
		if err := compareValues(evA, want); err != nil {
			t.Fatalf("input %q: %v", data, err)
		}
		if len(want) > 0 && ra.Format() != format {
			t.Fatalf("Format = %v, want %v", ra.Format(), format)
		}
	})
}

// TestGenInputSample keeps the generator honest: it must produce arrays,
// sequences, pretty layouts and escapes, or the property test is weak.
func TestGenInputSample(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var all strings.Builder
	for range 200 {
		all.Write(genInput(rng))
	}
	for _, want := range []string{"[", "{", "\n", `\"`, `\\`, "\xEF\xBB\xBF", "😀"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("generator never produced %q", want)
		}
	}
}
