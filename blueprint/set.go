package blueprint

import (
	"maps"
	"slices"
)

// Set indexes blueprints by identifier, which is how configs, entities and relation
// targets refer to them. The zero Set is empty and ready to read. A Set is not changed
// after NewSet, so any number of goroutines may read it at once.
type Set struct {
	byID map[string]*Blueprint
	ids  []string // in first-seen order, so listings follow the file
}

// NewSet indexes bps. It copies the slice, so later changes to bps do not show through
// (the blueprints' maps are shared). If two blueprints share an identifier the later
// one wins, as a later upsert does in Port; Parse never returns duplicates.
func NewSet(bps []Blueprint) Set {
	s := Set{byID: make(map[string]*Blueprint, len(bps))}
	own := slices.Clone(bps)
	for i := range own {
		id := own[i].Identifier
		if _, seen := s.byID[id]; !seen {
			s.ids = append(s.ids, id)
		}
		s.byID[id] = &own[i]
	}
	return s
}

// Get returns the blueprint with identifier id. The pointer is into the Set and is
// shared by every caller, so treat it as read-only.
func (s Set) Get(id string) (*Blueprint, bool) {
	b, ok := s.byID[id]
	return b, ok
}

// Len is the number of distinct identifiers in the set.
func (s Set) Len() int {
	return len(s.ids)
}

// Identifiers lists the set's identifiers in the order the blueprints were given.
func (s Set) Identifiers() []string {
	return slices.Clone(s.ids)
}

// MissingTargets lists, sorted and without repeats, the relation targets that no
// blueprint in the set defines. Ocean integrations point at blueprints owned by other
// integrations or by Port itself (github-copilot's github_team relation targets
// githubTeam, which no file of its own defines), so this is information for the caller,
// who may know those blueprints exist in Port, and not an error.
func (s Set) MissingTargets() []string {
	missing := map[string]bool{}
	for _, b := range s.byID {
		for _, r := range b.Relations {
			if _, ok := s.byID[r.Target]; !ok {
				missing[r.Target] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(missing))
}
