package mapping

import (
	"fmt"

	"github.com/configsync/configsync/blueprint"
)

// CheckBlueprints reports the mappings that write to blueprints, properties or
// relations the given blueprints do not have. They are warnings, not errors: Ocean's
// own default configs write properties their blueprints do not declare (github's
// prNumber, pagerduty's description) and blueprints another file defines, and they
// must keep validating. Only blueprints given as jq string literals (Port's habit:
// '"githubRepository"') can be checked before items arrive; a computed blueprint is
// left to the sync.
func CheckBlueprints(cfg *Config, set blueprint.Set) Problems {
	var ps Problems
	for ri, r := range cfg.Resources {
		for _, m := range r.Port.Mappings {
			id, ok := literalString(m.Blueprint.Src)
			if !ok {
				continue
			}
			add := func(e *Expr, format string, args ...any) {
				ps = append(ps, Problem{
					Severity: SeverityWarning, Resource: ri, Kind: r.Kind, Path: e.Path,
					Line: e.Line, Column: e.Column, Message: fmt.Sprintf(format, args...),
				})
			}
			bp, found := set.Get(id)
			if !found {
				add(&m.Blueprint, "unknown blueprint %q", id)
				continue
			}
			for _, p := range m.Properties {
				if !bp.HasProperty(p.Name) {
					add(&p.Expr, "blueprint %q has no property %q", id, p.Name)
				}
			}
			for _, rel := range m.Relations {
				if _, ok := bp.Relation(rel.Name); !ok {
					e := Expr{Path: m.Path + ".relations." + rel.Name}
					if rel.Value.Expr != nil {
						e = *rel.Value.Expr
					}
					add(&e, "blueprint %q has no relation %q", id, rel.Name)
				}
			}
		}
	}
	return ps
}
