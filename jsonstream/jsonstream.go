// Package jsonstream splits a JSON input into its items without decoding them.
//
// `configsync map --input` accepts three shapes of input and must not make the
// user say which: a JSON array of items, a single JSON value (usually one
// object, possibly pretty-printed), or a stream of whitespace-separated values
// (NDJSON, concatenated objects). Inputs can be many gigabytes, so the whole
// input is never held in memory: a Reader holds at most the item it is
// returning (bounded by Options.MaxItemBytes) plus one read buffer.
//
// The Reader only finds where each value begins and ends: it follows strings
// (with their escapes) and the nesting of {} and []. It does not validate or
// decode values; the mapper decodes each item and reports a malformed one as
// an error for that item. That split keeps this package fast (it is on the
// hot path ahead of the mapping engine) and keeps one bad item from stopping
// the others.
package jsonstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Default option values, used when the corresponding Options field is zero.
const (
	// DefaultMaxItemBytes bounds one item, so that a runaway or corrupt item
	// becomes an error instead of an out-of-memory crash.
	DefaultMaxItemBytes = 64 << 20
	// DefaultBufferSize is large enough that reads from a file or pipe are
	// cheap relative to scanning, and small enough to stay out of the way.
	DefaultBufferSize = 1 << 20
)

// Options tunes a Reader. The zero value is ready to use.
type Options struct {
	// MaxItemBytes is the largest item, in bytes, the Reader will hold.
	// A larger item is reported as a *SyntaxError rather than exhausting
	// memory. Zero or negative means DefaultMaxItemBytes.
	MaxItemBytes int
	// BufferSize is the initial size of the read buffer; the buffer grows
	// beyond it only to hold an item that does not fit (up to MaxItemBytes).
	// Zero or negative means DefaultBufferSize.
	BufferSize int
}

// Format is the shape of input a Reader detected.
type Format int

const (
	// Unknown is reported until the first call to Next has found the first
	// significant byte of the input, and stays so for an input that has none
	// (empty or whitespace only).
	Unknown Format = iota
	// Array is an input whose first significant byte is '['. Its items are
	// the elements of that one top-level array (any JSON values), and
	// anything but whitespace after its closing ']' is an error. So NDJSON
	// whose first record is itself an array is read as (a broken) Array:
	// the format is detected from one byte, and arrays of items are by far
	// the commoner input.
	Array
	// Sequence is any other input: top-level values, usually separated by
	// whitespace, which covers NDJSON, a single (pretty-printed) object and
	// concatenated objects. Its items are those top-level values. Scalars
	// are allowed and split where encoding/json's Decoder splits them (so
	// "1 2" and "truefalse" are two items each).
	Sequence
)

// String returns the lower-case name of f, for messages and logs.
func (f Format) String() string {
	switch f {
	case Unknown:
		return "unknown"
	case Array:
		return "array"
	case Sequence:
		return "sequence"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// SyntaxError reports a structural problem in the input: one that stops the
// Reader from knowing where an item begins or ends, as opposed to a malformed
// item, which the Reader returns as is for its caller to reject.
type SyntaxError struct {
	// Offset is the byte offset in the input (counting a leading BOM) of the
	// offending byte; or of the start of the item for errors about a whole
	// item (unterminated at end of input, larger than MaxItemBytes); or of
	// the end of input for an array that ends between elements.
	Offset int64
	// Line is the 1-based line of Offset, so users can find NDJSON records.
	Line int
	// Msg describes the problem.
	Msg string
}

// Error formats the error as "line L, byte offset O: msg".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d, byte offset %d: %s", e.Line, e.Offset, e.Msg)
}

// Reader yields the raw items of a JSON input one at a time.
//
// Errors are handled according to the format, because the two formats
// fail differently in practice. In Array mode the input is one value, so a
// structural error leaves no trustworthy way to find the next element: the
// error is final and every later Next returns it again. In Sequence mode one
// bad NDJSON record must not lose the rest, so after a *SyntaxError the Reader
// recovers by skipping to the next newline and carries on:
//   - an error inside a single line (a stray ']', mismatched brackets, an
//     unterminated string) skips the rest of that line;
//   - an unterminated value that swallowed the lines after it (a truncated
//     NDJSON record) is detected when its second line is itself a complete
//     object or array: the Reader resumes there and, until it is past the
//     point the bad value reached, treats each line as a separate record;
//   - an item over MaxItemBytes is skipped to its end without being held.
//
// Subsequent items are then returned as usual.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	r       io.Reader
	buf     []byte
	pos     int   // start of unconsumed data (the start of the item being scanned)
	end     int   // end of valid data in buf
	base    int64 // input offset of buf[0]
	lineOff int64 // input offset up to which newlines have been counted
	lineNum int   // newlines in the input before lineOff
	rerr    error // sticky error from r; io.EOF at end of input
	maxItem int
	bufSize int
	capMax  int // the buffer never grows past this

	format   Format
	arr      arrayState
	final    error // once set, returned by every later Next
	index    int
	skipLine bool  // Sequence recovery: discard input through the next newline
	strictTo int64 // Sequence recovery: before this offset, values may not span lines
	scan     scanState
}

// arrayState is where an Array-mode Reader stands between elements.
type arrayState int

const (
	arrStart arrayState = iota // after '[': an element or ']'
	arrElem                    // after an element: ',' or ']'
	arrComma                   // after ',': an element
	arrDone                    // after ']': only whitespace
)

// NewReader returns a Reader reading from r. It neither reads nor allocates
// its buffer until the first call to Next.
func NewReader(r io.Reader, opts Options) *Reader {
	if opts.MaxItemBytes <= 0 {
		opts.MaxItemBytes = DefaultMaxItemBytes
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = DefaultBufferSize
	}
	return &Reader{
		r:       r,
		maxItem: opts.MaxItemBytes,
		bufSize: opts.BufferSize,
		capMax:  max(opts.BufferSize, opts.MaxItemBytes+1),
		index:   -1,
	}
}

// Format returns the detected shape of the input: Unknown before the first
// call to Next (and for an input with no significant byte), then Array or
// Sequence.
func (r *Reader) Format() Format { return r.format }

// Index returns the 0-based index of the item last returned by Next, or -1
// before the first. It counts items, not lines. A *SyntaxError counts as an
// item too (Index then names the bad item; a final Array error counts once),
// so that in NDJSON the index of a record does not depend on whether an
// earlier record was broken.
func (r *Reader) Index() int { return r.index }

// Next returns the raw bytes of the next item, or io.EOF after the last one.
// The bytes are valid only until the next call to Next: callers that keep an
// item must copy it. Errors are a *SyntaxError for structural problems (see
// Reader for how reading continues after one), io.EOF, or an error from the
// underlying reader, which is final.
func (r *Reader) Next() ([]byte, error) {
	if r.final != nil {
		return nil, r.final
	}
	if r.format == Unknown {
		if err := r.detect(); err != nil {
			r.final = err
			return nil, err
		}
	}
	var item []byte
	var err error
	if r.format == Array {
		item, err = r.nextArray()
	} else {
		item, err = r.nextSequence()
	}
	if err == nil {
		r.index++
		return item, nil
	}
	var serr *SyntaxError
	if errors.As(err, &serr) {
		r.index++
		if r.format == Array {
			r.final = err
		}
	} else {
		r.final = err
	}
	return nil, err
}

// detect skips a leading BOM and whitespace and decides the format from the
// first significant byte.
func (r *Reader) detect() error {
	for r.end-r.pos < 3 {
		if _, ok := r.more(); !ok {
			break
		}
	}
	if r.end-r.pos >= 3 && r.buf[r.pos] == 0xEF && r.buf[r.pos+1] == 0xBB && r.buf[r.pos+2] == 0xBF {
		r.pos += 3
	}
	c, ok := r.skipSpace()
	if !ok {
		return r.rerr
	}
	if c == '[' {
		r.format = Array
		r.pos++
	} else {
		r.format = Sequence
	}
	return nil
}

// nextArray returns the next element of the top-level array, checking the
// commas and brackets around it.
func (r *Reader) nextArray() ([]byte, error) {
	for {
		c, ok := r.skipSpace()
		if !ok {
			if r.rerr != io.EOF {
				return nil, r.rerr
			}
			if r.arr == arrDone {
				return nil, io.EOF
			}
			return nil, r.errAt(r.end, "unexpected end of input: unterminated array")
		}
		switch r.arr {
		case arrDone:
			return nil, r.errAt(r.pos, fmt.Sprintf("invalid character %s after top-level array"+
				" (an input starting with '[' must be a single array)", quoteByte(c)))
		case arrElem:
			switch c {
			case ',':
				r.pos++
				r.arr = arrComma
			case ']':
				r.pos++
				r.arr = arrDone
			default:
				return nil, r.errAt(r.pos, fmt.Sprintf("invalid character %s after array element (missing ',')", quoteByte(c)))
			}
			continue
		case arrStart, arrComma:
			if c == ']' {
				if r.arr == arrComma {
					return nil, r.errAt(r.pos, "unexpected ']' after ','")
				}
				r.pos++
				r.arr = arrDone
				continue
			}
		}
		var e int
		var err error
		switch {
		case c == '{' || c == '[' || c == '"':
			e, err = r.scanValue(false)
		case scalarStart[c]:
			e, err = r.scanScalar(false)
		default:
			err = r.errAt(r.pos, fmt.Sprintf("invalid character %s looking for beginning of value", quoteByte(c)))
		}
		if err != nil {
			return nil, err
		}
		item := r.buf[r.pos:e:e]
		r.pos = e
		r.arr = arrElem
		return item, nil
	}
}

// nextSequence returns the next top-level value, resynchronizing first if
// the previous call reported an error.
func (r *Reader) nextSequence() ([]byte, error) {
	if r.skipLine {
		r.skipThroughNewline()
	}
	c, ok := r.skipSpace()
	if !ok {
		return nil, r.rerr
	}
	var e int
	var err error
	switch {
	case c == '{' || c == '[' || c == '"':
		e, err = r.scanValue(true)
	case scalarStart[c]:
		e, err = r.scanScalar(true)
	default:
		err = r.errAt(r.pos, fmt.Sprintf("invalid character %s looking for beginning of value", quoteByte(c)))
		r.pos++
		r.skipLine = true
	}
	if err != nil {
		return nil, err
	}
	item := r.buf[r.pos:e:e]
	r.pos = e
	return item, nil
}

// scanValue scans the string, object or array starting at r.buf[r.pos] and
// returns the index just past it; r.pos still marks its start. On error in
// Sequence mode (seq) it has already repositioned the Reader to recover.
func (r *Reader) scanValue(seq bool) (int, error) {
	st := &r.scan
	first := r.buf[r.pos]
	st.inStr = first == '"'
	st.stack = st.stack[:0]
	if !st.inStr {
		st.stack = append(st.stack, first)
	}
	i := r.pos + 1
	// limitErr is set once the item is known to exceed maxItem and the
	// Reader is skipping the rest of it (Sequence mode) without holding it.
	var limitErr error
	for {
		b := r.buf[:r.end]
		if limitErr == nil {
			b = r.window()
		}
		strictEnd := 0
		if r.strictTo > r.base {
			strictEnd = int(min(r.strictTo-r.base, int64(len(b))))
		}
		var status scanStatus
		i, status = st.scan(b, i, strictEnd)
		switch status {
		case scanDone:
			return r.finish(i, seq, limitErr)
		case scanMismatch:
			top := st.stack[len(st.stack)-1]
			return 0, r.fail(seq, i, fmt.Sprintf("unexpected %s in %s (expected %s)",
				quoteByte(b[i]), kindName(top), quoteByte(top+2)), limitErr)
		case scanStringNewline:
			return 0, r.fail(seq, i, "unterminated string at end of line", limitErr)
		case scanNewline:
			return 0, r.fail(seq, i, "unterminated "+kindName(first)+" at end of line", limitErr)
		}
		// scanMore: b is used up.
		if limitErr == nil && len(b)-r.pos > r.maxItem {
			limitErr = r.limitErr()
			if !seq {
				return 0, limitErr
			}
			ok, shift := r.rewind(len(b), len(b))
			if ok {
				return 0, limitErr
			}
			i -= shift
		}
		if limitErr != nil {
			r.pos = min(i, r.end) // hold nothing of the skipped item
			if len(b) < r.end {
				continue // only the window was scanned; go on past it
			}
		}
		shift, ok := r.more()
		i -= shift
		if !ok {
			if r.rerr != io.EOF {
				return 0, r.rerr
			}
			if limitErr != nil {
				r.pos = r.end
				return 0, limitErr
			}
			err := r.errAt(r.pos, "unexpected end of input: unterminated "+kindName(first))
			if seq {
				if ok, _ := r.rewind(r.end, r.end); !ok {
					r.pos = r.end
				}
			}
			return 0, err
		}
	}
}

// scanStatus says why scanState.scan stopped.
type scanStatus uint8

const (
	scanDone          scanStatus = iota // the value ends just before the returned index
	scanMore                            // the input ran out; resume at the returned index
	scanMismatch                        // the byte at the returned index closes the wrong bracket
	scanStringNewline                   // the byte at the returned index is a newline in a string
	scanNewline                         // a newline outside strings, before strictEnd
)

// scanState is where scanning of one value stands, so that it can resume
// when more input arrives.
type scanState struct {
	stack []byte // open brackets, outermost first
	inStr bool
}

// scan advances through b from i, a position inside the value that no
// backslash escapes. It is the hot loop of the package, kept small so that
// its state stays in registers.
func (st *scanState) scan(b []byte, i, strictEnd int) (int, scanStatus) {
	stack, inStr := st.stack, st.inStr
	for {
		if inStr {
			var s scanStatus
			if i, s = scanString(b, i); s != scanDone {
				st.stack, st.inStr = stack, true
				return i, s
			}
			inStr = false
			if len(stack) == 0 {
				st.stack, st.inStr = stack, false
				return i, scanDone
			}
		}
		// Find the next '"', bracket or newline, 8 bytes at a time: the
		// gaps between strings are short, so this rarely loops.
		for {
			if i+8 <= len(b) {
				v := binary.LittleEndian.Uint64(b[i:])
				if m := zeroBytes(brackets(v)) | zeroBytes(v^(lsb*'"')) | zeroBytes(v^(lsb*'\n')); m != 0 {
					i += bits.TrailingZeros64(m) >> 3
					break
				}
				i += 8
				continue
			}
			if i = indexStructural(b, i); i >= len(b) {
				st.stack, st.inStr = stack, false
				return i, scanMore
			}
			break
		}
		switch c := b[i]; c {
		case '"':
			inStr = true
		case '{', '[':
			stack = append(stack, c)
		case '}', ']':
			n := len(stack) - 1
			if stack[n] != c-2 {
				st.stack, st.inStr = stack, false
				return i, scanMismatch
			}
			stack = stack[:n]
			if n == 0 {
				st.stack, st.inStr = stack, false
				return i + 1, scanDone
			}
		case '\n':
			if i < strictEnd {
				st.stack, st.inStr = stack, false
				return i, scanNewline
			}
		}
		i++
	}
}

// scanString finds the end of a string whose contents continue at b[i], a
// position no backslash escapes. It returns the index just past the closing
// quote and scanDone; or the index of a raw newline in the string (invalid
// JSON, and a sign of a truncated NDJSON record) and scanStringNewline; or,
// when b runs out, the index to resume at and scanMore.
func scanString(b []byte, i int) (int, scanStatus) {
	// Most strings are short: look at up to two words directly.
	for words := 0; words < 2 && i+8 <= len(b); {
		v := binary.LittleEndian.Uint64(b[i:])
		m := zeroBytes(v^(lsb*'"')) | zeroBytes(v^(lsb*'\\')) | zeroBytes(v^(lsb*'\n'))
		if m == 0 {
			i += 8
			words++
			continue
		}
		i += bits.TrailingZeros64(m) >> 3
		switch b[i] {
		case '"':
			return i + 1, scanDone
		case '\n':
			return i, scanStringNewline
		}
		// A backslash and the byte it escapes, which must be there to be
		// checked: a raw newline is no more valid escaped than not.
		if i+1 >= len(b) {
			return i, scanMore
		}
		if b[i+1] == '\n' {
			return i + 1, scanStringNewline
		}
		i += 2
	}
	// A long string: let bytes.IndexByte (vectorized) find quotes, and
	// count the backslashes before each to see whether it is escaped.
	for i < len(b) {
		k := bytes.IndexByte(b[i:], '"')
		if k < 0 {
			if nl := bytes.IndexByte(b[i:], '\n'); nl >= 0 {
				return i + nl, scanStringNewline
			}
			// Resume before any trailing backslashes, so that the next
			// call sees them whole.
			p := len(b)
			for p > i && b[p-1] == '\\' {
				p--
			}
			return p, scanMore
		}
		q := i + k
		if nl := bytes.IndexByte(b[i:q], '\n'); nl >= 0 {
			return i + nl, scanStringNewline
		}
		p := q
		for p > i && b[p-1] == '\\' {
			p--
		}
		if (q-p)%2 == 0 {
			return q + 1, scanDone
		}
		i = q + 1
	}
	return i, scanMore
}

// window returns the buffered data that the item starting at r.pos may
// occupy: at most one byte more than maxItem, so that the limit is detected
// at the same point however the input arrives.
func (r *Reader) window() []byte {
	if r.end-r.pos > r.maxItem {
		return r.buf[:r.pos+r.maxItem+1]
	}
	return r.buf[:r.end]
}

// finish completes scanValue for a value ending just before e.
func (r *Reader) finish(e int, seq bool, limitErr error) (int, error) {
	if limitErr == nil && e-r.pos > r.maxItem {
		limitErr = r.limitErr()
	}
	if limitErr != nil {
		if seq {
			r.pos = e // the item is complete, so skip exactly it
		}
		return 0, limitErr
	}
	return e, nil
}

// fail reports a structural error at index at while scanning a value and, in
// Sequence mode, positions the Reader to recover.
func (r *Reader) fail(seq bool, at int, msg string, limitErr error) error {
	if limitErr != nil {
		// The over-long item was already reported; just resynchronize.
		r.pos = at
		r.skipLine = true
		return limitErr
	}
	err := r.errAt(at, msg)
	if seq {
		if ok, shift := r.rewind(at, at+1); !ok {
			r.pos = at - shift
			r.skipLine = true
		}
	}
	return err
}

// rewind handles a value that starts at r.pos, failed at index e and was
// scanned up to index hw: if it spans lines and its second line is a complete
// object or array, the value is taken to be a truncated NDJSON record that
// swallowed the records after it. Reading resumes at its second line, and
// until past hw no value may span lines, so each such record is recovered and
// no byte is rescanned more than once. It reports whether it rewound, and how
// far buffered data moved (as for more) while it looked; either way r.pos no
// longer marks the failed value, and callers that did not rewind set it to
// where reading resumes (which is never before the second line).
func (r *Reader) rewind(e, hw int) (bool, int) {
	nl := bytes.IndexByte(r.buf[r.pos:e], '\n')
	if nl < 0 {
		return false, 0
	}
	hwOffset := r.base + int64(hw)
	// Whatever happens next needs nothing before the second line, so let
	// the buffer drop it: the line may then be up to maxItem long.
	r.pos += nl + 1
	ok, shift := r.lineIsValue(r.pos)
	if ok {
		r.strictTo = max(r.strictTo, hwOffset)
	}
	return ok, shift
}

// lineIsValue reports whether the line starting at index p (at or after
// r.pos) holds exactly one complete object or array and otherwise only
// whitespace. It reads more input if needed, returning how far buffered data
// moved, but looks no further than maxItem bytes past r.pos.
func (r *Reader) lineIsValue(p int) (ok bool, shift int) {
	const (
		leading = iota
		value
		trailing
	)
	state, depth, inStr, esc := leading, 0, false, false
	i := p
	for {
		b := r.window()
		for ; i < len(b); i++ {
			c := b[i]
			if c == '\n' {
				return state == trailing, shift
			}
			switch state {
			case leading:
				switch c {
				case ' ', '\t', '\r':
				case '{', '[':
					state, depth = value, 1
				default:
					return false, shift
				}
			case value:
				switch {
				case esc:
					esc = false
				case inStr:
					esc = c == '\\'
					inStr = c != '"'
				case c == '"':
					inStr = true
				case c == '{' || c == '[':
					depth++
				case c == '}' || c == ']':
					if depth--; depth == 0 {
						state = trailing
					}
				}
			case trailing:
				if c != ' ' && c != '\t' && c != '\r' {
					return false, shift
				}
			}
		}
		if len(b)-r.pos > r.maxItem {
			return false, shift
		}
		s, more := r.more()
		shift += s
		i -= s
		if !more {
			return state == trailing && r.rerr == io.EOF, shift
		}
	}
}

// scanScalar scans the number, literal or other bare token starting at
// r.buf[r.pos] and returns the index just past it. Tokens end at whitespace
// or punctuation. In Sequence mode a token is further cut where
// encoding/json's decoder would end the value (so "truefalse" and "01" are two
// values each, as json.Decoder reads them).
func (r *Reader) scanScalar(seq bool) (int, error) {
	i := r.pos + 1
	for {
		b := r.window()
		for i < len(b) && !delimiter[b[i]] {
			i++
		}
		if i < len(b) {
			break
		}
		if len(b)-r.pos > r.maxItem {
			err := r.limitErr()
			if seq {
				r.pos = i
				r.skipLine = true
			}
			return 0, err
		}
		shift, ok := r.more()
		i -= shift
		if !ok {
			if r.rerr != io.EOF {
				return 0, r.rerr
			}
			break
		}
	}
	if seq {
		if n := valuePrefix(r.buf[r.pos:i]); n > 0 {
			i = r.pos + n
		}
	}
	return i, nil
}

// valuePrefix returns the length of the JSON number or literal that tok
// starts with, or 0 if it does not start with a complete one.
func valuePrefix(tok []byte) int {
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(tok) >= len(lit) && string(tok[:len(lit)]) == lit {
			return len(lit)
		}
	}
	i := 0
	digits := func() int {
		n := 0
		for i < len(tok) && '0' <= tok[i] && tok[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(tok) && tok[i] == '-' {
		i++
	}
	switch {
	case i < len(tok) && tok[i] == '0':
		i++
	case digits() == 0:
		return 0
	}
	if i < len(tok) && tok[i] == '.' {
		i++
		if digits() == 0 {
			return 0
		}
	}
	if i < len(tok) && (tok[i] == 'e' || tok[i] == 'E') {
		i++
		if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0
		}
	}
	return i
}

// skipSpace advances past whitespace and returns the next byte, or false at
// the end of input or on a read error (see r.rerr).
func (r *Reader) skipSpace() (byte, bool) {
	for {
		for r.pos < r.end {
			switch c := r.buf[r.pos]; c {
			case ' ', '\t', '\r', '\n':
				r.pos++
			default:
				return c, true
			}
		}
		if _, ok := r.more(); !ok {
			return 0, false
		}
	}
}

// skipThroughNewline discards input up to and including the next newline.
func (r *Reader) skipThroughNewline() {
	for {
		if k := bytes.IndexByte(r.buf[r.pos:r.end], '\n'); k >= 0 {
			r.pos += k + 1
			r.skipLine = false
			return
		}
		r.pos = r.end
		if _, ok := r.more(); !ok {
			r.skipLine = false
			return
		}
	}
}

// more reads more input, keeping r.buf[r.pos:r.end]. It returns how far that
// data moved toward the start of the buffer (callers subtract it from their
// indexes) and whether any new data arrived; if not, r.rerr says why.
func (r *Reader) more() (shift int, ok bool) {
	if r.rerr != nil {
		return 0, false
	}
	if r.buf == nil {
		r.buf = make([]byte, r.bufSize)
	}
	// Move the live data to the front once the free tail is at most half
	// the buffer, so that the copy is amortized over at least half a
	// buffer of reading.
	if r.pos > 0 && 2*(len(r.buf)-r.end) <= len(r.buf) {
		shift = r.pos
		r.countLines(r.pos)
		r.base += int64(r.pos)
		r.end = copy(r.buf, r.buf[r.pos:r.end])
		r.pos = 0
	}
	// Grow when the current item fills more than half the buffer.
	if free := len(r.buf) - r.end; free == 0 || (2*free <= len(r.buf) && len(r.buf) < r.capMax) {
		nb := make([]byte, max(min(2*len(r.buf), r.capMax), r.end+1))
		copy(nb, r.buf[r.pos:r.end])
		r.countLines(r.pos)
		r.base += int64(r.pos)
		shift += r.pos
		r.end -= r.pos
		r.pos = 0
		r.buf = nb
	}
	for range 100 {
		n, err := r.r.Read(r.buf[r.end:])
		if n < 0 || n > len(r.buf)-r.end {
			r.rerr = errors.New("jsonstream: reader returned invalid count from Read")
			return shift, false
		}
		r.end += n
		if err != nil {
			r.rerr = err
			return shift, n > 0
		}
		if n > 0 {
			return shift, true
		}
	}
	r.rerr = io.ErrNoProgress
	return shift, false
}

var newline = []byte{'\n'}

// countLines advances the newline count to buffer index at, if it is not
// there yet. Lines are counted lazily, when an error needs a line number or
// data is about to be dropped from the buffer, so each byte is counted once.
func (r *Reader) countLines(at int) {
	if abs := r.base + int64(at); abs > r.lineOff {
		r.lineNum += bytes.Count(r.buf[r.lineOff-r.base:at], newline)
		r.lineOff = abs
	}
}

// errAt returns a SyntaxError for buffer index at.
func (r *Reader) errAt(at int, msg string) *SyntaxError {
	r.countLines(at)
	// After a rewind, at may be before the count.
	line := r.lineNum + 1 - bytes.Count(r.buf[at:r.lineOff-r.base], newline)
	return &SyntaxError{Offset: r.base + int64(at), Line: line, Msg: msg}
}

func (r *Reader) limitErr() *SyntaxError {
	return r.errAt(r.pos, fmt.Sprintf("item exceeds the limit of %d bytes (MaxItemBytes)", r.maxItem))
}

func kindName(open byte) string {
	switch open {
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "string"
}

func quoteByte(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := fmt.Sprintf("%q", []byte{c})
	return "'" + s[1:len(s)-1] + "'"
}

var (
	// scalarStart marks the bytes that can begin a number or literal.
	scalarStart = [256]bool{'-': true, '0': true, '1': true, '2': true, '3': true,
		'4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
		't': true, 'f': true, 'n': true}
	// delimiter marks the bytes that end a bare token.
	delimiter = [256]bool{' ': true, '\t': true, '\r': true, '\n': true,
		',': true, '"': true, '{': true, '}': true, '[': true, ']': true}
)

// The scanning loops below test 8 bytes at a time (SWAR): for each byte c
// we want, v^(c*lsb) has a zero byte where v holds c, and zeroBytes finds
// zero bytes. zeroBytes may also flag a byte just above a true zero byte
// (borrow), never below one, so the lowest flag is always exact.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

func zeroBytes(v uint64) uint64 { return (v - lsb) &^ v & msb }

// brackets returns v with a zero byte wherever v has '{', '}', '[' or ']'
// (and also 'Y', 'y', '_' or 0x7f). Setting bit 5 folds '[' ']' onto '{' '}'
// (0x7b, 0x7d); clearing bits 1 and 2 of the difference from '{' then zeroes
// both.
func brackets(v uint64) uint64 { return ((v | lsb*0x20) ^ (lsb * '{')) &^ (lsb * 0x06) }

// indexStructural returns the index of the first byte in b at or after i that
// may be '"', '{', '}', '[', ']' or '\n', or i if i >= len(b), or len(b) if
// there is none. It may stop early at 'Y', 'y', '_' or 0x7f, which callers
// ignore: none of those occurs outside strings in valid JSON.
func indexStructural(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		if m := zeroBytes(brackets(v)) | zeroBytes(v^(lsb*'"')) | zeroBytes(v^(lsb*'\n')); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case '"', '{', '}', '[', ']', '\n':
			return i
		}
	}
	return i
}

// TypeName names the JSON type of a raw value by its first significant byte ("an
// object", "an array", "a string", "a boolean", "null", "a number", or "nothing"), for
// error messages about values the caller has not decoded.
func TypeName(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
