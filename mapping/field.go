package mapping

import (
	"context"
	"errors"

	"github.com/itchyny/gojq"
)

// fastNode evaluates a small subset of jq without the interpreter: literals, plain
// object paths (.name, .owner.login), `a // b`, and if/elif/else over those. That
// subset is most of what real mapping configs hold, and answering it directly avoids
// the interpreter's setup on every evaluation. eval reports ok=false when the input
// is anything the subset does not decide exactly as jq would (indexing a non-object,
// say); the field then asks the interpreter.
type fastNode interface {
	eval(v any) (out any, ok bool)
}

type litNode struct{ v any }

func (n litNode) eval(any) (any, bool) { return n.v, true }

type identityNode struct{}

func (identityNode) eval(v any) (any, bool) { return v, true }

type pathNode []string

func (n pathNode) eval(v any) (any, bool) {
	for _, k := range n {
		switch m := v.(type) {
		case map[string]any:
			v = m[k]
		case nil:
		default:
			return nil, false
		}
	}
	return v, true
}

// altNode is `a // b` for single-output a: a when truthy, else b.
type altNode struct{ a, b fastNode }

func (n altNode) eval(v any) (any, bool) {
	a, ok := n.a.eval(v)
	if !ok {
		return nil, false
	}
	if truthy(a) {
		return a, true
	}
	return n.b.eval(v)
}

// ifNode is if/elif/else; a nil else is jq's implicit `else .`.
type ifNode struct {
	conds, thens []fastNode
	els          fastNode
}

func (n ifNode) eval(v any) (any, bool) {
	for i, c := range n.conds {
		cv, ok := c.eval(v)
		if !ok {
			return nil, false
		}
		if truthy(cv) {
			return n.thens[i].eval(v)
		}
	}
	if n.els == nil {
		return v, true
	}
	return n.els.eval(v)
}

func truthy(v any) bool { return v != nil && v != false }

// field is one compiled expression of a config.
type field struct {
	expr  *Expr
	query *gojq.Query
	code  *gojq.Code
	fast  fastNode
}

// errNoOutput is what a field whose expression yields nothing evaluates to; the field
// becomes null with a warning.
var errNoOutput = errors.New("expression yielded no value")

// buildFast returns the fast evaluator of q, or nil when q is outside the subset.
func buildFast(q *gojq.Query) fastNode {
	switch {
	case q == nil || len(q.FuncDefs) > 0 || len(q.Patterns) > 0 || q.Meta != nil || len(q.Imports) > 0:
		return nil
	case q.Term != nil:
		return buildFastTerm(q.Term)
	case q.Op == gojq.OpAlt:
		a, b := buildFast(q.Left), buildFast(q.Right)
		if a == nil || b == nil {
			return nil
		}
		return altNode{a, b}
	}
	return nil
}

func buildFastTerm(t *gojq.Term) fastNode {
	if t.Type == gojq.TermTypeIndex || t.Type == gojq.TermTypeIdentity {
		var path pathNode
		if t.Type == gojq.TermTypeIndex {
			k, ok := constKey(t.Index)
			if !ok {
				return nil
			}
			path = append(path, k)
		}
		for _, s := range t.SuffixList {
			// An optional suffix (.a?) only hides errors, which the fast path never
			// produces: it hands every non-object to the interpreter.
			k, ok := constKey(s.Index)
			if s.Iter || !ok {
				return nil
			}
			path = append(path, k)
		}
		if len(path) == 0 {
			return identityNode{}
		}
		return path
	}
	if len(t.SuffixList) > 0 {
		return nil
	}
	switch t.Type {
	case gojq.TermTypeNull:
		return litNode{nil}
	case gojq.TermTypeTrue:
		return litNode{true}
	case gojq.TermTypeFalse:
		return litNode{false}
	case gojq.TermTypeNumber:
		v, err := parseNumber([]byte(t.Number))
		if err != nil {
			return nil
		}
		return litNode{v}
	case gojq.TermTypeString:
		if t.Str == nil || len(t.Str.Queries) > 0 {
			return nil
		}
		return litNode{t.Str.Str}
	case gojq.TermTypeQuery:
		return buildFast(t.Query)
	case gojq.TermTypeIf:
		n := ifNode{}
		branches := append([]*gojq.IfElif{{Cond: t.If.Cond, Then: t.If.Then}}, t.If.Elif...)
		for _, b := range branches {
			c, th := buildFast(b.Cond), buildFast(b.Then)
			if c == nil || th == nil {
				return nil
			}
			n.conds, n.thens = append(n.conds, c), append(n.thens, th)
		}
		if t.If.Else != nil {
			if n.els = buildFast(t.If.Else); n.els == nil {
				return nil
			}
		}
		return n
	}
	return nil
}

// eval returns the field's first output. An error, or no output at all (errNoOutput),
// is returned as err; a context error means the item ran out of time or memory.
func (f *field) eval(ctx context.Context, v any) (any, error) {
	if f.fast != nil {
		if out, ok := f.fast.eval(v); ok {
			return out, nil
		}
	}
	return f.run(ctx, v)
}

func (f *field) run(ctx context.Context, v any) (any, error) {
	iter := f.code.RunWithContext(ctx, v)
	out, ok := iter.Next()
	if !ok {
		return nil, errNoOutput
	}
	if err, isErr := out.(error); isErr {
		if ctxErr := context.Cause(ctx); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	return out, nil
}

// isStop reports whether err ended the whole item (time or memory limit) rather than
// one field.
func isStop(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, ErrMemoryLimit)
}

// constKey returns the key of a constant object index: .name, ."name", .["name"].
func constKey(x *gojq.Index) (string, bool) {
	switch {
	case x == nil || x.IsSlice || x.End != nil:
		return "", false
	case x.Start != nil:
		q := x.Start
		if q.Term == nil || q.Left != nil || len(q.FuncDefs) > 0 || q.Term.Type != gojq.TermTypeString ||
			len(q.Term.SuffixList) > 0 || q.Term.Str == nil || len(q.Term.Str.Queries) > 0 {
			return "", false
		}
		return q.Term.Str.Str, true
	case x.Name != "":
		return x.Name, true
	case x.Str != nil && len(x.Str.Queries) == 0:
		return x.Str.Str, true
	}
	return "", false
}
