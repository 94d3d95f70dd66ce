package mapping

import (
	"container/list"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"github.com/dlclark/regexp2/syntax"
	"github.com/itchyny/gojq"
)

// fnRegex and fnRegexSub name the Go functions behind the prelude's regex definitions.
// gojq's own builtins call an internal `_match` that runs Go's regexp and cannot be
// replaced, so the prelude redefines the public builtins on top of these instead; the
// "_cs_" prefix keeps them out of the way of users' definitions.
const (
	fnRegex    = "_cs_match"
	fnRegexSub = "_cs_sub"
)

// regexCacheSize bounds the compiled-pattern cache. Patterns can be computed from item
// data (`test(.field)`), so an unbounded cache would grow with the input; a config's
// literal patterns are few and stay hot in an LRU of this size.
const regexCacheSize = 1024

// regexMaxEndVariants bounds, per pattern, the helper regexes kept for the "l" (longest)
// flag, one per distance from the end of the input; past it they are compiled per use.
const regexMaxEndVariants = 64

// regexAnonPrefix names the groups an unnamed capture group becomes when a pattern mixes
// named and unnamed groups (see translateRegex); match objects report such groups with a
// null name, as jq does for unnamed ones.
const regexAnonPrefix = "_cs_anon_"

// regexPreludeSrc holds the jq definitions that shadow gojq's regex builtins. User-scope
// definitions take precedence over builtins, and the caller prepends these to every
// query, so match, test, capture, scan, splits, split/2, sub and gsub (all arities jq
// has) reach fnRegex instead of Go's regexp. split/1 is left alone on purpose: it splits
// on a literal string, not a regex. Only the replacement filter of sub and gsub has to run
// in jq: _cs_replace collects its outputs for every match (input: the match's object of
// named groups) and fnRegexSub assembles the results the way jq 1.7's sub/3 does.
const regexPreludeSrc = `
def match($re): _cs_match($re; "match")[];
def match($re; $flags): _cs_match($re; $flags; "match")[];
def test($re): _cs_match($re; "test");
def test($re; $flags): _cs_match($re; $flags; "test");
def capture($re): _cs_match($re; "capture")[];
def capture($re; $flags): _cs_match($re; $flags; "capture")[];
def scan($re): _cs_match($re; null; "scan")[];
def scan($re; $flags): _cs_match($re; $flags; "scan")[];
def splits($re): _cs_match($re; null; "split")[];
def splits($re; $flags): _cs_match($re; $flags; "split")[];
def split($re; $flags): _cs_match($re; $flags; "split");
def _cs_replace($found; str): _cs_sub($found; [$found.parts[] | [.[1] | str]])[];
def sub($re; str): _cs_replace(_cs_match($re; null; "sub"); str);
def sub($re; str; $flags): _cs_replace(_cs_match($re; $flags; "sub"); str);
def gsub($re; str): _cs_replace(_cs_match($re; null; "gsub"); str);
def gsub($re; str; $flags): _cs_replace(_cs_match($re; $flags; "gsub"); str);
.`

// regexPreludeDefs parses regexPreludeSrc once per process: the definitions never change
// and gojq does not modify a query while compiling it, so every compile can share them.
var regexPreludeDefs = sync.OnceValue(func() []*gojq.FuncDef {
	q, err := gojq.Parse(regexPreludeSrc)
	if err != nil {
		panic("mapping: regex prelude does not parse: " + err.Error())
	}
	return q.FuncDefs
})

// regexEngine runs jq's regex builtins on regexp2 (Oniguruma-like syntax: look-around,
// back-references, atomic groups) instead of Go's regexp, with jq 1.7's match semantics
// (codepoint offsets, its global search loop with its empty matches, its flags). It is
// safe for concurrent use:
// compiled patterns live in a mutex-guarded LRU of regexCacheSize entries, and compiled
// regexp2 programs are themselves safe to share.
type regexEngine struct {
	timeout time.Duration // per regexp2 match; <= 0 means no limit

	mu      sync.Mutex
	entries map[regexKey]*list.Element // of *compiledRegex
	lru     *list.List                 // front = most recently used
}

// newRegexEngine returns an engine whose matches give up after about matchTimeout
// (regexp2's MatchTimeout; its clock ticks every 100ms, so expect up to that much more).
// The limit is what stops catastrophic backtracking: functions registered with
// gojq.WithFunction cannot see the evaluation's context, so cancelling it would not.
// A matchTimeout <= 0 disables the limit.
func newRegexEngine(matchTimeout time.Duration) *regexEngine {
	return &regexEngine{
		timeout: matchTimeout,
		entries: make(map[regexKey]*list.Element),
		lru:     list.New(),
	}
}

// compilerOptions registers the Go helpers the prelude calls. The slice is new on every
// call, so callers may append their own options to it.
func (e *regexEngine) compilerOptions() []gojq.CompilerOption {
	return []gojq.CompilerOption{
		gojq.WithFunction(fnRegex, 2, 3, e.call),
		gojq.WithFunction(fnRegexSub, 2, 2, regexSubstitute),
	}
}

// prelude returns the parsed definitions that shadow gojq's regex builtins, to be put in
// front of a query's own FuncDefs so that users' definitions still win. The returned
// slice has no spare capacity, so appending to it never writes into the shared one.
func (e *regexEngine) prelude() []*gojq.FuncDef {
	defs := regexPreludeDefs()
	return defs[:len(defs):len(defs)]
}

// regexMode is what one call of fnRegex computes; the prelude passes it as a string so
// each builtin is a single Go call with its result already in jq's shape.
type regexMode int

const (
	regexTest    regexMode = iota // test: a boolean, first match only
	regexMatch                    // match: array of match objects
	regexCapture                  // capture: array of {name: string} objects
	regexScan                     // scan: array of strings or arrays of group strings; always global
	regexSplit                    // splits, split/2: array of the pieces between matches; always global
	regexSub                      // sub: {parts: [[gap, groups]...], tail} for _cs_replace
	regexGsub                     // gsub: like regexSub, always global
)

// regexModes maps the prelude's mode names to modes.
var regexModes = map[string]regexMode{
	"test": regexTest, "match": regexMatch, "capture": regexCapture, "scan": regexScan,
	"split": regexSplit, "sub": regexSub, "gsub": regexGsub,
}

// regexFlags is a parsed jq flags string. jq hands the letters to Oniguruma as options
// (ONIG_SYNTAX_PERL_NT, whose own default option is SINGLELINE); see options for how they
// map onto regexp2, whose defaults (.NET's) already are Perl's: `^` is \A, `$` is \Z (end
// or before a final newline) and `.` stops at a newline.
type regexFlags struct {
	global     bool // g
	ignoreCase bool // i: ONIG_OPTION_IGNORECASE
	extended   bool // x: ONIG_OPTION_EXTEND
	dotAll     bool // m and p: ONIG_OPTION_MULTILINE, which is Ruby's name for "dot matches newline"
	notEmpty   bool // n: ONIG_OPTION_FIND_NOT_EMPTY
	longest    bool // l: ONIG_OPTION_FIND_LONGEST
}

// parseRegexFlags reads jq's flags argument: null or a string of the letters jq 1.7
// accepts (g i x m s p l n). "s" (ONIG_OPTION_SINGLELINE: ^ -> \A, $ -> \Z) is accepted
// and changes nothing, because Perl_NT syntax turns that option on by default. jq also
// accepts "m"; gojq does too (it is not in jq's manual, and gojq rejects x s p l n).
func parseRegexFlags(v any, pattern string) (regexFlags, error) {
	var f regexFlags
	if v == nil {
		return f, nil
	}
	s, ok := v.(string)
	if !ok {
		return f, fmt.Errorf("%s is not a string (flags of regex %s)", describeJQ(v), quotePattern(pattern))
	}
	for _, r := range s {
		switch r {
		case 'g':
			f.global = true
		case 'i':
			f.ignoreCase = true
		case 'x':
			f.extended = true
		case 'm':
			f.dotAll = true
		case 's':
		case 'p':
			f.dotAll = true
		case 'l':
			f.longest = true
		case 'n':
			f.notEmpty = true
		default:
			return f, fmt.Errorf("%q is not a valid modifier string (regex %s)", s, quotePattern(pattern))
		}
	}
	return f, nil
}

// options maps the flags onto regexp2. Nothing turns on regexp2's Multiline, because no
// jq flag makes ^ and $ line anchors (only an inline (?m) does, in both engines), and
// nothing turns on RE2 mode, which would make $ strict and \w \d \s \b ASCII-only where
// Oniguruma's are Unicode. jq's manual says p is "both s and x"; jq's code (which is what
// runs) gives it MULTILINE|SINGLELINE, i.e. dot-all, and that is what is mapped here.
func (f regexFlags) options() regexp2.RegexOptions {
	o := regexp2.None
	if f.ignoreCase {
		o |= regexp2.IgnoreCase
	}
	if f.extended {
		o |= regexp2.IgnorePatternWhitespace
	}
	if f.dotAll {
		o |= regexp2.Singleline
	}
	return o
}

// Sentinels a regexError unwraps to, so callers can tell a bad pattern from a runaway one
// with errors.Is.
var (
	errRegexSyntax  = errors.New("invalid regular expression")
	errRegexTimeout = errors.New("regular expression match timed out")
)

// regexError is a compile or match failure that names the user's pattern. It implements
// Unwrap instead of being built with fmt.Errorf's %w because regexp2's own messages embed
// the whole translated pattern (possibly kilobytes of expanded character classes) or the
// whole input (item data); the message keeps them out while errors.Is/As still reach both
// the sentinel and regexp2's error.
type regexError struct {
	msg   string
	kind  error // errRegexSyntax or errRegexTimeout
	cause error // regexp2's error, or a recovered panic
}

// Error returns the short message; see the type's comment for why it omits the cause.
func (e *regexError) Error() string { return e.msg }

// Unwrap exposes the sentinel and regexp2's error to errors.Is and errors.As.
func (e *regexError) Unwrap() []error { return []error{e.kind, e.cause} }

// quotePattern quotes a pattern for an error message, truncated because patterns can be
// computed from item data.
func quotePattern(p string) string {
	const max = 200
	if len(p) <= max {
		return strconv.Quote(p)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(p[cut]) {
		cut--
	}
	return strconv.Quote(p[:cut]) + "..."
}

// describeJQ renders a value the way jq's type errors do, "type (json)", truncated.
func describeJQ(v any) string {
	b, err := gojq.Marshal(v)
	s := string(b)
	if err != nil {
		s = "?"
	}
	if len(s) > 30 {
		cut := 27
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return gojq.TypeOf(v) + " (" + s + ")"
}

// call is fnRegex: `_cs_match(re; mode)` for the one-argument forms of match, test and
// capture, whose argument may be a pattern or a [pattern, flags] array, and
// `_cs_match(re; flags; mode)` otherwise. Errors are returned as values, which gojq turns
// into jq errors (catchable with try, like jq's).
func (e *regexEngine) call(v any, args []any) any {
	var reArg, flagArg, modeArg any
	if len(args) == 2 {
		reArg, modeArg = args[0], args[1]
		switch x := reArg.(type) {
		case string:
		case []any:
			if len(x) == 0 {
				return errors.New("array not a string or array")
			}
			reArg = x[0]
			if len(x) > 1 {
				flagArg = x[1]
			}
		default:
			return fmt.Errorf("%s not a string or array", gojq.TypeOf(reArg))
		}
	} else {
		reArg, flagArg, modeArg = args[0], args[1], args[2]
	}
	name, _ := modeArg.(string)
	mode, ok := regexModes[name]
	if !ok {
		return fmt.Errorf("%s: unknown mode %s", fnRegex, describeJQ(modeArg))
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("%s cannot be matched, as it is not a string", describeJQ(v))
	}
	pattern, ok := reArg.(string)
	if !ok {
		return fmt.Errorf("%s is not a string (regex)", describeJQ(reArg))
	}
	f, err := parseRegexFlags(flagArg, pattern)
	if err != nil {
		return err
	}
	c, err := e.compile(regexKey{pattern, f.options()})
	if err != nil {
		return err
	}
	switch mode {
	case regexTest:
		f.global = false
	case regexScan, regexSplit, regexGsub:
		f.global = true
	}
	sub := newRegexSubject(s)
	if mode == regexTest && !f.notEmpty && !f.longest {
		m, err := c.find(c.re, sub.runes, 0, true)
		if err != nil {
			return err
		}
		return m != nil
	}
	ms, err := c.matches(sub.runes, f)
	if err != nil {
		return err
	}
	switch mode {
	case regexTest:
		return len(ms) > 0
	case regexMatch:
		out := make([]any, len(ms))
		for i, m := range ms {
			out[i] = c.matchObject(sub, m)
		}
		return out
	case regexCapture:
		out := make([]any, len(ms))
		for i, m := range ms {
			out[i] = c.groupObject(sub, m)
		}
		return out
	case regexScan:
		out := make([]any, len(ms))
		for i, m := range ms {
			if len(c.groups) == 0 {
				out[i] = sub.slice(m.Index, m.Index+m.Length)
				continue
			}
			strs := make([]any, len(c.groups))
			for j, g := range c.groups {
				if x := m.GroupByNumber(g.num); x != nil && len(x.Captures) > 0 {
					strs[j] = sub.slice(x.Index, x.Index+x.Length)
				}
			}
			out[i] = strs
		}
		return out
	case regexSplit:
		out := make([]any, 0, len(ms)+1)
		prev := 0
		for _, m := range ms {
			out = append(out, sub.slice(prev, m.Index))
			prev = m.Index + m.Length
		}
		return append(out, sub.slice(prev, len(sub.runes)))
	default: // regexSub, regexGsub
		parts := make([]any, len(ms))
		prev := 0
		for i, m := range ms {
			parts[i] = []any{sub.slice(prev, m.Index), c.groupObject(sub, m)}
			prev = m.Index + m.Length
		}
		return map[string]any{"parts": parts, "tail": sub.slice(prev, len(sub.runes))}
	}
}

// regexSubstitute is fnRegexSub: given the input string, the "sub" result of fnRegex
// ({parts: [[gap, groups]...], tail}) and, per match, the array of the replacement's
// outputs, it returns the array of results jq 1.7's sub/3 emits. Result k joins, for
// every match that has a k-th output, the text before the match and that output (a null
// output adds just the text, anything but a string is an error, as with jq's "+"), then
// the text after the last match. With no result at all the input comes back unchanged.
func regexSubstitute(v any, args []any) any {
	found, _ := args[0].(map[string]any)
	parts, ok1 := found["parts"].([]any)
	tail, ok2 := found["tail"].(string)
	outs, ok3 := args[1].([]any)
	if !ok1 || !ok2 || !ok3 || len(outs) != len(parts) {
		return fmt.Errorf("%s: arguments are not what the regex prelude passes", fnRegexSub)
	}
	var results []*strings.Builder
	for i, p := range parts {
		pair, _ := p.([]any)
		reps, _ := outs[i].([]any)
		if len(pair) != 2 {
			return fmt.Errorf("%s: arguments are not what the regex prelude passes", fnRegexSub)
		}
		gap, _ := pair[0].(string)
		for k, r := range reps {
			if k == len(results) {
				results = append(results, new(strings.Builder))
			}
			switch r := r.(type) {
			case nil:
				results[k].WriteString(gap)
			case string:
				results[k].WriteString(gap)
				results[k].WriteString(r)
			default:
				return fmt.Errorf("%s and %s cannot be added", describeJQ(gap), describeJQ(r))
			}
		}
	}
	if len(results) == 0 {
		return []any{v}
	}
	out := make([]any, len(results))
	for k := range results {
		results[k].WriteString(tail)
		out[k] = results[k].String()
	}
	return out
}

// regexKey identifies a compiled pattern: the same text compiles differently per option.
type regexKey struct {
	pattern string
	opts    regexp2.RegexOptions
}

// compile returns the cached compilation of key, compiling it (outside the lock, so one
// slow pattern does not stall other goroutines) on a miss. Failures are cached too, so a
// bad pattern computed from data is not re-parsed for every item.
func (e *regexEngine) compile(key regexKey) (*compiledRegex, error) {
	e.mu.Lock()
	if el, ok := e.entries[key]; ok {
		e.lru.MoveToFront(el)
		c := el.Value.(*compiledRegex)
		e.mu.Unlock()
		return c, c.err
	}
	e.mu.Unlock()

	c := newCompiledRegex(key, e.timeout)

	e.mu.Lock()
	defer e.mu.Unlock()
	if el, ok := e.entries[key]; ok { // another goroutine got there first: share its copy
		e.lru.MoveToFront(el)
		c = el.Value.(*compiledRegex)
		return c, c.err
	}
	e.entries[key] = e.lru.PushFront(c)
	for e.lru.Len() > regexCacheSize {
		old := e.lru.Back()
		e.lru.Remove(old)
		delete(e.entries, old.Value.(*compiledRegex).key)
	}
	return c, c.err
}

// cached reports how many compiled patterns the engine holds; tests use it to check the
// bound.
func (e *regexEngine) cached() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lru.Len()
}

// compiledRegex is one pattern compiled for regexp2, with what building jq's results
// needs: its capture groups in jq's order, and lazily compiled helper regexes for the n
// and l flags, which regexp2 has no options for.
type compiledRegex struct {
	key     regexKey
	timeout time.Duration
	err     error // compile failure, cached with the entry

	re     *regexp2.Regexp
	src    string // the translated pattern regexp2 compiled
	xAtEnd bool   // extended mode is on at the end of src, so a "#" comment may be open
	groups []regexGroup

	mu       sync.Mutex
	nonEmpty *regexp2.Regexp         // for n; see nonEmptyRe
	whole    *regexp2.Regexp         // for l; see wholeRe
	endAt    map[int]*regexp2.Regexp // for l; see endRe
}

// regexGroup is a capture group as jq reports it: its regexp2 number and its name (nil
// for an unnamed group).
type regexGroup struct {
	num  int
	name any
}

// newCompiledRegex translates and compiles key's pattern. regexp2 numbers unnamed groups
// before named ones, while Oniguruma (with ONIG_OPTION_CAPTURE_GROUP, as jq sets it)
// numbers all groups left to right; a pattern mixing both is therefore compiled with its
// unnamed groups given reserved names, which makes regexp2's numbering positional too,
// for match objects and for numbered back-references alike.
func newCompiledRegex(key regexKey, timeout time.Duration) *compiledRegex {
	c := &compiledRegex{key: key, timeout: timeout}
	extended := key.opts&regexp2.IgnorePatternWhitespace != 0
	tr := translateRegex(key.pattern, extended, false)
	if tr.named > 0 && tr.unnamed > 0 {
		tr = translateRegex(key.pattern, extended, true)
	}
	re, err := c.build(tr.src)
	if err != nil {
		c.err = err
		return c
	}
	c.re, c.src, c.xAtEnd = re, tr.src, tr.xAtEnd
	nums := re.GetGroupNumbers()
	slices.Sort(nums)
	for _, n := range nums {
		if n == 0 {
			continue
		}
		var name any
		if s := re.GroupNameFromNumber(n); s != strconv.Itoa(n) && !strings.HasPrefix(s, regexAnonPrefix) {
			name = s
		}
		c.groups = append(c.groups, regexGroup{num: n, name: name})
	}
	return c
}

// build compiles src with the entry's options and timeout. regexp2 has internal panics
// ("unexpected op code", unknown categories) that valid input should never reach; a
// pattern from data must not take the process down if one does, so a panic becomes a
// syntax error too.
func (c *compiledRegex) build(src string) (re *regexp2.Regexp, err error) {
	defer func() {
		if r := recover(); r != nil {
			re, err = nil, c.syntaxError(fmt.Errorf("regexp2 panic: %v", r))
		}
	}()
	re, err = regexp2.Compile(src, c.key.opts)
	if err != nil {
		return nil, c.syntaxError(err)
	}
	if c.timeout > 0 {
		re.MatchTimeout = c.timeout
	}
	return re, nil
}

// syntaxError wraps a compile failure, keeping only regexp2's reason (not the translated
// pattern it quotes) next to the user's pattern.
func (c *compiledRegex) syntaxError(cause error) error {
	reason := cause.Error()
	var se *syntax.Error
	if errors.As(cause, &se) {
		reason = se.Code.String()
		if len(se.Args) > 0 {
			reason = fmt.Sprintf(reason, se.Args...)
		}
	}
	return &regexError{
		msg:   fmt.Sprintf("invalid regex %s: %s", quotePattern(c.key.pattern), reason),
		kind:  errRegexSyntax,
		cause: cause,
	}
}

// timeoutError wraps a failed match; regexp2 fails a match only when it times out.
func (c *compiledRegex) timeoutError(cause error, inputLen int) error {
	return &regexError{
		msg: fmt.Sprintf("regex %s: match timed out after %v (input of %d characters)",
			quotePattern(c.key.pattern), c.timeout, inputLen),
		kind:  errRegexTimeout,
		cause: cause,
	}
}

// variant compiles the pattern anchored where the search starts (\G), followed by
// suffix, for the n and l emulations. In extended mode the pattern may end inside a "#"
// comment, which a newline closes before the wrapper's ")".
func (c *compiledRegex) variant(suffix string) (*regexp2.Regexp, error) {
	nl := ""
	if c.xAtEnd {
		nl = "\n"
	}
	return c.build(`\G(?:` + c.src + nl + `)` + suffix)
}

// nonEmptyRe is the pattern anchored at the search start and required to end elsewhere
// ((?<!\G) fails where the match began), so the engine backtracks to its first non-empty
// alternative there: what ONIG_OPTION_FIND_NOT_EMPTY does at each position.
func (c *compiledRegex) nonEmptyRe() (*regexp2.Regexp, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nonEmpty == nil {
		re, err := c.variant(`(?<!\G)`)
		if err != nil {
			return nil, err
		}
		c.nonEmpty = re
	}
	return c.nonEmpty, nil
}

// wholeRe is the pattern anchored at the search start and at the end of the input. Run on
// the input cut short at some end, it says whether a match can end exactly there; that is
// only sound when nothing in the pattern looks to the right of where it ends (see
// looksRight), and then it spares longestFrom a compile per length.
func (c *compiledRegex) wholeRe() (*regexp2.Regexp, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.whole == nil {
		re, err := c.variant(`\z`)
		if err != nil {
			return nil, err
		}
		c.whole = re
	}
	return c.whole, nil
}

// looksRight reports whether the translated pattern may test text after the current
// position: look-ahead (which \b and \B become), $, \Z and \z. A false positive (an
// escaped "$", say) only costs speed.
func (c *compiledRegex) looksRight() bool {
	return strings.Contains(c.src, "(?=") || strings.Contains(c.src, "(?!") ||
		strings.ContainsAny(c.src, "$") || strings.Contains(c.src, `\Z`) || strings.Contains(c.src, `\z`)
}

// endRe is the pattern anchored at the search start and required to end exactly k
// characters before the end of the input, so the engine backtracks to its first
// alternative of that length; longestFrom asks for each length in turn.
func (c *compiledRegex) endRe(k int) (*regexp2.Regexp, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if re, ok := c.endAt[k]; ok {
		return re, nil
	}
	re, err := c.variant(`(?=[\s\S]{` + strconv.Itoa(k) + `}\z)`)
	if err != nil {
		return nil, err
	}
	if c.endAt == nil {
		c.endAt = make(map[int]*regexp2.Regexp)
	}
	if len(c.endAt) < regexMaxEndVariants {
		c.endAt[k] = re
	}
	return re, nil
}

// matches runs jq 1.7's f_match loop: search from start; after a non-empty match resume at
// its end (so an empty match right after it is reported, as jq does), after an empty one
// resume one character later; stop after the first match unless global. jq steps one
// byte, which on multi-byte characters can report an empty match twice ("é" |
// [match("";"g")] gives offsets 0,1,1); this steps one codepoint, like gojq.
func (c *compiledRegex) matches(runes []rune, f regexFlags) ([]*regexp2.Match, error) {
	var out []*regexp2.Match
	var deadline time.Time
	if f.longest && c.timeout > 0 {
		deadline = time.Now().Add(c.timeout)
	}
	for start := 0; start <= len(runes); {
		m, err := c.next(runes, start, f, deadline)
		if err != nil {
			return nil, err
		}
		if m == nil {
			break
		}
		out = append(out, m)
		if !f.global {
			break
		}
		if m.Length == 0 {
			start = m.Index + 1
		} else {
			start = m.Index + m.Length
		}
	}
	return out, nil
}

// find runs re on runes from start (quick: only whether it matches, any non-nil match
// meaning yes). regexp2 fails a match only on timeout, against a coarse clock that a
// background goroutine advances every 100ms; after the process was descheduled that clock
// can jump and expire a deadline taken from its stale reading, so a timeout the wall
// clock does not bear out is retried (twice at most) rather than reported.
func (c *compiledRegex) find(re *regexp2.Regexp, runes []rune, start int, quick bool) (*regexp2.Match, error) {
	for attempt := 0; ; attempt++ {
		began := time.Now()
		var m *regexp2.Match
		var err error
		if quick {
			var ok bool
			if ok, err = re.MatchRunes(runes); ok {
				m = &regexp2.Match{}
			}
		} else {
			m, err = re.FindRunesMatchStartingAt(runes, start)
		}
		if err == nil {
			return m, nil
		}
		if attempt == 2 || time.Since(began) >= c.timeout {
			return nil, c.timeoutError(err, len(runes))
		}
	}
}

// next returns the match onig_search would report searching from start, or nil.
func (c *compiledRegex) next(runes []rune, start int, f regexFlags, deadline time.Time) (*regexp2.Match, error) {
	if f.longest {
		return c.longestFrom(runes, start, f.notEmpty, deadline)
	}
	m, err := c.find(c.re, runes, start, false)
	if err != nil {
		return nil, err
	}
	for f.notEmpty && m != nil && m.Length == 0 {
		// No position before m.Index matches at all; at m.Index the first path is empty,
		// so ask for the first non-empty one there before moving on.
		ne, err := c.nonEmptyRe()
		if err != nil {
			return nil, err
		}
		m2, err := c.find(ne, runes, m.Index, false)
		if err != nil {
			return nil, err
		}
		if m2 != nil || m.Index >= len(runes) {
			return m2, nil
		}
		if m, err = c.find(c.re, runes, m.Index+1, false); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// longestFrom emulates ONIG_OPTION_FIND_LONGEST as Oniguruma builds it
// (USE_FIND_LONGEST_SEARCH_ALL_OF_RANGE): the longest match over every start position from
// start on, the earliest start winning ties, with the captures of the first path that
// reached that length. regexp2 only reports a position's first path, so each longer end
// is tried in turn, longest first: with wholeRe on the input cut at that end when the
// pattern never looks right of its end, else with endRe. That is quadratic in the input
// per search, and a global search repeats it per match, so the whole call is bounded by
// one match timeout (see matches).
func (c *compiledRegex) longestFrom(runes []rune, start int, notEmpty bool, deadline time.Time) (*regexp2.Match, error) {
	n := len(runes)
	var whole *regexp2.Regexp
	if !c.looksRight() {
		var err error
		if whole, err = c.wholeRe(); err != nil {
			return nil, err
		}
	}
	var best *regexp2.Match
	for p := start; p <= n; p++ {
		if best != nil && n-p <= best.Length {
			break
		}
		m, err := c.find(c.re, runes, p, false)
		if err != nil {
			return nil, err
		}
		if m == nil {
			break
		}
		p = m.Index // nothing matches between the old p and here
		floor := m.Length
		if best != nil && best.Length > floor {
			floor = best.Length
		}
		for end := n; end-p > floor; end-- {
			if !deadline.IsZero() && time.Now().After(deadline) {
				return nil, c.timeoutError(errors.New("longest-match search exceeded the match timeout"), n)
			}
			var m2 *regexp2.Match
			if whole != nil {
				m2, err = c.find(whole, runes[:end], p, false)
			} else {
				var re *regexp2.Regexp
				if re, err = c.endRe(n - end); err != nil {
					return nil, err
				}
				m2, err = c.find(re, runes, p, false)
			}
			if err != nil {
				return nil, err
			}
			if m2 != nil {
				m = m2
				break
			}
		}
		if notEmpty && m.Length == 0 {
			continue
		}
		if best == nil || m.Length > best.Length {
			best = m
		}
	}
	return best, nil
}

// matchObject builds jq's match object: offset and length in codepoints, and one capture
// object per group in pattern order, {offset: -1, length: 0, string: null} for a group
// that did not take part. Captures inside an empty match keep their real values, as in
// gojq; jq 1.7 reports every one of them as {offset: <match offset>, length: 0,
// string: ""} (jq issue #3093; jq 1.8 reports the unmatched ones as above again).
func (c *compiledRegex) matchObject(sub *regexSubject, m *regexp2.Match) map[string]any {
	caps := make([]any, len(c.groups))
	for i, g := range c.groups {
		obj := map[string]any{"offset": -1, "length": 0, "string": nil, "name": g.name}
		if x := m.GroupByNumber(g.num); x != nil && len(x.Captures) > 0 {
			obj["offset"], obj["length"] = x.Index, x.Length
			obj["string"] = sub.slice(x.Index, x.Index+x.Length)
		}
		caps[i] = obj
	}
	return map[string]any{
		"offset":   m.Index,
		"length":   m.Length,
		"string":   sub.slice(m.Index, m.Index+m.Length),
		"captures": caps,
	}
}

// groupObject builds what capture emits and what sub's replacement sees: each named
// group's string (null if it did not take part); with duplicate names the last group
// wins, as in jq's reduction.
func (c *compiledRegex) groupObject(sub *regexSubject, m *regexp2.Match) map[string]any {
	obj := make(map[string]any)
	for _, g := range c.groups {
		name, ok := g.name.(string)
		if !ok {
			continue
		}
		var v any
		if x := m.GroupByNumber(g.num); x != nil && len(x.Captures) > 0 {
			v = sub.slice(x.Index, x.Index+x.Length)
		}
		obj[name] = v
	}
	return obj
}

// regexSubject is the input string with its codepoints, which regexp2 matches on and
// whose indexes are jq's offsets. Substrings are cut from the original string, so bytes
// that are not valid UTF-8 come back unchanged rather than as U+FFFD.
type regexSubject struct {
	s     string
	runes []rune
	offs  []int // byte offset of each codepoint index (len(runes)+1 entries), built on demand
}

// newRegexSubject decodes s once per call.
func newRegexSubject(s string) *regexSubject {
	return &regexSubject{s: s, runes: []rune(s)}
}

// slice returns the codepoints [a, b) of the subject.
func (s *regexSubject) slice(a, b int) string {
	if len(s.runes) == len(s.s) { // one byte per codepoint: indexes are byte offsets
		return s.s[a:b]
	}
	if s.offs == nil {
		s.offs = make([]int, 0, len(s.runes)+1)
		for i := range s.s { // one step per codepoint, exactly as []rune(s) decodes
			s.offs = append(s.offs, i)
		}
		s.offs = append(s.offs, len(s.s))
	}
	return s.s[s.offs[a]:s.offs[b]]
}

// regexTranslation is translateRegex's result.
type regexTranslation struct {
	src            string
	unnamed, named int  // capture groups seen
	xAtEnd         bool // extended mode is on at the end of the pattern
}

// regexWordItems is Oniguruma's \w for Unicode (letters, marks, numbers and connector
// punctuation, checked against jq 1.7.1); .NET's \w leaves out Mc, Me, Nl and No, which
// would split words of Indic scripts, for one.
const regexWordItems = `\p{L}\p{M}\p{N}\p{Pc}`

// translateRegex rewrites the syntax jq users write (Oniguruma's Perl_NT syntax, largely
// also Go's) where regexp2 (.NET's syntax) spells it differently or lacks it, and leaves
// the rest to regexp2:
//   - possessive quantifiers (a*+, a++, a?+, a{n,m}+) become atomic groups (?>a*);
//   - \w and \W (outside classes) get Oniguruma's Unicode meaning (regexWordItems);
//   - \x{HHHH} becomes \uHHHH (or the literal character past U+FFFF);
//   - \Q...\E becomes escaped literals;
//   - (?P<name>...) (RE2's spelling, which Oniguruma rejects) becomes (?<name>...);
//   - POSIX brackets [[:alpha:]], [[:^alpha:]] and \p{Alpha}-style names become explicit
//     ranges with Oniguruma's Unicode meaning (Go's are ASCII-only; regexp2 ignores them);
//   - \p{...} names are matched case- and separator-insensitively, and \p{^X} is \P{X};
//   - "[" inside a class is a literal, as in Perl_NT syntax and Go (.NET reads "-[" as
//     class subtraction);
//   - with nameUnnamed, unnamed groups get reserved names (see newCompiledRegex).
//
// It tracks extended mode ((?x), the x flag) to skip "#" comments, and counts groups.
// Whatever it does not recognise is copied, for regexp2 to accept or reject.
func translateRegex(pattern string, extended, nameUnnamed bool) regexTranslation {
	t := &regexTranslator{
		rs:          []rune(pattern),
		nameUnnamed: nameUnnamed,
		groups:      []regexOpenGroup{{x: extended}},
		atom:        -1,
	}
	t.out = make([]byte, 0, len(pattern)+16)
	for i := 0; i < len(t.rs); {
		i = t.step(i)
	}
	return regexTranslation{src: string(t.out), unnamed: t.unnamed, named: t.named, xAtEnd: t.x()}
}

// regexTranslator is translateRegex's state.
type regexTranslator struct {
	rs             []rune
	out            []byte
	nameUnnamed    bool
	groups         []regexOpenGroup // open groups; the first is the pattern itself
	atom           int              // where in out the last quantifiable item starts, or -1
	unnamed, named int
}

// regexOpenGroup is a group being translated: its extended mode (inline options change it
// until the group closes) and where it starts in the output (for a possessive quantifier
// after it).
type regexOpenGroup struct {
	x     bool
	start int
}

// x reports whether extended mode is on at this point.
func (t *regexTranslator) x() bool { return t.groups[len(t.groups)-1].x }

// at reports whether the pattern continues with lit at index i.
func (t *regexTranslator) at(i int, lit string) bool {
	for _, r := range lit {
		if i >= len(t.rs) || t.rs[i] != r {
			return false
		}
		i++
	}
	return true
}

// write appends s to the output.
func (t *regexTranslator) write(s string) { t.out = append(t.out, s...) }

// writeRunes appends runes to the output.
func (t *regexTranslator) writeRunes(rs []rune) {
	for _, r := range rs {
		t.out = utf8.AppendRune(t.out, r)
	}
}

// push opens a group whose text starts at the current end of the output.
func (t *regexTranslator) push(x bool) {
	t.groups = append(t.groups, regexOpenGroup{x: x, start: len(t.out)})
}

// step translates the token at i (outside any class) and returns the index after it.
func (t *regexTranslator) step(i int) int {
	switch r := t.rs[i]; {
	case r == '\\':
		t.atom = len(t.out)
		return t.escape(i, false)
	case r == '[':
		t.atom = len(t.out)
		t.write("[")
		i++
		if t.at(i, "^") {
			t.write("^")
			i++
		}
		return t.classBody(i)
	case r == '(':
		return t.open(i)
	case r == ')':
		t.atom = -1
		if len(t.groups) > 1 {
			t.atom = t.groups[len(t.groups)-1].start
			t.groups = t.groups[:len(t.groups)-1]
		}
		t.write(")")
		return i + 1
	case r == '*' || r == '+' || r == '?':
		return t.quantifier(i, i+1)
	case r == '{':
		if j, ok := t.interval(i); ok {
			return t.quantifier(i, j)
		}
		t.atom = len(t.out)
		t.write("{")
		return i + 1
	case r == '#' && t.x():
		j := i
		for j < len(t.rs) && t.rs[j] != '\n' {
			j++
		}
		t.writeRunes(t.rs[i:j])
		return j
	case t.x() && unicode.IsSpace(r):
		t.out = utf8.AppendRune(t.out, r)
		return i + 1
	default:
		t.atom = len(t.out)
		t.out = utf8.AppendRune(t.out, r)
		return i + 1
	}
}

// interval reports whether a {n}, {n,} or {n,m} quantifier starts at i, and where it
// ends. Anything else ({,m} included) is a literal "{" in Perl_NT syntax, Go and .NET.
func (t *regexTranslator) interval(i int) (int, bool) {
	j := i + 1
	digits := func() int {
		k := j
		for j < len(t.rs) && '0' <= t.rs[j] && t.rs[j] <= '9' {
			j++
		}
		return j - k
	}
	if digits() == 0 {
		return 0, false
	}
	if t.at(j, ",") {
		j++
		digits()
	}
	if !t.at(j, "}") {
		return 0, false
	}
	return j + 1, true
}

// quantifier writes the quantifier rs[i:j] and what follows it: "?" makes it lazy, and
// "+" possessive, which .NET spells as an atomic group around the quantified item.
func (t *regexTranslator) quantifier(i, j int) int {
	q := string(t.rs[i:j])
	switch {
	case t.at(j, "+") && t.atom >= 0:
		item := string(t.out[t.atom:])
		t.out = append(t.out[:t.atom], "(?>"+item+q+")"...)
		j++
	case t.at(j, "?"):
		t.write(q + "?")
		j++
	default:
		t.write(q)
	}
	t.atom = -1
	return j
}

// open translates a group opening at i.
func (t *regexTranslator) open(i int) int {
	rs := t.rs
	t.atom = -1
	if !t.at(i+1, "?") {
		t.unnamed++
		t.push(t.x())
		if t.nameUnnamed {
			t.write("(?<" + regexAnonPrefix + strconv.Itoa(t.unnamed) + ">")
		} else {
			t.write("(")
		}
		return i + 1
	}
	switch {
	case t.at(i+2, "#"): // (?#comment)
		j := i + 3
		for j < len(rs) && rs[j] != ')' {
			j++
		}
		if j < len(rs) {
			j++
		}
		t.writeRunes(rs[i:j])
		return j
	case t.at(i+2, "P<"): // RE2's (?P<name>
		t.named++
		t.push(t.x())
		t.write("(?<")
		return i + 4
	case t.at(i+2, "<") && !t.at(i+3, "=") && !t.at(i+3, "!"), t.at(i+2, "'"):
		t.named++
		t.push(t.x())
		t.writeRunes(rs[i : i+3])
		return i + 3
	}
	// Inline options, (?imsx-imsx) for the rest of the group or (?imsx-imsx:...).
	j := i + 2
	for j < len(rs) && (rs[j] == '-' || 'a' <= rs[j] && rs[j] <= 'z' || 'A' <= rs[j] && rs[j] <= 'Z') {
		j++
	}
	if j > i+2 && j < len(rs) && (rs[j] == ')' || rs[j] == ':') {
		x, on := t.x(), true
		for _, r := range rs[i+2 : j] {
			switch r {
			case '-':
				on = false
			case 'x':
				x = on
			}
		}
		if rs[j] == ')' {
			t.groups[len(t.groups)-1].x = x
		} else {
			t.push(x)
		}
		t.writeRunes(rs[i : j+1])
		return j + 1
	}
	// (?: (?= (?! (?<= (?<! (?> and conditionals, whose (name) reference is no group.
	t.push(t.x())
	t.write("(?")
	j = i + 2
	if t.at(j, "(") && !t.at(j+1, "?") {
		k := j
		for k < len(rs) && rs[k] != ')' {
			k++
		}
		if k < len(rs) {
			k++
		}
		t.writeRunes(rs[j:k])
		j = k
	}
	return j
}

// classBody translates a character class from just after its "[" (and "^") through its
// "]".
func (t *regexTranslator) classBody(i int) int {
	rs := t.rs
	if t.at(i, "]") { // a leading "]" is literal
		t.write(`\]`)
		i++
	}
	for i < len(rs) {
		switch r := rs[i]; r {
		case '\\':
			i = t.escape(i, true)
		case '[':
			if j, ok := t.posixBracket(i); ok {
				i = j
				continue
			}
			t.write(`\[`)
			i++
		case ']':
			t.write("]")
			return i + 1
		default:
			t.out = utf8.AppendRune(t.out, r)
			i++
		}
	}
	return i
}

// escape translates the escape at i (rs[i] is the backslash).
func (t *regexTranslator) escape(i int, inClass bool) int {
	rs := t.rs
	if i+1 >= len(rs) {
		t.write(`\`)
		return i + 1
	}
	c := rs[i+1]
	switch c {
	case 'b', 'B':
		if inClass { // backspace
			break
		}
		if c == 'b' {
			t.write(regexWordBoundary)
		} else {
			t.write(regexNotWordBoundary)
		}
		return i + 2
	case 'R':
		if inClass {
			break
		}
		t.write(`(?>\r\n|[\n\v\f\r\u0085\u2028\u2029])`)
		return i + 2
	case 'N':
		if inClass {
			break
		}
		t.write(`[^\n]`)
		return i + 2
	case 'O':
		if inClass {
			break
		}
		t.write(`[\s\S]`)
		return i + 2
	case 'w':
		if inClass {
			t.write(regexWordItems)
		} else {
			t.write("[" + regexWordItems + "]")
		}
		return i + 2
	case 'W':
		if !inClass { // inside a class .NET's \W has to do: a class cannot hold a negated union
			t.write("[^" + regexWordItems + "]")
			return i + 2
		}
	case 'Q':
		if inClass {
			break
		}
		j := i + 2
		for j < len(rs) && !t.at(j, `\E`) {
			t.atom = len(t.out)
			t.literal(rs[j])
			j++
		}
		if j < len(rs) {
			j += 2
		}
		return j
	case 'x':
		if !t.at(i+2, "{") {
			break
		}
		v, j := rune(0), i+3
		for j < len(rs) && j < i+11 && isHexDigit(rs[j]) {
			v = v*16 + hexValue(rs[j])
			j++
		}
		if j > i+3 && t.at(j, "}") && v <= unicode.MaxRune {
			t.literal(v)
			return j + 1
		}
	case 'p', 'P':
		if j, ok := t.property(i, inClass); ok {
			return j
		}
	}
	if c > unicode.MaxASCII || !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') ||
		!strings.ContainsRune(regexKnownEscapes, c) && !strings.ContainsRune(regexUnsupportedEscapes, c) {
		t.literal(c) // Oniguruma takes an unknown escape as the character itself; .NET rejects some
		return i + 2
	}
	t.writeRunes(rs[i : i+2])
	return i + 2
}

// regexKnownEscapes are the escape letters and digits regexp2 understands with the same
// meaning as Oniguruma's Perl_NT syntax (\u is .NET's only: Oniguruma reads "u" there).
const regexKnownEscapes = "0123456789aAbBcdDefGknprsStuvwWxzZ"

// regexUnsupportedEscapes are Oniguruma escapes with no regexp2 equivalent (\K keep, \X
// grapheme cluster, \y \Y text segment boundaries, \g<> subexpression calls, a stray \E):
// they are left for regexp2 to reject, so the pattern fails loudly rather than matching
// the letter.
const regexUnsupportedEscapes = "KXyYgE"

// regexWordBoundary and regexNotWordBoundary are \b and \B on Oniguruma's word characters
// (regexWordItems); .NET's own \b uses its narrower \w.
const (
	regexWordBoundary    = `(?:(?<=[` + regexWordItems + `])(?![` + regexWordItems + `])|(?<![` + regexWordItems + `])(?=[` + regexWordItems + `]))`
	regexNotWordBoundary = `(?:(?<=[` + regexWordItems + `])(?=[` + regexWordItems + `])|(?<![` + regexWordItems + `])(?![` + regexWordItems + `]))`
)

// literal writes r so that it matches itself anywhere: in a class, in extended mode, and
// after a back-reference (digits are escaped so "\1" then "0" cannot read as "\10").
func (t *regexTranslator) literal(r rune) {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', r == '_':
		t.out = append(t.out, byte(r))
	case r <= 0xFFFF:
		t.out = fmt.Appendf(t.out, `\u%04X`, r)
	default: // not special anywhere; .NET has no escape for it
		t.out = utf8.AppendRune(t.out, r)
	}
}

// property translates \p{...} / \P{...} at i; one-letter forms (\pL, which Go knows and
// Oniguruma reads as a literal "pL") are left to regexp2, which takes Go's meaning.
func (t *regexTranslator) property(i int, inClass bool) (int, bool) {
	rs := t.rs
	if !t.at(i+2, "{") {
		return 0, false
	}
	end := i + 3
	for end < len(rs) && rs[end] != '}' {
		end++
	}
	if end >= len(rs) {
		return 0, false
	}
	name, neg := string(rs[i+3:end]), rs[i+1] == 'P'
	if rest, ok := strings.CutPrefix(name, "^"); ok {
		name, neg = rest, !neg
	}
	if canon, ok := unicodePropertyName(name); ok {
		if neg {
			t.write(`\P{` + canon + `}`)
		} else {
			t.write(`\p{` + canon + `}`)
		}
		return end + 1, true
	}
	set, ok := posixSet(name)
	if !ok {
		return 0, false
	}
	t.writeSet(set, neg, inClass)
	return end + 1, true
}

// posixBracket translates [:name:] or [:^name:] at i inside a class.
func (t *regexTranslator) posixBracket(i int) (int, bool) {
	if !t.at(i+1, ":") {
		return 0, false
	}
	j := i + 2
	for j < len(t.rs) && j < i+12 && t.rs[j] != ':' {
		j++
	}
	if !t.at(j, ":]") {
		return 0, false
	}
	name, neg := string(t.rs[i+2:j]), false
	if rest, ok := strings.CutPrefix(name, "^"); ok {
		name, neg = rest, true
	}
	set, ok := posixSet(name)
	if !ok {
		return 0, false
	}
	t.writeSet(set, neg, true)
	return j + 2, true
}

// writeSet writes set (or its complement) as class items, or as a whole class outside
// one.
func (t *regexTranslator) writeSet(set *regexRuneSet, neg, inClass bool) {
	switch {
	case inClass && neg:
		t.write(set.negItems())
	case inClass:
		t.write(set.items())
	case neg:
		t.write("[^" + set.items() + "]")
	default:
		t.write("[" + set.items() + "]")
	}
}

// isHexDigit reports whether r is an ASCII hex digit.
func isHexDigit(r rune) bool {
	return '0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F'
}

// hexValue is the value of the hex digit r.
func hexValue(r rune) rune {
	switch {
	case r <= '9':
		return r - '0'
	case r >= 'a':
		return r - 'a' + 10
	default:
		return r - 'A' + 10
	}
}

// normalizePropertyName folds a property name the way Oniguruma compares them: case,
// spaces, underscores and hyphens do not count.
func normalizePropertyName(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '_', '-':
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// unicodePropertyNames maps folded names of Go's Unicode tables (which are what regexp2
// knows, under their exact names) to those exact names.
var unicodePropertyNames = sync.OnceValue(func() map[string]string {
	m := make(map[string]string)
	for _, tables := range []map[string]*unicode.RangeTable{unicode.Categories, unicode.Scripts, unicode.Properties} {
		for name := range tables {
			m[normalizePropertyName(name)] = name
		}
	}
	return m
})

// unicodePropertyName returns the name regexp2 knows for a \p{} name, if any. POSIX names
// (Alpha, Digit, ...) are left to posixSet so they get Oniguruma's meaning.
func unicodePropertyName(name string) (string, bool) {
	for _, tables := range []map[string]*unicode.RangeTable{unicode.Categories, unicode.Scripts, unicode.Properties} {
		if _, ok := tables[name]; ok {
			return name, true
		}
	}
	folded := normalizePropertyName(name)
	if _, ok := posixSetDefs[folded]; ok {
		return "", false
	}
	canon, ok := unicodePropertyNames()[folded]
	return canon, ok
}

// regexRuneSet is a set of codepoints as sorted, disjoint, non-adjacent ranges, rendered
// lazily (and once) as .NET class items.
type regexRuneSet struct {
	ranges []regexRuneRange

	once     sync.Once
	pos, neg string
}

// regexRuneRange is an inclusive codepoint range.
type regexRuneRange struct{ lo, hi rune }

// items renders the set as class items.
func (s *regexRuneSet) items() string { s.render(); return s.pos }

// negItems renders the set's complement as class items: .NET cannot negate an item
// inside a class.
func (s *regexRuneSet) negItems() string { s.render(); return s.neg }

// render fills pos and neg.
func (s *regexRuneSet) render() {
	s.once.Do(func() {
		s.pos = renderRanges(s.ranges)
		s.neg = renderRanges(complementRanges(s.ranges))
	})
}

// renderRanges writes ranges as class items with escapes that are safe in any mode.
func renderRanges(rs []regexRuneRange) string {
	t := &regexTranslator{}
	for _, r := range rs {
		t.literal(r.lo)
		if r.hi != r.lo {
			t.write("-")
			t.literal(r.hi)
		}
	}
	return string(t.out)
}

// rangesOf returns the union of tables as ranges.
func rangesOf(tables ...*unicode.RangeTable) []regexRuneRange {
	var rs []regexRuneRange
	for _, tab := range tables {
		for _, r := range tab.R16 {
			for c := rune(r.Lo); c <= rune(r.Hi); c += rune(r.Stride) {
				rs = append(rs, regexRuneRange{c, c})
				if r.Stride == 1 {
					rs[len(rs)-1].hi = rune(r.Hi)
					break
				}
			}
		}
		for _, r := range tab.R32 {
			for c := rune(r.Lo); c <= rune(r.Hi); c += rune(r.Stride) {
				rs = append(rs, regexRuneRange{c, c})
				if r.Stride == 1 {
					rs[len(rs)-1].hi = rune(r.Hi)
					break
				}
			}
		}
	}
	return normalizeRanges(rs)
}

// unionRanges returns the union of range lists.
func unionRanges(lists ...[]regexRuneRange) []regexRuneRange {
	var rs []regexRuneRange
	for _, l := range lists {
		rs = append(rs, l...)
	}
	return normalizeRanges(rs)
}

// normalizeRanges sorts ranges and merges overlapping or adjacent ones.
func normalizeRanges(rs []regexRuneRange) []regexRuneRange {
	slices.SortFunc(rs, func(a, b regexRuneRange) int { return int(a.lo - b.lo) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// complementRanges returns every codepoint not in rs (which must be normalized).
func complementRanges(rs []regexRuneRange) []regexRuneRange {
	var out []regexRuneRange
	next := rune(0)
	for _, r := range rs {
		if r.lo > next {
			out = append(out, regexRuneRange{next, r.lo - 1})
		}
		next = r.hi + 1
	}
	if next <= unicode.MaxRune {
		out = append(out, regexRuneRange{next, unicode.MaxRune})
	}
	return out
}

// span is a one-range list.
func span(lo, hi rune) []regexRuneRange { return []regexRuneRange{{lo, hi}} }

// posixSetDefs defines the POSIX brackets (and \p{} names) as Oniguruma does for Unicode
// encodings, checked against jq 1.7.1; on ASCII they agree with Go's definitions:
// alpha = Alphabetic (L, Nl, Other_Alphabetic), alnum = alpha|Nd, lower = Lowercase,
// upper = Uppercase, blank = Zs|\t, cntrl = C|unassigned, graph = not (space|Cc|Cs|
// unassigned), print = graph|Zs, punct = P and the ASCII symbols $+<=>^`|~,
// space = Z|\t-\r|U+0085, word = alpha|M|Nd|Pc.
var posixSetDefs = map[string]func() []regexRuneRange{
	"alnum": func() []regexRuneRange { return unionRanges(posixAlpha(), rangesOf(unicode.Nd)) },
	"alpha": posixAlpha,
	"ascii": func() []regexRuneRange { return span(0, 0x7F) },
	"blank": func() []regexRuneRange { return unionRanges(rangesOf(unicode.Zs), span('\t', '\t')) },
	"cntrl": func() []regexRuneRange { return unionRanges(rangesOf(unicode.C), unassignedRanges()) },
	"digit": func() []regexRuneRange { return rangesOf(unicode.Nd) },
	"graph": func() []regexRuneRange { return complementRanges(graphComplement()) },
	"lower": func() []regexRuneRange { return rangesOf(unicode.Ll, unicode.Other_Lowercase) },
	"print": func() []regexRuneRange {
		return unionRanges(complementRanges(graphComplement()), rangesOf(unicode.Zs))
	},
	"punct": func() []regexRuneRange {
		sym := []regexRuneRange{{'$', '$'}, {'+', '+'}, {'<', '>'}, {'^', '^'}, {'`', '`'}, {'|', '|'}, {'~', '~'}}
		return unionRanges(rangesOf(unicode.P), sym)
	},
	"space": posixSpace,
	"upper": func() []regexRuneRange { return rangesOf(unicode.Lu, unicode.Other_Uppercase) },
	"word": func() []regexRuneRange {
		return unionRanges(posixAlpha(), rangesOf(unicode.M, unicode.Nd, unicode.Pc))
	},
	"xdigit": func() []regexRuneRange { return unionRanges(span('0', '9'), span('A', 'F'), span('a', 'f')) },
}

// posixAlpha is Unicode's Alphabetic property, Oniguruma's [[:alpha:]].
func posixAlpha() []regexRuneRange {
	return rangesOf(unicode.L, unicode.Nl, unicode.Other_Alphabetic)
}

// posixSpace is Oniguruma's [[:space:]].
func posixSpace() []regexRuneRange {
	return unionRanges(rangesOf(unicode.Z), span('\t', '\r'), span(0x85, 0x85))
}

// unassignedRanges is general category Cn: no Go table lists it, so it is what no major
// category covers.
func unassignedRanges() []regexRuneRange {
	return complementRanges(rangesOf(unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C))
}

// graphComplement is what [[:graph:]] excludes.
func graphComplement() []regexRuneRange {
	return unionRanges(posixSpace(), rangesOf(unicode.Cc, unicode.Cs), unassignedRanges())
}

// posixSets caches built sets by folded name; they are large and immutable.
var posixSets sync.Map // string -> *regexRuneSet

// posixSet returns the set for a POSIX bracket or property name.
func posixSet(name string) (*regexRuneSet, bool) {
	folded := normalizePropertyName(name)
	def, ok := posixSetDefs[folded]
	if !ok {
		return nil, false
	}
	if s, ok := posixSets.Load(folded); ok {
		return s.(*regexRuneSet), true
	}
	s, _ := posixSets.LoadOrStore(folded, &regexRuneSet{ranges: def()})
	return s.(*regexRuneSet), true
}
