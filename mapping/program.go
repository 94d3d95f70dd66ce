package mapping

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/itchyny/gojq"
)

// Program is a config compiled for evaluation: every jq expression compiled once and
// shared, read-only, by any number of goroutines.
type Program struct {
	Config    *Config
	Resources []*ResourceProgram
	opts      Options
	env       *jqEnv
	guard     *memoryGuard
	// timeout is the cause of an item's context ending at ItemTimeout: made once,
	// since a fmt.Errorf per item was about 1% of a full resync's CPU.
	timeout error
	// batches and mappers outlive a Run: a caller that runs the program once per
	// page (a sync does) would otherwise allocate and zero a megabyte batch
	// buffer, and each worker's Mapper, per page.
	batches sync.Pool // *batch
	mappers sync.Pool // *Mapper
}

// ResourceProgram evaluates one resource of the config.
type ResourceProgram struct {
	// Index is the resource's position in the config's resources[].
	Index int
	// Kind is the resource's kind.
	Kind string

	prog         *Program
	res          *Resource
	selector     *field
	itemsToParse *field
	// removeParsed deletes the parsed array from an item (itemsToParseTopLevelTransform);
	// nil when itemsToParse is not a path expression, and the array is then kept.
	removeParsed *gojq.Code
	mappings     []*mappingProgram
	need         *need
}

type mappingProgram struct {
	m          *EntityMapping
	identifier valueProgram
	blueprint  *field
	title      *field
	icon       *field
	team       *valueProgram
	properties []namedField
	relations  []namedValueProgram
}

type namedField struct {
	name string
	f    *field
}

type namedValueProgram struct {
	name string
	v    valueProgram
}

// valueProgram is a compiled Value: one expression, or a search query.
type valueProgram struct {
	f      *field
	search *searchProgram
}

type searchProgram struct {
	combinator *field
	rules      []searchRuleProgram
}

type searchRuleProgram struct {
	property, operator, value *field
	nested                    *searchProgram
}

// Compile checks and compiles every jq expression of cfg. It returns the program and
// every problem found (with field paths and jq positions); the program is nil when any
// problem is an error.
func Compile(cfg *Config, opts Options) (*Program, Problems) {
	opts = opts.withDefaults()
	c := &compiler{env: newJQEnv(opts)}
	prog := &Program{Config: cfg, opts: opts, env: c.env, guard: newMemoryGuard(opts.MaxItemMemory),
		timeout: fmt.Errorf("item took longer than %v: %w", opts.ItemTimeout, context.DeadlineExceeded)}
	for i := range cfg.Resources {
		r := &cfg.Resources[i]
		c.resource, c.kind = i, r.Kind
		rp := &ResourceProgram{Index: i, Kind: r.Kind, prog: prog, res: r, need: &need{}}
		// The selector and mappings read the item, or with itemsToParse each expanded
		// copy, whose element (under ItemsToParseName) is decoded whole as part of
		// what itemsToParse reads.
		target := rp.need
		if r.Port.ItemsToParse != nil {
			target = &need{}
			rp.itemsToParse = c.field(r.Port.ItemsToParse)
			if rp.itemsToParse != nil {
				analyzeNeed(rp.need, rp.itemsToParse.query)
				if r.Port.ItemsToParseTopLevelTransform {
					rp.removeParsed = c.deleter(r.Port.ItemsToParse)
				}
			}
		}
		rp.selector = c.field(&r.Selector.Query)
		if rp.selector != nil {
			analyzeTruth(target, rp.selector.query)
		}
		for mi := range r.Port.Mappings {
			rp.mappings = append(rp.mappings, c.mapping(&r.Port.Mappings[mi], target))
		}
		if target != rp.need {
			if target.keys != nil {
				delete(target.keys, r.Port.ItemsToParseName)
			}
			rp.need.merge(target)
		}
		prog.Resources = append(prog.Resources, rp)
	}
	if c.problems.HasErrors() {
		return nil, c.problems
	}
	return prog, c.problems
}

// ResourcesOfKind returns the resources of the given kind, in config order.
func (p *Program) ResourcesOfKind(kind string) []*ResourceProgram {
	var out []*ResourceProgram
	for _, r := range p.Resources {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// Kinds lists the config's kinds once each, in config order.
func (p *Program) Kinds() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range p.Resources {
		if !seen[r.Kind] {
			seen[r.Kind] = true
			out = append(out, r.Kind)
		}
	}
	return out
}

// NeedString describes what the resource's expressions read from an item, e.g.
// "{name,owner{login}}" or "*" for everything; tools and tests use it.
func (rp *ResourceProgram) NeedString() string { return rp.need.String() }

type compiler struct {
	env      *jqEnv
	problems Problems
	resource int
	kind     string
}

func (c *compiler) problem(e *Expr, err error) {
	c.problems = append(c.problems, Problem{
		Severity: SeverityError, Resource: c.resource, Kind: c.kind,
		Path: e.Path, Line: e.Line, Column: e.Column, Message: err.Error(),
	})
}

func (c *compiler) field(e *Expr) *field {
	if e == nil {
		return nil
	}
	if strings.HasPrefix(strings.TrimSpace(e.Src), "file://") {
		// GitLab's configs name a repository file this way; the source resolves it,
		// and the mapping sees null until one does.
		c.problems = append(c.problems, Problem{
			Severity: SeverityWarning, Resource: c.resource, Kind: c.kind, Path: e.Path, Line: e.Line, Column: e.Column,
			Message: fmt.Sprintf("%q is a file reference, not jq: it is left to the source and maps to null here", e.Src),
		})
		return &field{expr: e, fast: litNode{nil}}
	}
	q, err := parseJQ(e.Src)
	if err != nil {
		c.problem(e, err)
		return nil
	}
	f := &field{expr: e, query: q, fast: buildFast(q)}
	// Compile a copy: compileJQ rewrites the tree, and the analysis wants the original.
	q2, _ := parseJQ(e.Src)
	code, err := c.env.compileJQ(q2)
	if err != nil {
		c.problem(e, err)
		return nil
	}
	f.code = code
	return f
}

// deleter compiles `delpaths([path(<expr>)])`, which removes the parsed array from an
// item; nil when the expression is not a path, in which case nothing is removed.
func (c *compiler) deleter(e *Expr) *gojq.Code {
	q, err := parseJQ(e.Src)
	if err != nil || len(q.FuncDefs) > 0 {
		return nil
	}
	del := &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{
		Name: "delpaths",
		Args: []*gojq.Query{{Term: &gojq.Term{Type: gojq.TermTypeArray, Array: &gojq.Array{
			Query: &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: "path", Args: []*gojq.Query{q}}}},
		}}}},
	}}}
	code, err := c.env.compileJQ(del)
	if err != nil {
		return nil
	}
	return code
}

func (c *compiler) mapping(m *EntityMapping, n *need) *mappingProgram {
	mp := &mappingProgram{m: m}
	mp.identifier = c.value(m.Identifier, n)
	mp.blueprint = c.field(&m.Blueprint)
	consume(n, mp.blueprint)
	mp.title = c.field(m.Title)
	consume(n, mp.title)
	mp.icon = c.field(m.Icon)
	consume(n, mp.icon)
	if m.Team != nil {
		t := c.value(*m.Team, n)
		mp.team = &t
	}
	for i := range m.Properties {
		f := c.field(&m.Properties[i].Expr)
		consume(n, f)
		mp.properties = append(mp.properties, namedField{name: m.Properties[i].Name, f: f})
	}
	for i := range m.Relations {
		mp.relations = append(mp.relations, namedValueProgram{name: m.Relations[i].Name, v: c.value(m.Relations[i].Value, n)})
	}
	return mp
}

func consume(n *need, f *field) {
	if f != nil {
		analyzeNeed(n, f.query)
	}
}

func (c *compiler) value(v Value, n *need) valueProgram {
	if v.Search != nil {
		return valueProgram{search: c.search(v.Search, n)}
	}
	f := c.field(v.Expr)
	consume(n, f)
	return valueProgram{f: f}
}

func (c *compiler) search(q *SearchQuery, n *need) *searchProgram {
	sp := &searchProgram{combinator: c.field(&q.Combinator)}
	consume(n, sp.combinator)
	for _, r := range q.Rules {
		if r.Nested != nil {
			sp.rules = append(sp.rules, searchRuleProgram{nested: c.search(r.Nested, n)})
			continue
		}
		rp := searchRuleProgram{property: c.field(r.Property), operator: c.field(r.Operator), value: c.field(r.Value)}
		consume(n, rp.property)
		consume(n, rp.operator)
		consume(n, rp.value)
		sp.rules = append(sp.rules, rp)
	}
	return sp
}

// String describes the field for messages.
func (f *field) String() string { return fmt.Sprintf("%s (%s)", f.expr.Path, f.expr.Src) }

// Resource returns the config resource the program evaluates.
func (rp *ResourceProgram) Resource() *Resource { return rp.res }
