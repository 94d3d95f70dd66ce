package mapping

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Defaults of the config's top-level flags. createMissingRelatedEntities and
// enableMergeEntity default to true as in Ocean; deleteDependents defaults to false so
// that a flag left out never deletes more than was asked for.
const (
	DefaultEntityDeletionThreshold = 0.9
	DefaultItemsToParseName        = "item"
)

// maxConfigBytes bounds a config document; real configs are a few KiB, and the YAML
// parser's cost grows with input, so a bigger one is refused before parsing.
const maxConfigBytes = 4 << 20

// maxConfigNodes bounds the YAML nodes walked, including those reached through aliases,
// so that an alias bomb ("billion laughs") is refused instead of expanded.
const maxConfigNodes = 200_000

// maxConfigDepth bounds how deeply values nest, aliases included. An alias inside
// its own anchor ("a: &a [*a]") nests without end: the node bound alone let such a
// 20-byte document nest 200,000 deep, building a path for each level as long as
// the levels above, until the process ran out of memory.
const maxConfigDepth = 100

// Config is Port's integration config: the document Port's
// `PATCH /v1/integration/{id}/config` takes under `config`.
type Config struct {
	// DeleteDependents makes deleting an entity delete the entities whose required
	// relations point at it. Ocean spells it deleteDependentEntities; both are accepted.
	DeleteDependents bool
	// CreateMissingRelatedEntities creates a barebones target for a relation that
	// points at an entity that does not exist.
	CreateMissingRelatedEntities bool
	// EnableMergeEntity merges a written entity into the stored one instead of
	// replacing it.
	EnableMergeEntity bool
	// EntityDeletionThreshold (0..1) is the largest share of its owned entities a run
	// may delete; a run that would delete more deletes nothing.
	EntityDeletionThreshold float64
	// Resources are the kinds to fetch and how to map them, in config order.
	Resources []Resource
	// Extra holds top-level keys that are not part of the mapping model (integrations
	// add their own, such as github's repositoryType); they are handed to the source.
	Extra map[string]any
}

// Resource maps one kind of the tool's resources to entities.
type Resource struct {
	Kind     string
	Selector Selector
	Port     Port
	// Path is where the resource sits in the document, e.g. "resources[2]".
	Path string
}

// Selector picks the items of a kind that become entities.
type Selector struct {
	// Query is jq that must yield boolean true for an item to be mapped.
	Query Expr
	// Extra holds the selector's other fields (github's includedFiles, an HTTP
	// source's path, ...), which belong to the source.
	Extra map[string]any
}

// Port says how an item becomes entities.
type Port struct {
	// ItemsToParse, when set, is jq yielding an array; each element is mapped as a
	// copy of the item carrying the element under ItemsToParseName.
	ItemsToParse *Expr
	// ItemsToParseName is the key the element is placed under (default "item").
	ItemsToParseName string
	// ItemsToParseTopLevelTransform removes the parsed array from each copy (default
	// true), so that copies do not carry every sibling element.
	ItemsToParseTopLevelTransform bool
	// Mappings yield one entity each per item; Port accepts one object or an array.
	Mappings []EntityMapping
}

// EntityMapping holds the jq expressions that produce one entity.
type EntityMapping struct {
	Identifier Value
	Blueprint  Expr
	Title      *Expr
	Icon       *Expr
	Team       *Value
	Properties []NamedExpr
	Relations  []NamedValue
	// Path is where the mapping sits in the document.
	Path string
}

// NamedExpr is a property and its jq expression, kept in config order so that
// entities list properties in the order their authors wrote them.
type NamedExpr struct {
	Name string
	Expr Expr
}

// NamedValue is a relation and its value: jq, or a search query.
type NamedValue struct {
	Name  string
	Value Value
}

// Value is a jq expression or a search query whose rule values are jq; identifier,
// team and relations accept both.
type Value struct {
	Expr   *Expr
	Search *SearchQuery
}

// SearchQuery finds entities by their properties instead of naming an identifier.
// Resolving it against the catalog belongs to the sync; the mapping evaluates its jq.
type SearchQuery struct {
	Combinator Expr
	Rules      []SearchRule
	Path       string
}

// SearchRule is one condition of a search query, or a nested query.
type SearchRule struct {
	Property *Expr
	Operator *Expr
	Value    *Expr
	Nested   *SearchQuery
}

// Expr is a jq expression as written in the config, with where it was written so that
// errors point at it.
type Expr struct {
	Src string
	// Path is the field path, e.g. "resources[1].port.entity.mappings.properties.url".
	Path string
	// Line and Column locate the value in the document (1-based; 0 when unknown).
	Line, Column int
}

// Severity tells a problem that refuses the config from one that only warns.
type Severity int

// Severities of a Problem.
const (
	SeverityError Severity = iota
	SeverityWarning
)

// String names the severity as printed by validate.
func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Problem is one thing wrong with a config, located precisely enough to fix it: the
// resource, its kind, the field path, the place in the document and, for jq, the
// position in the expression.
type Problem struct {
	Severity Severity
	// Resource is the index into resources[], or -1 for a top-level problem.
	Resource int
	Kind     string
	Path     string
	Line     int
	Column   int
	Message  string
}

// String renders the problem on one line.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Severity.String())
	b.WriteString(": ")
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d:%d: ", p.Line, p.Column)
	}
	b.WriteString(p.Detail())
	return b.String()
}

// InFile renders the problem as compilers do, "file:line:column: severity: ...", so
// that editors can jump to it.
func (p Problem) InFile(file string) string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s: %s", file, p.Line, p.Column, p.Severity, p.Detail())
	}
	return fmt.Sprintf("%s: %s: %s", file, p.Severity, p.Detail())
}

// Detail is the problem without its severity and place in the document: resource,
// kind, field path and message.
func (p Problem) Detail() string {
	var b strings.Builder
	if p.Resource >= 0 {
		fmt.Fprintf(&b, "resource %d", p.Resource)
		if p.Kind != "" {
			fmt.Fprintf(&b, " (kind %q)", p.Kind)
		}
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is a list of problems; a config with any error-severity problem is refused.
type Problems []Problem

// HasErrors reports whether any problem refuses the config.
func (ps Problems) HasErrors() bool {
	for _, p := range ps {
		if p.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Errors returns the error-severity problems only.
func (ps Problems) Errors() Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == SeverityError {
			out = append(out, p)
		}
	}
	return out
}

// Err returns nil when there is no error, or one error listing every error problem.
func (ps Problems) Err() error {
	errs := ps.Errors()
	if len(errs) == 0 {
		return nil
	}
	return &ConfigError{Problems: errs}
}

// ConfigError refuses a config; it carries every problem so that callers (the API's
// 422, validate's output) can show them all, not just the first.
type ConfigError struct {
	Problems Problems
}

// Error lists the problems, one per line.
func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid config: " + strings.Join(lines, "; ")
}

// parser walks a YAML node tree into a Config, collecting every problem instead of
// stopping at the first.
type parser struct {
	problems Problems
	nodes    int
	depth    int  // of the value plain is in
	tooDeep  bool // maxConfigDepth was reported
	resource int
	kind     string
}

func (p *parser) add(sev Severity, n *yaml.Node, path, format string, args ...any) {
	pr := Problem{Severity: sev, Resource: p.resource, Kind: p.kind, Path: path, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		pr.Line, pr.Column = n.Line, n.Column
	}
	p.problems = append(p.problems, pr)
}

func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) {
	p.add(SeverityError, n, path, format, args...)
}

func (p *parser) warnf(n *yaml.Node, path, format string, args ...any) {
	p.add(SeverityWarning, n, path, format, args...)
}

// Parse reads a config from JSON or YAML (JSON is read as the YAML it also is). It
// returns the config with defaults applied and every structural problem; jq is checked
// by Compile. The config is nil only when the document cannot be read at all.
func Parse(doc []byte) (*Config, Problems) {
	p := &parser{resource: -1}
	if len(doc) > maxConfigBytes {
		p.errorf(nil, "", "config is %d bytes, more than the %d allowed", len(doc), maxConfigBytes)
		return nil, p.problems
	}
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		p.errorf(nil, "", "config is neither JSON nor YAML: %v", err)
		return nil, p.problems
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		p.errorf(nil, "", "config is empty")
		return nil, p.problems
	}
	top := p.resolve(root.Content[0])
	if top == nil {
		return nil, p.problems
	}
	if top.Kind != yaml.MappingNode {
		p.errorf(top, "", "config must be an object, not %s", nodeKind(top))
		return nil, p.problems
	}
	cfg := &Config{
		CreateMissingRelatedEntities: true,
		EnableMergeEntity:            true,
		EntityDeletionThreshold:      DefaultEntityDeletionThreshold,
	}
	var dd, dde *bool
	var ddeNode *yaml.Node
	sawResources := false
	p.eachKey(top, "", func(key string, k, v *yaml.Node) {
		switch key {
		case "deleteDependents":
			dd = p.boolean(v, key)
		case "deleteDependentEntities":
			dde, ddeNode = p.boolean(v, key), v
		case "createMissingRelatedEntities":
			if b := p.boolean(v, key); b != nil {
				cfg.CreateMissingRelatedEntities = *b
			}
		case "enableMergeEntity":
			if b := p.boolean(v, key); b != nil {
				cfg.EnableMergeEntity = *b
			}
		case "entityDeletionThreshold":
			if f, ok := p.number(v, key); ok {
				if f < 0 || f > 1 {
					p.errorf(v, key, "must be between 0 and 1, got %v", f)
				} else {
					cfg.EntityDeletionThreshold = f
				}
			}
		case "resources":
			sawResources = true
			cfg.Resources = p.resources(v)
		default:
			if cfg.Extra == nil {
				cfg.Extra = map[string]any{}
			}
			cfg.Extra[key] = p.plain(v, key)
		}
	})
	switch {
	case dd != nil && dde != nil && *dd != *dde:
		p.errorf(ddeNode, "deleteDependentEntities", "contradicts deleteDependents (%v vs %v); give one of them", *dde, *dd)
	case dd != nil:
		cfg.DeleteDependents = *dd
	case dde != nil:
		cfg.DeleteDependents = *dde
	}
	if !sawResources {
		p.errorf(top, "resources", "is required")
	}
	return cfg, p.problems
}

// resolve follows aliases and counts nodes, refusing documents that expand too far.
func (p *parser) resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	p.nodes++
	if p.nodes == maxConfigNodes {
		p.errorf(n, "", "config has more than %d nodes (aliases included)", maxConfigNodes)
	}
	if p.nodes >= maxConfigNodes {
		return nil
	}
	return n
}

// eachKey calls fn for each key of a mapping node in document order, refusing
// duplicate and non-string keys.
func (p *parser) eachKey(n *yaml.Node, path string, fn func(key string, k, v *yaml.Node)) {
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.resolve(n.Content[i]), p.resolve(n.Content[i+1])
		if k == nil || v == nil {
			return
		}
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, path, "keys must be strings")
			continue
		}
		if k.Tag == "!!merge" {
			p.errorf(k, path, "YAML merge keys (<<) are not supported")
			continue
		}
		child := join(path, k.Value)
		if seen[k.Value] {
			p.errorf(k, child, "is given twice")
			continue
		}
		seen[k.Value] = true
		fn(k.Value, k, v)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "an array"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		}
		return "a string"
	}
	return "unknown"
}

func (p *parser) boolean(n *yaml.Node, path string) *bool {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return &b
		}
	}
	p.errorf(n, path, "must be a boolean, not %s", nodeKind(n))
	return nil
}

func (p *parser) number(n *yaml.Node, path string) (float64, bool) {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		f, err := strconv.ParseFloat(n.Value, 64)
		if err == nil {
			return f, true
		}
	}
	p.errorf(n, path, "must be a number, not %s", nodeKind(n))
	return 0, false
}

// plain converts a node to the plain JSON-like value handed to sources (map, slice,
// string, float64/int64, bool, nil).
func (p *parser) plain(n *yaml.Node, path string) any {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxConfigDepth {
		if !p.tooDeep { // once: a self-referencing alias is too deep on every branch
			p.tooDeep = true
			p.errorf(n, path, "nests more than %d levels deep (aliases included)", maxConfigDepth)
		}
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		p.eachKey(n, path, func(key string, _, v *yaml.Node) { m[key] = p.plain(v, join(path, key)) })
		return m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			if c = p.resolve(c); c == nil {
				return s
			}
			s = append(s, p.plain(c, fmt.Sprintf("%s[%d]", path, i)))
		}
		return s
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			p.errorf(n, path, "unreadable value: %v", err)
			return nil
		}
		if i, ok := v.(int); ok {
			return int64(i)
		}
		return v
	}
	return nil
}

// expr reads a jq expression. Any scalar is accepted as jq source text, since YAML
// turns the jq literal `true` (Ocean's `query: true`) into a boolean.
func (p *parser) expr(n *yaml.Node, path string) *Expr {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, path, "must be a jq expression (a string), not %s", nodeKind(n))
		return nil
	}
	if strings.TrimSpace(n.Value) == "" {
		p.errorf(n, path, "jq expression is empty")
		return nil
	}
	return &Expr{Src: n.Value, Path: path, Line: n.Line, Column: n.Column}
}

func (p *parser) resources(n *yaml.Node) []Resource {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "resources", "must be an array, not %s", nodeKind(n))
		return nil
	}
	out := make([]Resource, 0, len(n.Content))
	for i, c := range n.Content {
		if c = p.resolve(c); c == nil {
			break
		}
		p.resource, p.kind = i, ""
		if r, ok := p.resourceAt(c, i); ok {
			out = append(out, r)
		}
	}
	p.resource, p.kind = -1, ""
	return out
}

func (p *parser) resourceAt(n *yaml.Node, i int) (Resource, bool) {
	path := fmt.Sprintf("resources[%d]", i)
	r := Resource{Path: path}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "must be an object, not %s", nodeKind(n))
		return r, false
	}
	// The kind first, so that every other problem of the resource can name it.
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == "kind" && n.Content[j+1].Kind == yaml.ScalarNode {
			p.kind = n.Content[j+1].Value
		}
	}
	var sawKind, sawSelector, sawPort bool
	ok := true
	p.eachKey(n, path, func(key string, _, v *yaml.Node) {
		child := join(path, key)
		switch key {
		case "kind":
			sawKind = true
			if v.Kind != yaml.ScalarNode || v.Tag != "!!str" || v.Value == "" {
				p.errorf(v, child, "must be a non-empty string")
				ok = false
				return
			}
			r.Kind = v.Value
		case "selector":
			sawSelector = true
			r.Selector = p.selector(v, child)
		case "port":
			sawPort = true
			r.Port = p.port(v, child)
		default:
			p.warnf(v, child, "unknown field, ignored")
		}
	})
	if !sawKind {
		p.errorf(n, join(path, "kind"), "is required")
		ok = false
	}
	if !sawSelector {
		p.errorf(n, join(path, "selector.query"), "is required")
	}
	if !sawPort {
		p.errorf(n, join(path, "port.entity.mappings"), "is required")
	}
	return r, ok
}

func (p *parser) selector(n *yaml.Node, path string) Selector {
	var s Selector
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "must be an object, not %s", nodeKind(n))
		return s
	}
	sawQuery := false
	p.eachKey(n, path, func(key string, _, v *yaml.Node) {
		if key == "query" {
			sawQuery = true
			if e := p.expr(v, join(path, key)); e != nil {
				s.Query = *e
			}
			return
		}
		if s.Extra == nil {
			s.Extra = map[string]any{}
		}
		s.Extra[key] = p.plain(v, join(path, key))
	})
	if !sawQuery {
		p.errorf(n, join(path, "query"), "is required (use 'true' to take every item)")
	}
	return s
}

func (p *parser) port(n *yaml.Node, path string) Port {
	pt := Port{ItemsToParseName: DefaultItemsToParseName, ItemsToParseTopLevelTransform: true}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "must be an object, not %s", nodeKind(n))
		return pt
	}
	sawEntity := false
	p.eachKey(n, path, func(key string, _, v *yaml.Node) {
		child := join(path, key)
		switch key {
		case "entity":
			sawEntity = true
			pt.Mappings = p.entity(v, child)
		case "itemsToParse":
			pt.ItemsToParse = p.expr(v, child)
		case "itemsToParseName":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!str" || v.Value == "" {
				p.errorf(v, child, "must be a non-empty string")
				return
			}
			pt.ItemsToParseName = v.Value
		case "itemsToParseTopLevelTransform":
			if b := p.boolean(v, child); b != nil {
				pt.ItemsToParseTopLevelTransform = *b
			}
		default:
			p.warnf(v, child, "unknown field, ignored")
		}
	})
	if !sawEntity {
		p.errorf(n, join(path, "entity.mappings"), "is required")
	}
	return pt
}

func (p *parser) entity(n *yaml.Node, path string) []EntityMapping {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "must be an object, not %s", nodeKind(n))
		return nil
	}
	var out []EntityMapping
	sawMappings := false
	p.eachKey(n, path, func(key string, _, v *yaml.Node) {
		child := join(path, key)
		if key != "mappings" {
			p.warnf(v, child, "unknown field, ignored")
			return
		}
		sawMappings = true
		switch v.Kind {
		case yaml.MappingNode:
			if m, ok := p.mapping(v, child); ok {
				out = append(out, m)
			}
		case yaml.SequenceNode:
			if len(v.Content) == 0 {
				p.errorf(v, child, "is an empty array; give at least one mapping")
			}
			for i, c := range v.Content {
				if c = p.resolve(c); c == nil {
					break
				}
				if m, ok := p.mapping(c, fmt.Sprintf("%s[%d]", child, i)); ok {
					out = append(out, m)
				}
			}
		default:
			p.errorf(v, child, "must be an object or an array of objects, not %s", nodeKind(v))
		}
	})
	if !sawMappings {
		p.errorf(n, join(path, "mappings"), "is required")
	}
	return out
}

func (p *parser) mapping(n *yaml.Node, path string) (EntityMapping, bool) {
	m := EntityMapping{Path: path}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "must be an object, not %s", nodeKind(n))
		return m, false
	}
	ok := true
	var sawIdentifier, sawBlueprint bool
	p.eachKey(n, path, func(key string, _, v *yaml.Node) {
		child := join(path, key)
		switch key {
		case "identifier":
			sawIdentifier = true
			if val, good := p.value(v, child); good {
				m.Identifier = val
			} else {
				ok = false
			}
		case "blueprint":
			sawBlueprint = true
			if e := p.expr(v, child); e != nil {
				m.Blueprint = *e
			} else {
				ok = false
			}
		case "title":
			m.Title = p.optionalExpr(v, child)
		case "icon":
			m.Icon = p.optionalExpr(v, child)
		case "team":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				return
			}
			if val, good := p.value(v, child); good {
				m.Team = &val
			}
		case "properties":
			m.Properties = p.namedExprs(v, child)
		case "relations":
			m.Relations = p.namedValues(v, child)
		default:
			p.warnf(v, child, "unknown field, ignored")
		}
	})
	if !sawIdentifier {
		p.errorf(n, join(path, "identifier"), "is required")
		ok = false
	}
	if !sawBlueprint {
		p.errorf(n, join(path, "blueprint"), "is required")
		ok = false
	}
	return m, ok
}

func (p *parser) optionalExpr(n *yaml.Node, path string) *Expr {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	return p.expr(n, path)
}

func (p *parser) namedExprs(n *yaml.Node, path string) []NamedExpr {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "must be an object, not %s", nodeKind(n))
		return nil
	}
	out := make([]NamedExpr, 0, len(n.Content)/2)
	p.eachKey(n, path, func(key string, _, v *yaml.Node) {
		if e := p.expr(v, join(path, key)); e != nil {
			out = append(out, NamedExpr{Name: key, Expr: *e})
		}
	})
	return out
}

func (p *parser) namedValues(n *yaml.Node, path string) []NamedValue {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "must be an object, not %s", nodeKind(n))
		return nil
	}
	out := make([]NamedValue, 0, len(n.Content)/2)
	p.eachKey(n, path, func(key string, _, v *yaml.Node) {
		if val, ok := p.value(v, join(path, key)); ok {
			out = append(out, NamedValue{Name: key, Value: val})
		}
	})
	return out
}

// value reads a jq expression or a search query object.
func (p *parser) value(n *yaml.Node, path string) (Value, bool) {
	if n.Kind == yaml.MappingNode {
		q := p.search(n, path, 0)
		return Value{Search: q}, q != nil
	}
	e := p.expr(n, path)
	return Value{Expr: e}, e != nil
}

// maxSearchDepth bounds nested search queries; Port's own limit is far lower.
const maxSearchDepth = 16

var searchCombinators = map[string]bool{"and": true, "or": true}

func (p *parser) search(n *yaml.Node, path string, depth int) *SearchQuery {
	if depth > maxSearchDepth {
		p.errorf(n, path, "search query nests deeper than %d levels", maxSearchDepth)
		return nil
	}
	q := &SearchQuery{Path: path}
	ok := true
	var sawCombinator, sawRules bool
	p.eachKey(n, path, func(key string, _, v *yaml.Node) {
		child := join(path, key)
		switch key {
		case "combinator":
			sawCombinator = true
			e := p.expr(v, child)
			if e == nil {
				ok = false
				return
			}
			if lit, isLit := literalString(e.Src); isLit && !searchCombinators[lit] {
				p.errorf(v, child, "combinator must be \"and\" or \"or\", got %q", lit)
				ok = false
			}
			q.Combinator = *e
		case "rules":
			sawRules = true
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				p.errorf(v, child, "must be a non-empty array of rules")
				ok = false
				return
			}
			for i, c := range v.Content {
				if c = p.resolve(c); c == nil {
					ok = false
					return
				}
				r, good := p.rule(c, fmt.Sprintf("%s[%d]", child, i), depth)
				if !good {
					ok = false
					continue
				}
				q.Rules = append(q.Rules, r)
			}
		default:
			p.errorf(v, child, "unknown field of a search query (want combinator and rules)")
			ok = false
		}
	})
	if !sawCombinator {
		p.errorf(n, join(path, "combinator"), "is required in a search query")
		ok = false
	}
	if !sawRules {
		p.errorf(n, join(path, "rules"), "is required in a search query")
		ok = false
	}
	if !ok {
		return nil
	}
	return q
}

func (p *parser) rule(n *yaml.Node, path string, depth int) (SearchRule, bool) {
	var r SearchRule
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "must be an object, not %s", nodeKind(n))
		return r, false
	}
	if hasKey(n, "combinator") || hasKey(n, "rules") {
		r.Nested = p.search(n, path, depth+1)
		return r, r.Nested != nil
	}
	ok := true
	p.eachKey(n, path, func(key string, _, v *yaml.Node) {
		child := join(path, key)
		switch key {
		case "property":
			r.Property = p.expr(v, child)
		case "operator":
			r.Operator = p.expr(v, child)
		case "value":
			r.Value = p.expr(v, child)
		default:
			p.errorf(v, child, "unknown field of a search rule (want property, operator, value)")
			ok = false
		}
	})
	for _, f := range []struct {
		name string
		e    *Expr
	}{{"property", r.Property}, {"operator", r.Operator}} {
		if f.e == nil {
			p.errorf(n, join(path, f.name), "is required in a search rule")
			ok = false
		}
	}
	return r, ok
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}
