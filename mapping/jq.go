package mapping

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strings"
	"time"

	"github.com/itchyny/gojq"
)

// Options tune compilation and evaluation. The zero value gives the documented
// defaults; configuration comes in here explicitly, the package reads no environment.
type Options struct {
	// ItemTimeout bounds the evaluation of one item, every expression of every mapping
	// included (default 1s). A runaway expression stops that item, not the process.
	ItemTimeout time.Duration
	// Environ is the environment jq's env and $ENV may draw from, as "KEY=value"
	// (callers pass os.Environ()); only variables matching EnvAllow are visible.
	Environ []string
	// EnvAllow lists visible variable names; a trailing "*" matches a prefix, and
	// path.Match patterns are accepted. Empty: jq sees no variable at all, because in a
	// multi-tenant service every variable may hold someone's secret.
	EnvAllow []string
	// MaxStringBytes bounds a string built by jq's string repetition ("x" * n), the one
	// operation that allocates an unbounded amount in a single step (default 16 MiB).
	MaxStringBytes int
	// MaxItemMemory bounds the heap one item's evaluation may grow (default 256 MiB);
	// see memoryGuard for how it is enforced.
	MaxItemMemory int64
	// Workers is the number of goroutines that map items in parallel (default: the
	// number of CPUs).
	Workers int
}

// DefaultItemTimeout is the time one item's evaluation may take when Options leave it
// unset.
const DefaultItemTimeout = time.Second

const (
	defaultMaxStringBytes = 16 << 20
	defaultMaxItemMemory  = 256 << 20
)

func (o Options) withDefaults() Options {
	if o.ItemTimeout <= 0 {
		o.ItemTimeout = DefaultItemTimeout
	}
	if o.MaxStringBytes <= 0 {
		o.MaxStringBytes = defaultMaxStringBytes
	}
	if o.MaxItemMemory <= 0 {
		o.MaxItemMemory = defaultMaxItemMemory
	}
	return o
}

// visibleEnv filters environ down to the allowed variables.
func visibleEnv(environ, allow []string) []string {
	if len(allow) == 0 {
		return []string{}
	}
	out := []string{}
	for _, kv := range environ {
		name, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		for _, pat := range allow {
			if envMatch(pat, name) {
				out = append(out, kv)
				break
			}
		}
	}
	return out
}

func envMatch(pat, name string) bool {
	if prefix, ok := strings.CutSuffix(pat, "*"); ok && !strings.ContainsAny(prefix, "*?[") {
		return strings.HasPrefix(name, prefix)
	}
	ok, err := path.Match(pat, name)
	return err == nil && ok
}

// jqEnv holds what every expression of one compiled config shares: compiler options
// (regex functions, environment, guards) and the prelude of shadowing definitions.
type jqEnv struct {
	opts    []gojq.CompilerOption
	prelude []*gojq.FuncDef
	regex   *regexEngine
}

// Names of the Go functions the compiled programs call; the "_cs_" prefix keeps them
// out of the way of users' own definitions.
const (
	fnMulGuard = "_cs_mulguard"
	varMulL    = "$__cs_l"
	varMulR    = "$__cs_r"
)

func newJQEnv(o Options) *jqEnv {
	re := newRegexEngine(o.ItemTimeout)
	env := visibleEnv(o.Environ, o.EnvAllow)
	maxStr := o.MaxStringBytes
	opts := append(re.compilerOptions(),
		gojq.WithEnvironLoader(func() []string { return env }),
		gojq.WithFunction(fnMulGuard, 2, 2, func(_ any, args []any) any {
			return mulGuard(args[0], args[1], maxStr)
		}),
	)
	return &jqEnv{opts: opts, prelude: re.prelude(), regex: re}
}

// mulGuard returns r unchanged, or an error when l * r would repeat a string past the
// limit. gojq itself allows up to 2 GiB in one allocation.
func mulGuard(l, r any, maxBytes int) any {
	s, n := l, r
	if _, ok := s.(string); !ok {
		s, n = r, l
	}
	str, ok := s.(string)
	if !ok {
		return r
	}
	var count float64
	switch n := n.(type) {
	case int:
		count = float64(n)
	case float64:
		count = n
	default:
		return r
	}
	if count > 0 && float64(len(str))*math.Ceil(count) > float64(maxBytes) {
		return fmt.Errorf("string repetition of %d bytes × %v exceeds the limit of %d bytes", len(str), count, maxBytes)
	}
	return r
}

// guardMul rewrites every `L * R` into `R as $r | L as $l | $l * _cs_mulguard($l; $r)`,
// which keeps jq's evaluation order (right operand outer, left inner) and lets the
// guard refuse a string repetition before gojq allocates it.
func guardMul(q *gojq.Query) {
	walkQueries(q, func(q *gojq.Query) {
		if q.Op != gojq.OpMul || q.Left == nil || q.Right == nil {
			return
		}
		l, r := q.Left, q.Right
		guarded := &gojq.Query{
			Left: &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: varMulL}}},
			Op:   gojq.OpMul,
			Right: &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{
				Name: fnMulGuard,
				Args: []*gojq.Query{
					{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: varMulL}}},
					{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: varMulR}}},
				},
			}}},
		}
		inner := &gojq.Query{Left: l, Op: gojq.OpPipe, Patterns: []*gojq.Pattern{{Name: varMulL}}, Right: guarded}
		*q = gojq.Query{Left: r, Op: gojq.OpPipe, Patterns: []*gojq.Pattern{{Name: varMulR}}, Right: inner}
	})
}

// walkQueries calls fn on every query node below q, children first, so that fn may
// replace a node in place without walking its own output.
func walkQueries(q *gojq.Query, fn func(*gojq.Query)) {
	if q == nil {
		return
	}
	for _, fd := range q.FuncDefs {
		walkQueries(fd.Body, fn)
	}
	walkQueries(q.Left, fn)
	walkQueries(q.Right, fn)
	walkTerm(q.Term, fn)
	fn(q)
}

func walkTerm(t *gojq.Term, fn func(*gojq.Query)) {
	if t == nil {
		return
	}
	walkIndex(t.Index, fn)
	if t.Func != nil {
		for _, a := range t.Func.Args {
			walkQueries(a, fn)
		}
	}
	if t.Object != nil {
		for _, kv := range t.Object.KeyVals {
			walkString(kv.KeyString, fn)
			walkQueries(kv.KeyQuery, fn)
			walkQueries(kv.Val, fn)
		}
	}
	if t.Array != nil {
		walkQueries(t.Array.Query, fn)
	}
	if t.Unary != nil {
		walkTerm(t.Unary.Term, fn)
	}
	walkString(t.Str, fn)
	if t.If != nil {
		walkQueries(t.If.Cond, fn)
		walkQueries(t.If.Then, fn)
		for _, e := range t.If.Elif {
			walkQueries(e.Cond, fn)
			walkQueries(e.Then, fn)
		}
		walkQueries(t.If.Else, fn)
	}
	if t.Try != nil {
		walkQueries(t.Try.Body, fn)
		walkQueries(t.Try.Catch, fn)
	}
	if t.Reduce != nil {
		walkQueries(t.Reduce.Query, fn)
		walkQueries(t.Reduce.Start, fn)
		walkQueries(t.Reduce.Update, fn)
	}
	if t.Foreach != nil {
		walkQueries(t.Foreach.Query, fn)
		walkQueries(t.Foreach.Start, fn)
		walkQueries(t.Foreach.Update, fn)
		walkQueries(t.Foreach.Extract, fn)
	}
	if t.Label != nil {
		walkQueries(t.Label.Body, fn)
	}
	walkQueries(t.Query, fn)
	for _, s := range t.SuffixList {
		walkIndex(s.Index, fn)
	}
}

func walkIndex(x *gojq.Index, fn func(*gojq.Query)) {
	if x == nil {
		return
	}
	walkString(x.Str, fn)
	walkQueries(x.Start, fn)
	walkQueries(x.End, fn)
}

func walkString(s *gojq.String, fn func(*gojq.Query)) {
	if s == nil {
		return
	}
	for _, q := range s.Queries {
		walkQueries(q, fn)
	}
}

// rewriteSingleQuotes turns Ocean's single-quoted jq strings ('x') into double-quoted
// ones, as Ocean does before compiling. Only quotes outside double-quoted strings and
// comments are touched; inside a rewritten string, double quotes are escaped.
func rewriteSingleQuotes(src string) string {
	var b strings.Builder
	b.Grow(len(src) + 8)
	// depth counts open string interpolations: "...\( <code> )..." nests code in strings.
	type frame struct{ parens int }
	var stack []frame // code frames inside interpolations
	inDouble, inSingle := false, false
	parens := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case inSingle:
			switch c {
			case '\\':
				b.WriteByte(c)
				if i+1 < len(src) {
					i++
					b.WriteByte(src[i])
				}
			case '\'':
				inSingle = false
				b.WriteByte('"')
			case '"':
				b.WriteString(`\"`)
			default:
				b.WriteByte(c)
			}
		case inDouble:
			b.WriteByte(c)
			switch c {
			case '\\':
				if i+1 < len(src) {
					i++
					b.WriteByte(src[i])
					if src[i] == '(' {
						stack = append(stack, frame{parens: parens})
						parens = 0
						inDouble = false
					}
				}
			case '"':
				inDouble = false
			}
		default:
			switch c {
			case '#':
				j := strings.IndexByte(src[i:], '\n')
				if j < 0 {
					j = len(src) - i
				}
				b.WriteString(src[i : i+j])
				i += j - 1
			case '"':
				inDouble = true
				b.WriteByte(c)
			case '\'':
				inSingle = true
				b.WriteByte('"')
			case '(':
				parens++
				b.WriteByte(c)
			case ')':
				if parens == 0 && len(stack) > 0 {
					parens = stack[len(stack)-1].parens
					stack = stack[:len(stack)-1]
					inDouble = true
				} else if parens > 0 {
					parens--
				}
				b.WriteByte(c)
			default:
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}

// parseJQ parses src, retrying with single quotes rewritten as Ocean does. When both
// fail, the rewritten text's error is reported: its quotes are not the problem, and
// the rewrite keeps positions (but for quotes escaped inside single-quoted strings).
func parseJQ(src string) (*gojq.Query, error) {
	q, err := gojq.Parse(src)
	if err == nil {
		return q, nil
	}
	if strings.ContainsRune(src, '\'') {
		rewritten := rewriteSingleQuotes(src)
		q2, err2 := gojq.Parse(rewritten)
		if err2 == nil {
			return q2, nil
		}
		return nil, jqPositionError(rewritten, err2)
	}
	return nil, jqPositionError(src, err)
}

// jqPositionError adds the line, column and a caret excerpt to a gojq parse error.
func jqPositionError(src string, err error) error {
	var pe *gojq.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("jq: %w", err)
	}
	off := min(max(pe.Offset-len(pe.Token), 0), len(src))
	line, col := 1, 1
	lineStart := 0
	for i := 0; i < off; i++ {
		if src[i] == '\n' {
			line++
			col = 1
			lineStart = i + 1
		} else {
			col++
		}
	}
	lineEnd := strings.IndexByte(src[lineStart:], '\n')
	if lineEnd < 0 {
		lineEnd = len(src)
	} else {
		lineEnd += lineStart
	}
	excerpt := src[lineStart:lineEnd]
	return fmt.Errorf("jq: %w at line %d, column %d of the expression:\n    %s\n    %s^", err, line, col, excerpt, strings.Repeat(" ", col-1))
}

// literalString reports whether src is a jq string literal without interpolation, and
// its value; such blueprints and combinators can be checked before any item arrives.
func literalString(src string) (string, bool) {
	q, err := parseJQ(src)
	if err != nil || q.Term == nil || len(q.FuncDefs) > 0 {
		return "", false
	}
	t := q.Term
	if t.Type != gojq.TermTypeString || t.Str == nil || len(t.Str.Queries) > 0 || len(t.SuffixList) > 0 || t.Str.Str == "" && src == "" {
		return "", false
	}
	return t.Str.Str, true
}

// compileJQ compiles one expression for the shared environment: the user's query with
// the regex prelude prepended (user definitions still shadow it) and `*` guarded.
func (e *jqEnv) compileJQ(q *gojq.Query) (*gojq.Code, error) {
	guardMul(q)
	full := *q
	full.FuncDefs = append(append([]*gojq.FuncDef{}, e.prelude...), q.FuncDefs...)
	code, err := gojq.Compile(&full, e.opts...)
	if err != nil {
		return nil, fmt.Errorf("jq: %w", err)
	}
	return code, nil
}
