package mapping

import (
	"maps"
	"slices"
	"strings"

	"github.com/itchyny/gojq"
)

// need is the part of a JSON value that a config's expressions can observe. Decoding
// an item builds only that part: most mappings read a handful of fields from items of
// a hundred, and decoding the rest is most of the cost of a naive mapper.
//
// A need with all set requires the whole value. Otherwise, when the value is an
// object, only the members in keys are decoded (each to its own need), and the rest
// are skipped; arrays and scalars are always decoded whole. A partial object is
// therefore only ever indexed by constant keys or tested for truthiness, which give
// the same results on the partial and the whole object.
type need struct {
	all  bool
	keys map[string]*need
	// lens and firsts filter member names before the map lookup (see member): the
	// lengths (below 63) and first bytes of the keys. A GitHub repository has about
	// ninety members for a mapping's eight keys: looking each name up in the map was
	// a sixth of decoding one (BenchmarkDecodeGitHubRepository: 4.3 to 3.6 µs).
	lens   uint64
	firsts [4]uint64
}

// child returns the need of member k, creating it.
func (n *need) child(k string) *need {
	if n.all {
		return n
	}
	if n.keys == nil {
		n.keys = map[string]*need{}
	}
	c := n.keys[k]
	if c == nil {
		c = &need{}
		n.keys[k] = c
		if len(k) < 63 {
			n.lens |= 1 << len(k)
		} else {
			n.lens |= 1 << 63
		}
		if k != "" {
			n.firsts[k[0]>>6] |= 1 << (k[0] & 63)
		}
	}
	return c
}

// member returns the need of the member named name (its bytes, unescaped), or nil
// when it is not needed.
func (n *need) member(name []byte) *need {
	l := min(len(name), 63)
	if n.lens&(1<<l) == 0 || len(name) > 0 && n.firsts[name[0]>>6]&(1<<(name[0]&63)) == 0 {
		return nil
	}
	return n.keys[string(name)]
}

// merge adds o's requirements to n.
func (n *need) merge(o *need) {
	if o == nil || n.all {
		return
	}
	if o.all {
		n.all, n.keys = true, nil
		return
	}
	for k, c := range o.keys {
		n.child(k).merge(c)
	}
}

// whole reports whether the value must be decoded whole: it is marked all, or a
// descendant was (marking propagates up lazily, here).
func (n *need) whole() bool {
	return n == nil || n.all
}

// String renders the need for tests and debugging, e.g. {name,owner{login}} or *.
func (n *need) String() string {
	if n.whole() {
		return "*"
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(n.keys)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		if c := n.keys[k]; !c.all || len(c.keys) > 0 {
			b.WriteString(c.String())
		}
	}
	b.WriteByte('}')
	return b.String()
}

// flow is the set of item parts a jq value may be: nil when the value is not (a part
// of) the item, or is a part already needed whole.
type flow []*need

// consume marks every part in f as needed whole: the value is used in a way (printed,
// compared, passed to a function) that can observe any of its members.
func (f flow) consume() {
	for _, n := range f {
		n.all, n.keys = true, nil
	}
}

func (f flow) union(g flow) flow {
	if len(f) == 0 {
		return g
	}
	if len(g) == 0 {
		return f
	}
	return append(slices.Clip(f), g...)
}

// index returns the parts reached by indexing with constant key k.
func (f flow) index(k string) flow {
	if len(f) == 0 {
		return nil
	}
	out := make(flow, 0, len(f))
	for _, n := range f {
		if !n.all {
			out = append(out, n.child(k))
		}
	}
	return out
}

// truthOnly lists builtins that look at their input only for truthiness or through
// their arguments, which are evaluated on the same input.
var truthOnly = map[string]bool{"not": true}

// inputFree lists zero-argument builtins that do not read their input.
var inputFree = map[string]bool{
	"empty": true, "now": true, "env": true, "builtins": true, "input_line_number": true,
	"infinite": true, "nan": true, "null": true, "true": true, "false": true, "halt": true,
	"$__loc__": true, "$ENV": true,
}

// analyzeNeed records in root what q reads from its input, which is the item (root)
// itself. It is conservative: whatever it cannot follow, it marks as needed whole.
func analyzeNeed(root *need, q *gojq.Query) {
	a := analyzer{}
	out := a.query(q, flow{root})
	out.consume()
}

// analyzeTruth is analyzeNeed for an expression whose output is only tested (the
// selector): its value is not kept, so a partial object there is harmless.
func analyzeTruth(root *need, q *gojq.Query) {
	a := analyzer{}
	a.query(q, flow{root})
}

type analyzer struct{}

func (a analyzer) query(q *gojq.Query, in flow) flow {
	if q == nil {
		return nil
	}
	if len(q.FuncDefs) > 0 || len(q.Imports) > 0 || q.Meta != nil {
		// User definitions can read their input in any way: follow none of it.
		in.consume()
		return nil
	}
	if q.Term != nil {
		return a.term(q.Term, in)
	}
	if len(q.Patterns) > 0 {
		// L as $x | R: the bound value may be used in any way.
		a.query(q.Left, in).consume()
		return a.query(q.Right, in)
	}
	switch q.Op {
	case gojq.OpPipe:
		return a.query(q.Right, a.query(q.Left, in))
	case gojq.OpComma, gojq.OpAlt:
		// Alternative tests the left for truthiness only; both may be the output.
		return a.query(q.Left, in).union(a.query(q.Right, in))
	case gojq.OpAnd, gojq.OpOr:
		a.query(q.Left, in)
		a.query(q.Right, in)
		return nil
	case gojq.OpAdd, gojq.OpSub, gojq.OpMul, gojq.OpDiv, gojq.OpMod,
		gojq.OpEq, gojq.OpNe, gojq.OpGt, gojq.OpLt, gojq.OpGe, gojq.OpLe:
		a.query(q.Left, in).consume()
		a.query(q.Right, in).consume()
		return nil
	default:
		// Assignments and updates rebuild the input: it is needed whole.
		in.consume()
		a.query(q.Left, in).consume()
		a.query(q.Right, in).consume()
		return nil
	}
}

func (a analyzer) term(t *gojq.Term, in flow) flow {
	var out flow
	switch t.Type {
	case gojq.TermTypeIdentity:
		out = in
	case gojq.TermTypeIndex:
		out = a.index(t.Index, in)
	case gojq.TermTypeNull, gojq.TermTypeTrue, gojq.TermTypeFalse, gojq.TermTypeNumber, gojq.TermTypeBreak:
		out = nil
	case gojq.TermTypeString:
		a.str(t.Str, in)
		out = nil
	case gojq.TermTypeFunc:
		out = a.call(t.Func, in)
	case gojq.TermTypeObject:
		for _, kv := range t.Object.KeyVals {
			a.str(kv.KeyString, in)
			a.query(kv.KeyQuery, in).consume()
			switch {
			case kv.Val != nil:
				a.query(kv.Val, in).consume()
			case strings.HasPrefix(kv.Key, "$"):
				// {$x}: a variable, already consumed where bound.
			case kv.Key != "":
				in.index(kv.Key).consume()
			case kv.KeyString != nil && len(kv.KeyString.Queries) == 0:
				in.index(kv.KeyString.Str).consume()
			default:
				in.consume()
			}
		}
	case gojq.TermTypeArray:
		if t.Array.Query != nil {
			a.query(t.Array.Query, in).consume()
		}
	case gojq.TermTypeQuery:
		out = a.query(t.Query, in)
	case gojq.TermTypeIf:
		a.query(t.If.Cond, in)
		out = a.query(t.If.Then, in)
		for _, e := range t.If.Elif {
			a.query(e.Cond, in)
			out = out.union(a.query(e.Then, in))
		}
		if t.If.Else != nil {
			out = out.union(a.query(t.If.Else, in))
		} else {
			out = out.union(in)
		}
	case gojq.TermTypeTry:
		out = a.query(t.Try.Body, in)
		if t.Try.Catch != nil {
			a.query(t.Try.Catch, nil).consume()
		}
	default:
		// Recurse (..), formats (@csv), unary minus, reduce, foreach, label and anything
		// newer: the input is needed whole, and so is what the parts produce.
		// Their parts see only the input, values derived from it, and variables, all
		// of which are then whole.
		in.consume()
		out = nil
	}
	for _, s := range t.SuffixList {
		switch {
		case s.Index != nil:
			out = a.index(s.Index, out)
		case s.Iter:
			out.consume()
			out = nil
		}
		// Optional (?) only suppresses errors; it does not read more.
	}
	return out
}

// index follows .key and ["key"]; any other index (numbers, slices, computed keys)
// may observe the value's shape, so it is needed whole.
func (a analyzer) index(x *gojq.Index, in flow) flow {
	if k, ok := constKey(x); ok {
		return in.index(k)
	}
	// The index expressions themselves run on the same input.
	in.consume()
	a.str(x.Str, in)
	a.query(x.Start, in).consume()
	a.query(x.End, in).consume()
	return nil
}

// str handles a string literal, whose interpolations print their values.
func (a analyzer) str(s *gojq.String, in flow) {
	if s == nil {
		return
	}
	for _, q := range s.Queries {
		a.query(q, in).consume()
	}
}

func (a analyzer) call(f *gojq.Func, in flow) flow {
	name := f.Name
	switch {
	case strings.HasPrefix(name, "$") && len(f.Args) == 0:
		// A variable: its value was consumed where it was bound, or is $ENV/$__loc__.
		return nil
	case len(f.Args) == 0 && inputFree[name]:
		return nil
	case len(f.Args) == 0 && truthOnly[name]:
		return nil
	case name == "select" && len(f.Args) == 1:
		a.query(f.Args[0], in)
		return in
	case name == "error" && len(f.Args) == 1:
		a.query(f.Args[0], in).consume()
		return nil
	}
	// Any other function may read its input and evaluate its arguments on anything
	// derived from it: need it whole, and everything the arguments touch.
	in.consume()
	for _, arg := range f.Args {
		a.query(arg, in).consume()
	}
	return nil
}
