package jsonstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// event is one result of Next in a form tests can compare: an item's text, or
// a *SyntaxError, or "EOF".
type event struct {
	item string
	err  *SyntaxError
}

func (e event) String() string {
	if e.err != nil {
		return fmt.Sprintf("error{%d, %d, %q}", e.err.Offset, e.err.Line, e.err.Msg)
	}
	return fmt.Sprintf("item %q", e.item)
}

func item(s string) event { return event{item: s} }

// errEv matches a *SyntaxError at offset/line whose message contains msg.
func errEv(offset int64, line int, msg string) event {
	return event{err: &SyntaxError{Offset: offset, Line: line, Msg: msg}}
}

// config is one way of feeding input to a Reader. Every table case runs
// under each, so items and errors must not depend on how input arrives.
type config struct {
	name string
	opts Options
	wrap func(io.Reader) io.Reader
}

var configs = []config{
	{"default", Options{}, func(r io.Reader) io.Reader { return r }},
	{"onebyte-buf1", Options{BufferSize: 1}, iotest.OneByteReader},
	{"half-buf3", Options{BufferSize: 3}, iotest.HalfReader},
	{"dataerr-buf7", Options{BufferSize: 7}, iotest.DataErrReader},
	{"onebyte-buf64", Options{BufferSize: 64}, iotest.OneByteReader},
}

// collect reads r to the end, returning all events. It fails the test on a
// non-syntax error or if reading does not end.
func collect(t testing.TB, r *Reader, limit int) []event {
	t.Helper()
	var evs []event
	for n := 0; ; n++ {
		if n > limit {
			t.Fatalf("no end after %d calls to Next; events so far: %v", n, evs)
		}
		b, err := r.Next()
		if err == io.EOF {
			return evs
		}
		if err != nil {
			var serr *SyntaxError
			if !errors.As(err, &serr) {
				t.Fatalf("Next: unexpected error type %T: %v", err, err)
			}
			evs = append(evs, event{err: serr})
			if r.Format() == Array {
				// Array errors are final: the same error again.
				if _, err2 := r.Next(); err2 != err {
					t.Fatalf("Array error not final: then %v", err2)
				}
				return evs
			}
			continue
		}
		if len(b) == 0 {
			t.Fatalf("Next returned an empty item")
		}
		evs = append(evs, item(string(b)))
	}
}

func sameEvents(got, want []event) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if (g.err == nil) != (w.err == nil) {
			return false
		}
		if g.err == nil {
			if g.item != w.item {
				return false
			}
			continue
		}
		if g.err.Offset != w.err.Offset || g.err.Line != w.err.Line || !strings.Contains(g.err.Msg, w.err.Msg) {
			return false
		}
	}
	return true
}

type readerCase struct {
	name   string
	in     string
	opts   Options // MaxItemBytes is applied on top of each config
	format Format
	want   []event
}

func runCases(t *testing.T, cases []readerCase) {
	t.Helper()
	for _, tc := range cases {
		for _, cfg := range configs {
			t.Run(tc.name+"/"+cfg.name, func(t *testing.T) {
				opts := cfg.opts
				opts.MaxItemBytes = tc.opts.MaxItemBytes
				r := NewReader(cfg.wrap(strings.NewReader(tc.in)), opts)
				if f := r.Format(); f != Unknown {
					t.Fatalf("Format before Next = %v, want unknown", f)
				}
				got := collect(t, r, 10*len(tc.in)+10)
				if !sameEvents(got, tc.want) {
					t.Errorf("input %q\n got: %v\nwant: %v", tc.in, got, tc.want)
				}
				if f := r.Format(); f != tc.format {
					t.Errorf("Format = %v, want %v", f, tc.format)
				}
				// After the end, Next keeps returning the same final result.
				if _, err := r.Next(); err == nil {
					t.Errorf("Next after end returned an item")
				}
			})
		}
	}
}

func TestFormats(t *testing.T) {
	runCases(t, []readerCase{
		{name: "array", in: `[1, "a", {"b": [2, {}]}, [3], true, null, -1.5e3]`, format: Array, want: []event{
			item(`1`), item(`"a"`), item(`{"b": [2, {}]}`), item(`[3]`), item(`true`), item(`null`), item(`-1.5e3`),
		}},
		{name: "array-pretty", in: "[\n  {\n    \"a\": 1\n  },\n  {\"b\":2}\n]\n", format: Array, want: []event{
			item("{\n    \"a\": 1\n  }"), item(`{"b":2}`),
		}},
		{name: "array-whitespace", in: " \t\r\n[ 1 ,\n\t2\r\n, 3 ] \n", format: Array, want: []event{item(`1`), item(`2`), item(`3`)}},
		{name: "empty-array", in: `[]`, format: Array},
		{name: "empty-array-spaced", in: "  [ \n ]  \n", format: Array},
		{name: "single-object", in: `{"a":1,"b":[1,2,{"c":null}]}`, format: Sequence, want: []event{item(`{"a":1,"b":[1,2,{"c":null}]}`)}},
		{name: "pretty-object", in: "{\n  \"a\": {\n    \"b\": [\n      1\n    ]\n  }\n}\n", format: Sequence, want: []event{
			item("{\n  \"a\": {\n    \"b\": [\n      1\n    ]\n  }\n}"),
		}},
		{name: "ndjson", in: "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n", format: Sequence, want: []event{item(`{"a":1}`), item(`{"a":2}`), item(`{"a":3}`)}},
		{name: "ndjson-blank-lines-crlf", in: "\r\n{\"a\":1}\r\n\r\n\r\n{\"a\":2}\r\n   \r\n{\"a\":3}", format: Sequence, want: []event{
			item(`{"a":1}`), item(`{"a":2}`), item(`{"a":3}`),
		}},
		{name: "pretty-concatenated", in: "{\n  \"a\": 1\n}\n{\n  \"b\": [\n    2\n  ]\n}{\"c\":3}", format: Sequence, want: []event{
			item("{\n  \"a\": 1\n}"), item("{\n  \"b\": [\n    2\n  ]\n}"), item(`{"c":3}`),
		}},
		{name: "concatenated-no-space", in: `{}{}[1]"a"1 2[]`, format: Sequence, want: []event{
			item(`{}`), item(`{}`), item(`[1]`), item(`"a"`), item(`1`), item(`2`), item(`[]`),
		}},
		{name: "scalars", in: "1 -2.5e+3 \"x\" true false null\n0", format: Sequence, want: []event{
			item(`1`), item(`-2.5e+3`), item(`"x"`), item(`true`), item(`false`), item(`null`), item(`0`),
		}},
		{name: "scalars-split-like-decoder", in: `truefalse 01 1-2 null"a"`, format: Sequence, want: []event{
			item(`true`), item(`false`), item(`0`), item(`1`), item(`1`), item(`-2`), item(`null`), item(`"a"`),
		}},
		{name: "bad-literal-is-an-item", in: "tru {\"a\":1}\nnul", format: Sequence, want: []event{item(`tru`), item(`{"a":1}`), item(`nul`)}},
		{name: "strings-with-brackets", in: `{"a":"[{]}","b":"}}}","c":"]"} {"d":"{"}`, format: Sequence, want: []event{
			item(`{"a":"[{]}","b":"}}}","c":"]"}`), item(`{"d":"{"}`),
		}},
		{name: "strings-with-escapes", in: `{"q":"say \"hi\" [","b":"\\","bq":"\\\"","end":"\\\\"}` + "\n" + `"\"" "\\" "\\\"}"`, format: Sequence, want: []event{
			item(`{"q":"say \"hi\" [","b":"\\","bq":"\\\"","end":"\\\\"}`), item(`"\""`), item(`"\\"`), item(`"\\\"}"`),
		}},
		{name: "strings-unicode", in: `["héllo wörld 😀", "\u00e9\ud83d\ude00", {"κλειδί":"值"}]`, format: Array, want: []event{
			item(`"héllo wörld 😀"`), item(`"\u00e9\ud83d\ude00"`), item(`{"κλειδί":"值"}`),
		}},
		{name: "strings-in-array", in: `["]", "[", ",", "\"]"]`, format: Array, want: []event{
			item(`"]"`), item(`"["`), item(`","`), item(`"\"]"`),
		}},
		{name: "nested-arrays", in: `[[1,[2,[3,[]]]],[],[[[]]]]`, format: Array, want: []event{
			item(`[1,[2,[3,[]]]]`), item(`[]`), item(`[[[]]]`),
		}},
		{name: "bom-array", in: "\xEF\xBB\xBF[1]", format: Array, want: []event{item(`1`)}},
		{name: "bom-ndjson", in: "\xEF\xBB\xBF{\"a\":1}\n{\"a\":2}", format: Sequence, want: []event{item(`{"a":1}`), item(`{"a":2}`)}},
		{name: "empty", in: "", format: Unknown},
		{name: "whitespace-only", in: " \r\n\t\n", format: Unknown},
		{name: "bom-only", in: "\xEF\xBB\xBF", format: Unknown},
	})
}

func TestErrors(t *testing.T) {
	runCases(t, []readerCase{
		// Array mode: structural errors are final.
		{name: "array-unterminated", in: "[1,\n2", format: Array, want: []event{
			item(`1`), item(`2`), errEv(5, 2, "unexpected end of input: unterminated array"),
		}},
		{name: "array-newline-in-string", in: "[1, {\"a\":\"x\n\"}]", format: Array, want: []event{
			item(`1`), errEv(11, 1, "unterminated string at end of line"),
		}},
		{name: "array-unterminated-element-eof", in: "[1, {\"a\":[1", format: Array, want: []event{
			item(`1`), errEv(4, 1, "unexpected end of input: unterminated object"),
		}},
		{name: "array-missing-comma", in: "[1 2]", format: Array, want: []event{
			item(`1`), errEv(3, 1, "invalid character '2' after array element (missing ',')"),
		}},
		{name: "array-missing-comma-objects", in: "[{}\n{}]", format: Array, want: []event{
			item(`{}`), errEv(4, 2, "missing ','"),
		}},
		{name: "array-trailing-comma", in: "[1,]", format: Array, want: []event{item(`1`), errEv(3, 1, "unexpected ']' after ','")}},
		{name: "array-leading-comma", in: "[,1]", format: Array, want: []event{errEv(1, 1, "invalid character ','")}},
		{name: "array-trailing-garbage", in: "[1]\n x", format: Array, want: []event{item(`1`), errEv(5, 2, "after top-level array")}},
		{name: "array-then-array", in: "[1]\n[2]", format: Array, want: []event{item(`1`), errEv(4, 2, "after top-level array")}},
		{name: "array-stray-brace", in: "[}", format: Array, want: []event{errEv(1, 1, "invalid character '}'")}},
		{name: "array-mismatch", in: "[{\"a\":[1}]", format: Array, want: []event{errEv(8, 1, "unexpected '}' in array (expected ']')")}},
		{name: "array-only-open", in: "[", format: Array, want: []event{errEv(1, 1, "unterminated array")}},

		// Sequence mode: report, skip to the next newline, carry on.
		{name: "seq-stray-bracket", in: "{\"a\":1}\n]\n{\"b\":2}", format: Sequence, want: []event{
			item(`{"a":1}`), errEv(8, 2, "invalid character ']'"), item(`{"b":2}`),
		}},
		{name: "seq-stray-rest-of-line-skipped", in: "} {\"x\":1}\n{\"b\":2}", format: Sequence, want: []event{
			errEv(0, 1, "invalid character '}'"), item(`{"b":2}`),
		}},
		{name: "seq-mismatch", in: "{\"a\":[1}\n{\"b\":2}\n", format: Sequence, want: []event{
			errEv(7, 1, "unexpected '}' in array (expected ']')"), item(`{"b":2}`),
		}},
		{name: "seq-unterminated-string-line", in: "{\"a\":\"x\n{\"b\":2}\n", format: Sequence, want: []event{
			errEv(7, 1, "unterminated string at end of line"), item(`{"b":2}`),
		}},
		{name: "seq-commas-between", in: "{\"a\":1},\n{\"b\":2}", format: Sequence, want: []event{
			item(`{"a":1}`), errEv(7, 1, "invalid character ','"), item(`{"b":2}`),
		}},
		{name: "seq-garbage-line", in: "x y z\n{\"a\":1}", format: Sequence, want: []event{
			errEv(0, 1, "invalid character 'x'"), item(`{"a":1}`),
		}},
		{name: "seq-unterminated-eof", in: "{\"a\":1}\n{\"b\":", format: Sequence, want: []event{
			item(`{"a":1}`), errEv(8, 2, "unexpected end of input: unterminated object"),
		}},
		{name: "seq-unterminated-string-eof", in: `"abc`, format: Sequence, want: []event{
			errEv(0, 1, "unexpected end of input: unterminated string"),
		}},
		{name: "seq-pretty-unterminated", in: "{\n  \"a\": 1,\n", format: Sequence, want: []event{
			errEv(0, 1, "unterminated object"),
		}},
		// A record truncated outside a string swallows the records after it;
		// they are recovered line by line.
		{name: "seq-truncated-record", in: "{\"a\":1\n{\"b\":2}\n{\"c\":3}\n", format: Sequence, want: []event{
			errEv(0, 1, "unexpected end of input: unterminated object"), item(`{"b":2}`), item(`{"c":3}`),
		}},
		{name: "seq-truncated-records", in: "{\"a\":[1\n{\"b\":2}\n{\"c\":3\n{\"d\":4}\n", format: Sequence, want: []event{
			errEv(0, 1, "unexpected end of input: unterminated object"), item(`{"b":2}`),
			errEv(22, 3, "unterminated object at end of line"), item(`{"d":4}`),
		}},
		{name: "seq-truncated-eof-balanced-lines", in: "{\"a\":[1,\n{\"b\":2}\n{\"c\":3}\n", format: Sequence, want: []event{
			errEv(0, 1, "unexpected end of input: unterminated object"), item(`{"b":2}`), item(`{"c":3}`),
		}},
		{name: "seq-truncated-then-mismatch", in: "{\"a\":[1,\n{\"b\":2}\n{\"c\":3}}\n{\"d\":4}", format: Sequence, want: []event{
			errEv(24, 3, "unexpected '}' in array"), item(`{"b":2}`), item(`{"c":3}`),
			errEv(24, 3, "invalid character '}'"), item(`{"d":4}`),
		}},
		// The second line is not a record on its own, so no rewind: skip
		// from the error to the next newline.
		{name: "seq-mismatch-no-rewind", in: "{\"a\":{\"x\":1\n[1]]\n{\"c\":3}\n", format: Sequence, want: []event{
			errEv(15, 2, "unexpected ']' in object (expected '}')"), item(`{"c":3}`),
		}},
	})
}

func TestMaxItemBytes(t *testing.T) {
	big := `{"big":"` + strings.Repeat("x", 40) + `"}`
	runCases(t, []readerCase{
		{name: "ndjson", in: "{\"a\":1}\n" + big + "\n{\"b\":2}\n", opts: Options{MaxItemBytes: 20}, format: Sequence, want: []event{
			item(`{"a":1}`), errEv(8, 2, "item exceeds the limit of 20 bytes"), item(`{"b":2}`),
		}},
		{name: "exactly-limit", in: `{"a":"` + strings.Repeat("x", 12) + `"}`, opts: Options{MaxItemBytes: 20}, format: Sequence, want: []event{
			item(`{"a":"` + strings.Repeat("x", 12) + `"}`),
		}},
		{name: "one-over-limit", in: `{"a":"` + strings.Repeat("x", 13) + `"}` + "\n1", opts: Options{MaxItemBytes: 20}, format: Sequence, want: []event{
			errEv(0, 1, "exceeds the limit of 20 bytes"), item(`1`),
		}},
		{name: "pretty-skipped-whole", in: "{\n  \"big\": \"" + strings.Repeat("y", 40) + "\",\n  \"n\": [1, 2]\n}\n{\"b\":2}", opts: Options{MaxItemBytes: 20}, format: Sequence, want: []event{
			errEv(0, 1, "exceeds the limit"), item(`{"b":2}`),
		}},
		{name: "same-line-after-big", in: big + ` {"b":2}` + "\n{\"c\":3}", opts: Options{MaxItemBytes: 20}, format: Sequence, want: []event{
			errEv(0, 1, "exceeds the limit"), item(`{"b":2}`), item(`{"c":3}`),
		}},
		{name: "big-scalar", in: "12345678901234567890123456789 7\n8", opts: Options{MaxItemBytes: 10}, format: Sequence, want: []event{
			errEv(0, 1, "exceeds the limit of 10 bytes"), item(`8`),
		}},
		{name: "big-unterminated-then-records", in: "{\"a\":[1,2,3,\n{\"b\":2}\n{\"c\":3}\n" + strings.Repeat("{\"d\":4}\n", 10), opts: Options{MaxItemBytes: 30}, format: Sequence, want: append([]event{
			errEv(0, 1, "exceeds the limit of 30 bytes"), item(`{"b":2}`), item(`{"c":3}`)},
			repeatEv(item(`{"d":4}`), 10)...),
		},
		{name: "array", in: `[1, ` + big + `, 2]`, opts: Options{MaxItemBytes: 20}, format: Array, want: []event{
			item(`1`), errEv(4, 1, "exceeds the limit of 20 bytes"),
		}},
		{name: "array-under-limit", in: `[1, ` + big + `, 2]`, opts: Options{MaxItemBytes: len(big)}, format: Array, want: []event{
			item(`1`), item(big), item(`2`),
		}},
	})
}

func repeatEv(e event, n int) []event {
	out := make([]event, n)
	for i := range out {
		out[i] = e
	}
	return out
}

func TestIndex(t *testing.T) {
	r := NewReader(strings.NewReader("{\"a\":1}\n]\n{\"b\":2}\n"), Options{})
	if r.Index() != -1 {
		t.Fatalf("Index before Next = %d, want -1", r.Index())
	}
	for want := 0; want < 3; want++ {
		_, err := r.Next()
		if (err != nil) != (want == 1) {
			t.Fatalf("Next %d: err = %v", want, err)
		}
		if r.Index() != want {
			t.Fatalf("Index = %d, want %d", r.Index(), want)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next = %v, want EOF", err)
	}
	if r.Index() != 2 {
		t.Fatalf("Index after EOF = %d, want 2", r.Index())
	}
}

func TestSyntaxErrorString(t *testing.T) {
	err := &SyntaxError{Offset: 42, Line: 3, Msg: "boom"}
	if got, want := err.Error(), "line 3, byte offset 42: boom"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestFormatString(t *testing.T) {
	for f, want := range map[Format]string{Unknown: "unknown", Array: "array", Sequence: "sequence", 7: "Format(7)"} {
		if got := f.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(f), got, want)
		}
	}
}

// TestReadError checks that items before a failed read are still returned
// and the read error itself is then final.
func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	for _, in := range []string{"{\"a\":1}\n{\"b\":2}\n{\"c\"", "[{\"a\":1},{\"b\":2},{\"c\""} {
		r := NewReader(io.MultiReader(strings.NewReader(in), iotest.ErrReader(boom)), Options{BufferSize: 4})
		for _, want := range []string{`{"a":1}`, `{"b":2}`} {
			b, err := r.Next()
			if err != nil || string(b) != want {
				t.Fatalf("%q: Next = %q, %v; want %q", in, b, err, want)
			}
		}
		for range 2 {
			if _, err := r.Next(); err != boom {
				t.Fatalf("%q: Next = %v, want %v", in, err, boom)
			}
		}
	}
}

// TestItemValidUntilNext checks the documented contract and that an item
// cannot be extended into the buffer by append.
func TestItemCapacity(t *testing.T) {
	r := NewReader(strings.NewReader(`{"a":1} {"b":2}`), Options{})
	b, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if cap(b) != len(b) {
		t.Fatalf("cap(item) = %d, want %d", cap(b), len(b))
	}
	_ = append(b, 'x')
	if b2, _ := r.Next(); string(b2) != `{"b":2}` {
		t.Fatalf("second item = %q", b2)
	}
}

// TestBufferStaysSmall checks that memory stays flat: a long stream of small
// items never grows the buffer, and a large item grows it only to its size.
func TestBufferStaysSmall(t *testing.T) {
	rec := `{"id":1,"name":"x"}` + "\n"
	in := strings.Repeat(rec, 100000) // ~2 MB
	r := NewReader(strings.NewReader(in), Options{BufferSize: 4096})
	n := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 100000 {
		t.Fatalf("got %d items", n)
	}
	if len(r.buf) != 4096 {
		t.Fatalf("buffer grew to %d bytes for small items", len(r.buf))
	}

	bigItem := `{"s":"` + strings.Repeat("x", 100000) + `"}`
	r = NewReader(strings.NewReader(rec+bigItem+"\n"+rec), Options{BufferSize: 4096})
	for range 3 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.buf) > 4*len(bigItem) {
		t.Fatalf("buffer grew to %d bytes for a %d-byte item", len(r.buf), len(bigItem))
	}
}

// TestStreams checks that items are returned as soon as they are complete,
// before the input ends: the Reader must not read ahead to the end.
func TestStreams(t *testing.T) {
	for _, in := range []string{"{\"a\":1}\n", "[{\"a\":1},"} {
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte(in)) // the rest never comes until Next returns
		}()
		r := NewReader(pr, Options{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			b, err := r.Next()
			if err != nil || string(b) != `{"a":1}` {
				t.Errorf("%q: Next = %q, %v", in, b, err)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%q: Next blocked waiting for more input", in)
		}
		pw.Close()
	}
}

// TestOffsetsAndLines checks Offset and Line against the input for an error
// deep in a long NDJSON stream read through a small buffer, so line counting
// across buffer refills is exercised.
func TestOffsetsAndLines(t *testing.T) {
	var in bytes.Buffer
	for i := range 5000 {
		fmt.Fprintf(&in, "{\"i\":%d,\"s\":\"%s\"}\r\n", i, strings.Repeat("a", i%37))
	}
	off := in.Len()
	in.WriteString("{\"bad\":[}\n{\"ok\":1}\n")
	r := NewReader(bytes.NewReader(in.Bytes()), Options{BufferSize: 100})
	var serr *SyntaxError
	items := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if !errors.As(err, &serr) {
				t.Fatal(err)
			}
			continue
		}
		items++
	}
	if items != 5001 || serr == nil {
		t.Fatalf("items = %d, err = %v", items, serr)
	}
	if want := int64(off + 8); serr.Offset != want || serr.Line != 5001 {
		t.Fatalf("error at offset %d line %d, want offset %d line 5001", serr.Offset, serr.Line, want)
	}
}

// decodeAll returns the values encoding/json reads from in, as the Reader
// should yield them: the elements of a top-level array (which must then be
// the only value), or the sequence of top-level values. ok is false if
// encoding/json rejects the input.
func decodeAll(in []byte) (vals [][]byte, format Format, ok bool) {
	in = bytes.TrimPrefix(in, []byte("\xEF\xBB\xBF"))
	trimmed := bytes.TrimLeft(in, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, Unknown, true
	}
	dec := json.NewDecoder(bytes.NewReader(in))
	if trimmed[0] == '[' {
		var arr []json.RawMessage
		if err := dec.Decode(&arr); err != nil {
			return nil, Array, false
		}
		var extra json.RawMessage
		if err := dec.Decode(&extra); err != io.EOF {
			return nil, Array, false
		}
		for _, v := range arr {
			vals = append(vals, v)
		}
		return vals, Array, true
	}
	for {
		var v json.RawMessage
		err := dec.Decode(&v)
		if err == io.EOF {
			return vals, Sequence, true
		}
		if err != nil {
			return nil, Sequence, false
		}
		vals = append(vals, v)
	}
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return "invalid:" + string(b)
	}
	return buf.String()
}
